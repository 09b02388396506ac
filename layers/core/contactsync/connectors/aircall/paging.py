"""Reading Aircall's contacts: the cursor, full scans under the 10,000-record cap, and
incremental reads by ``updated_at``.

Aircall pages by offset, computed live at each request, and no query reaches past its
10,000th record. Both readers are built around that:

- **Full scan**: creation-date windows read as a keyset. Each request asks for the contacts
  created at or after the last creation second seen (``order_by=created_at&order=asc&from=S``,
  page 1), skipping the ids already seen at that second. Every request is a fresh window that
  starts at the keyset, so no window ever nears the cap and offsets never shift under deletes
  or updates (a delete during an offset walk would hide a record, and a full scan reports the
  records it does not see as deleted). A second holding more contacts than a page (a bulk
  import) is read on its own as the window ``[S, S]`` by offset, ascending then, past the cap,
  descending. Windows are inclusive at both ends (``from`` and ``to`` are creation bounds).
- **Incremental**: there is no "updated since" filter, so ``order_by=updated_at&order=desc``
  pages are read until a record older than the watermark. ``updated_at`` is whole seconds and
  not unique: the watermark is compared with ``>=`` (the records of its second come back as
  echoes) and records are deduplicated by id. Updates and creates during the walk only push
  records to later pages (duplicates, deduplicated); a delete pulls them forward and could hide
  one, which ``meta.total`` going down reveals: the walk then starts over. Reaching the cap
  before the watermark means more changes than one query can list: CursorExpired, and the
  engine does a full scan.
- **Deletes** leave no trace, but they lower ``meta.total`` of a fixed creation window: the
  cursor keeps how many contacts created at or before a second we know of (the ``Tally``), and
  one ``per_page=1`` request before an incremental read tells whether some are gone, which
  brings the full scan (and the engine's reconciliation by absence) forward. A contact created
  and deleted between two reads was never counted: only the periodic full scan finds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from contactsync.connectors.aircall.client import AircallApi
from contactsync.connectors.aircall.models import ContactList, RawContact
from contactsync.connectors.base import CursorExpired, TransientError

CURSOR_VERSION = 1
MAX_RESTARTS = 3  # incremental walks restarted because deletes shifted the pages


MAX_EDGE = 200  # ids kept for the watermark's second (more: the delete check waits for a scan)


@dataclass
class Tally:
    """How many contacts created at or before ``second`` we know of. Aircall's ``meta.total``
    for that fixed creation window can only fall through deletes, so a lower total means a
    contact we read is gone. ``edge`` holds the ids of ``second`` itself already counted: the
    second may not have been over when we counted, and a contact created later in it is
    counted by the next read."""

    second: int
    count: int = 0
    edge: set[int] = field(default_factory=set)

    def add(self, contact: RawContact) -> None:
        """Counts a contact a full scan returned (each is returned once)."""
        if contact.created_at < self.second:
            self.count += 1
        elif contact.created_at == self.second and contact.id not in self.edge:
            self.count += 1
            self.edge.add(contact.id)

    def advanced(self, walked: dict[int, int], second: int) -> Tally:
        """The tally at ``second`` after an incremental walk that returned ``walked``
        (id -> created_at of every contact it returned). Every contact created since our
        second has been updated since, so the walk returned it, unless it was created after
        the walk passed: then its creation second is the new one or later, and it is counted
        next time."""
        added = sum(
            1
            for cid, created in walked.items()
            if created > self.second or (created == self.second and cid not in self.edge)
        )
        edge = {cid for cid, created in walked.items() if created == second}
        if second == self.second:
            edge |= self.edge
        return Tally(second, self.count + added, edge)

    def to_json(self) -> dict[str, Any] | None:
        if len(self.edge) > MAX_EDGE:
            return None
        return {"s": self.second, "n": self.count, "e": sorted(self.edge)}

    @classmethod
    def from_json(cls, raw: object) -> Tally | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise TypeError("tally")
        edge = raw["e"]
        if not isinstance(edge, list) or not all(isinstance(i, int) for i in edge):
            raise TypeError("edge")
        return cls(int(raw["s"]), int(raw["n"]), set(edge))


@dataclass
class ScanPosition:
    """Where a full scan stands: the creation second it reached and the ids of that second it
    already returned, and the tally of what it returned so far."""

    after: int
    seen: list[int]
    watermark: int  # the newest updated_at when the scan began (server time)
    started: float  # when the scan began (our clock, UNIX seconds)
    tally: Tally | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "after": self.after,
            "seen": self.seen,
            "wm": self.watermark,
            "t": self.started,
            "tally": self.tally.to_json() if self.tally is not None else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScanPosition:
        seen = raw["seen"]
        if not isinstance(seen, list) or not all(isinstance(i, int) for i in seen):
            raise TypeError("seen")
        return cls(
            int(raw["after"]),
            seen,
            int(raw["wm"]),
            float(raw["t"]),
            Tally.from_json(raw.get("tally")),
        )


@dataclass
class CursorState:
    """The opaque cursor, as JSON: ``watermark`` (incremental reads return contacts updated at
    or after it), ``reconciled`` (when the last complete full scan began, our clock), the
    ``tally`` that reveals deletes, and the position of a full scan under way."""

    watermark: int = 0
    reconciled: float | None = None
    scan: ScanPosition | None = None
    tally: Tally | None = None

    def dump(self) -> str:
        body: dict[str, Any] = {
            "v": CURSOR_VERSION,
            "wm": self.watermark,
            "rc": self.reconciled,
            "tally": self.tally.to_json() if self.tally is not None else None,
        }
        if self.scan is not None:
            body["scan"] = self.scan.to_json()
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> CursorState:
        """Raises CursorExpired for a cursor this version cannot read (the engine rescans)."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("v") != CURSOR_VERSION:
                raise ValueError("version")
            scan = body.get("scan")
            reconciled = body.get("rc")
            return cls(
                watermark=int(body["wm"]),
                reconciled=None if reconciled is None else float(reconciled),
                scan=ScanPosition.from_json(scan) if scan is not None else None,
                tally=Tally.from_json(body.get("tally")),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CursorExpired("unreadable_cursor", "not a cursor of this connector") from exc


@dataclass
class ScanPage:
    contacts: list[RawContact]
    position: ScanPosition
    done: bool


@dataclass
class KeysetStep:
    """A page of a keyset walk over creation seconds: the contacts it returns for the first
    time, and where the walk stands after it (``after``, with the ids of that second already
    returned). A page of a crowded second (``crowded``) carries the position before that second
    instead, so a walk resumed from it reads the whole second again."""

    contacts: list[RawContact]
    after: int
    seen: list[int]
    done: bool
    crowded: bool = False


def keyset_walk(
    api: AircallApi,
    per_page: int,
    cap: int,
    after: int,
    seen: Iterable[int],
    end: int | None = None,
) -> Iterator[KeysetStep]:
    """Every contact created from second ``after`` (less ``seen``, the ids of that second
    already returned) to ``end`` (inclusive; None: no end), oldest first, each once. Used by
    the connector's full scan and by the bulk sync's shards (runtime/shards_aircall.py)."""
    seen = set(seen)  # ids of second ``after`` already returned; grows as the walk goes

    def window(lo: int, hi: int | None, order: str, number: int) -> ContactList:
        return api.list_contacts(
            order_by="created_at", order=order, per_page=per_page, page=number,
            **{"from": lo, "to": hi},
        )  # fmt: skip

    while end is None or after <= end:
        page = window(after, end, "asc", 1)
        contacts = page.contacts
        top = contacts[-1].created_at if contacts else after
        more = page.more or page.meta.total > len(contacts)
        if more and top == after:
            # More contacts created in second ``after`` than a page holds: read it on its own,
            # by offset, ascending and, past the cap, descending.
            before = sorted(seen)
            got = set(seen)
            total = 0
            for order in ("asc", "desc"):
                for number in range(1, cap // per_page + 2):
                    crowded = window(after, after, order, number)
                    total = max(total, crowded.meta.total)
                    fresh = [c for c in crowded.contacts if c.id not in got]
                    got.update(c.id for c in fresh)
                    if fresh:
                        yield KeysetStep(fresh, after, before, done=False, crowded=True)
                    if not crowded.more or number * per_page >= cap:
                        break
                if total <= cap or len(got) >= total:
                    break
            else:
                raise TransientError(
                    "crowded_second",
                    f"{total} contacts share one creation second: more than two capped queries "
                    "reach",
                )
            after, seen = after + 1, set()
            continue
        if top < after:
            raise TransientError("paging_stuck", "creation order went backwards")
        fresh = [c for c in contacts if not (c.created_at == after and c.id in seen)]
        if top != after:
            seen = set()
        seen.update(c.id for c in contacts if c.created_at == top)
        after = top
        yield KeysetStep(fresh, after, sorted(seen), done=not more)
        if not more:
            return
    yield KeysetStep([], after, [], done=True)  # past ``end`` after a crowded second


@dataclass
class Scanner:
    """A full scan as a lazy sequence of pages (see the module docstring)."""

    api: AircallApi
    per_page: int
    cap: int

    def created_up_to(self, second: int) -> int:
        """How many contacts were created at or before ``second`` (one request)."""
        return self.api.list_contacts(to=second, per_page=1, page=1).meta.total

    def newest_update(self) -> int:
        """The newest ``updated_at`` now (0 for an empty company): the incremental watermark
        a scan hands over, in the server's clock."""
        page = self.api.list_contacts(order_by="updated_at", order="desc", per_page=1, page=1)
        return page.contacts[0].updated_at if page.contacts else 0

    def pages(self, start: ScanPosition) -> Iterator[ScanPage]:
        """Pages from ``start``; each carries the position after it (crowded seconds: before
        it) with the tally of the contacts returned up to there."""
        tally = _copy(start.tally) if start.tally else Tally(start.watermark)
        before: ScanPosition | None = None
        for step in keyset_walk(self.api, self.per_page, self.cap, start.after, start.seen):
            if step.crowded and (before is None or before.after != step.after):
                # The tally before the crowded second, with the position before it.
                before = ScanPosition(
                    step.after, step.seen, start.watermark, start.started, _copy(tally)
                )
            for contact in step.contacts:
                tally.add(contact)
            if step.crowded:
                assert before is not None
                yield ScanPage(step.contacts, before, done=False)
                continue
            position = ScanPosition(
                step.after, step.seen, start.watermark, start.started, _copy(tally)
            )
            yield ScanPage(step.contacts, position, done=step.done)


def _copy(tally: Tally) -> Tally:
    return Tally(tally.second, tally.count, set(tally.edge))


@dataclass
class IncrementalPage:
    contacts: list[RawContact]
    done: bool
    watermark: int  # the watermark to store once the last page is committed
    tally: Tally | None = None  # on the last page: the tally to store with it


def incremental_pages(
    api: AircallApi, watermark: int, tally: Tally | None, per_page: int, cap: int
) -> Iterator[IncrementalPage]:
    """Contacts updated at or after ``watermark``, newest first, each once."""
    seen: set[int] = set()
    walked: dict[int, int] = {}  # id -> created_at, of those created at or after the watermark
    newest = watermark
    restarts = 0
    number = 1
    last_total: int | None = None
    while True:
        page = api.list_contacts(
            order_by="updated_at", order="desc", per_page=per_page, page=number
        )
        shifted = last_total is not None and page.meta.total < last_total
        last_total = page.meta.total
        batch: list[RawContact] = []
        reached = False
        for contact in page.contacts:
            if contact.updated_at < watermark:
                reached = True
                break
            newest = max(newest, contact.updated_at)
            if contact.id not in seen:
                seen.add(contact.id)
                batch.append(contact)
                if contact.created_at >= watermark:
                    walked[contact.id] = contact.created_at
        if shifted:
            # A delete moved records to pages already read: one may have been skipped.
            restarts += 1
            if restarts > MAX_RESTARTS:
                # Keep the old watermark: the next read walks this stretch again.
                yield IncrementalPage(batch, done=True, watermark=watermark, tally=tally)
                return
            if batch:
                yield IncrementalPage(batch, done=False, watermark=watermark)
            number, last_total = 1, None
            continue
        end_of_list = not page.more and page.meta.total <= number * per_page
        if not reached and not page.more and not end_of_list:
            raise CursorExpired("too_many_changes", f"more changes than a query lists ({cap})")
        if reached or not page.more:
            after = tally.advanced(walked, newest) if tally is not None else None
            yield IncrementalPage(batch, done=True, watermark=newest, tally=after)
            return
        yield IncrementalPage(batch, done=False, watermark=watermark)
        number += 1
        if (number - 1) * per_page >= cap:
            raise CursorExpired("too_many_changes", f"more changes than a query lists ({cap})")
