"""The sync service: one complete round for an organisation (pull every spoke, push every
change), with status, dry runs and reconciliation. The local runner and the Lambda handlers
call this; it knows nothing of either."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contactsync.connectors.base import ConnectorError
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.base import utcnow
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import VersionConflict
from contactsync.domain.link import Link, stream_key
from contactsync.domain.org import Organisation, User
from contactsync.domain.sync import RecordError, SyncSettings, SyncState
from contactsync.engine.canonical import fingerprint, snapshot
from contactsync.engine.plan import pushed_fields
from contactsync.store.base import Store
from contactsync.sync.dryrun import DryRunStore
from contactsync.sync.ingest import IngestContext, remote_snapshot
from contactsync.sync.pull import MassDeleteDetected, pull_stream
from contactsync.sync.push import PushContext, push_outbox
from contactsync.sync.report import RunReport, SpokeReport
from contactsync.sync.spokes import ConnectorFactory, Spoke, build_view

log = logging.getLogger(__name__)

Progress = Callable[[str, str, int], None]  # (phase, account id, records done)


def _pull_progress(progress: Progress | None, account_id: str) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda n: progress("pull", account_id, n)


@dataclass
class SyncService:
    store: Store
    org_id: str
    connectors: ConnectorFactory
    now: Callable[[], datetime] = utcnow
    worker: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:8]}")
    # Accounts whose connector ran its one-time setup in this process (folder, label, webhook).
    _prepared: set[str] = field(default_factory=set)

    # ---- spokes --------------------------------------------------------------------------------

    def spokes(self, store: Store | None = None) -> list[Spoke]:
        store = store or self.store
        accounts = {a.id: a for a in store.scan(ConnectedAccount, self.org_id)}
        users = {u.id: u for u in store.scan(User, self.org_id)}
        result = []
        for settings in store.scan(SyncSettings, self.org_id):
            account = accounts.get(settings.account_id)
            if account is None or account.status is AccountStatus.DELETED:
                continue
            connector = self.connectors(account)
            connector.configure(settings)
            view = build_view(account, settings, users.get(account.owner_user_id), connector)
            result.append(Spoke(account, settings, view, connector))
        return sorted(result, key=lambda s: s.account.id)

    def region(self) -> str:
        org = self.store.find(Organisation, self.org_id, self.org_id)
        return org.default_region if org else "US"

    # ---- one round -----------------------------------------------------------------------------

    def run_once(
        self,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        accounts: set[str] | None = None,
    ) -> RunReport:
        """Pulls every runnable spoke (or only ``accounts``: a webhook's or a schedule's
        target), then pushes every pending change to every spoke."""
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        report = RunReport(run_id=run_id, dry_run=dry_run)
        store: Store = DryRunStore(self.store) if dry_run else self.store
        spokes = self.spokes(store)
        views = {s.account.id: s.view for s in spokes}
        region = self.region()
        errors: dict[str, str] = {}
        for spoke in spokes:
            if not spoke.runnable or (accounts is not None and spoke.account.id not in accounts):
                continue
            spoke_report = report.spoke(spoke.account.id, spoke.account.provider.value)
            ctx = IngestContext(
                store=store,
                org_id=self.org_id,
                view=spoke.view,
                connector=spoke.connector,
                spokes=views,
                run_id=run_id,
                now=self.now(),
                report=spoke_report,
                region=region,
                planned=report.planned if dry_run else None,
            )
            error = self.pull_spoke(
                ctx,
                spoke,
                prepare=not dry_run,
                progress=_pull_progress(progress, spoke.account.id),
            )
            if error is not None:
                errors[spoke.account.id] = error
        push_ctx = PushContext(
            store=store,
            org_id=self.org_id,
            spokes=[s for s in spokes if s.account.id not in errors],
            run_id=run_id,
            now=self.now,
            report=report,
            dry_run=dry_run,
        )
        push_outbox(push_ctx)
        if progress:
            progress("push", "*", sum(s.writes for s in report.spokes.values()))
        if not dry_run:
            pulled = [s for s in spokes if accounts is None or s.account.id in accounts]
            self._update_statuses(pulled, report, errors, push_ctx.record_errors)
        return report

    def pull_spoke(
        self,
        ctx: IngestContext,
        spoke: Spoke,
        *,
        prepare: bool = False,
        progress: Callable[[int], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> str | None:
        """Pulls every stream of one spoke into the hub (locally in a round, in the cloud by
        the pull worker): a re-scoping first unlinks the objects the sync no longer takes.
        ``stop``: checked after each stream (a Lambda near its deadline). Returns the error
        that stopped it, for the sync's status, or None."""
        try:
            if prepare and spoke.account.id not in self._prepared:
                spoke.connector.prepare()  # idempotent: the folder, the label, the webhook
                self._prepared.add(spoke.account.id)
            if spoke.settings.rescope_pending:
                self._unlink_dropped_streams(ctx.store, spoke, ctx.report)
            for stream in spoke.connector.streams():
                pull_stream(
                    ctx,
                    stream,
                    self.worker,
                    self.now,
                    confirmed_mass_delete=spoke.settings.mass_delete_confirmed,
                    rescoping=spoke.settings.rescope_pending,
                    progress=progress,
                )
                if stop():
                    break
        except MassDeleteDetected as exc:
            ctx.report.errors.append(str(exc))
            return str(exc)
        except ConnectorError as exc:
            ctx.report.errors.append(f"pull: {exc.code}")
            if exc.kind == "auth":
                self._needs_reconnect(spoke.account, exc.code)
            return f"pull failed: {exc.code}"
        return None

    def _unlink_dropped_streams(self, store: Store, spoke: Spoke, report: SpokeReport) -> None:
        """Records of objects the sync no longer takes (seed 004: contacts, leads or both) left
        its scope: their links go, the records stay on both sides."""
        streams = set(spoke.connector.streams())
        for link_id in store.lookup_ids(Link, self.org_id, "account", spoke.account.id):
            link = store.find(Link, self.org_id, link_id)
            if link is not None and link.object_type not in streams and not link.restore:
                store.delete(Link, self.org_id, link_id)
                report.unlinked += 1

    # ---- status --------------------------------------------------------------------------------

    def _update_statuses(
        self,
        spokes: list[Spoke],
        report: RunReport,
        errors: dict[str, str],
        record_errors: dict[str, list[RecordError]],
    ) -> None:
        for spoke in spokes:
            if not spoke.runnable:
                continue
            spoke_report = report.spoke(spoke.account.id, spoke.account.provider.value)
            in_sync = sum(
                len(
                    self.store.lookup_ids(
                        Link, self.org_id, "stream", stream_key(spoke.account.id, s)
                    )
                )
                for s in spoke.connector.streams()
            )
            for _ in range(3):
                settings = self.store.get(SyncSettings, self.org_id, spoke.settings.id)
                status = settings.status
                error = errors.get(spoke.account.id)
                if spoke_report.breaker_tripped or error is not None:
                    state = SyncState.ERROR
                elif status.state is SyncState.PAUSED:
                    state = SyncState.PAUSED
                else:
                    state = SyncState.ACTIVE
                fresh_errors = record_errors.get(spoke.account.id, [])
                updated = status.model_copy(
                    update={
                        "state": state,
                        "counts": status.counts.model_copy(
                            update={
                                "in_sync": in_sync,
                                "excluded": spoke_report.excluded,
                                "failing": spoke_report.failed,
                            }
                        ),
                        "last_error": error or (fresh_errors[-1].message or fresh_errors[-1].code)
                        if (error or fresh_errors)
                        else None,
                        "last_run_at": self.now(),
                        "record_errors": (fresh_errors + status.record_errors)[:100],
                    }
                )
                changes: dict[str, Any] = {"status": updated}
                if settings.mass_delete_confirmed and not spoke_report.breaker_tripped:
                    changes["mass_delete_confirmed"] = False
                if settings.rescope_pending and error is None:
                    changes["rescope_pending"] = False
                if spoke_report.breaker_tripped:
                    changes["status"] = updated.model_copy(update={"state": SyncState.ERROR})
                try:
                    self.store.update(settings.model_copy(update=changes))
                    break
                except VersionConflict:
                    continue

    def _needs_reconnect(self, account: ConnectedAccount, code: str) -> None:
        current = self.store.find(ConnectedAccount, self.org_id, account.id)
        if current is not None and current.status is AccountStatus.CONNECTED:
            self.store.update(
                current.model_copy(
                    update={
                        "status": AccountStatus.NEEDS_RECONNECT,
                        "status_reason": f"the provider refused our credentials ({code[:200]})",
                    }
                )
            )

    # ---- reconciliation ------------------------------------------------------------------------

    def reconcile(self) -> dict[str, dict[str, Any]]:
        """Compares every spoke with the hub by fingerprints, reading everything, writing
        nothing. Per spoke: records in step, diverged (the remote differs from what we last
        synced), unlinked remote records, links whose record is gone, and hub changes not yet
        pushed; with up to five remote ids of each kind of divergence, to look into."""
        result: dict[str, dict[str, Any]] = {}
        for spoke in self.spokes():
            counts: dict[str, Any] = {
                "in_step": 0, "diverged": 0, "unlinked": 0, "missing": 0, "unpushed": 0,
            }  # fmt: skip
            samples: dict[str, list[str]] = {}
            for stream in spoke.connector.streams():
                seen = self._reconcile_stream(spoke, stream, counts, samples)
                key = stream_key(spoke.account.id, stream)
                for link_id in self.store.lookup_ids(Link, self.org_id, "stream", key):
                    link = self.store.find(Link, self.org_id, link_id)
                    if link is None:
                        continue
                    if link_id in seen:
                        self._count_unpushed(spoke, link, counts, samples)
                    else:
                        counts["missing"] += 1
                        samples.setdefault("missing", []).append(link.remote_id)
            counts["samples"] = {k: v[:5] for k, v in samples.items()}
            result[spoke.account.id] = counts
        return result

    def _reconcile_stream(
        self, spoke: Spoke, stream: str, counts: dict[str, Any], samples: dict[str, list[str]]
    ) -> set[str]:
        seen: set[str] = set()
        for page in spoke.connector.read(stream, None):
            for record in page.records:
                if record.deleted:
                    continue
                link_id = Link.key(spoke.account.id, record.object_type, record.remote_id)
                seen.add(link_id)
                link = self.store.find(Link, self.org_id, link_id)
                if link is None:
                    counts["unlinked"] += 1
                    samples.setdefault("unlinked", []).append(record.remote_id)
                    continue
                contact = self.store.find(HubContact, self.org_id, link.contact_id)
                snap = remote_snapshot(record, link, contact, spoke.view)
                if link.fingerprint != fingerprint(snap):
                    counts["diverged"] += 1
                    samples.setdefault("diverged", []).append(record.remote_id)
                else:
                    counts["in_step"] += 1
            if page.last:
                break
        return seen

    def _count_unpushed(
        self, spoke: Spoke, link: Link, counts: dict[str, Any], samples: dict[str, list[str]]
    ) -> None:
        contact = self.store.find(HubContact, self.org_id, link.contact_id)
        if contact is None or contact.archived or not spoke.view.direction.pushes:
            return
        wanted = snapshot(pushed_fields(contact, spoke.view, link.object_type))
        if any(link.snapshot.get(k) != v for k, v in wanted.items()):
            counts["unpushed"] += 1
            samples.setdefault("unpushed", []).append(link.remote_id)
