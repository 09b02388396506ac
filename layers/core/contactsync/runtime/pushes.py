"""The cloud's push: a few hub contacts to one spoke, as its push queue delivers them.

The engine's push (sync/push.py) does the work: plan per contact, apply in provider batches,
record every per-item result, link what was created, keep uncertain creates pending until they
are found. Two things differ from the local round:

- the plan compares with every spoke of the organisation, but only this spoke has a connector
  (``PeerPushContext``: the peers are views without credentials);
- nothing waits in the outbox: the fan-out relayed the change to this queue and removed the
  entry, so a contact that must be tried again is the queue's to redeliver. The batch's
  messages are retried whole when a write failed in a way that may succeed later (throttled,
  unavailable, a stale version, an uncertain create) or the spoke stopped: pushes are
  idempotent, what went through plans nothing the second time. A refusal for good ("invalid")
  is recorded in the sync's status and not retried.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.base import utcnow
from contactsync.domain.errors import VersionConflict
from contactsync.domain.outbox import OutboxEntry
from contactsync.domain.sync import RecordError, SyncSettings
from contactsync.engine.merge import SpokeView
from contactsync.runtime.aws import CloudContext
from contactsync.runtime.fanout import PushMessage
from contactsync.runtime.proxies import RecordingWrites
from contactsync.runtime.spokes import OrgSpokes
from contactsync.store.base import Store
from contactsync.sync.push import PushContext, push_entries, resolve_pending
from contactsync.sync.report import RunReport, SpokeReport
from contactsync.sync.spokes import ConnectorFactory, Spoke

# Kinds of failed writes that another attempt may get through.
log = logging.getLogger(__name__)

RETRYABLE = frozenset({"throttled", "transient", "uncertain", "conflict", "not_found", "auth"})


@dataclass
class PeerPushContext(PushContext):
    """A push context whose plans see every spoke of the organisation (``peers``), while only
    the spokes in ``spokes`` are written to."""

    peers: Mapping[str, SpokeView] = field(default_factory=dict)

    @property
    def views(self) -> Mapping[str, SpokeView]:
        return self.peers


@dataclass
class PushOutcome:
    retry: bool
    report: RunReport


@dataclass
class PushService:
    store: Store
    org_id: str
    connectors: ConnectorFactory
    now: Callable[[], datetime] = utcnow

    def push(self, account_id: str, contact_ids: Sequence[str]) -> PushOutcome:
        """Brings ``account_id``'s records of these hub contacts in step with the hub."""
        report = RunReport(run_id=f"push-{uuid.uuid4().hex[:12]}")
        org = OrgSpokes.load(self.store, self.org_id)
        spoke = org.spoke(account_id, self.connectors)
        if spoke is None or not spoke.runnable or not spoke.view.direction.pushes:
            return PushOutcome(retry=False, report=report)  # paused, disconnected or gone
        writes = RecordingWrites(spoke.connector)
        spoke = dataclasses.replace(spoke, connector=writes)
        ctx = PeerPushContext(
            store=self.store,
            org_id=self.org_id,
            spokes=[spoke],
            run_id=report.run_id,
            now=self.now,
            report=report,
            peers=org.views_with(spoke),
        )
        # Uncertain creates of earlier pushes: linked once found, dropped after the settle time.
        resolve_pending(ctx, spoke)
        # Version 0 never matches a stored outbox entry (stored versions start at 1): the
        # fan-out removed the entry already, push_entries' clean-up finds nothing to remove.
        entries = [
            OutboxEntry(org_id=self.org_id, id=cid, contact_id=cid, hub_version=0)
            for cid in dict.fromkeys(contact_ids)
        ]
        push_entries(ctx, entries)
        retry = account_id in ctx.stopped or any(
            r.error is not None and r.error.kind in RETRYABLE for r in writes.failed
        )
        spoke_report = report.spoke(account_id, spoke.account.provider.value)
        self._record(spoke, spoke_report, ctx.record_errors.get(account_id, []))
        return PushOutcome(retry=retry, report=report)

    def _record(self, spoke: Spoke, report: SpokeReport, errors: list[RecordError]) -> None:
        """Records created or deleted change the spoke's count in step; failures join its
        per-record errors. Nothing to say, nothing written."""
        delta = report.created - report.deleted
        if delta == 0 and not errors and not report.failed:
            return
        for _ in range(5):
            settings = self.store.get(SyncSettings, self.org_id, spoke.settings.id)
            status = settings.status
            counts = status.counts.model_copy(
                update={
                    "in_sync": max(0, status.counts.in_sync + delta),
                    "failing": report.failed,
                }
            )
            updated = status.model_copy(
                update={
                    "counts": counts,
                    "record_errors": (errors + status.record_errors)[:100],
                    "last_error": (errors[-1].message or errors[-1].code)
                    if errors
                    else status.last_error,
                }
            )
            try:
                self.store.update(settings.model_copy(update={"status": updated}))
                return
            except VersionConflict:
                continue


@dataclass(frozen=True)
class Delivery:
    """A push queue's message as its handler received it."""

    message_id: str
    message: PushMessage


@dataclass
class PushWorker:
    """One provider's push worker. A batch may hold several accounts' messages (one FIFO group
    each, in order): each account's contacts are pushed together (providers take batches),
    and an account's messages are retried together."""

    context: CloudContext
    provider: Provider
    now: Callable[[], datetime] = utcnow

    def handle(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Pushes the batch; returns the ids of the messages to deliver again."""
        groups: dict[tuple[str, str], list[Delivery]] = {}
        for delivery in deliveries:
            key = (delivery.message.org_id, delivery.message.account_id)
            groups.setdefault(key, []).append(delivery)
        failed: list[str] = []
        for (org_id, account_id), items in groups.items():
            if not self._mine(org_id, account_id):
                continue
            service = PushService(self.context.store, org_id, self.context.connectors(), self.now)
            try:
                outcome = service.push(account_id, [d.message.contact_id for d in items])
            except Exception:
                log.exception("push failed", extra={"account": account_id})
                outcome = PushOutcome(retry=True, report=RunReport(run_id="failed"))
            if outcome.retry:
                failed.extend(d.message_id for d in items)
        return failed

    def _mine(self, org_id: str, account_id: str) -> bool:
        account = self.context.store.find(ConnectedAccount, org_id, account_id)
        if account is not None and account.provider is not self.provider:
            log.warning(
                "push message for another provider's account dropped",
                extra={"account": account_id, "provider": account.provider.value},
            )
            return False
        return True
