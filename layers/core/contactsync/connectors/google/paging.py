"""Reading ``people.connections.list``: the cursor and one small, loop-safe paginator.

- **Full sync** (no cursor, an expired one, one we cannot read): ``requestSyncToken=true``; only
  the last page carries ``nextSyncToken``, so every page before it has cursor None (nothing
  resumable to store) and all are ``full_scan`` (the engine finds deletes by absence).
- **Incremental**: ``syncToken`` returns what changed since, deleted persons included
  (``metadata.deleted``); again the new token comes on the last page only.
- With a page token every other parameter must equal the first call's (sync token,
  ``requestSyncToken``, ``personFields``, ``pageSize``), so the walker resends them all.
- A page token seen twice would loop forever: TransientError instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from contactsync.connectors.base import CursorExpired, TransientError
from contactsync.connectors.google.models import ConnectionsPage

CURSOR_VERSION = 1


@dataclass(frozen=True)
class SyncCursor:
    """The opaque cursor, as JSON: Google's sync token."""

    sync_token: str

    def dump(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "sync": self.sync_token}, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> SyncCursor:
        """Raises CursorExpired for a cursor this version cannot read (the engine rescans)."""
        try:
            body = json.loads(raw)
        except ValueError:
            raise CursorExpired("unreadable_cursor", "not JSON") from None
        if not isinstance(body, dict) or body.get("v") != CURSOR_VERSION:
            raise CursorExpired("unreadable_cursor", "unknown cursor version")
        token = body.get("sync")
        if not isinstance(token, str) or not token:
            raise CursorExpired("unreadable_cursor", "no sync token")
        return cls(token)


def walk(
    fetch: Callable[[Mapping[str, str]], ConnectionsPage], params: Mapping[str, str]
) -> Iterator[ConnectionsPage]:
    """Every page of one listing, lazily; the same ``params`` on every request."""
    seen: set[str] = set()
    token: str | None = None
    while True:
        page = fetch({**params, "pageToken": token} if token else params)
        yield page
        token = page.next_page_token
        if not token:
            return
        if token in seen:
            raise TransientError("repeated_page_token", "people.connections.list")
        seen.add(token)
