"""Outlook mail and calendar in the Microsoft sandbox (activity capture): state, rules and the
Graph handlers, bound into the app by ``responses.App`` (which authenticates, resolves the
mailbox and throttles through its ``graph_op``).

Served (also under ``/me``; ``{folder}`` is an id or a well-known name such as ``inbox`` or
``sentitems``):

    GET /v1.0/users/{id}/mailFolders/{folder}/messages/delta   message: delta (per folder)
    GET /v1.0/users/{id}/messages/{id}                         message: get
    GET /v1.0/users/{id}/calendarView/delta                    event: delta (a calendar view)
    GET /v1.0/users/{id}/events/{id}                           event: get

What Graph does and this keeps:
- message delta is per folder; ``$select``, ``$top`` (page size, like ``Prefer:
  odata.maxpagesize``), ``changeType`` and ``$filter=receivedDateTime ge|gt {instant}`` are
  accepted, any other query option is refused (400); the options of the first request are
  kept in the tokens; removed items (deleted, or moved out of the folder) come as
  ``{"id", "@removed": {"reason": "deleted"}}``;
- calendarView delta needs ``startDateTime`` and ``endDateTime`` on its first request (400
  otherwise) and then only follows that window; a cancelled meeting comes back with
  ``isCancelled: true``, a deleted one as ``@removed``;
- delta tokens share the contact folders' rules (``delta.DeltaStore``): a bounded number of
  generations per chain and a lifetime, after which 410 ``SyncStateNotFound``;
- ``Prefer: outlook.body-content-type="text"`` turns an HTML body into text;
- reading mail needs ``Mail.ReadBasic``, ``Mail.Read`` or ``Mail.ReadWrite`` (bodies not with
  ``Mail.ReadBasic``); events need ``Calendars.Read`` or ``Calendars.ReadWrite``, else 403
  ``ErrorAccessDenied``.

Data arrives through ``POST /_sandbox/mail`` (``{"user", "messages": [...], "events": [...],
"cancel": [event ids], "delete": [message ids]}``) as if people wrote and were invited.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.models import User, derive, instant

if TYPE_CHECKING:
    from contactsync_sandbox.microsoft.responses import App, Call

WELL_KNOWN = ("inbox", "sentitems", "drafts", "deleteditems", "archive")
MAIL_PERMISSIONS = frozenset({"Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite",
                              "Mail.ReadBasic.All"})  # fmt: skip
BODY_PERMISSIONS = frozenset({"Mail.Read", "Mail.ReadWrite"})
CALENDAR_PERMISSIONS = frozenset({"Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic"})
MESSAGE_DELTA_OPTIONS = frozenset({"$select", "$top", "$filter", "changeType", "$orderby"})
EVENT_DELTA_OPTIONS = frozenset({"startDateTime", "endDateTime", "$top"})
_FILTER = re.compile(
    r"^\s*receivedDateTime\s+(ge|gt)\s+(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s*$",
    re.IGNORECASE,
)
MESSAGE_PROPERTIES = (
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
    "receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId", "subject",
    "bodyPreview", "importance", "parentFolderId", "conversationId", "isRead", "isDraft",
    "webLink", "body", "sender", "from", "toRecipients", "ccRecipients", "bccRecipients",
    "replyTo", "flag",
)  # fmt: skip


def _recipient(address: str, name: str = "") -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


def _text(content: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", content)).strip()


@dataclass
class Message:
    id: str
    folder_id: str
    subject: str
    body: str  # HTML, as Outlook stores it
    sender: str
    to: list[str]
    cc: list[str]
    received: str  # instant
    sent: str
    internet_message_id: str
    conversation_id: str
    change_key: str
    modified: str
    is_read: bool = False

    def render(self, select: list[str] | None, body_type: str | None) -> dict[str, Any]:
        full: dict[str, Any] = {
            "@odata.etag": f'W/"{self.change_key}"',
            "id": self.id,
            "createdDateTime": self.received,
            "lastModifiedDateTime": self.modified,
            "changeKey": self.change_key,
            "categories": [],
            "receivedDateTime": self.received,
            "sentDateTime": self.sent,
            "hasAttachments": False,
            "internetMessageId": self.internet_message_id,
            "subject": self.subject,
            "bodyPreview": _text(self.body)[:255],
            "importance": "normal",
            "parentFolderId": self.folder_id,
            "conversationId": self.conversation_id,
            "isRead": self.is_read,
            "isDraft": False,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={self.id}",
            "body": (
                {"contentType": "text", "content": _text(self.body)}
                if body_type == "text"
                else {"contentType": "html", "content": self.body}
            ),
            "sender": _recipient(self.sender),
            "from": _recipient(self.sender),
            "toRecipients": [_recipient(a) for a in self.to],
            "ccRecipients": [_recipient(a) for a in self.cc],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
        }
        if select is None:
            return full
        return {
            "@odata.etag": full["@odata.etag"],
            "id": self.id,
            **{k: full[k] for k in select if k in full},
        }


@dataclass
class Event:
    id: str
    subject: str
    body: str
    start: str
    end: str
    organizer: str
    attendees: list[str]
    ical_uid: str
    change_key: str
    modified: str
    cancelled: bool = False
    sensitivity: str = "normal"

    def render(self, owner: str, body_type: str | None) -> dict[str, Any]:
        return {
            "@odata.etag": f'W/"{self.change_key}"',
            "id": self.id,
            "createdDateTime": self.modified,
            "lastModifiedDateTime": self.modified,
            "changeKey": self.change_key,
            "iCalUId": self.ical_uid,
            "subject": self.subject,
            "bodyPreview": _text(self.body)[:255],
            "body": (
                {"contentType": "text", "content": _text(self.body)}
                if body_type == "text"
                else {"contentType": "html", "content": self.body}
            ),
            "start": {"dateTime": self.start.replace("Z", ".0000000"), "timeZone": "UTC"},
            "end": {"dateTime": self.end.replace("Z", ".0000000"), "timeZone": "UTC"},
            "isCancelled": self.cancelled,
            "isOrganizer": self.organizer.lower() == owner.lower(),
            "type": "singleInstance",
            "showAs": "busy",
            "sensitivity": self.sensitivity,
            "organizer": _recipient(self.organizer),
            "attendees": [
                {
                    "type": "required",
                    "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                    **_recipient(a),
                }
                for a in self.attendees
            ],
        }


@dataclass
class LoggedFolder:
    """What ``delta.DeltaStore`` pages over: members, and a change log by sequence."""

    id: str
    members: dict[str, None] = field(default_factory=dict)
    log_seqs: list[int] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)

    def record(self, seq: int, item_id: str) -> None:
        self.log_seqs.append(seq)
        self.log_ids.append(item_id)

    def changed_since(self, seq: int) -> list[str]:
        start = bisect_right(self.log_seqs, seq)
        latest = dict.fromkeys(reversed(self.log_ids[start:]))
        return list(reversed(latest))


@dataclass
class View:
    """A filtered view of a folder (message delta's ``$filter``, a calendarView's window), with
    the folder's log: what changes after the first round is reported whether or not it matches
    (as Graph's collection-level tracking does)."""

    id: str
    members: list[str]
    source: LoggedFolder

    def changed_since(self, seq: int) -> list[str]:
        return self.source.changed_since(seq)


@dataclass
class SeqHolder:
    """The mailbox-shaped object DeltaStore reads (``user.id``, ``seq``)."""

    user: User
    seq: int


class MailState:
    """One mailbox's mail folders, messages and calendar."""

    def __init__(self, seed: int, user: User) -> None:
        self.seed = seed
        self.user = user
        self.seq = 0
        self.counter = 0
        self.folders = {name: LoggedFolder(self._id("folder", name)) for name in WELL_KNOWN}
        self.messages: dict[str, Message] = {}
        self.calendar = LoggedFolder(self._id("folder", "calendar"))
        self.events: dict[str, Event] = {}

    def _id(self, *parts: object) -> str:
        raw = b"\x00\x03\x24\x00" + derive(self.seed, self.user.id, *parts, size=48)
        return base64.urlsafe_b64encode(raw).decode()

    def _next(self) -> tuple[int, str]:
        self.seq += 1
        self.counter += 1
        return self.seq, hashlib.sha256(f"{self.user.id}:{self.counter}".encode()).hexdigest()[:24]

    def folder(self, ref: str) -> LoggedFolder:
        lowered = ref.lower()
        if lowered in self.folders:
            return self.folders[lowered]
        for folder in self.folders.values():
            if folder.id == ref:
                return folder
        raise err.item_not_found()

    def folder_name(self, folder_id: str) -> str:
        return next(name for name, f in self.folders.items() if f.id == folder_id)

    # ---- writes ----------------------------------------------------------------------------

    def add_message(self, raw: dict[str, Any], now: datetime) -> Message:
        sender = str(raw.get("from") or self.user.user_principal_name)
        mine = sender.lower() == self.user.user_principal_name
        folder = self.folder(str(raw.get("folder") or ("sentitems" if mine else "inbox")))
        when = str(raw.get("date") or instant(now))
        moment = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC)
        seq, change = self._next()
        message_id = self._id("message", self.counter)
        conversation = str(raw.get("conversation_id") or self._id("conversation", self.counter))
        message = Message(
            id=message_id,
            folder_id=folder.id,
            subject=str(raw.get("subject") or ""),
            body=str(
                raw.get("body_html")
                or f"<html><body>{html.escape(str(raw.get('body') or ''))}</body></html>"
            ),
            sender=sender,
            to=[str(a) for a in raw.get("to") or []],
            cc=[str(a) for a in raw.get("cc") or []],
            received=instant(moment),
            sent=instant(moment),
            internet_message_id=str(raw.get("message_id") or f"<{change}@sandbox.outlook.test>"),
            conversation_id=conversation,
            change_key=change,
            modified=instant(now),
        )
        self.messages[message_id] = message
        folder.members[message_id] = None
        folder.record(seq, message_id)
        return message

    def delete_message(self, message_id: str) -> None:
        message = self.messages.pop(message_id, None)
        if message is None:
            raise err.item_not_found()
        folder = next(f for f in self.folders.values() if f.id == message.folder_id)
        folder.members.pop(message_id, None)
        seq, _ = self._next()
        folder.record(seq, message_id)

    def add_event(self, raw: dict[str, Any], now: datetime) -> Event:
        seq, change = self._next()
        event_id = self._id("event", self.counter)
        start = datetime.fromisoformat(str(raw["start"]).replace("Z", "+00:00")).astimezone(UTC)
        end = datetime.fromisoformat(str(raw["end"]).replace("Z", "+00:00")).astimezone(UTC)
        event = Event(
            id=event_id,
            subject=str(raw.get("subject") or ""),
            body=f"<html><body>{html.escape(str(raw.get('body') or ''))}</body></html>",
            start=instant(start),
            end=instant(end),
            organizer=str(raw.get("organizer") or self.user.user_principal_name),
            attendees=[str(a) for a in raw.get("attendees") or []],
            ical_uid=str(
                raw.get("ical_uid") or f"040000008200E00074C5B7101A82E008{change.upper()}"
            ),
            change_key=change,
            modified=instant(now),
            sensitivity=str(raw.get("sensitivity") or "normal"),
        )
        self.events[event_id] = event
        self.calendar.members[event_id] = None
        self.calendar.record(seq, event_id)
        return event

    def cancel_event(self, event_id: str, now: datetime) -> None:
        event = self.events.get(event_id)
        if event is None:
            raise err.item_not_found()
        seq, change = self._next()
        event.cancelled = True
        event.change_key = change
        event.modified = instant(now)
        self.calendar.record(seq, event_id)

    def delete_event(self, event_id: str) -> None:
        if self.events.pop(event_id, None) is None:
            raise err.item_not_found()
        self.calendar.members.pop(event_id, None)
        seq, _ = self._next()
        self.calendar.record(seq, event_id)

    # ---- views ------------------------------------------------------------------------------

    def message_view(self, folder: LoggedFolder, op: str | None, moment: str | None) -> View:
        members = [
            i
            for i in folder.members
            if moment is None
            or (
                self.messages[i].received >= moment
                if op == "ge"
                else self.messages[i].received > moment
            )
        ]
        return View(f"{folder.id}|{op or ''}|{moment or ''}", members, folder)

    def event_view(self, start: str, end: str) -> View:
        members = [i for i, e in self.events.items() if e.end > start and e.start < end]
        return View(f"{self.calendar.id}|{start}|{end}", members, self.calendar)

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user.id,
            "seq": self.seq,
            "counter": self.counter,
            "folders": {n: asdict(f) for n, f in self.folders.items()},
            "calendar": asdict(self.calendar),
            "messages": [asdict(m) for m in self.messages.values()],
            "events": [asdict(e) for e in self.events.values()],
        }

    def load_json(self, raw: dict[str, Any]) -> None:
        self.seq = int(raw["seq"])
        self.counter = int(raw["counter"])
        self.folders = {n: LoggedFolder(**f) for n, f in raw["folders"].items()}
        self.calendar = LoggedFolder(**raw["calendar"])
        self.messages = {m["id"]: Message(**m) for m in raw["messages"]}
        self.events = {e["id"]: Event(**e) for e in raw["events"]}


# ---- Graph handlers (bound by responses.App with graph_op) ---------------------------------------


def _permissions(call: Call) -> set[str]:
    from contactsync_sandbox.microsoft.auth import Identity

    _, _, token = (call.request.headers.get("Authorization") or "").partition(" ")
    claims = Identity.claims(token.strip()) or {}
    roles = claims.get("roles") or []
    scopes = str(claims.get("scp") or "").split()
    return {str(r) for r in roles} | set(scopes)


def _require(call: Call, allowed: frozenset[str]) -> set[str]:
    granted = _permissions(call)
    if not granted & allowed:
        raise err.access_denied()
    return granted


def _page_size(app: App, call: Call) -> int:
    prefer = re.search(
        r"odata\.maxpagesize\s*=\s*(\d+)", call.request.headers.get("Prefer", ""), re.I
    )
    size = int(prefer.group(1)) if prefer else app.limits.delta_default_page_size
    top = call.query("$top")
    if top is not None:
        if not top.isdigit():
            raise err.invalid_query(f"Invalid $top value '{top}'.")
        size = int(top)
    return max(1, min(size, app.limits.delta_max_page_size))


def _body_type(call: Call) -> str | None:
    prefer = call.request.headers.get("Prefer", "")
    match = re.search(r'outlook\.body-content-type\s*=\s*"?(text|html)"?', prefer, re.I)
    return match.group(1).lower() if match else None


def _state(app: App, call: Call) -> MailState:
    return app.mail[call.box.user.id]


def _tokens(call: Call) -> tuple[str, str] | None:
    skip, delta = call.query("$skiptoken"), call.query("$deltatoken")
    return ("skip", skip) if skip else ("delta", delta) if delta else None


def message_delta(app: App, call: Call) -> Any:
    granted = _require(call, MAIL_PERMISSIONS)
    state = _state(app, call)
    folder = state.folder(call.args["fid"])
    token = _tokens(call)
    select: list[str] | None = None
    if token is None:
        unknown = sorted(
            k for k in call.request.args if k.startswith("$") and k not in MESSAGE_DELTA_OPTIONS
        )
        if unknown:
            raise err.invalid_query(
                "The following parameters are not supported with change tracking over the "
                f"'Messages' resource: '{', '.join(unknown)}'."
            )
        op = moment = None
        raw_filter = call.query("$filter")
        if raw_filter:
            match = _FILTER.match(raw_filter)
            if match is None:
                raise err.invalid_query(
                    "Only receivedDateTime with ge or gt is supported in $filter with delta."
                )
            op, moment = match.group(1).lower(), match.group(2)
        raw_select = call.query("$select")
        if raw_select:
            select = [s.strip() for s in raw_select.split(",") if s.strip()]
            for name in select:
                if name not in MESSAGE_PROPERTIES:
                    raise err.unknown_select(name, "microsoft.graph.message")
        if "body" in (select or MESSAGE_PROPERTIES) and not granted & BODY_PERMISSIONS:
            raise err.access_denied()
        view = state.message_view(folder, op, moment)
    else:
        resolved = app.mail_delta.resolve(token[1], app.clock.timestamp())
        _, op_text, moment_text = resolved.folder_id.split("|")
        view = state.message_view(folder, op_text or None, moment_text or None)
    page = app.mail_delta.page(
        SeqHolder(state.user, state.seq),  # type: ignore[arg-type]
        view,  # type: ignore[arg-type]
        token,
        select,
        _page_size(app, call),
        app.clock.timestamp(),
    )
    if token is not None:
        select = app.mail_delta.select_of(page.token)
    value = []
    for item_id in page.ids:
        message = state.messages.get(item_id)
        if message is not None and message.folder_id == folder.id:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    **message.render(select, _body_type(call)),
                }
            )
        else:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": item_id,
                    "@removed": {"reason": "deleted"},
                }
            )
    path = f"{app.base_url.rstrip('/')}{call.request.path}"
    link = (
        {"@odata.deltaLink": f"{path}?$deltatoken={page.token}"}
        if page.final
        else {"@odata.nextLink": f"{path}?$skiptoken={page.token}"}
    )
    body = {"@odata.context": app._context("Collection(message)"), **link, "value": value}
    return app._json(call, body, headers={"Preference-Applied": "odata.track-changes"})


def message_get(app: App, call: Call) -> Any:
    granted = _require(call, MAIL_PERMISSIONS)
    state = _state(app, call)
    message = state.messages.get(call.args["mid"])
    if message is None:
        raise err.item_not_found()
    raw_select = call.query("$select")
    select = [s.strip() for s in raw_select.split(",")] if raw_select else None
    if (select is None or "body" in select) and not granted & BODY_PERMISSIONS:
        raise err.access_denied()
    context = {"@odata.context": app._context(f"{call.user_path}/messages/$entity")}
    return app._json(call, {**context, **message.render(select, _body_type(call))})


def event_get(app: App, call: Call) -> Any:
    _require(call, CALENDAR_PERMISSIONS)
    state = _state(app, call)
    event = state.events.get(call.args["eid"])
    if event is None:
        raise err.item_not_found()
    rendered = event.render(state.user.user_principal_name, _body_type(call))
    raw_select = call.query("$select")
    if raw_select:
        chosen = {s.strip() for s in raw_select.split(",")}
        rendered = {k: v for k, v in rendered.items() if k in chosen or k in ("id", "@odata.etag")}
    context = {"@odata.context": app._context(f"{call.user_path}/events/$entity")}
    return app._json(call, {**context, **rendered})


def event_delta(app: App, call: Call) -> Any:
    _require(call, CALENDAR_PERMISSIONS)
    state = _state(app, call)
    token = _tokens(call)
    if token is None:
        unknown = sorted(k for k in call.request.args if k not in EVENT_DELTA_OPTIONS)
        if unknown:
            raise err.invalid_query(
                "The following parameters are not supported with change tracking over the "
                f"'Events' resource: '{', '.join(unknown)}'."
            )
        start, end = call.query("startDateTime"), call.query("endDateTime")
        if not start or not end:
            raise err.GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        start, end = _instant(start, "startDateTime"), _instant(end, "endDateTime")
        view = state.event_view(start, end)
    else:
        resolved = app.mail_delta.resolve(token[1], app.clock.timestamp())
        _, start, end = resolved.folder_id.split("|")
        view = state.event_view(start, end)
    page = app.mail_delta.page(
        SeqHolder(state.user, state.seq),  # type: ignore[arg-type]
        view,  # type: ignore[arg-type]
        token,
        None,
        _page_size(app, call),
        app.clock.timestamp(),
    )
    value = []
    for item_id in page.ids:
        event = state.events.get(item_id)
        if event is not None and event.end > start and event.start < end:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.event",
                    **event.render(state.user.user_principal_name, _body_type(call)),
                }
            )
        else:
            value.append(
                {
                    "@odata.type": "#microsoft.graph.event",
                    "id": item_id,
                    "@removed": {"reason": "deleted"},
                }
            )
    path = f"{app.base_url.rstrip('/')}{call.request.path}"
    link = (
        {"@odata.deltaLink": f"{path}?$deltatoken={page.token}"}
        if page.final
        else {"@odata.nextLink": f"{path}?$skiptoken={page.token}"}
    )
    body = {"@odata.context": app._context("Collection(event)"), **link, "value": value}
    return app._json(call, body, headers={"Preference-Applied": "odata.track-changes"})


def _instant(value: str, name: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise err.GraphError(
            400, "ErrorInvalidParameter", f"The value of {name} is invalid."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return instant(moment.astimezone(UTC))


MAIL_ROUTES = (
    ("/mailFolders/<fid>/messages/delta", ["GET"], "message_delta"),
    ("/messages/<mid>", ["GET"], "message_get"),
    ("/calendarView/delta", ["GET"], "event_delta"),
    ("/events/<eid>", ["GET"], "event_get"),
)


def admin_mail(app: App, body: dict[str, Any]) -> Any:
    """``POST /_sandbox/mail``: messages and meetings arrive as if people wrote and invited.

    ``{"user": UPN or id, "messages": [{from, to[], cc[], subject, body, date, folder,
    message_id, conversation_id}], "events": [{subject, body, start, end, organizer,
    attendees[], ical_uid, sensitivity}], "cancel": [event ids], "delete_events": [ids],
    "delete": [message ids]}``."""
    from contactsync_sandbox.core.app import json_response

    mailbox = app._admin_user(body)
    state = app.mail[mailbox.user.id]
    now = app.clock.now()
    created: dict[str, list[str]] = {"messages": [], "events": []}
    for i, raw in enumerate(body.get("messages") or ()):
        if not isinstance(raw, dict):
            raise ValueError(f"messages[{i}] must be an object")
        created["messages"].append(state.add_message(raw, now).id)
    for i, raw in enumerate(body.get("events") or ()):
        if not isinstance(raw, dict) or "start" not in raw or "end" not in raw:
            raise ValueError(f"events[{i}] needs start and end")
        created["events"].append(state.add_event(raw, now).id)
    for event_id in body.get("cancel") or ():
        state.cancel_event(str(event_id), now)
    for event_id in body.get("delete_events") or ():
        state.delete_event(str(event_id))
    for message_id in body.get("delete") or ():
        state.delete_message(str(message_id))
    return json_response({**created, "user": mailbox.user.user_principal_name})
