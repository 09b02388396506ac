"""Graph's delta query per contact folder, and the cursor that keeps one delta link per folder.

A round starts with ``.../contactFolders/{id}/contacts/delta`` (or resumes from a stored link)
and follows ``@odata.nextLink`` until a page carries ``@odata.deltaLink``: the whole link is the
checkpoint (its token expires: 410 SyncStateNotFound, handled by the error table as
CursorExpired). Pages may be empty yet carry a nextLink; an item may come twice (the same
version is dropped, a newer one kept); the ``Prefer: odata.maxpagesize`` header goes with every
request. A repeated link is a loop and stops the read.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contactsync.connectors.base import CursorExpired, TransientError
from contactsync.connectors.microsoft.client import GraphClient, path_id, user_path
from contactsync.connectors.microsoft.models import SELECT

CURSOR_VERSION = 1
MAX_PAGES = 100_000  # 20 million items at 200 a page: beyond that, something loops
RECENT_IDS = 2_000  # how far back a repeated item is recognised
MAX_REMOVALS = 100


class FolderCursor(BaseModel):
    """Where one folder's delta stands: ``link`` is a deltaLink (round complete), a nextLink
    (mid-round) or None (not started)."""

    model_config = ConfigDict(extra="forbid")

    folder: str = Field(min_length=1)
    link: str | None = None


class CursorState(BaseModel):
    """The stream's cursor: each folder's delta link, and the recent removals from the synced
    folder that a move out of it may still explain (timestamps, seconds)."""

    model_config = ConfigDict(extra="forbid")

    v: int = CURSOR_VERSION
    user: str
    default: FolderCursor
    synced: FolderCursor
    removals: list[float] = Field(default_factory=list)

    @classmethod
    def load(cls, raw: str) -> CursorState:
        try:
            state = cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise CursorExpired("cursor_unreadable", "not a Microsoft cursor") from exc
        if state.v != CURSOR_VERSION:
            raise CursorExpired("cursor_version", "a cursor of another format")
        return state

    def dump(self) -> str:
        return self.model_dump_json()

    def note_removal(self, at: float) -> None:
        self.removals.append(at)
        del self.removals[:-MAX_REMOVALS]

    def prune(self, now: float, window: float) -> None:
        self.removals = [t for t in self.removals if now - t <= window]


@dataclass
class DeltaPage:
    items: list[dict[str, Any]]
    link: str  # the nextLink to go on with, or the round's deltaLink
    final: bool


class Recent:
    """The ids (and versions) seen lately in a round: a repeated item with the same version is
    dropped, a newer version passes. Bounded, so memory stays flat on a 100,000-item round."""

    def __init__(self, size: int = RECENT_IDS) -> None:
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def fresh(self, item: dict[str, Any]) -> bool:
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return False
        version = "removed" if "@removed" in item else str(item.get("@odata.etag"))
        if self._seen.get(item_id) == version:
            return False
        self._seen[item_id] = version
        self._seen.move_to_end(item_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def start_url(client: GraphClient, user: str, folder: str) -> str:
    path = f"{user_path(user)}/contactFolders/{path_id(folder)}/contacts/delta"
    return client.url(path, {"$select": ",".join(SELECT)})


def rounds(
    client: GraphClient, user: str, cursor: FolderCursor, page_size: int
) -> Iterator[DeltaPage]:
    """One delta round of a folder, from its stored link (or the start), page by page, items
    deduplicated. Raises CursorExpired when Graph no longer knows the link."""
    url = cursor.link or start_url(client, user, cursor.folder)
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    recent = Recent()
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        if url in seen:
            raise TransientError("delta_loop", "Graph repeated a delta link")
        seen.add(url)
        body = client.get_json(url, "delta", headers=headers)
        value = body.get("value")
        items = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
        items = [item for item in items if recent.fresh(item)]
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if isinstance(delta_link, str) and delta_link:
            yield DeltaPage(items, delta_link, final=True)
            return
        if not isinstance(next_link, str) or not next_link:
            raise CursorExpired("delta_incomplete", "a delta page without a next or delta link")
        yield DeltaPage(items, next_link, final=False)
        url = next_link
    raise TransientError("delta_loop", "a delta round without end")
