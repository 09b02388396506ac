"""What the bulk sync keeps in the table while it runs: one ``BulkSync`` per sync (the plan, and
while it is ``running`` the scheduled pulls of that account stand aside) and one ``BulkShard``
per shard (its state, where it stands, how many records it read)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from contactsync.connectors.sharding import Shard
from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow

Cursor = Annotated[str, StringConstraints(max_length=16_384)]


class BulkState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"


class BulkSync(Entity):
    """The bulk sync of one sync (id: the sync's id). ``run_id`` names the state machine
    execution: a plan asked for again by the same run is the stored one."""

    kind = "bulk_sync"

    sync_id: Id
    account_id: Id
    run_id: Id
    state: BulkState = BulkState.RUNNING
    streams: list[Annotated[str, StringConstraints(max_length=64)]] = Field(max_length=20)
    # The cursor each stream continues from afterwards; None: the carrying shard's last one.
    start_cursors: dict[str, Cursor | None] = Field(default_factory=dict)
    shard_ids: list[Id] = Field(max_length=2000)
    total: int | None = Field(default=None, ge=0)
    max_concurrency: int = Field(ge=1, le=1000)
    started_at: AwareDatetime = Field(default_factory=utcnow)
    finished_at: AwareDatetime | None = None

    @property
    def running(self) -> bool:
        return self.state is BulkState.RUNNING


class ShardState(StrEnum):
    PENDING = "pending"
    DONE = "done"


class BulkShard(Entity):
    kind = "bulk_shard"
    list_buckets = 4

    run_id: Id
    sync_id: Id
    account_id: Id
    shard: Shard
    state: ShardState = ShardState.PENDING
    records: int = Field(default=0, ge=0)
    invocations: int = Field(default=0, ge=0)
    # The stream's cursor from the last page, for a shard that carries it.
    cursor: Cursor | None = None
    last_error: Annotated[str, StringConstraints(max_length=500)] | None = None
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    @staticmethod
    def make_id(run_id: str, number: int) -> str:
        return f"{run_id}.{number}"

    @property
    def done(self) -> bool:
        return self.state is ShardState.DONE
