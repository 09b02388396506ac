"""The embedded store: one SQLite file in WAL mode. The local default (`contactsync` CLI)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from contactsync.domain.base import STORED, Entity
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.errors import LeaseHeld, LeaseLost, VersionConflict
from contactsync.store.base import (
    E,
    Page,
    Store,
    StoreStats,
    Write,
    check_limit,
    decode_token,
    encode_token,
)

# json.dumps(..., separators=(",", ":")) without building an encoder per entity written.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))

# The statements a batch's pending writes go out with (see _flush; benchmarks/store_floor).
UPSERT_ENTITY = (
    "INSERT OR REPLACE INTO entities (org, kind, id, version, body, expires_at, idx) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE_ENTITY = "DELETE FROM entities WHERE org=? AND kind=? AND id=?"
INSERT_INDEX = "INSERT OR IGNORE INTO entity_index (org, kind, name, value, id) VALUES (?,?,?,?,?)"
DELETE_INDEX = "DELETE FROM entity_index WHERE org=? AND kind=? AND name=? AND value=? AND id=?"

# Bounded: a page of a bulk sync and the contacts it touches, not the whole organisation.
RECENT_ENTITIES = 5_000
# Writes a batch holds back before sending them (see _flush): enough for sorted bulk inserts,
# few enough that a 10,000-record page does not hold every row it writes in memory.
PENDING_ENTITIES = 4_096

# A rowid table, not WITHOUT ROWID: bodies (a contact with its provenance, a link with its
# snapshot) run to kilobytes, and a WITHOUT ROWID row over ~1 KB spills into an overflow page
# of its own: the file was twice the size, and a large sync spent its time moving pages.
ENTITIES = """
CREATE TABLE IF NOT EXISTS {name} (
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    expires_at REAL,
    -- The entity's index entries as a JSON list of [name, value]: a write finds the entries
    -- to replace (and a delete the ones to remove) with the version it reads anyway, so
    -- entity_index needs no second B-tree by id.
    idx TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (org, kind, id)
);
"""

SCHEMA = (
    ENTITIES.format(name="entities")
    + """
CREATE TABLE IF NOT EXISTS entity_index (
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (org, kind, name, value, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    token INTEGER NOT NULL,
    PRIMARY KEY (org, name)
) WITHOUT ROWID;
"""
)


class SQLiteStore(Store):
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        # One connection shared by the process's threads (the local scheduler and HTTP server),
        # serialised by a lock: SQLite allows one writer at a time anyway.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._depth = 0
        self.stats = StoreStats()
        # Entities recently written or read, by key, at their version (see _load), each with
        # the number of the batch that wrote or read it (0: none).
        self._recent: OrderedDict[tuple[str, str, str], tuple[str, Entity, int]] = OrderedDict()
        self._batch_no = 0  # the current (or last) outer batch
        # Inside a batch (this connection holds the write lock, so nobody else can change a
        # row): the stored version and index entries of rows already read, or None for rows
        # known absent. A write checks its version here instead of asking SQLite again.
        self._known: dict[tuple[str, str, str], tuple[int, str] | None] | None = None
        # Likewise the ids under index values a page looks up (its records' emails, phones).
        self._index_known: dict[tuple[str, str, str, str], set[str]] | None = None
        # Inside a batch: the writes not yet sent to SQLite, by key (see _flush).
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every 32 MiB of log rather than 4: a page a sync rewrites in many
            # commits (the B-trees' upper levels) is copied back once per checkpoint.
            self._conn.execute("PRAGMA wal_autocheckpoint=8192")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache
            self._conn.executescript(SCHEMA)
            self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Groups every write inside into one transaction (a page of a bulk sync): one commit
        instead of thousands. Nested batches join the outer one; ``transact`` checks versions
        before writing, so a conflict inside a page still writes nothing of its own."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
                self._known = {}
                self._index_known = {}
                self._batch_no += 1
            self._depth += 1
            try:
                yield
                if outer:
                    self._flush()
            except BaseException:
                self._depth -= 1
                if outer:
                    self._forget()
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._forget()
                self._conn.execute("COMMIT")

    def _forget(self) -> None:
        """At the end of a batch: what only a connection holding the write lock may trust."""
        self._known = self._index_known = None
        self._pending.clear()

    def prefetch(self, kind: type[Entity], org_id: str, entity_ids: Sequence[str]) -> None:
        """Inside a batch: reads the versions of the rows a page is about to write in one query
        per 500, so each write's version check needs none."""
        if self._known is None:
            return
        with self._lock:
            known = self._known
            wanted = [i for i in entity_ids if (org_id, kind.kind, i) not in known]
            for chunk, marks in _in_chunks(wanted):
                found = {
                    row[0]: (int(row[1]), row[2])
                    for row in self._conn.execute(
                        f"SELECT id, version, idx FROM entities "  # noqa: S608 - placeholders only
                        f"WHERE org=? AND kind=? AND id IN ({marks})",
                        (org_id, kind.kind, *chunk),
                    )
                }
                for entity_id in chunk:
                    known[(org_id, kind.kind, entity_id)] = found.get(entity_id)

    # ---- reads ---------------------------------------------------------------------------------

    def find(self, kind: type[E], org_id: str, entity_id: str) -> E | None:
        return self.get_many(kind, org_id, [entity_id]).get(entity_id)

    def get_many(self, kind: type[E], org_id: str, entity_ids: Sequence[str]) -> dict[str, E]:
        result: dict[str, E] = {}
        self.stats.count("reads", kind.kind, len(set(entity_ids)))
        with self._lock:
            wanted = list(entity_ids)
            if self._known is not None:
                wanted = []
                for entity_id in entity_ids:
                    key = (org_id, kind.kind, entity_id)
                    if key in self._known and self._known[key] is None:
                        continue  # known absent inside this batch (prefetched or deleted)
                    cached = self._batch_copy(kind, key)
                    pending = self._pending.get(key)
                    if cached is not None:
                        result[entity_id] = cached
                    elif pending is not None and pending.row is not None:
                        # Written by this batch, not yet sent: read from the row itself.
                        version, body = pending.row[3], pending.row[4]
                        result[entity_id] = self._load(kind, body, version, org_id, entity_id)
                    else:
                        wanted.append(entity_id)
            for chunk, marks in _in_chunks(wanted):
                rows = self._conn.execute(
                    f"SELECT id, body, version, idx FROM entities "  # noqa: S608 - placeholders
                    f"WHERE org=? AND kind=? AND id IN ({marks})",
                    (org_id, kind.kind, *chunk),
                ).fetchall()
                for entity_id, body, version, idx in rows:
                    result[entity_id] = self._load(kind, body, version, org_id, entity_id)
                    if self._known is not None:
                        self._known[(org_id, kind.kind, entity_id)] = (int(version), idx)
                if self._known is not None:
                    for entity_id in chunk:
                        self._known.setdefault((org_id, kind.kind, entity_id), None)
        return result

    def _batch_copy(self, kind: type[E], key: tuple[str, str, str]) -> E | None:
        """Inside a batch: a copy of the entity as this batch last wrote or read it, if that is
        still its stored version (nobody else writes while the batch holds the lock)."""
        known = self._known.get(key) if self._known is not None else None
        cached = self._recent.get(key)
        if known is None or cached is None:
            return None
        if cached[2] != self._batch_no or cached[1].version != known[0]:
            return None
        self._recent.move_to_end(key)
        copy = cached[1].model_copy()
        assert isinstance(copy, kind)
        return copy

    def page(
        self, kind: type[E], org_id: str, *, limit: int = 100, page_token: str | None = None
    ) -> Page[E]:
        check_limit(limit)
        after = ""
        if page_token is not None:
            after = str(decode_token(page_token, org_id, kind.kind).get("after", ""))
        self.stats.count("queries", kind.kind)
        with self._lock:
            self._flush()
            rows = self._conn.execute(
                "SELECT id, body, version FROM entities WHERE org=? AND kind=? AND id>? "
                "ORDER BY id LIMIT ?",
                (org_id, kind.kind, after, limit + 1),
            ).fetchall()
        items = [self._load(kind, body, v, org_id, i) for i, body, v in rows[:limit]]
        token = None
        if len(rows) > limit:
            token = encode_token({"o": org_id, "k": kind.kind, "after": rows[limit - 1][0]})
        return Page(items, token)

    def prefetch_index(
        self, kind: type[Entity], org_id: str, index: str, values: Sequence[str]
    ) -> None:
        """Inside a batch: the ids under ``values`` of one index, in one query per 500."""
        if self._index_known is None:
            return
        with self._lock:
            self._flush()
            for chunk, marks in _in_chunks(values):
                found: dict[str, set[str]] = {v: set() for v in chunk}
                for value, entity_id in self._conn.execute(
                    f"SELECT value, id FROM entity_index "  # noqa: S608 - placeholders only
                    f"WHERE org=? AND kind=? AND name=? AND value IN ({marks})",
                    (org_id, kind.kind, index, *chunk),
                ):
                    found[value].add(entity_id)
                for value, ids in found.items():
                    self._index_known[(org_id, kind.kind, index, value)] = ids

    def lookup_many(
        self, kind: type[E], org_id: str, index: str, values: Sequence[str], *, limit: int = 100
    ) -> dict[str, list[E]]:
        """One query per 500 values, index entries joined to their entities."""
        check_limit(limit)
        result: dict[str, list[E]] = {v: [] for v in values}
        self.stats.count("queries", kind.kind, len(result))
        with self._lock:
            self._flush()
            for chunk, marks in _in_chunks(values):
                rows = self._conn.execute(
                    f"SELECT i.value, e.id, e.body, e.version FROM entity_index i "  # noqa: S608
                    f"JOIN entities e ON e.org=i.org AND e.kind=i.kind AND e.id=i.id "
                    f"WHERE i.org=? AND i.kind=? AND i.name=? AND i.value IN ({marks}) "
                    f"ORDER BY i.value, e.id",
                    (org_id, kind.kind, index, *chunk),
                ).fetchall()
                for value, entity_id, body, version in rows:
                    found = result[value]
                    if len(found) < limit:
                        found.append(self._load(kind, body, version, org_id, entity_id))
        return result

    def lookup_ids(self, kind: type[Entity], org_id: str, index: str, value: str) -> list[str]:
        self.stats.count("queries", kind.kind)
        with self._lock:
            if self._index_known is not None:
                ids = self._index_known.get((org_id, kind.kind, index, value))
                if ids is not None:
                    return sorted(ids)
            self._flush()
            rows = self._conn.execute(
                "SELECT id FROM entity_index WHERE org=? AND kind=? AND name=? AND value=?",
                (org_id, kind.kind, index, value),
            ).fetchall()
        return [r[0] for r in rows]

    # ---- writes --------------------------------------------------------------------------------

    def transact(self, writes: Sequence[Write]) -> list[Entity]:
        """Checks every expected version first, then writes: a conflict leaves nothing of the
        transact behind, even inside a batch (no savepoint per record of a page)."""
        with self._lock:
            currents = [self._current(w.entity) for w in writes]
            for write, current in zip(writes, currents, strict=True):
                actual = current[0] if current else None
                if write.expected_version is not None and actual != (
                    write.expected_version or None
                ):
                    entity = write.entity  # expected 0: must not exist
                    raise VersionConflict(
                        type(entity).kind, entity.id, write.expected_version, actual
                    )
            with self.batch():
                return [self._write(w, c) for w, c in zip(writes, currents, strict=True)]

    def _current(self, entity: Entity) -> tuple[int, str] | None:
        """The stored version and index entries (JSON), or None when absent."""
        return self._current_of(entity.org_id, type(entity).kind, entity.id)

    def _current_of(self, org_id: str, kind: str, entity_id: str) -> tuple[int, str] | None:
        key = (org_id, kind, entity_id)
        if self._known is not None and key in self._known:
            return self._known[key]
        row = self._conn.execute(
            "SELECT version, idx FROM entities WHERE org=? AND kind=? AND id=?", key
        ).fetchone()
        current = None if row is None else (int(row[0]), str(row[1]))
        if self._known is not None:
            self._known[key] = current
        return current

    def bulk_put(self, entities: Sequence[Entity]) -> None:
        with self.batch():
            for entity in entities:
                self._write(Write(entity, None), self._current(entity))

    def _write(self, write: Write, current: tuple[int, str] | None) -> Entity:
        """Writes one entity whose stored version and index entries (``current``) the caller
        read and checked. Inside a batch (always: every caller holds one) the row waits in
        ``_pending`` until a query needs SQLite to see it (a page, an index lookup) or the
        commit; reads by id are answered from the pending row itself."""
        kind = type(write.entity)
        new = write.stored()
        entries = list(dict.fromkeys(new.index_entries()))
        expires = new.expires_at()
        body = new.model_dump_json(exclude={"version"}, warnings="error")
        idx = _COMPACT_JSON.encode(entries)
        row = (
            new.org_id,
            kind.kind,
            new.id,
            new.version,
            body,
            expires.timestamp() if expires else None,
            idx,
        )
        self._stage((new.org_id, kind.kind, new.id), current, row, set(entries))
        if self._known is not None:
            self._known[(new.org_id, kind.kind, new.id)] = (new.version, idx)
        self.stats.count("writes", kind.kind)
        self._remember(body, new.model_copy())
        return new

    def _stage(
        self,
        key: tuple[str, str, str],
        current: tuple[int, str] | None,
        row: tuple[Any, ...] | None,
        index: set[tuple[str, str]],
    ) -> None:
        """Records an entity's new row (None: deleted) and index entries. The first write of a
        key in a batch keeps the entries SQLite holds, so the flush replaces exactly those."""
        pending = self._pending.get(key)
        if pending is None:
            old = _pairs(current[1]) if current is not None else set()
            self._pending[key] = _Pending(old, row, index)
        else:  # ``current`` is then this batch's last write of the key: its entries are these
            old = pending.index
            pending.row, pending.index = row, index
        if len(self._pending) >= PENDING_ENTITIES:
            self._flush()
        known = self._index_known
        if known:
            org_id, kind, entity_id = key
            for name, value in old - index:
                known.get((org_id, kind, name, value), set()).discard(entity_id)
            for name, value in index - old:
                ids = known.get((org_id, kind, name, value))
                if ids is not None:
                    ids.add(entity_id)

    def _flush(self) -> None:
        """Sends the batch's pending writes: one statement per table and kind of change, rows
        in key order (neighbouring keys share B-tree pages)."""
        if not self._pending:
            return
        upserts: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, str, str]] = []
        stale: list[tuple[str, str, str, str, str]] = []
        added: list[tuple[str, str, str, str, str]] = []
        for key, pending in self._pending.items():
            org_id, kind, entity_id = key
            if pending.row is None:
                deletes.append(key)
            else:
                upserts.append(pending.row)
            for name, value in pending.stored - pending.index:
                stale.append((org_id, kind, name, value, entity_id))
            for name, value in pending.index - pending.stored:
                added.append((org_id, kind, name, value, entity_id))
        self._pending.clear()
        if stale:
            self._conn.executemany(DELETE_INDEX, sorted(stale))
        if deletes:
            self._conn.executemany(DELETE_ENTITY, sorted(deletes))
        if upserts:
            upserts.sort(key=lambda r: (r[0], r[1], r[2]))
            self._conn.executemany(UPSERT_ENTITY, upserts)
        if added:
            self._conn.executemany(INSERT_INDEX, sorted(added))

    def delete(
        self,
        kind: type[Entity],
        org_id: str,
        entity_id: str,
        *,
        expected_version: int | None = None,
    ) -> None:
        self.stats.count("writes", kind.kind)
        with self.batch():
            current = self._current_of(org_id, kind.kind, entity_id)
            if current is None:
                return
            if expected_version is not None and current[0] != expected_version:
                raise VersionConflict(kind.kind, entity_id, expected_version, current[0])
            self._stage((org_id, kind.kind, entity_id), current, None, set())
            if self._known is not None:
                self._known[(org_id, kind.kind, entity_id)] = None

    # ---- leases and cursors ----------------------------------------------------------------

    def acquire_lease(
        self, org_id: str, name: str, owner: str, ttl: timedelta, now: datetime
    ) -> Lease:
        with self.batch():
            row = self._conn.execute(
                "SELECT owner, expires_at, token FROM leases WHERE org=? AND name=?",
                (org_id, name),
            ).fetchone()
            expires = now + ttl
            if row is None:
                token = 1
            elif row[0] == owner and row[1] > now.timestamp():
                token = int(row[2])  # re-acquiring our own live lease renews it
            elif row[1] > now.timestamp() and row[0]:
                raise LeaseHeld(name, row[0], datetime.fromtimestamp(row[1], now.tzinfo))
            else:
                token = int(row[2]) + 1
            self._conn.execute(
                "INSERT OR REPLACE INTO leases (org, name, owner, expires_at, token) "
                "VALUES (?,?,?,?,?)",
                (org_id, name, owner, expires.timestamp(), token),
            )
        return Lease(name=name, owner=owner, expires_at=expires, token=token)

    def renew_lease(self, org_id: str, lease: Lease, ttl: timedelta, now: datetime) -> Lease:
        with self.batch():
            self._check_lease(org_id, lease)
            expires = now + ttl
            self._conn.execute(
                "UPDATE leases SET expires_at=? WHERE org=? AND name=?",
                (expires.timestamp(), org_id, lease.name),
            )
        return lease.model_copy(update={"expires_at": expires})

    def release_lease(self, org_id: str, lease: Lease) -> None:
        with self._lock:
            # Keep the row (and its token) so the next holder's token is larger: fencing.
            self._conn.execute(
                "UPDATE leases SET owner='', expires_at=0 WHERE org=? AND name=? AND owner=? "
                "AND token=?",
                (org_id, lease.name, lease.owner, lease.token),
            )

    def save_cursor(self, cursor: Cursor, lease: Lease) -> Cursor:
        if lease.name != cursor.id:
            raise LeaseLost(lease.name)
        with self.batch():
            self._check_lease(cursor.org_id, lease)
            stored = self._write(Write(cursor, None), self._current(cursor))
        assert isinstance(stored, Cursor)
        return stored

    def _check_lease(self, org_id: str, lease: Lease) -> None:
        row = self._conn.execute(
            "SELECT owner, token FROM leases WHERE org=? AND name=?", (org_id, lease.name)
        ).fetchone()
        if row is None or row[0] != lease.owner or int(row[1]) != lease.token:
            raise LeaseLost(lease.name)

    # ---- helpers -------------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Files written by earlier versions: entities was a WITHOUT ROWID table, at first
        without the ``idx`` column (entity_index then had a by-id index instead). Rebuilt in
        one transaction, every entity and index entry kept (another process opening the same
        file waits for it, then finds nothing to do)."""
        if self._entity_columns() is None:
            return  # current: no write lock taken
        with self.batch():
            columns = self._entity_columns()
            if columns is None:
                return
            self._conn.execute(ENTITIES.format(name="entities_v2"))  # executescript would commit
            if "idx" in columns:
                self._conn.execute(
                    "INSERT INTO entities_v2 (org, kind, id, version, body, expires_at, idx) "
                    "SELECT org, kind, id, version, body, expires_at, idx FROM entities"
                )
            else:
                self._conn.execute(
                    "INSERT INTO entities_v2 (org, kind, id, version, body, expires_at) "
                    "SELECT org, kind, id, version, body, expires_at FROM entities"
                )
            self._conn.execute("DROP TABLE entities")
            self._conn.execute("ALTER TABLE entities_v2 RENAME TO entities")
            if "idx" not in columns:
                grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
                for org, kind, name, value, entity_id in self._conn.execute(
                    "SELECT org, kind, name, value, id FROM entity_index"
                ):
                    grouped.setdefault((org, kind, entity_id), []).append((name, value))
                self._conn.executemany(
                    "UPDATE entities SET idx=? WHERE org=? AND kind=? AND id=?",
                    [
                        (json.dumps(pairs, separators=(",", ":")), *key)
                        for key, pairs in grouped.items()
                    ],
                )
            self._conn.execute("DROP INDEX IF EXISTS entity_index_by_id")

    def _entity_columns(self) -> set[str] | None:
        """The entities table's columns when it is in an earlier version's layout, else None."""
        table = self._conn.execute(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name='entities'"
        ).fetchone()[0]
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(entities)")}
        if "idx" in columns and "WITHOUT ROWID" not in str(table).upper():
            return None
        return columns

    def _load(self, kind: type[E], body: str, version: Any, org_id: str, entity_id: str) -> E:
        """Parses a stored entity, or reuses the one this store last wrote or read with exactly
        that stored text: validating a contact's JSON (emails, phones, provenance) is the
        costliest part of a read, and a sync reads back the contacts it just wrote."""
        key = (org_id, kind.kind, entity_id)
        cached = self._recent.get(key)
        if cached is not None and cached[0] == body and cached[1].version == int(version):
            self._remember(body, cached[1])  # checked against SQLite: this batch read it
            copy = cached[1].model_copy()
            assert isinstance(copy, kind)
            return copy
        entity = kind.model_validate_json(body, context=STORED)
        entity.__dict__["version"] = int(version)
        self._remember(body, entity)
        return entity.model_copy()

    def _remember(self, body: str, entity: Entity) -> None:
        key = (entity.org_id, type(entity).kind, entity.id)
        self._recent[key] = (body, entity, self._batch_no if self._known is not None else 0)
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_ENTITIES:
            self._recent.popitem(last=False)


@dataclass(slots=True)
class _Pending:
    """A key's writes in the batch so far: the index entries SQLite holds for it, and the row
    (None: deleted) and index entries it is to have."""

    stored: set[tuple[str, str]]
    row: tuple[Any, ...] | None
    index: set[tuple[str, str]]


def _pairs(idx: str) -> set[tuple[str, str]]:
    return {(name, value) for name, value in json.loads(idx)}


def _in_chunks(values: Sequence[str], size: int = 500) -> Iterator[tuple[list[str], str]]:
    """The distinct values in chunks for ``IN (...)``, each with its placeholders (SQLite
    bounds a statement's parameters)."""
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), size):
        chunk = distinct[start : start + size]
        yield chunk, ",".join("?" * len(chunk))
