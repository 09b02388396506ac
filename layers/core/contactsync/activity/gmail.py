"""Gmail and Google Calendar activity, through google-auth's AuthorizedSession (the Google
connector's session class, with the Gmail and Calendar read scopes).

Gmail (stream ``activity.mail``): the backfill notes the mailbox's ``historyId`` first (the
signpost), lists the messages of the window (``q=after:<epoch>``, newest first, 500 a page) and
reads each one's headers (``format=metadata``: From, To, Cc, Subject, Message-ID; no body);
then ``users.history.list`` from the signpost brings what arrived since, and every later read
(``historyTypes=messageAdded``). A 404 on the history (the start id is too old, about a week)
restarts the backfill. Drafts and spam are left out.

Calendar (stream ``activity.calendar``): ``events.list`` of the primary calendar from the
window (``singleEvents``), then its ``nextSyncToken``; a 410 restarts the backfill. A cancelled
event is reported as cancelled (the meeting will not take place).

Bodies (``fetch_body``): ``messages.get?format=full`` (the text part, else the HTML one as
text) and ``events.get`` (the description), only for shared content.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials as OAuthCredentials

from contactsync.activity.base import (
    CALENDAR,
    MAIL,
    Captured,
    CapturePage,
    addresses,
    first_address,
)
from contactsync.activity.errors import Gone, classify_google
from contactsync.connectors.base import ConnectorStats, CursorExpired, TransientError
from contactsync.connectors.google.client import GoogleConfig, GoogleSession, Secrets
from contactsync.connectors.http import Clock, HttpClient, Pacer, SystemClock
from contactsync.domain.activity import ActivityKind

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
SCOPES = (GMAIL_READONLY, CALENDAR_READONLY)
DEFAULT_GMAIL_BASE = "https://gmail.googleapis.com/"
DEFAULT_CALENDAR_BASE = "https://www.googleapis.com/"
HEADERS = ("From", "To", "Cc", "Subject", "Message-ID", "Date")
SKIPPED_LABELS = frozenset({"DRAFT", "SPAM"})
MAX_PAGES = 100_000  # a runaway paging loop stops here


def _root(url: str) -> str:
    if not url.startswith("https://"):
        raise ValueError("Google endpoints must be https URLs")
    return url if url.endswith("/") else url + "/"


def google_session(
    config: GoogleConfig,
    secrets: Secrets,
    transport: requests.Session | None = None,
    scopes: tuple[str, ...] = SCOPES,
) -> GoogleSession:
    """The Google connector's authorized session, asking for the activity scopes (the
    connector's asks for none and gets the contacts scope). Refreshes go through
    ``transport``; its adapters and TLS settings are copied."""
    if transport is None:
        transport = requests.Session()
    if config.ca_bundle and transport.verify is True:
        transport.trust_env = False
        transport.verify = config.ca_bundle
    credentials = OAuthCredentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=secrets.refresh_token,
        token_uri=config.token_uri,
        client_id=secrets.client_id,
        client_secret=secrets.client_secret,
        scopes=list(scopes),
    )
    session = GoogleSession(credentials, auth_request=AuthRequest(transport))  # type: ignore[no-untyped-call]
    for prefix, adapter in transport.adapters.items():
        session.mount(prefix, adapter)
    session.verify = transport.verify
    session.trust_env = transport.trust_env
    session.cert = transport.cert
    session.headers["User-Agent"] = "contactsync-activity/0.1"
    return session


def _http(session: requests.Session, clock: Clock, expired_on: tuple[int, ...]) -> HttpClient:
    stats = ConnectorStats()
    return HttpClient(
        session=session,
        classify=lambda r: classify_google(r, expired_on=expired_on),
        pacer=Pacer(clock=clock, stats=stats),
        stats=stats,
    )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError("bad_response", "not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError("bad_response", "not an object")
    return body


def _text_of(payload: Mapping[str, Any]) -> str | None:
    """The plain text of a message payload: its text/plain part, else its HTML as text."""
    found: dict[str, str] = {}
    stack = [payload]
    while stack:
        part = stack.pop()
        kind = str(part.get("mimeType") or "")
        data = (part.get("body") or {}).get("data")
        if isinstance(data, str) and kind in ("text/plain", "text/html") and kind not in found:
            found[kind] = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode(
                "utf-8", errors="replace"
            )
        stack.extend(p for p in reversed(part.get("parts") or []) if isinstance(p, dict))
    if "text/plain" in found:
        return found["text/plain"]
    if "text/html" in found:
        return html.unescape(re.sub(r"<[^>]+>", " ", found["text/html"])).strip()
    return None


def _moment_ms(raw: Any) -> datetime:
    return datetime.fromtimestamp(int(raw) / 1000, UTC)


class GmailReader:
    stream = MAIL

    def __init__(
        self, session: requests.Session, config: Mapping[str, str], clock: Clock | None = None
    ) -> None:
        self.http = _http(session, clock or SystemClock(), expired_on=(404,))
        self.base = _root(config.get("gmail_api_base") or DEFAULT_GMAIL_BASE) + "gmail/v1/users/me/"

    def _get(self, path: str, endpoint: str, params: Any = None) -> dict[str, Any]:
        return _json(self.http.request("GET", self.base + path, endpoint, params=params))

    # ---- reading -----------------------------------------------------------------------------

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        state = json.loads(cursor) if cursor else {}
        history = state.get("h")
        if history is not None:
            try:
                yield from self._history(str(history))
                return
            except CursorExpired:
                pass  # the start id is too old: back to a full read of the window
        yield from self._backfill(since)

    def _backfill(self, since: datetime) -> Iterator[CapturePage]:
        signpost = str(self._get("profile", "gmail.getProfile")["historyId"])
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"q": f"after:{int(since.timestamp())}", "maxResults": 500}
            if token:
                params["pageToken"] = token
            body = self._get("messages", "gmail.messages.list", params)
            items = [c for m in body.get("messages") or () if (c := self._message(str(m["id"])))]
            token = body.get("nextPageToken") or None
            yield CapturePage(items, None, last=False, full=True)
            if token is None:
                break
        # The window is read: from here on the history, starting at the signpost.
        yield CapturePage([], json.dumps({"h": signpost}), last=False, full=True)
        yield from self._history(signpost)

    def _history(self, start: str) -> Iterator[CapturePage]:
        token: str | None = None
        latest = start
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {
                "startHistoryId": start,
                "historyTypes": "messageAdded",
                "maxResults": 500,
            }
            if token:
                params["pageToken"] = token
            body = self._get("history", "gmail.history.list", params)
            latest = str(body.get("historyId") or latest)
            ids: dict[str, None] = {}
            for record in body.get("history") or ():
                for added in record.get("messagesAdded") or ():
                    message = added.get("message") or {}
                    if SKIPPED_LABELS & set(message.get("labelIds") or ()):
                        continue
                    ids[str(message.get("id"))] = None
            items = [c for i in ids if (c := self._message(i))]
            token = body.get("nextPageToken") or None
            if token is None:
                yield CapturePage(items, json.dumps({"h": latest}), last=True)
                return
            yield CapturePage(items, None)
        raise TransientError("paging_loop", "history pages did not end")

    def _message(self, message_id: str) -> Captured | None:
        params = [("format", "metadata"), *(("metadataHeaders", h) for h in HEADERS)]
        try:
            body = self._get(f"messages/{message_id}", "gmail.messages.get", params)
        except Gone:
            return None  # deleted since it was listed
        if SKIPPED_LABELS & set(body.get("labelIds") or ()):
            return None
        headers: dict[str, str] = {}
        for header in (body.get("payload") or {}).get("headers") or ():
            name = str(header.get("name") or "").lower()
            headers.setdefault(name, str(header.get("value") or ""))
        sender = first_address(headers.get("from"))
        return Captured(
            remote_id=message_id,
            kind=ActivityKind.EMAIL,
            occurred_at=_moment_ms(body["internalDate"]),
            subject=headers.get("subject", "")[:1000],
            participants=addresses([headers.get("from"), headers.get("to"), headers.get("cc")]),
            sender=sender,
            thread_id=str(body.get("threadId") or "") or None,
            message_key=(headers.get("message-id") or "").strip()[:998] or None,
        )

    def fetch_body(self, remote_id: str) -> str | None:
        try:
            body = self._get(f"messages/{remote_id}", "gmail.messages.get", {"format": "full"})
        except Gone:
            return None
        return _text_of(body.get("payload") or {})


class GoogleCalendarReader:
    stream = CALENDAR

    def __init__(
        self, session: requests.Session, config: Mapping[str, str], clock: Clock | None = None
    ) -> None:
        self.http = _http(session, clock or SystemClock(), expired_on=(410,))
        root = _root(config.get("calendar_api_base") or DEFAULT_CALENDAR_BASE)
        self.base = root + "calendar/v3/calendars/primary/events"
        self.owner = (config.get("user") or "").lower()

    def _get(self, url: str, endpoint: str, params: Any = None) -> dict[str, Any]:
        return _json(self.http.request("GET", url, endpoint, params=params))

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        state = json.loads(cursor) if cursor else {}
        sync = state.get("s")
        if sync:
            try:
                yield from self._pages({"syncToken": sync}, full=False)
                return
            except CursorExpired:
                pass
        query = {
            "timeMin": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "singleEvents": "true",
        }
        yield from self._pages(query, full=True)

    def _pages(self, query: dict[str, str], *, full: bool) -> Iterator[CapturePage]:
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {**query, "maxResults": 250}
            if token:
                params["pageToken"] = token
            body = self._get(self.base, "calendar.events.list", params)
            items = [c for e in body.get("items") or () if (c := self._event(e))]
            token = body.get("nextPageToken") or None
            if token is None:
                cursor = (
                    json.dumps({"s": body.get("nextSyncToken")})
                    if body.get("nextSyncToken")
                    else None
                )
                yield CapturePage(items, cursor, last=True, full=full)
                return
            yield CapturePage(items, None, full=full)
        raise TransientError("paging_loop", "event pages did not end")

    @staticmethod
    def _event(event: Mapping[str, Any]) -> Captured | None:
        event_id = event.get("id")
        if not isinstance(event_id, str) or not event_id:
            return None
        if event.get("status") == "cancelled":
            return Captured(
                remote_id=event_id,
                kind=ActivityKind.MEETING,
                occurred_at=datetime.fromtimestamp(0, UTC),
                cancelled=True,
            )
        start = event.get("start") or {}
        raw = start.get("dateTime") or (start.get("date") and f"{start['date']}T00:00:00+00:00")
        if not isinstance(raw, str):
            return None
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        organizer = (event.get("organizer") or {}).get("email")
        attendees = [a.get("email") for a in event.get("attendees") or () if isinstance(a, dict)]
        end = (event.get("end") or {}).get("dateTime")
        duration = None
        if isinstance(end, str):
            finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
            finish = finish if finish.tzinfo else finish.replace(tzinfo=UTC)
            duration = max(int((finish - moment).total_seconds()), 0)
        return Captured(
            remote_id=event_id,
            kind=ActivityKind.MEETING,
            occurred_at=moment.astimezone(UTC),
            subject=str(event.get("summary") or "")[:1000],
            participants=addresses([organizer, *attendees]),
            sender=first_address(organizer),
            message_key=str(event.get("iCalUID") or "")[:998] or None,
            duration_seconds=duration,
        )

    def fetch_body(self, remote_id: str) -> str | None:
        try:
            body = self._get(f"{self.base}/{remote_id}", "calendar.events.get")
        except Gone:
            return None
        description = body.get("description")
        return str(description) if isinstance(description, str) else ""


def readers(
    config: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
) -> list[GmailReader | GoogleCalendarReader]:
    """Both readers of one Google account, on one authorized session."""
    google_config = GoogleConfig.from_mapping(config)
    authorized = google_session(google_config, Secrets.from_mapping(secrets), session)
    return [GmailReader(authorized, config, clock), GoogleCalendarReader(authorized, config, clock)]


__all__ = ["GmailReader", "GoogleCalendarReader", "google_session", "readers"]
