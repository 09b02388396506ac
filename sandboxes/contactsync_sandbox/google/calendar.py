"""The HTTP edge of the sandbox's Calendar API v3 (``https://www.googleapis.com/calendar/v3``
in production; here under the Google sandbox's root), the primary calendar of each user:

    GET    /calendar/v3/calendars/{calendarId}/events             events.list
    POST   /calendar/v3/calendars/{calendarId}/events             events.insert
    GET    /calendar/v3/calendars/{calendarId}/events/{eventId}   events.get
    DELETE /calendar/v3/calendars/{calendarId}/events/{eventId}   events.delete

``calendarId`` is ``primary`` or the user's address. events.list: ``maxResults`` 1..2500
(default 250), ``pageToken``, ``timeMin``/``timeMax`` (the events overlapping them),
``singleEvents``, ``orderBy`` (``startTime`` needs ``singleEvents``), ``showDeleted``; the last
page carries ``nextSyncToken``. With ``syncToken`` only the changes since come back (deleted
events as ``status: cancelled``), and ``timeMin``, ``timeMax``, ``q``, ``orderBy``,
``updatedMin`` and ``iCalUID`` are refused (400); an expired token answers 410
``fullSyncRequired``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from werkzeug.routing import Rule

from contactsync_sandbox.core.app import ProviderError, Request, Response, json_response
from contactsync_sandbox.google import workspace_errors as err
from contactsync_sandbox.google.models import UserAccount
from contactsync_sandbox.google.workspace import (
    CALENDAR_READ_SCOPES,
    CALENDAR_WRITE_SCOPES,
    Calendar,
    Event,
    Workspace,
    parse_time,
    rfc3339,
)

USER_KEY = "contactsync.google.user"
SCOPE_KEY = "contactsync.google.scope"
SERVICE = "calendar-json.googleapis.com"
RESTRICTIONS = (
    "timeMin",
    "timeMax",
    "q",
    "orderBy",
    "updatedMin",
    "iCalUID",
    "privateExtendedProperty",
)


def calendar_rules() -> list[Rule]:
    base = "/calendar/v3/calendars/<cal>/events"
    return [
        Rule(base, methods=["GET"], endpoint="calendar_list"),
        Rule(base, methods=["POST"], endpoint="calendar_insert"),
        Rule(f"{base}/<eid>", methods=["GET"], endpoint="calendar_get"),
        Rule(f"{base}/<eid>", methods=["DELETE"], endpoint="calendar_delete"),
    ]


class CalendarRoutes:
    """Mixed into the Google sandbox's app; ``workspace`` comes from it."""

    workspace: Workspace

    def _calendar_begin(
        self, request: Request, cal: str, method: str, scopes: frozenset[str]
    ) -> tuple[UserAccount, Calendar]:
        user: UserAccount = request.environ[USER_KEY]
        granted = set(str(request.environ.get(SCOPE_KEY, "")).split())
        if not granted & scopes:
            raise err.insufficient_scopes(SERVICE, f"calendar.v3.Events.{method}")
        if cal not in ("primary", user.email):
            raise err.not_found()
        wait = self.workspace.charge_calendar(user.email)
        if wait is not None:
            raise ProviderError(err.rate_limited("Rate Limit Exceeded", wait))
        return user, self.workspace.calendars[user.email]

    def calendar_list(self, request: Request, cal: str) -> Response:
        user, calendar = self._calendar_begin(request, cal, "List", CALENDAR_READ_SCOPES)
        args = request.args
        size = _int(args.get("maxResults"), 250, 2500, "maxResults")
        sync = args.get("syncToken")
        token = args.get("pageToken")
        order = args.get("orderBy")
        single = (args.get("singleEvents") or "").lower() == "true"
        if order not in (None, "startTime", "updated"):
            raise err.invalid(f"Invalid value for orderBy: {order}", "orderBy")
        if order == "startTime" and not single:
            raise err.bad_request(
                "The requested ordering is not available for the particular query.",
                "invalid",
            )
        ws = self.workspace
        if sync is not None:
            if any(args.get(name) for name in RESTRICTIONS):
                raise err.bad_request(
                    "Sync token cannot be used with other request restrictions.", "invalid"
                )
            since = self._read_sync(user, calendar, sync)
            chosen = calendar.changed_since(since)
            sort_key = _by_seq
        else:
            chosen = self._window(calendar, args.get("timeMin"), args.get("timeMax"))
            if (args.get("showDeleted") or "").lower() != "true":
                chosen = [e for e in chosen if e.status != "cancelled"]
            sort_key = _by_updated if order == "updated" else _by_start
        key = hashlib.sha256(
            json.dumps([sync, sorted((k, v) for k, v in args.items() if k != "pageToken")]).encode()
        ).hexdigest()[:12]
        upper = calendar.seq
        after: list[Any] | None = None
        if token:
            parts = ws.codec.open("ce", token, 3)
            if parts is None or parts[0] != key:
                raise err.invalid("Invalid page token value.", "pageToken")
            upper, after = int(parts[1]), json.loads(parts[2])
        # Keyset paging within the snapshot of the first page: what changes meanwhile comes
        # with the next sync token, never shifts a page.
        chosen = sorted((e for e in chosen if e.seq <= upper), key=sort_key)
        if after is not None:
            chosen = [e for e in chosen if sort_key(e) > tuple(after)]
        offset = 0
        page = chosen[offset : offset + size]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{calendar.seq}"',
            "summary": user.email,
            "updated": rfc3339(ws.clock.now()),
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [],
            "items": [e.render(user.email) for e in page],
        }
        if offset + size < len(chosen):
            last = json.dumps(list(sort_key(page[-1])), separators=(",", ":"))
            body["nextPageToken"] = ws.codec.seal("ce", key, upper, last)
        else:
            body["nextSyncToken"] = ws.codec.seal(
                "cs", ws.generation, user.index, upper, repr(ws.clock.timestamp())
            )
        return json_response(body)

    def _read_sync(self, user: UserAccount, calendar: Calendar, token: str) -> int:
        ws = self.workspace
        parts = ws.codec.open("cs", token, 4)
        if parts is None or int(parts[1]) != user.index:
            raise err.invalid("Invalid sync token value.", "syncToken")
        issued = float(parts[3])
        expired = ws.clock.timestamp() - issued > ws.settings.calendar_sync_token_ttl_seconds
        if int(parts[0]) != ws.generation or expired or issued < calendar.invalid_before:
            raise err.full_sync_required()
        return int(parts[2])

    @staticmethod
    def _window(calendar: Calendar, low: str | None, high: str | None) -> list[Event]:
        start = rfc3339(parse_time(low, "timeMin")) if low else None
        end = rfc3339(parse_time(high, "timeMax")) if high else None
        if start and end and end <= start:
            raise err.bad_request("The specified time range is empty.", "timeRangeEmpty")
        return [
            e
            for e in calendar.events.values()
            if (start is None or e.end > start) and (end is None or e.start < end)
        ]

    def calendar_insert(self, request: Request, cal: str) -> Response:
        user, calendar = self._calendar_begin(request, cal, "Insert", CALENDAR_WRITE_SCOPES)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise err.bad_request("Parse Error", "parseError") from None
        if not isinstance(body, dict):
            raise err.bad_request("Parse Error", "parseError")
        return json_response(calendar.insert(body).render(user.email))

    def calendar_get(self, request: Request, cal: str, eid: str) -> Response:
        user, calendar = self._calendar_begin(request, cal, "Get", CALENDAR_READ_SCOPES)
        event = calendar.events.get(eid)
        if event is None:
            raise err.not_found()
        return json_response(event.render(user.email))

    def calendar_delete(self, request: Request, cal: str, eid: str) -> Response:
        _, calendar = self._calendar_begin(request, cal, "Delete", CALENDAR_WRITE_SCOPES)
        calendar.cancel(eid)
        return Response(b"", status=204)


def _int(raw: str | None, default: int, maximum: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise err.invalid(f"Invalid value for {name}: {raw}", name) from None
    if value < 1:
        raise err.invalid(f"Invalid value for {name}: {raw}", name)
    return min(value, maximum)


def _by_seq(event: Event) -> tuple[Any, ...]:
    return (event.seq,)


def _by_start(event: Event) -> tuple[Any, ...]:
    return (event.start, event.id)


def _by_updated(event: Event) -> tuple[Any, ...]:
    return (event.updated, event.id)
