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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from contactsync.connectors.aircall.client import AircallApi
from contactsync.connectors.aircall.models import ContactList, RawContact
from contactsync.connectors.base import CursorExpired, TransientError

CURSOR_VERSION = 1
MAX_RESTARTS = 3  # incremental walks restarted because deletes shifted the pages


@dataclass
class ScanPosition:
    """Where a full scan stands: the creation second it reached and the ids of that second it
    already returned."""

    after: int
    seen: list[int]
    watermark: int  # the newest updated_at when the scan began (server time)
    started: float  # when the scan began (our clock, UNIX seconds)

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "seen": self.seen, "wm": self.watermark, "t": self.started}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScanPosition:
        seen = raw["seen"]
        if not isinstance(seen, list) or not all(isinstance(i, int) for i in seen):
            raise TypeError("seen")
        return cls(int(raw["after"]), seen, int(raw["wm"]), float(raw["t"]))


@dataclass
class CursorState:
    """The opaque cursor, as JSON: ``watermark`` (incremental reads return contacts updated at
    or after it), ``reconciled`` (when the last complete full scan began, our clock) and the
    position of a full scan under way."""

    watermark: int = 0
    reconciled: float | None = None
    scan: ScanPosition | None = None

    def dump(self) -> str:
        body: dict[str, Any] = {"v": CURSOR_VERSION, "wm": self.watermark, "rc": self.reconciled}
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
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CursorExpired("unreadable_cursor", "not a cursor of this connector") from exc


@dataclass
class ScanPage:
    contacts: list[RawContact]
    position: ScanPosition
    done: bool


@dataclass
class Scanner:
    """A full scan as a lazy sequence of pages (see the module docstring)."""

    api: AircallApi
    per_page: int
    cap: int

    def newest_update(self) -> int:
        """The newest ``updated_at`` now (0 for an empty company): the incremental watermark
        a scan hands over, in the server's clock."""
        page = self.api.list_contacts(order_by="updated_at", order="desc", per_page=1, page=1)
        return page.contacts[0].updated_at if page.contacts else 0

    def pages(self, start: ScanPosition) -> Iterator[ScanPage]:
        after, seen = start.after, set(start.seen)
        while True:
            page = self._window(after, None, "asc", 1)
            contacts = page.contacts
            top = contacts[-1].created_at if contacts else after
            more = page.more or page.meta.total > len(contacts)
            if more and top == after:
                # More contacts created in second ``after`` than a page holds.
                yield from self._crowded(after, seen, start)
                after, seen = after + 1, set()
                continue
            if top < after:
                raise TransientError("paging_stuck", "creation order went backwards")
            fresh = [c for c in contacts if not (c.created_at == after and c.id in seen)]
            if top != after:
                seen = set()
            seen.update(c.id for c in contacts if c.created_at == top)
            after = top
            position = ScanPosition(after, sorted(seen), start.watermark, start.started)
            yield ScanPage(fresh, position, done=not more)
            if not more:
                return

    def _window(self, lo: int, hi: int | None, order: str, page: int) -> ContactList:
        return self.api.list_contacts(
            order_by="created_at",
            order=order,
            per_page=self.per_page,
            page=page,
            **{"from": lo, "to": hi},
        )

    def _crowded(self, second: int, seen: set[int], start: ScanPosition) -> Iterator[ScanPage]:
        """Every contact created in ``second``: by offset ascending, and when the second holds
        more than the cap, descending as well. Pages carry the position before the second, so
        a resumed scan reads it again (deduplicated downstream as echoes)."""
        before = ScanPosition(second, sorted(seen), start.watermark, start.started)
        got = set(seen)
        total = 0
        for order in ("asc", "desc"):
            for number in range(1, self.cap // self.per_page + 2):
                page = self._window(second, second, order, number)
                total = max(total, page.meta.total)
                fresh = [c for c in page.contacts if c.id not in got]
                got.update(c.id for c in fresh)
                if fresh:
                    yield ScanPage(fresh, before, done=False)
                if not page.more or number * self.per_page >= self.cap:
                    break
            if total <= self.cap or len(got) >= total:
                return
        if len(got) < total:
            raise TransientError(
                "crowded_second",
                f"{total} contacts share one creation second: more than two capped queries reach",
            )


@dataclass
class IncrementalPage:
    contacts: list[RawContact]
    done: bool
    watermark: int  # the watermark to store once the last page is committed


def incremental_pages(
    api: AircallApi, watermark: int, per_page: int, cap: int
) -> Iterator[IncrementalPage]:
    """Contacts updated at or after ``watermark``, newest first, each once."""
    seen: set[int] = set()
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
        if shifted:
            # A delete moved records to pages already read: one may have been skipped.
            restarts += 1
            if restarts > MAX_RESTARTS:
                # Keep the old watermark: the next read walks this stretch again.
                yield IncrementalPage(batch, done=True, watermark=watermark)
                return
            if batch:
                yield IncrementalPage(batch, done=False, watermark=watermark)
            number, last_total = 1, None
            continue
        end_of_list = not page.more and page.meta.total <= number * per_page
        if not reached and not page.more and not end_of_list:
            raise CursorExpired("too_many_changes", f"more changes than a query lists ({cap})")
        if reached or not page.more:
            yield IncrementalPage(batch, done=True, watermark=newest)
            return
        yield IncrementalPage(batch, done=False, watermark=watermark)
        number += 1
        if (number - 1) * per_page >= cap:
            raise CursorExpired("too_many_changes", f"more changes than a query lists ({cap})")
