"""Lambda handler of the table's stream for the syncs' schedules: a sync's settings written or
removed create, update or delete its EventBridge Scheduler schedule, and a new sync's bulk sync
is started (the event source mapping passes only entity items)."""

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

from contactsync.runtime.aws import store_from
from contactsync.runtime.observability import logger, tracer
from contactsync.runtime.schedules import BulkStarter, ScheduleManager, ScheduleWorker
from contactsync.runtime.settings import ScheduleEnv
from contactsync.runtime.streams import change_of


@cache
def worker() -> ScheduleWorker:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    env = ScheduleEnv.from_env(os.environ)
    return ScheduleWorker(
        store=store_from(os.environ, boto3.client("dynamodb")),
        schedules=ScheduleManager(boto3.client("scheduler"), env),
        bulk=BulkStarter(boto3.client("stepfunctions"), env.BULK_STATE_MACHINE_ARN),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    schedules = worker()

    def apply(record: DynamoDBRecord) -> None:
        change = change_of(record)
        done = schedules.handle(change)
        if change is not None and done is not None:
            logger.info("sync schedule", extra={"sync": change.entity_id, "did": done})

    return process_partial_response(
        event=event,
        record_handler=apply,
        processor=BatchProcessor(event_type=EventType.DynamoDBStreams),
        context=context,
    )
