"""Lambda handler of a provider's push queue (template.yaml: one push function per provider,
each with its own role and reserved concurrency). The fan-out put one message per hub contact
and spoke there; each account's messages in the batch are pushed together, and retried
together when a write may succeed later (ReportBatchItemFailures; a failure holds back only
that account's FIFO group)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from contactsync.runtime.aws import CloudContext
from contactsync.runtime.fanout import PushMessage
from contactsync.runtime.observability import MetricUnit, logger, metrics, tracer
from contactsync.runtime.pushes import Delivery, PushWorker
from contactsync.runtime.settings import WorkerEnv


@cache
def cloud() -> CloudContext:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    return CloudContext.from_environment(
        os.environ, boto3.client("dynamodb"), boto3.client("secretsmanager")
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = SqsModel.model_validate(event)
    deliveries: list[Delivery] = []
    failures: list[str] = []
    for record in batch.Records:
        try:
            deliveries.append(
                Delivery(record.messageId, PushMessage.model_validate_json(str(record.body)))
            )
        except ValidationError:
            logger.error("unreadable push message", extra={"message_id": record.messageId})
            failures.append(record.messageId)  # to the dead-letter queue after its retries
    env = WorkerEnv.from_env(os.environ)
    failures.extend(PushWorker(cloud(), env.PROVIDER).handle(deliveries))
    metrics.add_metric(name="PushMessages", unit=MetricUnit.Count, value=len(batch.Records))
    metrics.add_metric(name="PushRetries", unit=MetricUnit.Count, value=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}
