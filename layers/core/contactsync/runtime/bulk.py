"""The initial bulk sync of one connected account (100,000+ contacts), in three steps that the
Step Functions state machine (statemachine/bulk_sync.asl.json) orchestrates:

1. ``plan``: the connector splits each stream into shards (connectors/sharding.py) and names
   the start-of-sync cursor; the shards are stored, the sync's status shows 0 of the total, and
   the account's scheduled pulls stand aside until the bulk sync is finished. Asked again by the
   same run, the stored plan is the answer.
2. ``run_shard``, once per shard, several at once (the Distributed Map's concurrency comes from
   the provider's limits): every record goes through the engine's ingest (match, merge, link,
   change log, outbox), each page committed before the shard's position moves, progress added
   to the sync's status as it goes. When the invocation is about to time out the shard stops
   after a page and answers ``done: false``; the state machine calls it again and it resumes
   from its position. A shard already done answers at once: a retried or redriven execution
   repeats only what did not finish. Ingest is idempotent (deterministic contact and link ids),
   so a page read twice changes nothing.
3. ``finalise``: once every shard is done, each stream's cursor is stored (under the stream's
   lease, with the sync's start as its signpost), the sync's status becomes active with its
   counts, and scheduled pulls take over from the cursor.

Errors raised here name the state machine's retry policy: ``SyncGone`` and ``StaleRun`` stop
the run, everything else is retried with backoff, shard by shard.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import Field

from contactsync.connectors.aircall import AircallConnector
from contactsync.connectors.base import Connector, ConnectorError
from contactsync.connectors.sharding import ShardedReader, WholeStream
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.base import Id, Model, utcnow
from contactsync.domain.cursor import Cursor
from contactsync.domain.errors import ContactsyncError, VersionConflict
from contactsync.domain.org import Organisation
from contactsync.domain.sync import SyncSettings, SyncState, SyncStatus
from contactsync.runtime.bulk_state import BulkShard, BulkState, BulkSync, ShardState
from contactsync.runtime.limits import limits
from contactsync.runtime.pulls import linked
from contactsync.runtime.shards_aircall import AircallShards, shard_account
from contactsync.runtime.spokes import OrgSpokes
from contactsync.store.base import Store
from contactsync.sync.ingest import IngestContext, ingest
from contactsync.sync.report import SpokeReport
from contactsync.sync.spokes import ConnectorFactory

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=2)
WORKER = "bulk-sync"


class BulkError(ContactsyncError):
    pass


class SyncGone(BulkError):
    """The sync or its account was deleted, paused by its account's state, or disconnected:
    the run stops (no retry)."""


class StaleRun(BulkError):
    """A newer bulk run of the same sync replaced this one: this run stops."""


class ShardsIncomplete(BulkError):
    """Finalising before every shard is done (retried)."""


class BulkTask(Model):
    org_id: Id
    sync_id: Id
    run_id: Id


class ShardTask(BulkTask):
    shard_id: Id
    done: bool = False
    records: int = Field(default=0, ge=0)


class PlanResult(BulkTask):
    shards: list[ShardTask]
    max_concurrency: int = Field(ge=1)
    total: int | None = None


class FinaliseResult(BulkTask):
    records: int
    in_sync: int
    shards: int


def sharder_for(connector: Connector) -> ShardedReader:
    """How a connector's streams are sharded: Aircall by creation-date windows, a connector
    that shards itself as it says, any other as one whole read."""
    if isinstance(connector, AircallConnector):
        return AircallShards(connector)
    if isinstance(connector, ShardedReader):
        return connector
    return WholeStream(connector)


def _shard_account(account: ConnectedAccount, concurrency: int) -> ConnectedAccount:
    """The account as one of ``concurrency`` concurrent readers builds its connector: with its
    share of a rate limit that all of them draw on."""
    if account.provider is Provider.AIRCALL:
        return shard_account(account, concurrency)
    return account


@dataclass
class BulkService:
    store: Store
    connectors: ConnectorFactory
    now: Callable[[], datetime] = utcnow
    seconds_left: Callable[[], float] = field(default=lambda: math.inf)
    margin: float = 60.0
    progress_every: float = 10.0
    monotonic: Callable[[], float] = time.monotonic

    # ---- 1. plan ------------------------------------------------------------------------------

    def plan(self, task: BulkTask) -> PlanResult:
        settings, account = self._sync(task)
        bulk = self.store.find(BulkSync, task.org_id, task.sync_id)
        if bulk is None or bulk.run_id != task.run_id:
            bulk = self._new_plan(task, settings, account, bulk)
        self._quiesce(bulk)
        return PlanResult(
            org_id=task.org_id,
            sync_id=task.sync_id,
            run_id=task.run_id,
            shards=[
                ShardTask(org_id=task.org_id, sync_id=task.sync_id, run_id=task.run_id, shard_id=s)
                for s in bulk.shard_ids
            ],
            max_concurrency=bulk.max_concurrency,
            total=bulk.total,
        )

    def _new_plan(
        self,
        task: BulkTask,
        settings: SyncSettings,
        account: ConnectedAccount,
        previous: BulkSync | None,
    ) -> BulkSync:
        limit = limits(account.provider)
        connector = self.connectors(_shard_account(account, limit.bulk_concurrency))
        connector.configure(settings)  # the objects and scope the sync takes
        sharder = sharder_for(connector)
        shards: list[BulkShard] = []
        cursors: dict[str, str | None] = {}
        streams = list(connector.streams())
        for stream in streams:
            planned, start = sharder.plan_shards(stream, limit.max_shards)
            cursors[stream] = start
            first = len(shards)
            shards.extend(
                BulkShard(
                    org_id=task.org_id,
                    id=BulkShard.make_id(task.run_id, first + i),
                    run_id=task.run_id,
                    sync_id=task.sync_id,
                    account_id=account.id,
                    shard=shard,
                    updated_at=self.now(),
                )
                for i, shard in enumerate(planned)
            )
        estimates = [s.shard.estimate for s in shards]
        total = sum(e for e in estimates if e is not None) if None not in estimates else None
        self.store.bulk_put(shards)
        bulk = BulkSync(
            org_id=task.org_id,
            id=task.sync_id,
            version=previous.version if previous is not None else 0,
            sync_id=task.sync_id,
            account_id=account.id,
            run_id=task.run_id,
            streams=streams,
            start_cursors=cursors,
            shard_ids=[s.id for s in shards],
            total=total,
            max_concurrency=max(1, min(limit.bulk_concurrency, len(shards))),
            started_at=self.now(),
        )
        # Written last: a plan interrupted before this point is planned again from scratch.
        bulk = self.store.create(bulk) if previous is None else self.store.update(bulk)
        self._status(
            task,
            lambda s: s.model_copy(
                update={
                    "state": SyncState.PAUSED
                    if s.state is SyncState.PAUSED
                    else SyncState.IN_PROGRESS,
                    "progress_done": 0,
                    "progress_total": total,
                    "last_error": None,
                }
            ),
        )
        log.info(
            "bulk sync planned",
            extra={"sync": task.sync_id, "shards": len(shards), "total": total},
        )
        return bulk

    def _quiesce(self, bulk: BulkSync) -> None:
        """Waits out a pull that started before the plan was stored: its lease is held (the
        state machine retries the plan); pulls starting later see the plan and stand aside."""
        for stream in bulk.streams:
            name = Cursor.make_id(bulk.account_id, stream)
            lease = self.store.acquire_lease(
                bulk.org_id, name, f"{WORKER}:{bulk.run_id}", LEASE_TTL, self.now()
            )
            self.store.release_lease(bulk.org_id, lease)

    # ---- 2. run a shard -----------------------------------------------------------------------

    def run_shard(self, task: ShardTask) -> ShardTask:
        shard = self.store.find(BulkShard, task.org_id, task.shard_id)
        if shard is None or shard.run_id != task.run_id:
            raise StaleRun(f"shard {task.shard_id} is not part of run {task.run_id}")
        if shard.done:
            return task.model_copy(update={"done": True, "records": shard.records})
        bulk = self.store.find(BulkSync, task.org_id, task.sync_id)
        if bulk is None or bulk.run_id != task.run_id:
            raise StaleRun(f"run {task.run_id} was replaced")
        _, account = self._sync(task)
        connector = self.connectors(_shard_account(account, bulk.max_concurrency))
        org = OrgSpokes.load(self.store, task.org_id)
        spoke = org.spoke(account.id, lambda _: connector)
        assert spoke is not None
        report = SpokeReport(account.id, account.provider.value)
        ctx = IngestContext(
            store=self.store,
            org_id=task.org_id,
            view=spoke.view,
            connector=connector,
            spokes=org.views_with(spoke),
            run_id=task.run_id,
            now=self.now(),
            report=report,
            region=self._region(task.org_id),
        )
        shard = self.store.update(
            shard.model_copy(
                update={"invocations": shard.invocations + 1, "updated_at": self.now()}
            )
        )
        try:
            shard = self._read(ctx, sharder_for(connector), shard, task)
        except ConnectorError as exc:
            self._failed(task, shard, f"{type(exc).__name__}: {exc.code}")
            if exc.kind == "auth":
                self._needs_reconnect(account, exc.code)
            raise
        return task.model_copy(update={"done": shard.done, "records": shard.records})

    def _read(
        self, ctx: IngestContext, sharder: ShardedReader, shard: BulkShard, task: ShardTask
    ) -> BulkShard:
        reader = sharder.read_shard(shard.shard)
        unreported = 0
        flushed = self.monotonic()
        finished = False
        for page in reader:
            ctx.now = self.now()
            with self.store.batch():
                for record in page.records:
                    if not record.deleted:  # a full read has no deletes to apply
                        ingest(ctx, record)
            unreported += len(page.records)
            finished = page.last
            update: dict[str, object] = {
                "records": shard.records + len(page.records),
                "updated_at": ctx.now,
                "last_error": None,
            }
            if page.cursor is not None:
                update["shard"] = shard.shard.model_copy(update={"resume": page.cursor})
                if finished and shard.shard.carries_cursor:
                    update["cursor"] = page.cursor
            if finished:
                update["state"] = ShardState.DONE
            shard = self.store.update(shard.model_copy(update=update))
            if finished or self.monotonic() - flushed >= self.progress_every:
                self._progress(task, unreported)
                unreported, flushed = 0, self.monotonic()
            if finished or self.seconds_left() < self.margin:
                break
        if unreported:
            self._progress(task, unreported)
        if not finished:
            log.info(
                "shard paused before the deadline",
                extra={"shard": shard.id, "records": shard.records},
            )
        return shard

    def _progress(self, task: BulkTask, records: int) -> None:
        if records:
            self._status(
                task, lambda s: s.model_copy(update={"progress_done": s.progress_done + records})
            )

    def _failed(self, task: BulkTask, shard: BulkShard, error: str) -> None:
        """The failure is visible in the shard and in the sync's status; the state machine
        decides whether to try again."""
        self.store.update(shard.model_copy(update={"last_error": error[:500]}))
        message = f"bulk sync shard {shard.shard.stream}/{shard.shard.index}: {error}"[:1000]
        self._status(task, lambda s: s.model_copy(update={"last_error": message}))

    def _needs_reconnect(self, account: ConnectedAccount, code: str) -> None:
        current = self.store.find(ConnectedAccount, account.org_id, account.id)
        if current is not None and current.status is AccountStatus.CONNECTED:
            reason = f"the provider refused our credentials ({code[:200]})"
            self.store.update(
                current.model_copy(
                    update={"status": AccountStatus.NEEDS_RECONNECT, "status_reason": reason}
                )
            )

    # ---- 3. finalise --------------------------------------------------------------------------

    def finalise(self, task: BulkTask) -> FinaliseResult:
        bulk = self.store.find(BulkSync, task.org_id, task.sync_id)
        if bulk is None or bulk.run_id != task.run_id:
            raise StaleRun(f"run {task.run_id} was replaced")
        shards = self.store.get_many(BulkShard, task.org_id, bulk.shard_ids)
        unfinished = [i for i in bulk.shard_ids if i not in shards or not shards[i].done]
        if unfinished:
            raise ShardsIncomplete(f"{len(unfinished)} of {len(bulk.shard_ids)} shards not done")
        records = sum(s.records for s in shards.values())
        if bulk.running:
            self._store_cursors(bulk, list(shards.values()))
        self._sync(task)
        in_sync = linked(self.store, task.org_id, bulk.account_id, bulk.streams)
        now = self.now()
        self._status(
            task,
            lambda s: s.model_copy(
                update={
                    "state": SyncState.PAUSED if s.state is SyncState.PAUSED else SyncState.ACTIVE,
                    "counts": s.counts.model_copy(update={"in_sync": in_sync}),
                    "progress_done": records,
                    "progress_total": records,
                    "last_error": None,
                    "last_run_at": now,
                }
            ),
            rescope_done=True,
        )
        if bulk.running:
            self.store.update(
                bulk.model_copy(update={"state": BulkState.FINISHED, "finished_at": now})
            )
        log.info("bulk sync finished", extra={"sync": task.sync_id, "records": records})
        return FinaliseResult(
            org_id=task.org_id,
            sync_id=task.sync_id,
            run_id=task.run_id,
            records=records,
            in_sync=in_sync,
            shards=len(shards),
        )

    def _store_cursors(self, bulk: BulkSync, shards: list[BulkShard]) -> None:
        carried = {s.shard.stream: s.cursor for s in shards if s.shard.carries_cursor}
        for stream in bulk.streams:
            value = bulk.start_cursors.get(stream) or carried.get(stream)
            if value is None:
                continue  # the next pull reads the stream in full
            name = Cursor.make_id(bulk.account_id, stream)
            lease = self.store.acquire_lease(
                bulk.org_id, name, f"{WORKER}:{bulk.run_id}", LEASE_TTL, self.now()
            )
            try:
                base = self.store.load_cursor(bulk.org_id, bulk.account_id, stream)
                cursor = Cursor(
                    org_id=bulk.org_id,
                    id=name,
                    version=base.version if base is not None else 0,
                    account_id=bulk.account_id,
                    stream=stream,
                    value=value,
                    started_at=bulk.started_at,
                    updated_at=self.now(),
                )
                self.store.save_cursor(cursor, lease)
            finally:
                self.store.release_lease(bulk.org_id, lease)

    # ---- shared -------------------------------------------------------------------------------

    def _sync(self, task: BulkTask) -> tuple[SyncSettings, ConnectedAccount]:
        settings = self.store.find(SyncSettings, task.org_id, task.sync_id)
        if settings is None:
            raise SyncGone(f"sync {task.sync_id} was deleted")
        account = self.store.find(ConnectedAccount, task.org_id, settings.account_id)
        if account is None or account.status is not AccountStatus.CONNECTED:
            raise SyncGone(f"account {settings.account_id} is not connected")
        return settings, account

    def _region(self, org_id: str) -> str:
        org = self.store.find(Organisation, org_id, org_id)
        return org.default_region if org else "US"

    def _status(
        self,
        task: BulkTask,
        change: Callable[[SyncStatus], SyncStatus],
        *,
        rescope_done: bool = False,
    ) -> None:
        """Applies ``change`` to the sync's status, again over concurrent writers."""
        for _ in range(20):
            settings = self.store.find(SyncSettings, task.org_id, task.sync_id)
            if settings is None:
                raise SyncGone(f"sync {task.sync_id} was deleted")
            update: dict[str, object] = {"status": change(settings.status)}
            if rescope_done:
                update["rescope_pending"] = False
            try:
                self.store.update(settings.model_copy(update=update))
                return
            except VersionConflict:
                continue
        raise VersionConflict("sync", task.sync_id, 0, None)
