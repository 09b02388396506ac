"""Lambda handler of the table's stream for the push fan-out: each outbox entry written goes to
the push queue of every spoke that may take it (the event source mapping passes only entity
items being written). Partial batch failures are reported by sequence number."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from contactsync.runtime.aws import CloudContext
from contactsync.runtime.fanout import FanOut
from contactsync.runtime.observability import MetricUnit, logger, metrics, tracer
from contactsync.runtime.settings import PushQueuesEnv
from contactsync.runtime.streams import change_of


@cache
def cloud() -> CloudContext:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    return CloudContext.from_environment(
        os.environ, boto3.client("dynamodb"), boto3.client("secretsmanager"), boto3.client("sqs")
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    ctx = cloud()
    fanout = FanOut(ctx.store, ctx.queues(PushQueuesEnv.from_env(os.environ).PUSH_QUEUE_URLS))

    def relay(record: DynamoDBRecord) -> None:
        sent = fanout.handle(change_of(record))
        if sent:
            metrics.add_metric(name="PushMessagesSent", unit=MetricUnit.Count, value=len(sent))

    return process_partial_response(
        event=event,
        record_handler=relay,
        processor=BatchProcessor(event_type=EventType.DynamoDBStreams),
        context=context,
    )
