"""Lambda handlers of the pull side (template.yaml: one pull function per provider, each with its
own role and reserved concurrency, plus the router).

- ``handler``: a provider's pull worker, on that provider's FIFO due-pull queue (fed by the
  syncs' EventBridge Scheduler schedules and by the router). Each request pulls its account;
  partial batch failures are reported, and a failure holds back only its account's group.
- ``route``: the webhooks' pull queue (every provider's requests) forwarded to each account's
  provider queue.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from contactsync.api.queue import PullRequest
from contactsync.runtime.aws import CloudContext
from contactsync.runtime.observability import MetricUnit, logger, metrics, tracer
from contactsync.runtime.pulls import PullRouter, PullWorker
from contactsync.runtime.settings import PullQueuesEnv, WorkerEnv


class PullRecord(SqsRecordModel):
    body: Json[PullRequest]


@cache
def cloud() -> CloudContext:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    return CloudContext.from_environment(
        os.environ,
        boto3.client("dynamodb"),
        boto3.client("secretsmanager"),
        boto3.client("sqs"),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    env = WorkerEnv.from_env(os.environ)
    worker = PullWorker(
        cloud(),
        env.PROVIDER,
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000,
        margin=env.DEADLINE_MARGIN_SECONDS,
    )

    def pull(record: PullRecord) -> None:
        report = worker.handle(record.body)
        if report is not None:
            pulled = sum(s.pulled for s in report.spokes.values())
            metrics.add_metric(name="RecordsPulled", unit=MetricUnit.Count, value=pulled)

    return process_partial_response(
        event=event,
        record_handler=pull,
        processor=SqsFifoPartialProcessor(model=PullRecord, skip_group_on_error=True),
        context=context,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def route(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    ctx = cloud()
    router = PullRouter(ctx.store, ctx.queues(PullQueuesEnv.from_env(os.environ).PULL_QUEUE_URLS))

    def forward(record: PullRecord) -> None:
        router.route(record.body, record.attributes.MessageDeduplicationId or record.messageId)

    return process_partial_response(
        event=event,
        record_handler=forward,
        processor=SqsFifoPartialProcessor(model=PullRecord, skip_group_on_error=True),
        context=context,
    )
