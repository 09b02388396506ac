"""State and rules of the Gmail and Calendar parts of the Google sandbox (activity capture).

Gmail (users.messages, users.history, users.getProfile):
- every change gets the mailbox's next history id; ``users.history.list?startHistoryId=N``
  returns the records after N; records older than the retention (a week by default: Google
  keeps them "at least a week") are dropped, and a start id older than what is kept answers 404
  (the client must do a full sync);
- ``messages.list`` pages newest first (internalDate descending) with keyset page tokens; ``q``
  understands ``after:``/``before:`` (epoch seconds or dates), ``newer_than:``/``older_than:``,
  ``from:``, ``to:``, ``in:``, ``label:`` and plain words; SPAM and TRASH are left out unless
  ``includeSpamTrash``;
- message resources in the four formats (minimal, metadata, full, raw).

Calendar (events.list/insert/delete on the primary calendar):
- every change moves the event to the end of the calendar's modification order with a new
  sequence; ``nextSyncToken`` (on the last page of a list) resumes after it; deleted events come
  back as ``status: cancelled`` in incremental results; a token older than its lifetime (or
  invalidated from the admin surface) answers 410 ``fullSyncRequired``.

Quotas (configurable, ``POST /_sandbox/workspace {"settings": {...}}``): Gmail's per-user
quota units a minute (messages.list and messages.get 5 units, history.list 2, getProfile 1,
messages.insert 25) and Calendar requests a minute per user.
"""

from __future__ import annotations

import base64
import bisect
import email.utils
import hashlib
import random
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.google import workspace_errors as err
from contactsync_sandbox.google.models import TokenCodec, UserAccount
from contactsync_sandbox.google.scopes import (
    CALENDAR,
    CALENDAR_EVENTS,
    CALENDAR_EVENTS_READONLY,
    CALENDAR_READONLY,
    GMAIL_FULL,
    GMAIL_INSERT,
    GMAIL_METADATA,
    GMAIL_MODIFY,
    GMAIL_READONLY,
)

GMAIL_READ_SCOPES = frozenset({GMAIL_READONLY, GMAIL_METADATA, GMAIL_MODIFY, GMAIL_FULL})
GMAIL_BODY_SCOPES = frozenset({GMAIL_READONLY, GMAIL_MODIFY, GMAIL_FULL})
GMAIL_INSERT_SCOPES = frozenset({GMAIL_INSERT, GMAIL_MODIFY, GMAIL_FULL})
CALENDAR_READ_SCOPES = frozenset(
    {CALENDAR_READONLY, CALENDAR, CALENDAR_EVENTS, CALENDAR_EVENTS_READONLY}
)
CALENDAR_WRITE_SCOPES = frozenset({CALENDAR, CALENDAR_EVENTS})
GMAIL_COSTS = {
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.history.list": 2,
    "gmail.users.getProfile": 1,
    "gmail.users.messages.insert": 25,
    "gmail.users.messages.delete": 10,
}
SYSTEM_LABELS = ("INBOX", "SENT", "UNREAD", "IMPORTANT", "STARRED", "SPAM", "TRASH", "DRAFT")
HIDDEN_LABELS = frozenset({"SPAM", "TRASH"})
MAX_LIST_CURSORS = 200


@dataclass
class WorkspaceSettings:
    """Behaviour that is a policy of the real services rather than data."""

    history_retention_seconds: int = 7 * 86_400
    calendar_sync_token_ttl_seconds: int = 30 * 86_400
    gmail_units_per_minute: int | None = 15_000
    calendar_requests_per_minute: int | None = 600
    enabled: bool = True  # quotas on or off

    def update(self, raw: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in raw.items():
            if key not in known:
                raise ValueError(f"unknown workspace setting {key!r}")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise ValueError("enabled must be true or false")
            elif value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{key} must be a non-negative integer or null")
            elif value is None and not key.endswith("per_minute"):
                raise ValueError(f"{key} cannot be null")
        for key, value in raw.items():
            setattr(self, key, value)


class MinuteQuota:
    """Per-user usage in fixed minutes of the virtual clock."""

    def __init__(self) -> None:
        self.usage: dict[str, tuple[int, int]] = {}

    def charge(self, user: str, units: int, limit: int | None, now: float) -> int | None:
        """Charges ``units``; returns the seconds to wait when the minute is full."""
        minute = int(now // 60)
        seen, used = self.usage.get(user, (minute, 0))
        used = used if seen == minute else 0
        if limit is not None and used + units > limit:
            return max(1, (minute + 1) * 60 - int(now))
        self.usage[user] = (minute, used + units)
        return None


# ---- Gmail ---------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class Message:
    id: str
    thread_id: str
    labels: list[str]
    internal_ms: int
    history_id: int
    headers: list[tuple[str, str]]
    text: str
    html: str | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def size(self) -> int:
        return len(self.text.encode()) + sum(len(k) + len(v) + 4 for k, v in self.headers)

    def snippet(self) -> str:
        return " ".join(self.text.split())[:200]

    def source(self) -> bytes:
        message = EmailMessage()
        for name, value in self.headers:
            message[name] = value
        message.set_content(self.text)
        if self.html is not None:
            message.add_alternative(self.html, subtype="html")
        return message.as_bytes(policy=policy.SMTP)

    def render(self, fmt: str, wanted_headers: list[str], with_snippet: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "threadId": self.thread_id}
        body["labelIds"] = list(self.labels)
        if with_snippet:
            body["snippet"] = self.snippet()
        body["sizeEstimate"] = self.size()
        body["historyId"] = str(self.history_id)
        body["internalDate"] = str(self.internal_ms)
        if fmt == "raw":
            body["raw"] = _b64url(self.source())
            return body
        if fmt == "minimal":
            return body
        headers = [{"name": k, "value": v} for k, v in self.headers]
        if fmt == "metadata":
            if wanted_headers:
                lowered = {h.lower() for h in wanted_headers}
                headers = [h for h in headers if h["name"].lower() in lowered]
            body["payload"] = {"headers": headers}
            return body
        parts = [
            {
                "partId": "0",
                "mimeType": "text/plain",
                "filename": "",
                "headers": [{"name": "Content-Type", "value": 'text/plain; charset="UTF-8"'}],
                "body": {"size": len(self.text.encode()), "data": _b64url(self.text.encode())},
            }
        ]
        if self.html is not None:
            parts.append(
                {
                    "partId": "1",
                    "mimeType": "text/html",
                    "filename": "",
                    "headers": [{"name": "Content-Type", "value": 'text/html; charset="UTF-8"'}],
                    "body": {"size": len(self.html.encode()), "data": _b64url(self.html.encode())},
                }
            )
        body["payload"] = {
            "partId": "",
            "mimeType": "multipart/alternative",
            "filename": "",
            "headers": headers,
            "body": {"size": 0},
            "parts": parts,
        }
        return body


@dataclass
class HistoryRecord:
    id: int
    at: float
    kind: str  # messageAdded | messageDeleted | labelAdded | labelRemoved
    message_id: str
    thread_id: str
    labels: list[str]


_DATE = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$")
_SPAN = re.compile(r"^(\d+)([dmy])$")


def _moment(value: str, where: str) -> float:
    if value.isdigit():
        return float(value)
    match = _DATE.match(value)
    if match is None:
        raise err.invalid(f"Invalid {where} value: {value}", "q")
    year, month, day = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, tzinfo=UTC).timestamp()
    except ValueError:
        raise err.invalid(f"Invalid {where} value: {value}", "q") from None


@dataclass
class Query:
    after: float | None = None
    before: float | None = None
    senders: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    anywhere: bool = False

    @classmethod
    def parse(cls, q: str, now: float) -> Query:
        query = cls()
        for token in q.split():
            name, _, value = token.partition(":")
            name = name.lower()
            if not value:
                query.words.append(token.lower())
            elif name == "after":
                query.after = max(query.after or 0.0, _moment(value, "after"))
            elif name == "before":
                moment = _moment(value, "before")
                query.before = moment if query.before is None else min(query.before, moment)
            elif name in ("newer_than", "older_than"):
                span = _SPAN.match(value.lower())
                if span is None:
                    raise err.invalid(f"Invalid {name} value: {value}", "q")
                days = int(span.group(1)) * {"d": 1, "m": 30, "y": 365}[span.group(2)]
                edge = now - days * 86_400
                if name == "newer_than":
                    query.after = max(query.after or 0.0, edge)
                else:
                    query.before = edge if query.before is None else min(query.before, edge)
            elif name == "from":
                query.senders.append(value.lower())
            elif name == "to":
                query.recipients.append(value.lower())
            elif name == "in" and value.lower() == "anywhere":
                query.anywhere = True
            elif name in ("in", "label"):
                query.labels.append(value.upper())
            else:
                query.words.append(token.lower())
        return query

    def matches(self, message: Message) -> bool:
        seconds = message.internal_ms / 1000
        if self.after is not None and seconds < self.after:
            return False
        if self.before is not None and seconds >= self.before:
            return False
        if any(label not in message.labels for label in self.labels):
            return False
        sender = (message.header("From") or "").lower()
        if any(s not in sender for s in self.senders):
            return False
        to = " ".join(message.header(h) or "" for h in ("To", "Cc", "Bcc")).lower()
        if any(r not in to for r in self.recipients):
            return False
        text = f"{message.header('Subject') or ''} {message.text}".lower()
        return all(w in text for w in self.words)


class Mailbox:
    """One user's Gmail: messages, threads and the history log."""

    def __init__(self, user: UserAccount, clock: VirtualClock, settings: WorkspaceSettings) -> None:
        self.user = user
        self.clock = clock
        self.settings = settings
        self.messages: dict[str, Message] = {}
        self.order: list[tuple[int, str]] = []  # (internal_ms, id), ascending
        self.history: list[HistoryRecord] = []
        seed = int(hashlib.sha256(user.email.encode()).hexdigest()[:6], 16)
        self.history_id = 100_000 + seed % 800_000
        self.floor = self.history_id  # start ids below this are too old
        self.by_message_id: dict[str, str] = {}
        self._minted = 0

    # ---- history -----------------------------------------------------------------------------

    def _record(self, kind: str, message: Message, labels: list[str]) -> int:
        self.history_id += 1
        record = HistoryRecord(
            self.history_id, self.clock.timestamp(), kind, message.id, message.thread_id, labels
        )
        self.history.append(record)
        return self.history_id

    def purge(self) -> None:
        oldest = self.clock.timestamp() - self.settings.history_retention_seconds
        cut = 0
        while cut < len(self.history) and self.history[cut].at < oldest:
            cut += 1
        if cut:
            self.floor = max(self.floor, self.history[cut - 1].id)
            del self.history[:cut]

    def changes(self, start: int, kinds: set[str] | None, label: str | None) -> list[HistoryRecord]:
        self.purge()
        if start < self.floor:
            raise err.not_found()
        i = bisect.bisect_right([r.id for r in self.history], start)
        return [
            r
            for r in self.history[i:]
            if (kinds is None or r.kind in kinds) and (label is None or label in r.labels)
        ]

    # ---- messages ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._minted += 1
        raw = hashlib.sha256(f"{self.user.email}:{self._minted}:{self.history_id}".encode())
        return format(int(raw.hexdigest()[:15], 16), "x").rjust(16, "1")

    def add(
        self,
        headers: list[tuple[str, str]],
        text: str,
        labels: list[str],
        internal_ms: int,
        thread_id: str | None = None,
        html: str | None = None,
    ) -> Message:
        message_id = self._new_id()
        parents = [
            v.strip() for name in ("In-Reply-To", "References")
            for v in (dict((k.lower(), x) for k, x in headers).get(name.lower(), "")).split()
        ]  # fmt: skip
        if thread_id is None or thread_id not in {m.thread_id for m in self.messages.values()}:
            thread_id = next(
                (
                    self.messages[self.by_message_id[p]].thread_id
                    for p in parents
                    if p in self.by_message_id
                ),
                message_id,
            )
        message = Message(
            message_id, thread_id, sorted(set(labels)), internal_ms, 0, headers, text, html
        )
        message.history_id = self._record("messageAdded", message, message.labels)
        self.messages[message_id] = message
        bisect.insort(self.order, (internal_ms, message_id))
        rfc_id = message.header("Message-ID")
        if rfc_id:
            self.by_message_id[rfc_id.strip()] = message_id
        return message

    def delete(self, message_id: str) -> None:
        message = self.messages.pop(message_id, None)
        if message is None:
            raise err.not_found()
        self.order.remove((message.internal_ms, message_id))
        self._record("messageDeleted", message, message.labels)

    def get(self, message_id: str) -> Message:
        message = self.messages.get(message_id)
        if message is None:
            raise err.not_found()
        return message

    def listing(
        self,
        query: Query,
        label_ids: list[str],
        include_spam_trash: bool,
        before: tuple[int, str] | None,
        size: int,
    ) -> tuple[list[Message], bool]:
        """Newest first, strictly older than ``before``; returns the page and whether more
        follow."""
        hi = len(self.order) if before is None else bisect.bisect_left(self.order, before)
        lo = 0
        if query.after is not None:
            lo = bisect.bisect_left(self.order, (int(query.after * 1000), ""))
        found: list[Message] = []
        for i in range(hi - 1, lo - 1, -1):
            message = self.messages[self.order[i][1]]
            if (
                not include_spam_trash
                and not query.anywhere
                and HIDDEN_LABELS & set(message.labels)
            ):
                continue
            if any(label not in message.labels for label in label_ids):
                continue
            if not query.matches(message):
                continue
            if len(found) == size:
                return found, True
            found.append(message)
        return found, False

    # ---- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "history_id": self.history_id,
            "floor": self.floor,
            "minted": self._minted,
            "messages": [asdict(self.messages[i]) for _, i in self.order],
            "history": [asdict(r) for r in self.history],
        }

    def load(self, raw: dict[str, Any]) -> None:
        self.history_id = int(raw["history_id"])
        self.floor = int(raw["floor"])
        self._minted = int(raw.get("minted", 0))
        self.messages = {}
        self.by_message_id = {}
        for item in raw.get("messages", []):
            message = Message(**{**item, "headers": [tuple(h) for h in item["headers"]]})
            self.messages[message.id] = message
            rfc_id = message.header("Message-ID")
            if rfc_id:
                self.by_message_id[rfc_id.strip()] = message.id
        self.order = sorted((m.internal_ms, m.id) for m in self.messages.values())
        self.history = [HistoryRecord(**r) for r in raw.get("history", [])]


def parse_raw(raw: str) -> tuple[list[tuple[str, str]], str, str | None]:
    """An RFC 2822 message as base64url (messages.insert's ``raw``): headers, text, html."""
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (ValueError, TypeError):
        raise err.invalid("Invalid value for ByteString: raw", "raw") from None
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    headers = [(k, str(v)) for k, v in parsed.items()]
    if not headers:
        raise err.invalid("Invalid RFC 2822 message: no headers", "raw")
    text, html = "", None
    parts = parsed.walk() if parsed.is_multipart() else [parsed]
    for part in parts:
        kind = part.get_content_type()
        if kind == "text/plain" and not text:
            text = str(part.get_content())
        elif kind == "text/html" and html is None:
            html = str(part.get_content())
    return headers, text, html


def date_header_ms(headers: list[tuple[str, str]]) -> int | None:
    value = next((v for k, v in headers if k.lower() == "date"), None)
    if value is None:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# ---- Calendar --------------------------------------------------------------------------------


@dataclass
class Event:
    id: str
    ical_uid: str
    status: str
    summary: str
    description: str
    start: str  # RFC 3339
    end: str
    organizer: str
    attendees: list[dict[str, Any]]
    created: str
    updated: str
    seq: int = 0
    sequence: int = 0

    def render(self, owner: str) -> dict[str, Any]:
        etag = hashlib.sha256(f"{self.id}:{self.seq}".encode()).hexdigest()[:16]
        if self.status == "cancelled":
            return {
                "kind": "calendar#event",
                "etag": f'"{etag}"',
                "id": self.id,
                "status": "cancelled",
            }
        attendees = []
        for a in self.attendees:
            item = {"email": a["email"], "responseStatus": a.get("responseStatus", "needsAction")}
            if a["email"].lower() == self.organizer.lower():
                item["organizer"] = True
            if a["email"].lower() == owner.lower():
                item["self"] = True
            attendees.append(item)
        organizer: dict[str, Any] = {"email": self.organizer}
        if self.organizer.lower() == owner.lower():
            organizer["self"] = True
        body: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": f'"{etag}"',
            "id": self.id,
            "status": self.status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={self.id}",
            "created": self.created,
            "updated": self.updated,
            "summary": self.summary,
            "creator": organizer,
            "organizer": organizer,
            "start": {"dateTime": self.start, "timeZone": "UTC"},
            "end": {"dateTime": self.end, "timeZone": "UTC"},
            "iCalUID": self.ical_uid,
            "sequence": self.sequence,
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        if self.description:
            body["description"] = self.description
        if attendees:
            body["attendees"] = attendees
        return body


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise err.bad_request(f"Bad Request: {where}", "badRequest") from None
    if moment.tzinfo is None:
        raise err.bad_request(f"Bad Request: {where} needs a time zone offset", "badRequest")
    return moment.astimezone(UTC)


class Calendar:
    """One user's primary calendar, in modification order (tombstones included)."""

    def __init__(self, user: UserAccount, clock: VirtualClock) -> None:
        self.user = user
        self.clock = clock
        self.events: OrderedDict[str, Event] = OrderedDict()
        self.seq = 0
        self.invalid_before = 0.0  # sync tokens issued before this are refused
        self._minted = 0

    def _touch(self, event: Event) -> None:
        self.seq += 1
        event.seq = self.seq
        event.updated = rfc3339(self.clock.now())
        self.events.pop(event.id, None)
        self.events[event.id] = event

    def insert(self, body: dict[str, Any]) -> Event:
        start = body.get("start") or {}
        end = body.get("end") or {}
        if not isinstance(start, dict) or not isinstance(start.get("dateTime"), str):
            raise err.bad_request("Missing time: start.dateTime", "required")
        if not isinstance(end, dict) or not isinstance(end.get("dateTime"), str):
            raise err.bad_request("Missing time: end.dateTime", "required")
        begins = parse_time(start["dateTime"], "start.dateTime")
        ends = parse_time(end["dateTime"], "end.dateTime")
        if ends < begins:
            raise err.bad_request("The specified time range is empty.", "timeRangeEmpty")
        attendees = body.get("attendees") or []
        if not isinstance(attendees, list) or not all(
            isinstance(a, dict) and isinstance(a.get("email"), str) for a in attendees
        ):
            raise err.bad_request("Invalid attendee email.", "invalid")
        organizer = (
            body.get("organizer", {}).get("email")
            if isinstance(body.get("organizer"), dict)
            else None
        )
        self._minted += 1
        event_id = hashlib.sha256(
            f"{self.user.email}:{self._minted}:{self.seq}".encode()
        ).hexdigest()[:26]
        now = rfc3339(self.clock.now())
        event = Event(
            id=event_id,
            ical_uid=str(body.get("iCalUID") or f"{event_id}@google.com"),
            status=str(body.get("status") or "confirmed"),
            summary=str(body.get("summary") or ""),
            description=str(body.get("description") or ""),
            start=rfc3339(begins),
            end=rfc3339(ends),
            organizer=str(organizer or self.user.email),
            attendees=[
                {"email": a["email"], "responseStatus": a.get("responseStatus", "needsAction")}
                for a in attendees
            ],
            created=now,
            updated=now,
        )
        self._touch(event)
        return event

    def cancel(self, event_id: str) -> None:
        event = self.events.get(event_id)
        if event is None:
            raise err.not_found()
        if event.status == "cancelled":
            raise err.fail(410, "Resource has been deleted", "deleted")
        event.status = "cancelled"
        event.sequence += 1
        self._touch(event)

    def live(self) -> list[Event]:
        return [e for e in self.events.values() if e.status != "cancelled"]

    def changed_since(self, seq: int) -> list[Event]:
        changed = []
        for event in reversed(self.events.values()):
            if event.seq <= seq:
                break
            changed.append(event)
        changed.reverse()
        return changed

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "minted": self._minted,
            "invalid_before": self.invalid_before,
            "events": [asdict(e) for e in self.events.values()],
        }

    def load(self, raw: dict[str, Any]) -> None:
        self.seq = int(raw["seq"])
        self._minted = int(raw.get("minted", 0))
        self.invalid_before = float(raw.get("invalid_before", 0.0))
        self.events = OrderedDict((e["id"], Event(**e)) for e in raw.get("events", []))


# ---- the whole workspace ---------------------------------------------------------------------


class Workspace:
    """Every user's mailbox and calendar, the settings and the quotas."""

    def __init__(
        self, clock: VirtualClock, users: tuple[UserAccount, ...], codec: TokenCodec
    ) -> None:
        self.clock = clock
        self.users = users
        self.codec = codec
        self.settings = WorkspaceSettings()
        self.gmail_quota = MinuteQuota()
        self.calendar_quota = MinuteQuota()
        self.mailboxes: dict[str, Mailbox] = {}
        self.calendars: dict[str, Calendar] = {}
        self.generation = 0  # in every sync token: a reset sandbox refuses older ones
        self.reset()

    def reset(self) -> None:
        self.generation += 1
        self.settings = WorkspaceSettings()
        self.gmail_quota = MinuteQuota()
        self.calendar_quota = MinuteQuota()
        self.mailboxes = {u.email: Mailbox(u, self.clock, self.settings) for u in self.users}
        self.calendars = {u.email: Calendar(u, self.clock) for u in self.users}

    def charge_gmail(self, user: str, method: str) -> int | None:
        if not self.settings.enabled:
            return None
        return self.gmail_quota.charge(
            user, GMAIL_COSTS[method], self.settings.gmail_units_per_minute, self.clock.timestamp()
        )

    def charge_calendar(self, user: str) -> int | None:
        if not self.settings.enabled:
            return None
        return self.calendar_quota.charge(
            user, 1, self.settings.calendar_requests_per_minute, self.clock.timestamp()
        )

    # ---- seeding -----------------------------------------------------------------------------

    def seed_mail(self, email_address: str, items: list[dict[str, Any]]) -> list[str]:
        """Explicit messages: ``{from, to[], cc[], subject, body, date (ISO 8601), labels[],
        message_id, in_reply_to}``."""
        box = self.mailboxes[email_address]
        created = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"messages[{i}] must be an object")
            created.append(self._seed_one(box, item, i).id)
        return created

    def _seed_one(self, box: Mailbox, item: dict[str, Any], i: int) -> Message:
        sender = str(item.get("from") or box.user.email)
        to = [str(a) for a in item.get("to") or []]
        cc = [str(a) for a in item.get("cc") or []]
        when = item.get("date")
        moment = (
            self.clock.now()
            if when is None
            else datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        )
        if moment.tzinfo is None:
            raise ValueError(f"messages[{i}].date needs a time zone")
        digest = hashlib.sha256(f"{box.user.email}{i}{moment}{sender}".encode()).hexdigest()
        message_id = str(item.get("message_id") or f"<{digest[:20]}@mail.sandbox.test>")
        headers = [
            ("From", sender),
            ("To", ", ".join(to)),
            ("Subject", str(item.get("subject") or "")),
            ("Date", email.utils.format_datetime(moment.astimezone(UTC))),
            ("Message-ID", message_id),
        ]
        if cc:
            headers.insert(2, ("Cc", ", ".join(cc)))
        if item.get("in_reply_to"):
            headers.append(("In-Reply-To", str(item["in_reply_to"])))
        mine = (
            sender.lower().endswith(box.user.email.lower())
            or f"<{box.user.email.lower()}>" in sender.lower()
        )
        labels = item.get("labels") or (["SENT"] if mine else ["INBOX", "UNREAD"])
        return box.add(
            headers,
            str(item.get("body") or ""),
            [str(x) for x in labels],
            int(moment.timestamp() * 1000),
        )

    def seed_generated(
        self, email_address: str, partners: list[str], count: int, seed: int, days: float
    ) -> list[str]:
        """``count`` messages over the past ``days`` with ``partners`` (addresses), half sent,
        half received, some replies, a few with a confidential subject."""
        rng = random.Random(f"gmail:{seed}:{email_address}")
        if not partners:
            raise ValueError("no partner addresses to write to (seed contacts first)")
        now = self.clock.now()
        subjects = ("Paper order", "Quarterly review", "Re: pricing", "Lunch next week",
                    "Contract renewal", "Confidential: discount terms", "Invoice 4411",
                    "Personal note", "Follow-up from our call")  # fmt: skip
        items = []
        for i in range(count):
            partner = rng.choice(partners)
            moment = now - timedelta(seconds=rng.randint(60, max(61, int(days * 86_400))))
            outbound = rng.random() < 0.5
            items.append(
                {
                    "from": email_address if outbound else partner,
                    "to": [partner] if outbound else [email_address],
                    "subject": rng.choice(subjects),
                    "body": f"Message {i} about paper, from the sandbox.",
                    "date": moment.isoformat(),
                }
            )
        items.sort(key=lambda m: str(m["date"]))
        return self.seed_mail(email_address, items)

    def seed_events(self, email_address: str, items: list[dict[str, Any]]) -> list[str]:
        calendar = self.calendars[email_address]
        return [calendar.insert(item).id for item in items]

    # ---- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "settings": asdict(self.settings),
            "mail": {e: b.to_json() for e, b in self.mailboxes.items()},
            "calendars": {e: c.to_json() for e, c in self.calendars.items()},
        }

    def load(self, raw: dict[str, Any]) -> None:
        self.reset()
        self.generation = max(self.generation, int(raw.get("generation", 0)))
        self.settings.update(raw.get("settings", {}))
        for email_address, data in raw.get("mail", {}).items():
            if email_address in self.mailboxes:
                self.mailboxes[email_address].load(data)
        for email_address, data in raw.get("calendars", {}).items():
            if email_address in self.calendars:
                self.calendars[email_address].load(data)
