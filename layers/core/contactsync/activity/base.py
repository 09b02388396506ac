"""What every activity reader hands the capture: provider-neutral metadata of emails, meetings
and calls, page by page, with the cursor to store once a page is committed.

Readers only read metadata; a body is fetched (``fetch_body``) only for an activity whose
content is shared. Nothing here (or in any reader) logs an address, a subject or a body.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from contactsync.domain.activity import ActivityKind

Direction = Literal["inbound", "outbound", "internal"]

MAIL = "activity.mail"
CALENDAR = "activity.calendar"
CALLS = "activity.calls"


@dataclass(frozen=True)
class Captured:
    """One email, meeting or call as a reader saw it."""

    remote_id: str
    kind: ActivityKind
    occurred_at: datetime
    subject: str = ""
    # Everyone in it: lower-cased email addresses, or E.164 numbers for calls.
    participants: tuple[str, ...] = ()
    # Who sent, organised or placed it (same form as participants).
    sender: str | None = None
    thread_id: str | None = None
    message_key: str | None = None
    duration_seconds: int | None = None
    # Calls say it themselves; for mail and meetings the capture works it out from the sender.
    direction: Direction | None = None
    # The meeting was cancelled or deleted: it will not take place.
    cancelled: bool = False
    # Calls: the phone system user who took or placed it (their email address).
    handled_by: str | None = None


@dataclass
class CapturePage:
    items: list[Captured]
    # What to store once the page is committed (None: nothing resumable yet).
    cursor: str | None
    last: bool = False
    # A complete read restarted from the backfill window (first sync, or an expired cursor).
    full: bool = False
    # Remote ids the source says are gone (cancelled meetings are in ``items``).
    removed: list[str] = field(default_factory=list)


class ActivityReader(Protocol):
    """One stream of one connected account."""

    stream: str

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        """Pages from ``cursor`` (None: a backfill from ``since``). A cursor the provider no
        longer accepts restarts the backfill, with ``full=True`` on its pages."""
        ...

    def fetch_body(self, remote_id: str) -> str | None:
        """The content of one item as plain text (None when it no longer exists)."""
        ...


def addresses(values: Iterable[str | None]) -> tuple[str, ...]:
    """Lower-cased addresses out of header values (``"Zoë <zoe@x.example>, y@z.example"``),
    each once, in order."""
    found: dict[str, None] = {}
    for _, address in email.utils.getaddresses([v for v in values if v]):
        address = address.strip().lower()
        if "@" in address and len(address) <= 254:
            found[address] = None
    return tuple(found)


def first_address(value: str | None) -> str | None:
    found = addresses([value])
    return found[0] if found else None
