"""Office 365 / Exchange Online activity through Microsoft Graph, on the Microsoft connector's
client (msal tokens, paced retries, its error table).

Mail (stream ``activity.mail``): delta query is per folder, so the inbox and the sent items
are followed separately, each from the backfill window (``$filter=receivedDateTime ge
<since>``) with the headers we need only (``$select``: no body). The cursor keeps each
folder's link: the ``nextLink`` while a round runs (resumable), then its ``deltaLink``. An
expired link (410 ``SyncStateNotFound``) restarts that folder's backfill. A message removed
from a folder (deleted, or moved to another folder) keeps its activity.

Meetings (stream ``activity.calendar``): calendarView delta over a window from the backfill
start to a year ahead; the window is renewed (a new backfill) when its end comes within 30
days. A cancelled or deleted meeting is reported as cancelled.

Bodies (``fetch_body``): ``GET .../messages/{id}?$select=body`` (or the event's) with
``Prefer: outlook.body-content-type="text"``, only for shared content.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from contactsync.activity.base import (
    CALENDAR,
    MAIL,
    Captured,
    CapturePage,
    addresses,
    first_address,
)
from contactsync.connectors.base import ConnectorStats, CursorExpired, TransientError
from contactsync.connectors.http import Clock, SystemClock
from contactsync.connectors.microsoft.client import (
    Credentials,
    GraphClient,
    MicrosoftConfig,
    TokenSource,
    path_id,
    user_path,
)
from contactsync.connectors.microsoft.errors import RemoteNotFound
from contactsync.domain.activity import ActivityKind

FOLDERS = ("inbox", "sentitems")
SELECT = (
    "subject,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,internetMessageId,"
    "conversationId"
)
PAGE = {"Prefer": "odata.maxpagesize=50"}
TEXT_BODY = {"Prefer": 'outlook.body-content-type="text"'}
WINDOW_AHEAD = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
MAX_PAGES = 100_000
_FRACTION = re.compile(r"\.(\d+)")


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(raw: Any, zone: Any = "UTC") -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    # Graph's seven fractional digits are more than fromisoformat takes.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], raw.replace("Z", "+00:00"), count=1)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if zone not in (None, "", "UTC"):
            raise ValueError("times must come in UTC (we ask for it with Prefer: outlook.timezone)")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _who(recipient: Any) -> str | None:
    if not isinstance(recipient, dict):
        return None
    address = (recipient.get("emailAddress") or {}).get("address")
    return address if isinstance(address, str) else None


class _Graph:
    def __init__(self, client: GraphClient, user: str) -> None:
        self.client = client
        self.user = user_path(user)

    def rounds(
        self, url: str, endpoint: str, headers: Mapping[str, str]
    ) -> Iterator[dict[str, Any]]:
        """The pages of one delta round from ``url``, each with its link."""
        seen: set[str] = set()
        current: str | None = url
        for _ in range(MAX_PAGES):
            if current is None:
                return
            if current in seen:
                raise TransientError("paging_loop", "Graph repeated a link")
            seen.add(current)
            response = self.client.request(
                "GET", self.client.url(current), endpoint, headers=headers
            )
            try:
                body = response.json()
            except ValueError as exc:
                raise TransientError("bad_response", "not JSON") from exc
            yield body
            link = body.get("@odata.nextLink")
            current = link if isinstance(link, str) and link else None
        raise TransientError("paging_loop", "delta pages did not end")


class OutlookMailReader:
    stream = MAIL

    def __init__(self, client: GraphClient, user: str) -> None:
        self.graph = _Graph(client, user)

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        links: dict[str, str | None] = {f: state.get(f) for f in FOLDERS}
        for folder in FOLDERS:
            start = links[folder]
            full = start is None
            try:
                yield from self._folder(folder, start or self._initial(folder, since), links, full)
            except CursorExpired:
                links[folder] = None
                yield from self._folder(folder, self._initial(folder, since), links, True)

    def _initial(self, folder: str, since: datetime) -> str:
        query = f"$select={SELECT}&$filter=receivedDateTime ge {_instant(since)}"
        return f"{self.graph.user}/mailFolders/{folder}/messages/delta?{quote(query, safe='$=&,')}"

    def _folder(
        self, folder: str, url: str, links: dict[str, str | None], full: bool
    ) -> Iterator[CapturePage]:
        for body in self.graph.rounds(url, "messages.delta", PAGE):
            items = [c for m in body.get("value") or () if (c := self._message(m))]
            link = body.get("@odata.deltaLink") or body.get("@odata.nextLink")
            links[folder] = link if isinstance(link, str) else links[folder]
            last = "@odata.deltaLink" in body
            yield CapturePage(
                items, json.dumps(links), last=last and folder == FOLDERS[-1], full=full
            )

    @staticmethod
    def _message(raw: Mapping[str, Any]) -> Captured | None:
        if "@removed" in raw or not isinstance(raw.get("id"), str):
            return None  # deleted or moved out of the folder: the activity stays
        moment = _parse(raw.get("receivedDateTime")) or _parse(raw.get("sentDateTime"))
        if moment is None:
            return None
        sender = _who(raw.get("from"))
        to = [_who(r) for r in raw.get("toRecipients") or ()]
        cc = [_who(r) for r in raw.get("ccRecipients") or ()]
        return Captured(
            remote_id=str(raw["id"]),
            kind=ActivityKind.EMAIL,
            occurred_at=moment,
            subject=str(raw.get("subject") or "")[:1000],
            participants=addresses([sender, *to, *cc]),
            sender=first_address(sender),
            thread_id=str(raw.get("conversationId") or "")[:512] or None,
            message_key=str(raw.get("internetMessageId") or "")[:998] or None,
        )

    def fetch_body(self, remote_id: str) -> str | None:
        url = f"{self.graph.user}/messages/{path_id(remote_id)}?$select=body"
        try:
            response = self.graph.client.request(
                "GET", self.graph.client.url(url), "messages.get", headers=TEXT_BODY
            )
        except RemoteNotFound:
            return None
        content = (response.json().get("body") or {}).get("content")
        return content if isinstance(content, str) else None


class OutlookCalendarReader:
    stream = CALENDAR

    def __init__(self, client: GraphClient, user: str, now: Clock) -> None:
        self.graph = _Graph(client, user)
        self.clock = now

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        link, end = state.get("link"), state.get("end")
        now = self.clock.now()
        renew = end is None or datetime.fromisoformat(end) - RENEW_BEFORE < now
        if link and not renew:
            try:
                yield from self._round(link, str(end), full=False)
                return
            except CursorExpired:
                pass
        window_end = now + WINDOW_AHEAD
        query = f"startDateTime={_instant(since)}&endDateTime={_instant(window_end)}"
        yield from self._round(
            f"{self.graph.user}/calendarView/delta?{query}", window_end.isoformat(), full=True
        )

    def _round(self, url: str, end: str, *, full: bool) -> Iterator[CapturePage]:
        headers = {"Prefer": 'odata.maxpagesize=50, outlook.timezone="UTC"'}
        for body in self.graph.rounds(url, "events.delta", headers):
            items = [c for e in body.get("value") or () if (c := self._event(e))]
            link = body.get("@odata.deltaLink") or body.get("@odata.nextLink")
            cursor = json.dumps({"link": link, "end": end}) if isinstance(link, str) else None
            yield CapturePage(items, cursor, last="@odata.deltaLink" in body, full=full)

    @staticmethod
    def _event(raw: Mapping[str, Any]) -> Captured | None:
        event_id = raw.get("id")
        if not isinstance(event_id, str):
            return None
        if "@removed" in raw or raw.get("isCancelled") is True:
            return Captured(
                event_id, ActivityKind.MEETING, datetime.fromtimestamp(0, UTC), cancelled=True
            )
        start = raw.get("start") or {}
        moment = _parse(start.get("dateTime"), start.get("timeZone"))
        if moment is None:
            return None
        end = raw.get("end") or {}
        finish = _parse(end.get("dateTime"), end.get("timeZone"))
        organizer = _who(raw.get("organizer"))
        attendees = [_who(a) for a in raw.get("attendees") or ()]
        return Captured(
            remote_id=event_id,
            kind=ActivityKind.MEETING,
            occurred_at=moment,
            subject=str(raw.get("subject") or "")[:1000],
            participants=addresses([organizer, *attendees]),
            sender=first_address(organizer),
            message_key=str(raw.get("iCalUId") or "")[:998] or None,
            duration_seconds=max(int((finish - moment).total_seconds()), 0) if finish else None,
        )

    def fetch_body(self, remote_id: str) -> str | None:
        url = f"{self.graph.user}/events/{path_id(remote_id)}?$select=body"
        try:
            response = self.graph.client.request(
                "GET", self.graph.client.url(url), "events.get", headers=TEXT_BODY
            )
        except RemoteNotFound:
            return None
        content = (response.json().get("body") or {}).get("content")
        return content if isinstance(content, str) else None


def readers(
    config: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    address: str,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: Any = None,
) -> list[OutlookMailReader | OutlookCalendarReader]:
    """Both readers of one Microsoft 365 mailbox, on one Graph client."""
    microsoft = MicrosoftConfig.from_mapping(config)
    microsoft.authority_url()
    chosen_clock = clock or SystemClock()
    if session is None:
        session = requests.Session()
        if microsoft.ca_bundle:
            session.trust_env = False
            session.verify = microsoft.ca_bundle
    stats = ConnectorStats()
    tokens = TokenSource(
        microsoft, Credentials.from_secrets(secrets), session, stats, on_secret_rotated
    )
    client = GraphClient(session, microsoft, tokens, chosen_clock, stats)
    user = microsoft.user_id or address
    return [OutlookMailReader(client, user), OutlookCalendarReader(client, user, chosen_clock)]
