"""Lambda handlers of the bulk-sync state machine's tasks (statemachine/bulk_sync.asl.json):
``plan`` the shards, ``run_shard`` one shard (until done or the invocation's deadline), and
``finalise``. Each takes the task the state machine passes and returns the next one; errors are
raised with their class as the error name the state machine's retry policy matches."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from contactsync.runtime.aws import CloudContext
from contactsync.runtime.bulk import BulkService, BulkTask, ShardTask
from contactsync.runtime.observability import MetricUnit, logger, metrics, tracer
from contactsync.runtime.settings import BulkEnv


@cache
def cloud() -> CloudContext:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    return CloudContext.from_environment(
        os.environ, boto3.client("dynamodb"), boto3.client("secretsmanager")
    )


def service(context: LambdaContext) -> BulkService:
    ctx = cloud()
    env = BulkEnv.from_env(os.environ)
    return BulkService(
        ctx.store,
        ctx.connectors(),
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000,
        margin=env.DEADLINE_MARGIN_SECONDS,
        progress_every=env.PROGRESS_EVERY_SECONDS,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = service(context).plan(BulkTask.model_validate(event))
    logger.info("planned", extra={"sync": result.sync_id, "shards": len(result.shards)})
    return result.model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def run_shard(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = ShardTask.model_validate(event)
    before = task.records
    result = service(context).run_shard(task)
    metrics.add_metric(
        name="BulkRecords", unit=MetricUnit.Count, value=max(0, result.records - before)
    )
    return result.model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def finalise(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = service(context).finalise(BulkTask.model_validate(event))
    logger.info("finalised", extra={"sync": result.sync_id, "records": result.records})
    return result.model_dump(mode="json")
