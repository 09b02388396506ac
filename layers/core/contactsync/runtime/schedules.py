"""One EventBridge Scheduler schedule per sync, kept in step with the sync's settings, and the
start of a new sync's bulk sync.

The table's stream tells the schedule manager of every change to a sync's settings (whoever
made it: the API, a person's pause, the runtime's status updates):
- a new sync gets its schedule and its initial bulk sync (a state machine execution named after
  the sync and its creation time: asked twice, it starts once);
- a change of interval, or a pause or resume, updates the schedule (a paused sync's schedule is
  disabled, so it costs nothing);
- a deleted sync loses its schedule.
Status updates (every pull writes one) change neither and are ignored.

A schedule sends the sync's account a pull request on its provider's due-pull queue, every
``interval_minutes`` (default 15, at least 1). The queue is FIFO with content-based
deduplication; the body carries the scheduled time, so each firing is a message of its own and
a retried send of the same firing is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contactsync.api.queue import SCHEDULE_REASON
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.sync import SyncSettings, SyncState
from contactsync.runtime.aws import group_id
from contactsync.runtime.settings import ScheduleEnv
from contactsync.runtime.streams import EntityChange
from contactsync.store.base import Store

if TYPE_CHECKING:
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient
    from mypy_boto3_stepfunctions.client import SFNClient

_NAME = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
_EXECUTION = re.compile(r"[^0-9A-Za-z_-]")


def schedule_name(org_id: str, sync_id: str) -> str:
    name = f"{org_id}.{sync_id}"
    if _NAME.match(name):
        return name
    return "s-" + hashlib.sha256(name.encode()).hexdigest()[:48]


def expression(minutes: int) -> str:
    return "rate(1 minute)" if minutes == 1 else f"rate({minutes} minutes)"


def run_id(settings: SyncSettings) -> str:
    """The bulk sync execution of this sync (its id and creation time: a sync deleted and
    created again is a new run)."""
    name = _EXECUTION.sub("-", f"{settings.id}-{int(settings.created_at.timestamp())}")
    if len(name) <= 80:
        return name
    return f"{name[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:29]}"


def schedule_changed(old: SyncSettings | None, new: SyncSettings) -> bool:
    """Whether the schedule must change: a new sync, another interval or account, a pause or
    a resume."""
    if old is None:
        return True
    paused = (old.status.state is SyncState.PAUSED, new.status.state is SyncState.PAUSED)
    return (
        old.schedule != new.schedule or old.account_id != new.account_id or paused[0] != paused[1]
    )


def needs_bulk_sync(new: SyncSettings) -> bool:
    return new.status.state is SyncState.IN_PROGRESS and new.status.last_run_at is None


@dataclass
class ScheduleManager:
    scheduler: EventBridgeSchedulerClient
    env: ScheduleEnv

    def ensure(self, settings: SyncSettings, provider: Provider) -> str:
        """Creates or updates the sync's schedule; returns its name."""
        queue = self.env.PULL_QUEUE_ARNS.get(provider)
        if queue is None:
            raise LookupError(f"no due-pull queue for provider {provider.value}")
        minutes = settings.schedule.interval_minutes
        body = {
            "org_id": settings.org_id,
            "account_id": settings.account_id,
            "action": "pull",
            "reason": SCHEDULE_REASON,
            "requested_at": "<aws.scheduler.scheduled-time>",
        }
        params: dict[str, Any] = {
            "Name": schedule_name(settings.org_id, settings.id),
            "GroupName": self.env.SCHEDULE_GROUP,
            "ScheduleExpression": expression(minutes),
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "DISABLED" if settings.status.state is SyncState.PAUSED else "ENABLED",
            "Description": f"pulls {settings.account_id} every {minutes} min",
            "Target": {
                "Arn": queue,
                "RoleArn": self.env.SCHEDULER_ROLE_ARN,
                "Input": json.dumps(body, separators=(",", ":")),
                "SqsParameters": {"MessageGroupId": group_id(settings.org_id, settings.account_id)},
                # A firing not delivered within one interval is superseded by the next.
                "RetryPolicy": {
                    "MaximumEventAgeInSeconds": max(60, minutes * 60),
                    "MaximumRetryAttempts": 3,
                },
                "DeadLetterConfig": {"Arn": self.env.SCHEDULE_DLQ_ARN},
            },
        }
        try:
            self.scheduler.create_schedule(**params)
        except self.scheduler.exceptions.ConflictException:
            self.scheduler.update_schedule(**params)
        return str(params["Name"])

    def remove(self, org_id: str, sync_id: str) -> None:
        try:
            self.scheduler.delete_schedule(
                Name=schedule_name(org_id, sync_id), GroupName=self.env.SCHEDULE_GROUP
            )
        except self.scheduler.exceptions.ResourceNotFoundException:
            return


@dataclass
class BulkStarter:
    stepfunctions: SFNClient
    state_machine_arn: str

    def start(self, settings: SyncSettings) -> bool:
        """Starts the sync's bulk sync; False when this run was started before."""
        name = run_id(settings)
        task = {"org_id": settings.org_id, "sync_id": settings.id, "run_id": name}
        try:
            self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(task)
            )
        except self.stepfunctions.exceptions.ExecutionAlreadyExists:
            return False
        return True


@dataclass
class ScheduleWorker:
    """Keeps schedules in step with the syncs' settings as the table's stream reports them."""

    store: Store
    schedules: ScheduleManager
    bulk: BulkStarter

    def handle(self, change: EntityChange | None) -> str | None:
        """Returns what it did: "removed", "scheduled", "started" (a bulk sync too), or None."""
        if change is None or change.kind != SyncSettings.kind:
            return None
        if change.event == "REMOVE":
            self.schedules.remove(change.org_id, change.entity_id)
            return "removed"
        new = change.entity(SyncSettings)
        if new is None:
            return None
        old = change.entity(SyncSettings, image="old")
        if not schedule_changed(old, new):
            return None
        account = self.store.find(ConnectedAccount, new.org_id, new.account_id)
        if account is None:
            return None
        self.schedules.ensure(new, account.provider)
        if change.event == "INSERT" and needs_bulk_sync(new) and self.bulk.start(new):
            return "started"
        return "scheduled"
