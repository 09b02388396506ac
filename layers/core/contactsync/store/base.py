"""The storage protocol.

Everything is an ``Entity`` (organisation, id, version, index entries). The store offers a few
primitives and keeps the rules every implementation must share:

- tenancy: every call names the organisation and no call reaches another's data;
- optimistic concurrency: a write states the version it expects (0: must not exist) and fails
  with VersionConflict otherwise; the stored entity gets version + 1;
- secondary indexes (email, phone, owner, contact...) are maintained by the store from
  ``Entity.index_entries()`` and lookups verify against the entity, so an index entry left
  behind by a crash can never return a wrong result;
- leases with expiry and a fencing token guard cursors: a cursor is saved only by the current
  holder of its lease.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from contactsync.domain.base import Entity
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.errors import InvalidInput, NotFound

E = TypeVar("E", bound=Entity)

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[E]):
    items: list[E]
    next_token: str | None


@dataclass(frozen=True)
class Write:
    """One entity write in an atomic group. ``expected_version`` None: unconditional."""

    entity: Entity
    expected_version: int | None = None

    def stored(self) -> Entity:
        base = self.entity.version if self.expected_version is None else self.expected_version
        return self.entity.model_copy(update={"version": base + 1})


@dataclass
class StoreStats:
    """Operation counts, for benchmarks that prove incremental work does not grow with N."""

    reads: int = 0
    writes: int = 0
    queries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, op: str, kind: str, n: int = 1) -> None:
        setattr(self, op, getattr(self, op) + n)
        key = f"{op}:{kind}"
        self.by_kind[key] = self.by_kind.get(key, 0) + n


def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, org_id: str, kind: str) -> dict[str, Any]:
    """Decodes a page token and checks it was issued for this organisation and listing."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.one("page_token", "is not a page token") from exc
    if not isinstance(data, dict) or data.get("o") != org_id or data.get("k") != kind:
        raise InvalidInput.one("page_token", "was not issued for this listing")
    return data


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput.one("limit", f"must be between 1 and {MAX_PAGE_SIZE}")


class Store(ABC):
    """The storage protocol. Implementations: SQLiteStore, DynamoStore."""

    stats: StoreStats

    # ---- primitives every implementation provides --------------------------------------------

    @abstractmethod
    def find(self, kind: type[E], org_id: str, entity_id: str) -> E | None:
        """The entity, or None."""

    @abstractmethod
    def get_many(self, kind: type[E], org_id: str, entity_ids: Sequence[str]) -> dict[str, E]:
        """The entities that exist among ``entity_ids``, by id."""

    @abstractmethod
    def transact(self, writes: Sequence[Write]) -> list[Entity]:
        """Writes all or nothing; returns the stored entities (versions incremented). Raises
        VersionConflict when an expected version does not match."""

    @abstractmethod
    def bulk_put(self, entities: Sequence[Entity]) -> None:
        """Unconditional, idempotent upsert of many entities (initial loads of entities with
        deterministic ids). Not atomic as a whole; each entity is stored at version + 1."""

    @abstractmethod
    def delete(
        self,
        kind: type[Entity],
        org_id: str,
        entity_id: str,
        *,
        expected_version: int | None = None,
    ) -> None:
        """Removes the entity and its index entries (links, cursors, outbox entries; contacts
        are archived, never deleted, by the layers above). With ``expected_version``, only if
        the stored version is that one (VersionConflict otherwise; absent is not a conflict)."""

    @abstractmethod
    def page(
        self, kind: type[E], org_id: str, *, limit: int = 100, page_token: str | None = None
    ) -> Page[E]:
        """One page of every entity of ``kind`` in the organisation, in a stable order."""

    @abstractmethod
    def lookup_ids(self, kind: type[Entity], org_id: str, index: str, value: str) -> list[str]:
        """Ids whose index entries (may) include (index, value); callers verify."""

    @abstractmethod
    def acquire_lease(
        self, org_id: str, name: str, owner: str, ttl: timedelta, now: datetime
    ) -> Lease:
        """Takes the lease if free, expired or already ours. Raises LeaseHeld."""

    @abstractmethod
    def renew_lease(self, org_id: str, lease: Lease, ttl: timedelta, now: datetime) -> Lease:
        """Extends a lease we still hold. Raises LeaseLost if it was taken over."""

    @abstractmethod
    def release_lease(self, org_id: str, lease: Lease) -> None:
        """Gives the lease up (no-op if it was already taken over)."""

    @abstractmethod
    def save_cursor(self, cursor: Cursor, lease: Lease) -> Cursor:
        """Stores the cursor if ``lease`` (named after the cursor) is still held: fencing, so a
        worker whose lease expired can never move a cursor. Raises LeaseLost."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections."""

    def batch(self) -> AbstractContextManager[None]:
        """Groups the writes inside into fewer round trips where the store can (SQLite: one
        transaction per page of a sync). Atomicity is still only per ``transact`` call."""
        return nullcontext()

    def prefetch(self, kind: type[Entity], org_id: str, entity_ids: Sequence[str]) -> None:  # noqa: B027
        """A hint, inside ``batch``: these entities are about to be written (SQLite reads
        their versions in one query). Changes nothing; stores without a use for it ignore it."""

    def prefetch_index(  # noqa: B027
        self, kind: type[Entity], org_id: str, index: str, values: Sequence[str]
    ) -> None:
        """A hint, inside ``batch``: these index values are about to be looked up."""

    # ---- derived operations, shared by every implementation -----------------------------------

    def get(self, kind: type[E], org_id: str, entity_id: str) -> E:
        found = self.find(kind, org_id, entity_id)
        if found is None:
            raise NotFound(kind.kind, entity_id)
        return found

    def create(self, entity: E) -> E:
        stored = self.transact([Write(entity, expected_version=0)])[0]
        assert isinstance(stored, type(entity))
        return stored

    def update(self, entity: E) -> E:
        """Writes ``entity`` over the stored version ``entity.version``."""
        stored = self.transact([Write(entity, expected_version=entity.version)])[0]
        assert isinstance(stored, type(entity))
        return stored

    def lookup(
        self, kind: type[E], org_id: str, index: str, value: str, *, limit: int = 100
    ) -> list[E]:
        """Entities whose index entries include (index, value), verified, in id order."""
        check_limit(limit)
        ids = sorted(self.lookup_ids(kind, org_id, index, value))
        found = self.get_many(kind, org_id, ids[: limit * 2]) if ids else {}
        result = [
            found[i] for i in ids if i in found and (index, value) in set(found[i].index_entries())
        ]
        return result[:limit]

    def lookup_many(
        self, kind: type[E], org_id: str, index: str, values: Sequence[str], *, limit: int = 100
    ) -> dict[str, list[E]]:
        """``lookup`` for each of ``values`` (a page's worth): the same answers, by value.
        Stores that can answer in fewer round trips override it."""
        return {v: self.lookup(kind, org_id, index, v, limit=limit) for v in dict.fromkeys(values)}

    def scan(self, kind: type[E], org_id: str, page_size: int = 500) -> Iterator[E]:
        """Every entity of ``kind``, page by page (memory stays flat)."""
        token: str | None = None
        while True:
            batch = self.page(kind, org_id, limit=page_size, page_token=token)
            yield from batch.items
            if batch.next_token is None:
                return
            token = batch.next_token

    def load_cursor(self, org_id: str, account_id: str, stream: str) -> Cursor | None:
        return self.find(Cursor, org_id, Cursor.make_id(account_id, stream))


def index_set(entity: Entity | None) -> set[tuple[str, str]]:
    return set(entity.index_entries()) if entity is not None else set()


def bucket_of(kind: type[Entity], entity_id: str) -> int:
    """Spreads a kind over ``list_buckets`` partitions, stably (not Python's salted hash)."""
    if kind.list_buckets == 1:
        return 0
    return zlib.crc32(entity_id.encode()) % kind.list_buckets
