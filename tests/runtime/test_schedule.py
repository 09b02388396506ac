"""The schedule manager under moto: a sync's settings written or removed (the table's stream,
filtered as the event source mapping filters it) keep its EventBridge Scheduler schedule in
step, and a new sync's bulk sync is started once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contactsync.api.queue import PullRequest
from contactsync.app.syncs import Syncs
from contactsync.domain.sync import SyncSettings
from contactsync.runtime.aws import group_id
from contactsync.runtime.schedules import run_id, schedule_name
from functions.schedule import app
from tests.runtime.cloud import REGION, FakeContext, filtered, stream_records
from tests.runtime.harness import TABLE, World


@pytest.fixture
def scheduler(world: World) -> Iterator[Any]:
    """The schedule group and the state machine the handler's environment names, in moto."""
    client = boto3.client("scheduler", region_name=REGION)
    client.create_schedule_group(Name=world.environ["SCHEDULE_GROUP"])
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="states", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="contactsync-test-bulk-sync",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn=role,
    )
    app.worker.cache_clear()
    yield client
    app.worker.cache_clear()


class Stream:
    """Hands the handler the stream records written since it last looked."""

    def __init__(self) -> None:
        self.seen = len(stream_records(TABLE))

    def deliver(self) -> dict[str, object]:
        records = stream_records(TABLE, self.seen)
        self.seen += len(records)
        event = {"Records": filtered("ScheduleStreamMapping", records)}
        return dict(app.handler(event, FakeContext()))


def schedule(client: Any, world: World, sync: SyncSettings) -> dict[str, Any]:
    found: dict[str, Any] = client.get_schedule(
        Name=schedule_name(world.org_id, sync.id), GroupName=world.environ["SCHEDULE_GROUP"]
    )
    return found


def executions() -> list[dict[str, Any]]:
    client = boto3.client("stepfunctions", region_name=REGION)
    [machine] = client.list_state_machines()["stateMachines"]
    found = client.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    return [dict(e) for e in found]


def test_a_new_sync_gets_its_schedule_and_its_bulk_sync(world: World, scheduler: Any) -> None:
    stream = Stream()
    # When an account is connected with its sync (what the API does)
    account, sync = world.connect_aircall()
    assert stream.deliver() == {"batchItemFailures": []}
    # Then the sync has a schedule: every 15 minutes, a pull request for the account on the
    # Aircall due-pull queue, in the account's message group, through the scheduler's role
    found = schedule(scheduler, world, sync)
    assert found["ScheduleExpression"] == "rate(15 minutes)"
    assert found["State"] == "ENABLED"
    target = found["Target"]
    assert target["Arn"] == world.queue_arn("AircallPullQueue")
    assert target["RoleArn"] == world.environ["SCHEDULER_ROLE_ARN"]
    assert target["SqsParameters"]["MessageGroupId"] == group_id(world.org_id, account.id)
    assert target["DeadLetterConfig"]["Arn"] == world.queue_arn("ScheduleDeadLetterQueue")
    # and each firing's body is a pull request carrying its scheduled time (so every firing is
    # its own message on the content-deduplicated FIFO queue)
    fired = target["Input"].replace("<aws.scheduler.scheduled-time>", "2024-11-23T12:15:00Z")
    request = PullRequest.model_validate_json(fired)
    assert (request.account_id, request.reason) == (account.id, "schedule")
    assert request.requested_at.minute == 15
    # and its initial bulk sync was started, named after the sync
    assert [e["name"] for e in executions()] == [run_id(sync)]
    # When the same stream records are delivered again, nothing new is started
    stream.seen = 0
    stream.deliver()
    assert len(executions()) == 1


def test_interval_pause_resume_and_delete_follow_the_settings(world: World, scheduler: Any) -> None:
    stream = Stream()
    _, sync = world.connect_aircall()
    stream.deliver()
    syncs = Syncs(world.store, world.org_id, connectors=world.context().connectors())
    # When the interval is set to one minute
    current = syncs.get(sync.id)
    syncs.update(sync.id, {"schedule": {"interval_minutes": 1}}, current.version)
    stream.deliver()
    assert schedule(scheduler, world, sync)["ScheduleExpression"] == "rate(1 minute)"
    # When the sync is paused, its schedule is disabled; resumed, enabled again
    syncs.pause(sync.id)
    stream.deliver()
    assert schedule(scheduler, world, sync)["State"] == "DISABLED"
    syncs.resume(sync.id)
    stream.deliver()
    assert schedule(scheduler, world, sync)["State"] == "ENABLED"
    # When the sync is deleted, so is its schedule
    syncs.delete(sync.id)
    stream.deliver()
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        schedule(scheduler, world, sync)


def test_status_updates_leave_the_schedule_alone(world: World, scheduler: Any) -> None:
    stream = Stream()
    _, sync = world.connect_aircall()
    stream.deliver()
    before = schedule(scheduler, world, sync)
    # When a pull writes the sync's status (every pull does)
    current = world.store.get(SyncSettings, world.org_id, sync.id)
    status = current.status.model_copy(update={"progress_done": 10})
    world.store.update(current.model_copy(update={"status": status}))
    # Then the schedule is not touched
    assert stream.deliver() == {"batchItemFailures": []}
    after = schedule(scheduler, world, sync)
    assert after["LastModificationDate"] == before["LastModificationDate"]
