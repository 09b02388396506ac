"""Cursors and paging: where a read of one stream stands, and the small loop-safe readers.

A cursor is JSON: ``since`` (epoch seconds: the next read takes ``SystemModstamp >= since``),
``seen`` (ids at exactly ``since`` already read: timestamps are not unique, so the boundary
is read with ``>=`` and deduplicated), ``deleted_from`` (where the next getDeleted starts),
``scope`` (the scope the cursor was made under: another scope needs a full read) and, during
a Bulk API 2.0 full scan, the job and the next result locator.

The signpost: every read first asks the server what time it is (getDeleted's
``latestDateCovered``, the server clock truncated to the minute). Rows stamped before it were
in the query's snapshot and are read in SystemModstamp order; a record changed after the
query started is stamped at or after the signpost. So a checkpoint only ever moves to a row
stamped before the signpost, and a complete read ends at the signpost itself: the next read
starts there, and nothing changed meanwhile is missed, whatever the query's snapshot showed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from contactsync.connectors.base import CursorExpired, TransientError
from contactsync.connectors.salesforce.errors import QueryLocatorExpired
from contactsync.connectors.salesforce.models import RawRecord, from_rest

VERSION = 1
# More boundary ids than this are not kept in a checkpoint (a data load stamps thousands of
# records with one second): that checkpoint is skipped, and a read that ends on such a second
# reads it again next time.
MAX_SEEN = 2000
MAX_RESTARTS = 5


@dataclass(frozen=True)
class BulkPosition:
    job_id: str
    locator: str  # "" before the first result set


@dataclass(frozen=True)
class CursorState:
    since: int | None
    seen: tuple[str, ...]
    deleted_from: int
    scope: str
    bulk: BulkPosition | None = None

    def dump(self) -> str:
        raw: dict[str, Any] = {
            "v": VERSION,
            "since": self.since,
            "seen": list(self.seen),
            "deleted_from": self.deleted_from,
            "scope": self.scope,
        }
        if self.bulk is not None:
            raw["bulk"] = {"job": self.bulk.job_id, "locator": self.bulk.locator}
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> CursorState:
        """A stored cursor; one we cannot read means a full read (CursorExpired)."""
        try:
            raw = json.loads(text)
            if raw.get("v") != VERSION:
                raise ValueError("another cursor version")
            bulk = raw.get("bulk")
            since = raw.get("since")
            return cls(
                since=int(since) if since is not None else None,
                seen=tuple(str(i) for i in raw.get("seen", [])),
                deleted_from=int(raw["deleted_from"]),
                scope=str(raw["scope"]),
                bulk=BulkPosition(str(bulk["job"]), str(bulk["locator"])) if bulk else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CursorExpired("unreadable_cursor", "a cursor this connector cannot read") from exc


# ---- scope -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The records one stream reads: a WHERE condition (None: all), the tags its records get,
    and a key that changes whenever the condition does."""

    condition: str | None
    key: str
    tags: frozenset[str] = frozenset()

    @classmethod
    def make(cls, name: str, condition: str | None, tags: frozenset[str] = frozenset()) -> Scope:
        digest = hashlib.sha256((condition or "").encode()).hexdigest()[:16]
        return cls(condition, f"{name}:{digest}", tags)


_CLAUSES = ("where", "order by", "limit", "offset", "group by", "having", "for", "with")


def list_view_parts(query: str) -> tuple[str | None, bool]:
    """A list view's SOQL (its describe's ``query``): the WHERE condition and whether it
    reads ``USING SCOPE mine``. Keywords inside string literals and parentheses are skipped."""
    lowered = query.lower()
    positions: dict[str, int] = {}
    depth = 0
    i = 0
    in_string = False
    while i < len(query):
        ch = query[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == "'":
                in_string = False
        elif ch == "'":
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (i == 0 or not query[i - 1].isalnum()):
            for clause in ("using scope", *_CLAUSES):
                if clause not in positions and lowered.startswith(clause, i):
                    end = i + len(clause)
                    if end >= len(query) or not query[end].isalnum():
                        positions[clause] = i
        i += 1
    mine = False
    if "using scope" in positions:
        rest = lowered[positions["using scope"] + len("using scope") :].split()
        mine = bool(rest) and rest[0] == "mine"
    start = positions.get("where")
    if start is None:
        return None, mine
    ends = [p for c, p in positions.items() if c in _CLAUSES[1:] and p > start]
    condition = query[start + len("where") : min(ends) if ends else len(query)].strip()
    return condition or None, mine


def select(fields: str, sobject: str, conditions: str = "", tail: str = "") -> str:
    """One SOQL query. The field list, object name and tail are our own constants and API
    names from describe; every value in ``conditions`` went through ``format_soql``."""
    return f"SELECT {fields} FROM {sobject}{conditions}{tail}"  # noqa: S608


def where(*conditions: str | None) -> str:
    """`` WHERE (a) AND (b)`` of the conditions given (each parenthesised: SOQL refuses AND
    and OR mixed without parentheses), or nothing."""
    kept = [c for c in conditions if c]
    return " WHERE " + " AND ".join(f"({c})" for c in kept) if kept else ""


# ---- the SystemModstamp-ordered reader ----------------------------------------------------------


@dataclass
class Position:
    """The checkpoint of an ordered read: rows stamped before ``since`` and the ``seen`` ids
    stamped exactly ``since`` are read. Only rows stamped before the signpost move it."""

    since: int | None
    seen: set[str] = field(default_factory=set)

    def advance(self, rows: list[RawRecord], signpost: int) -> None:
        for raw in rows:
            stamp = int(raw.system_modstamp.timestamp())
            if stamp >= signpost:
                continue
            if self.since is None or stamp > self.since:
                self.since, self.seen = stamp, {raw.id}
            elif stamp == self.since:
                self.seen.add(raw.id)

    def skips(self, raw: RawRecord) -> bool:
        return int(raw.system_modstamp.timestamp()) == self.since and raw.id in self.seen

    def checkpoint(self) -> tuple[int | None, tuple[str, ...]] | None:
        """(since, seen) to store, None when the boundary is too crowded to store."""
        if len(self.seen) > MAX_SEEN:
            return None
        return self.since, tuple(sorted(self.seen))


Query = Callable[[str], Any]


def ordered_pages(
    object_type: str,
    soql_from: Callable[[int | None], str],
    start: Position,
    signpost: int,
    query: Query,
    query_more: Query,
) -> Iterator[tuple[list[RawRecord], Position]]:
    """Pages of rows ``SystemModstamp >= start.since`` in (SystemModstamp, Id) order, the
    boundary ids skipped, each with the position after it. An expired query locator re-issues
    the query from the position reached (a few times at most): nothing is read twice, nothing
    skipped."""
    position = Position(start.since, set(start.seen))
    restarts = 0
    page = query(soql_from(position.since))
    while True:
        rows = [from_rest(object_type, r) for r in page.get("records", [])]
        rows = [r for r in rows if not position.skips(r)]
        position.advance(rows, signpost)
        yield rows, position
        next_url = page.get("nextRecordsUrl")
        if page.get("done", True) or not next_url:
            return
        try:
            page = query_more(next_url)
        except QueryLocatorExpired:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise TransientError(
                    "query_locator_expired", "the query cursor kept expiring"
                ) from None
            # Rows stamped at or after the signpost are not part of the position: a restart
            # reads them again (the engine recognises them), never skips one.
            page = query(soql_from(position.since))
