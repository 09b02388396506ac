"""Aircall's shards for the bulk sync: creation-date windows.

Planning asks three cheap questions first (``per_page=1`` requests): the newest ``updated_at``
(the start-of-sync watermark: an incremental read from it sees everything changed or created
while the shards run), and the oldest and newest creation seconds. It then bisects the creation
range, counting each half with one more request (``meta.total`` of a window), until every
window holds at most ``total / max_shards`` contacts, and merges the smallest neighbours while
there are more windows than ``max_shards``. About two requests per shard.

Reading a window is the connector's own keyset walk (``paging.keyset_walk``): every request asks for
the contacts created at or after the last second seen (``from=S&to=end``, page 1) and skips the
ids already seen at S, so no query ever nears the 10,000-record cap and deletes during the walk
shift nothing. A second holding more contacts than a page (a bulk import) is read on its own by
offset, ascending and, past the cap, descending. A page's cursor is the window's keyset
position, so an interrupted shard resumes where it stopped.

The shards share the company's rate limit (every API key of the company draws on it):
``shard_account`` gives each of the ``concurrency`` shard readers its share of the budget the
connector would use alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

from contactsync.connectors.aircall import STREAM, AircallConfig, AircallConnector
from contactsync.connectors.aircall.models import RawContact, to_record
from contactsync.connectors.aircall.paging import CursorState, keyset_walk
from contactsync.connectors.base import ChangePage, InvalidRequest
from contactsync.connectors.sharding import Shard
from contactsync.domain.accounts import ConnectedAccount


def shard_account(account: ConnectedAccount, concurrency: int) -> ConnectedAccount:
    """The account as one of ``concurrency`` concurrent shard readers sees it: with its share
    of the request budget (the company's limit less the connector's headroom)."""
    budget = AircallConfig.from_mapping(account.config).budget()
    share = max(1.0, budget / max(1, concurrency))
    config = {**account.config, "requests_per_minute": f"{share:g}"}
    return account.model_copy(update={"config": config})


@dataclass(frozen=True)
class _Window:
    start: int  # creation seconds, inclusive at both ends (Aircall's from/to)
    end: int
    count: int


@dataclass(frozen=True)
class _Position:
    """Where a window's keyset walk stands: the creation second reached and the ids of that
    second already returned."""

    after: int
    seen: tuple[int, ...] = ()

    def dump(self) -> str:
        return json.dumps({"after": self.after, "seen": list(self.seen)}, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> _Position:
        try:
            body = json.loads(raw)
            seen = body["seen"]
            if not isinstance(seen, list) or not all(isinstance(i, int) for i in seen):
                raise TypeError("seen")
            return cls(int(body["after"]), tuple(seen))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidRequest("bad_resume", "not a position of an Aircall window") from exc


class AircallShards:
    """``ShardedReader`` for an Aircall connector (connectors/sharding.py)."""

    def __init__(self, connector: AircallConnector) -> None:
        self.connector = connector
        self.api = connector.api
        self.per_page = connector.config.per_page
        self.cap = connector.config.query_cap
        self.region = connector.config.default_region

    # ---- planning ---------------------------------------------------------------------------

    def plan_shards(self, stream: str, max_shards: int) -> tuple[list[Shard], str | None]:
        self._check(stream, max_shards)
        started = self.connector.clock.now().timestamp()
        newest = self.api.list_contacts(order_by="updated_at", order="desc", per_page=1, page=1)
        watermark = newest.contacts[0].updated_at if newest.contacts else 0
        cursor = CursorState(watermark=watermark, reconciled=started).dump()
        first = self._edge("asc")
        last = self._edge("desc")
        if first is None or last is None:
            return [Shard(stream=stream, index=0, spec={"from": 0, "to": 0}, estimate=0)], cursor
        total = self._count(first.created_at, last.created_at)
        size = max(1, math.ceil(total / max_shards))
        windows = _merge(self._split(_Window(first.created_at, last.created_at, total), size))
        windows = _fit(windows, max_shards)
        shards = [
            Shard(stream=stream, index=i, spec={"from": w.start, "to": w.end}, estimate=w.count)
            for i, w in enumerate(windows)
        ]
        return shards, cursor

    def _edge(self, order: str) -> RawContact | None:
        page = self.api.list_contacts(order_by="created_at", order=order, per_page=1, page=1)
        return page.contacts[0] if page.contacts else None

    def _count(self, start: int, end: int) -> int:
        return self.api.list_contacts(per_page=1, page=1, **{"from": start, "to": end}).meta.total

    def _split(self, window: _Window, size: int) -> list[_Window]:
        """Bisects by creation time until each window holds at most ``size`` contacts (a
        single second is never split: its reader handles it)."""
        if window.count <= size or window.start == window.end:
            return [window]
        middle = (window.start + window.end) // 2
        left = self._count(window.start, middle)
        right = max(0, window.count - left)
        return self._split(_Window(window.start, middle, left), size) + self._split(
            _Window(middle + 1, window.end, right), size
        )

    # ---- reading ----------------------------------------------------------------------------

    def read_shard(self, shard: Shard) -> Iterator[ChangePage]:
        self._check(shard.stream, 1)
        end = _int(shard.spec.get("to"))
        position = (
            _Position.load(shard.resume)
            if shard.resume
            else _Position(_int(shard.spec.get("from")))
        )
        walk = keyset_walk(self.api, self.per_page, self.cap, position.after, position.seen, end)
        for step in walk:
            cursor = _Position(step.after, tuple(step.seen)).dump()
            yield self._page(step.contacts, cursor, last=step.done)

    def _page(self, contacts: list[RawContact], cursor: str, *, last: bool) -> ChangePage:
        return ChangePage([to_record(c, self.region) for c in contacts], cursor, last=last)

    @staticmethod
    def _check(stream: str, max_shards: int) -> None:
        if stream != STREAM:
            raise InvalidRequest("unknown_stream", f"Aircall has one stream, {STREAM!r}")
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("bad_shard", "an Aircall shard's window bounds are integers")
    return value


def _merge(windows: list[_Window]) -> list[_Window]:
    """Drops empty windows (their range joins the next one), keeping the bounds contiguous."""
    result: list[_Window] = []
    carry: int | None = None
    for window in windows:
        if window.count == 0 and window is not windows[-1]:
            carry = window.start if carry is None else carry
            continue
        start = carry if carry is not None else window.start
        result.append(_Window(start, window.end, window.count))
        carry = None
    return result


def _fit(windows: list[_Window], max_shards: int) -> list[_Window]:
    """Merges the pair of neighbours holding the fewest contacts until at most ``max_shards``
    windows remain (bisection rarely lands on the exact number)."""
    windows = list(windows)
    while len(windows) > max_shards:
        i = min(range(len(windows) - 1), key=lambda k: windows[k].count + windows[k + 1].count)
        a, b = windows[i], windows[i + 1]
        windows[i : i + 2] = [_Window(a.start, b.end, a.count + b.count)]
    return windows
