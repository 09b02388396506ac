"""The pull queue between the webhooks and the sync runtime.

A webhook only *asks* for work: "pull account A" (or resync, or renew its subscription). Two
records in the store make replays and duplicates harmless:

- a ``WebhookReceipt`` per delivery id (Aircall event, Salesforce notification Id, Graph change),
  created with a conditional write: a delivery seen before changes nothing;
- a ``QueuedPull`` marker per (account, action), created when a request is sent and removed by
  the consumer when it starts the work (``PullInbox.claim``): a burst of 1,000 notifications
  for one mailbox sends one message, and a change that arrives while a pull runs still gets a
  pull of its own.

Timeline of the race the marker closes (consumer C, webhook W):
    C claims (deletes marker) -> C reads changes -> W creates marker, sends -> C finishes
    => the change W announced is read by C or by the next message; never lost.

Transports: ``LocalPullQueue`` (in-process, for `contactsync serve`) and ``SqsPullQueue``
(the PullQueue in template.yaml; FIFO, grouped per account, deduplicated by marker version).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import Field

from contactsync.domain.base import AwareDatetime, Entity, Id, Model, utcnow
from contactsync.domain.errors import VersionConflict
from contactsync.store.base import Store, Write

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)


class PullAction(StrEnum):
    PULL = "pull"  # read changes since the cursor (a change notification, Graph's "missed")
    RESYNC = "resync"  # recreate the provider's subscription, then pull (subscriptionRemoved)
    REAUTHORIZE = "reauthorize"  # renew the provider's subscription (reauthorizationRequired)
    REVERT = "revert"  # delete-and-revert: remove the records a deleted sync created
    PREPARE = "prepare"  # register the account's webhooks now, pull nothing (just connected)


SCHEDULE_REASON = "schedule"  # a sync schedule's request (a scheduled pull also captures)


class PullRequest(Model):
    org_id: Id
    account_id: Id
    action: PullAction = PullAction.PULL
    reason: str = Field(default="", max_length=200)
    # The sync a REVERT undoes (its settings are gone by then).
    sync_id: Id | None = None
    requested_at: AwareDatetime = Field(default_factory=utcnow)
    # The marker version this request was sent under (SQS deduplication id).
    marker_version: int = 0


class WebhookReceipt(Entity):
    """One delivery seen (deduplication). Expires after the providers' retry windows."""

    kind = "webhook_receipt"
    list_buckets = 4

    account_id: Id
    received_at: AwareDatetime = Field(default_factory=utcnow)
    ttl_seconds: int = 7 * 86_400

    @staticmethod
    def make_id(account_id: str, delivery_key: str) -> str:
        digest = hashlib.sha256(f"{account_id}\x00{delivery_key}".encode()).hexdigest()
        return f"r-{digest[:48]}"

    def expires_at(self) -> datetime | None:
        return self.received_at + timedelta(seconds=self.ttl_seconds)


class QueuedPull(Entity):
    """A request sent and not yet claimed by a consumer."""

    kind = "queued_pull"

    account_id: Id
    action: PullAction
    queued_at: AwareDatetime = Field(default_factory=utcnow)

    @staticmethod
    def make_id(account_id: str, action: PullAction) -> str:
        return f"{account_id}.{action.value}"

    def expires_at(self) -> datetime | None:
        return self.queued_at + timedelta(days=1)


class PullTransport(Protocol):
    def send(self, request: PullRequest) -> None:
        """Hands the request to the consumers; raises when it could not."""
        ...


@dataclass
class LocalPullQueue:
    """In-process transport for `contactsync serve`: the scheduler thread takes from it."""

    _items: deque[PullRequest] = field(default_factory=deque)
    _ready: threading.Condition = field(default_factory=threading.Condition)

    def send(self, request: PullRequest) -> None:
        with self._ready:
            self._items.append(request)
            self._ready.notify_all()

    def take_all(self, timeout: float = 0.0) -> list[PullRequest]:
        with self._ready:
            if not self._items and timeout > 0:
                self._ready.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)


@dataclass
class SqsPullQueue:
    """The cloud transport: the FIFO PullQueue. One message group per account keeps one
    account's work in order; the deduplication id (account, action, marker version) makes a
    retried send of the same request a no-op within SQS's five-minute window."""

    client: SQSClient
    queue_url: str

    def send(self, request: PullRequest) -> None:
        dedupe = f"{request.account_id}.{request.action.value}.{request.marker_version}"
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=request.model_dump_json(),
            MessageGroupId=f"{request.org_id}.{request.account_id}"[:128],
            MessageDeduplicationId=hashlib.sha256(dedupe.encode()).hexdigest()[:128],
        )


class Outcome(StrEnum):
    QUEUED = "queued"
    COALESCED = "coalesced"  # a request for the same work is already waiting
    DUPLICATE = "duplicate"  # this delivery was seen before


# A marker older than this is treated as lost (its message failed or was dropped): re-sent.
STALE_MARKER = timedelta(minutes=15)


@dataclass
class PullInbox:
    store: Store
    transport: PullTransport
    now: Callable[[], datetime] = utcnow
    receipt_ttl_seconds: int = 7 * 86_400

    def seen(self, org_id: str, account_id: str, delivery_keys: Iterable[str]) -> list[str]:
        """Records the deliveries; returns the keys that are new (first time seen)."""
        fresh = []
        for key in delivery_keys:
            receipt = WebhookReceipt(
                org_id=org_id,
                id=WebhookReceipt.make_id(account_id, key),
                account_id=account_id,
                received_at=self.now(),
                ttl_seconds=self.receipt_ttl_seconds,
            )
            existing = self.store.find(WebhookReceipt, org_id, receipt.id)
            if existing is not None and (existing.expires_at() or self.now()) > self.now():
                continue
            try:
                self.store.transact([Write(receipt, existing.version if existing else 0)])
            except VersionConflict:
                continue  # a concurrent copy of the same delivery won
            fresh.append(key)
        return fresh

    def forget(self, org_id: str, account_id: str, delivery_keys: Iterable[str]) -> None:
        """Undoes ``seen`` when the request could not be queued (the provider will retry)."""
        for key in delivery_keys:
            self.store.delete(WebhookReceipt, org_id, WebhookReceipt.make_id(account_id, key))

    def request(
        self,
        org_id: str,
        account_id: str,
        action: PullAction = PullAction.PULL,
        reason: str = "",
        sync_id: str | None = None,
    ) -> Outcome:
        marker_id = QueuedPull.make_id(account_id, action)
        now = self.now()
        current = self.store.find(QueuedPull, org_id, marker_id)
        if current is not None and now - current.queued_at < STALE_MARKER:
            return Outcome.COALESCED
        marker = QueuedPull(
            org_id=org_id, id=marker_id, account_id=account_id, action=action, queued_at=now
        )
        try:
            stored = self.store.transact([Write(marker, current.version if current else 0)])[0]
        except VersionConflict:
            return Outcome.COALESCED  # another delivery queued it a moment ago
        request = PullRequest(
            org_id=org_id,
            account_id=account_id,
            action=action,
            reason=reason[:200],
            sync_id=sync_id,
            requested_at=now,
            marker_version=stored.version,
        )
        try:
            self.transport.send(request)
        except Exception:
            self.store.delete(QueuedPull, org_id, marker_id, expected_version=stored.version)
            raise
        log.info("pull queued", extra={"account": account_id, "action": action.value})
        return Outcome.QUEUED

    def claim(self, org_id: str, account_id: str, action: PullAction = PullAction.PULL) -> None:
        """The consumer calls this before it starts the work: a notification arriving from
        now on queues a new request instead of being folded into this one."""
        self.store.delete(QueuedPull, org_id, QueuedPull.make_id(account_id, action))
