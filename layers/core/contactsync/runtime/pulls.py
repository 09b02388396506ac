"""The cloud's pull: a scheduled or webhook-asked pull of some accounts, pulling only.

Locally, one round pulls every spoke and then pushes the outbox (``SyncService.run_once``). In
the cloud, hub changes reach the other spokes through the table's stream, the fan-out and each
spoke's push queue, one push worker per spoke at a time; a pull worker that pushed too would
race them. So ``PullService`` is the sync service whose round only pulls: it plugs into the
pull queue's ``Consumer`` (claims, webhook upkeep, reverts) like the local one.

It also differs where the cloud needs it to:
- it builds connectors only for the accounts it pulls (other spokes are views without
  credentials: its IAM role reads only its provider's secrets);
- it stops starting pages when the invocation is about to time out: the cursor of the last
  committed page is saved as always, the lease released, and the next pull continues;
- it stands aside while the account's bulk sync runs (the bulk sync owns the initial read);
- the status it writes keeps ``in_sync`` up to date from the pull's own counts (contacts
  created, links removed) and counts the links again only after a full scan, instead of
  querying every link of the account on every pull (100,000 index items every 15 minutes).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from contactsync.activity import ActivityCapture, reader_factory
from contactsync.activity.capture import CAPTURED_PROVIDERS
from contactsync.api.jobs import Consumer
from contactsync.api.queue import SCHEDULE_REASON, PullInbox, PullRequest
from contactsync.connectors.base import ConnectorError
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.errors import VersionConflict
from contactsync.domain.link import Link, stream_key
from contactsync.domain.sync import SyncSettings, SyncState
from contactsync.runtime.aws import CloudContext, FifoQueues, group_id
from contactsync.runtime.bulk_state import BulkSync
from contactsync.runtime.proxies import UntilDeadline
from contactsync.runtime.spokes import OrgSpokes
from contactsync.store.base import Store
from contactsync.sync.ingest import IngestContext
from contactsync.sync.report import RunReport, SpokeReport
from contactsync.sync.service import Progress, SyncService
from contactsync.sync.spokes import ConnectorFactory, Spoke

log = logging.getLogger(__name__)


def linked(store: Store, org_id: str, account_id: str, streams: Iterable[str]) -> int:
    """How many records of the account are linked to the hub (one query per stream)."""
    return sum(
        len(store.lookup_ids(Link, org_id, "stream", stream_key(account_id, s))) for s in streams
    )


@dataclass
class PullService(SyncService):
    seconds_left: Callable[[], float] = field(default=lambda: math.inf)
    margin: float = 30.0

    def run_once(
        self,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        accounts: set[str] | None = None,
    ) -> RunReport:
        """Pulls ``accounts`` (all of them must be named: a worker pulls what it was asked)."""
        if dry_run or accounts is None:
            raise ValueError("the cloud pull worker pulls named accounts, for real")
        report = RunReport(run_id=f"run-{uuid.uuid4().hex[:12]}")
        org = OrgSpokes.load(self.store, self.org_id)
        region = self.region()
        for account_id in sorted(accounts):
            spoke = org.spoke(account_id, self.connectors)
            if spoke is None or not spoke.runnable or self._bulk_running(spoke):
                continue
            self._pull(spoke, org, report, region)
        return report

    def _bulk_running(self, spoke: Spoke) -> bool:
        bulk = self.store.find(BulkSync, self.org_id, spoke.settings.id)
        return bulk is not None and bulk.running

    def _pull(self, spoke: Spoke, org: OrgSpokes, report: RunReport, region: str) -> None:
        spoke_report = report.spoke(spoke.account.id, spoke.account.provider.value)
        reader = UntilDeadline(spoke.connector, self.seconds_left, self.margin)
        ctx = IngestContext(
            store=self.store,
            org_id=self.org_id,
            view=spoke.view,
            connector=reader,
            spokes=org.views_with(spoke),
            run_id=report.run_id,
            now=self.now(),
            report=spoke_report,
            region=region,
        )
        error = self.pull_spoke(ctx, spoke, stop=lambda: reader.stopped)
        self._record(spoke, spoke_report, error, complete=not reader.stopped)

    def _record(
        self, spoke: Spoke, report: SpokeReport, error: str | None, *, complete: bool
    ) -> None:
        """The pull's outcome in the sync's status (retried over concurrent status writes)."""
        recount = None
        if report.full_scan:
            recount = linked(self.store, self.org_id, spoke.account.id, spoke.connector.streams())
        for _ in range(5):
            settings = self.store.get(SyncSettings, self.org_id, spoke.settings.id)
            status = settings.status
            if report.breaker_tripped or error is not None:
                state = SyncState.ERROR
            elif status.state is SyncState.PAUSED:
                state = SyncState.PAUSED
            else:
                state = SyncState.ACTIVE
            in_sync = recount
            if in_sync is None:
                removed = report.archived + report.restored + report.unlinked
                in_sync = max(0, status.counts.in_sync + report.hub_created - removed)
            counts = status.counts.model_copy(
                update={"in_sync": in_sync, "excluded": report.excluded, "failing": report.failed}
            )
            updated = status.model_copy(
                update={
                    "state": state,
                    "counts": counts,
                    "last_error": error,
                    "last_run_at": self.now(),
                }
            )
            changes: dict[str, Any] = {"status": updated}
            if settings.mass_delete_confirmed and not report.breaker_tripped:
                changes["mass_delete_confirmed"] = False
            if settings.rescope_pending and error is None and complete:
                changes["rescope_pending"] = False
            try:
                self.store.update(settings.model_copy(update=changes))
                return
            except VersionConflict:
                continue


class _NoTransport:
    """The pull worker consumes requests; it never queues one."""

    def send(self, request: PullRequest) -> None:
        raise RuntimeError("the pull worker does not queue pulls")


@dataclass
class PullWorker:
    """One provider's pull worker: a request from its due-pull queue (a schedule's, or a
    webhook's through the router) goes through the pull queue's consumer (claim, webhook
    upkeep, revert) into a pull of that account."""

    context: CloudContext
    provider: Provider
    seconds_left: Callable[[], float] = field(default=lambda: math.inf)
    margin: float = 30.0

    def handle(self, request: PullRequest) -> RunReport | None:
        store = self.context.store
        account = store.find(ConnectedAccount, request.org_id, request.account_id)
        if account is not None and account.provider is not self.provider:
            log.warning(
                "pull request for another provider's account dropped",
                extra={"account": request.account_id, "provider": account.provider.value},
            )
            return None
        connectors = self.context.connectors()
        service = PullService(
            store,
            request.org_id,
            connectors,
            seconds_left=self.seconds_left,
            margin=self.margin,
        )
        consumer = Consumer(store, PullInbox(store, _NoTransport()), connectors, service)
        if request.reason == SCHEDULE_REASON and account is not None:
            self.keep_webhooks(connectors, account)
        report = consumer.handle([request])
        if request.reason == SCHEDULE_REASON and account is not None:
            self.capture(request.org_id, account)
        return report

    def keep_webhooks(self, connectors: ConnectorFactory, account: ConnectedAccount) -> None:
        """A scheduled pull first keeps the account's push registrations alive: Graph
        subscriptions are created, and renewed a day before they expire (they live about three
        days); Aircall's webhook is registered or re-activated. Idempotent, a few reads when
        nothing is due; a failure leaves the pull (and the next schedule's retry) standing."""
        if account.status is not AccountStatus.CONNECTED:
            return
        try:
            connectors(account).prepare()
        except ConnectorError as exc:
            log.warning("webhook upkeep failed", extra={"account": account.id, "code": exc.code})

    def capture(self, org_id: str, account: ConnectedAccount) -> None:
        """A scheduled pull also reads the account's activity (mail, meetings, calls) from
        its cursors, in the time the invocation has left. Webhook pulls do not: they come
        often and are about contacts. A failure here never fails the pull."""
        if account.provider not in CAPTURED_PROVIDERS:
            return
        readers = reader_factory(
            self.context.secrets, clock=self.context.clock, sessions=self.context.sessions
        )
        capture = ActivityCapture(
            self.context.store,
            org_id,
            readers,
            keep_going=lambda: self.seconds_left() > self.margin,
        )
        try:
            report = capture.run(accounts=[account.id])
        except Exception as exc:  # noqa: BLE001 - the contacts' pull is done and must stand
            log.warning(
                "activity capture failed",
                extra={"account": account.id, "error": type(exc).__name__},
            )
            return
        log.info(
            "activity captured",
            extra={
                "account": account.id,
                "stored": report.stored,
                "failed": [s.error for s in report.streams if s.error],
            },
        )


@dataclass
class PullRouter:
    """The webhooks' pull queue holds every provider's requests; each goes on to its account's
    provider queue, where that provider's pull worker takes it. The original deduplication id
    goes with it, so a redelivered request is forwarded once."""

    store: Store
    queues: FifoQueues

    def route(self, request: PullRequest, dedupe: str) -> Provider | None:
        account = self.store.find(ConnectedAccount, request.org_id, request.account_id)
        if account is None or account.provider not in self.queues.urls:
            log.warning(
                "pull request for no known account dropped", extra={"account": request.account_id}
            )
            return None
        self.queues.send(
            account.provider,
            group_id(request.org_id, request.account_id),
            dedupe,
            request.model_dump_json(),
        )
        return account.provider
