"""Conformance of the Google sandbox's Gmail and Calendar endpoints (activity capture), through
google-auth's AuthorizedSession (the real client) in-process, and once over real HTTPS."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials

from contactsync_sandbox import registry
from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.google import App
from contactsync_sandbox.google import gmail as gmail_module
from contactsync_sandbox.google import responses as google_responses
from contactsync_sandbox.google.scopes import (
    CALENDAR,
    CALENDAR_READONLY,
    GMAIL_INSERT,
    GMAIL_METADATA,
    GMAIL_READONLY,
)

BASE = "https://google.sandbox.test/"
GMAIL = BASE + "gmail/v1/users/me/"
EVENTS = BASE + "calendar/v3/calendars/primary/events"
USER = "rep@example.com"
DAY = 86_400


@pytest.fixture
def app() -> App:
    sandbox = registry.create("google", seed=5)
    assert isinstance(sandbox, App)
    sandbox.workspace.settings.enabled = False
    return sandbox


def session(app: App, scopes: list[str], user: str = USER) -> AuthorizedSession:
    config = app.client_config()
    transport = mount_sandbox(requests.Session(), BASE, app)
    creds = Credentials(
        token=None,
        refresh_token=config["users"][user],
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        scopes=scopes,
    )
    authorized = AuthorizedSession(creds, auth_request=GoogleAuthRequest(transport))
    return mount_sandbox(authorized, BASE, app)  # type: ignore[return-value]


def admin(app: App, body: dict[str, Any]) -> dict[str, Any]:
    answer = mount_sandbox(requests.Session(), BASE, app).post(
        BASE + "_sandbox/workspace", json=body
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def seed_mail(app: App, count: int, *, days: float = 30, user: str = USER) -> list[str]:
    partners = [f"client{i}@acme.example" for i in range(5)]
    body = {
        "user": user,
        "generate": {"count": count, "seed": 3, "days": days, "partners": partners},
    }
    return list(admin(app, body)["messages"])


def raw_message(**headers: str) -> str:
    message = EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello Zoë, here is the price list.")
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def reason(answer: requests.Response) -> str:
    return str(answer.json()["error"]["errors"][0]["reason"])


def test_the_handlers_read_the_user_the_sandbox_authenticated() -> None:
    assert gmail_module.USER_KEY == google_responses.USER_KEY
    assert gmail_module.SCOPE_KEY == google_responses.SCOPE_KEY


# ---- Gmail -------------------------------------------------------------------------------------


def test_list_pages_newest_first_and_each_message_once(app: App) -> None:
    # Given 230 messages over the last 30 days
    seed_mail(app, 230)
    gmail = session(app, [GMAIL_READONLY])
    # When listing 100 at a time
    seen, token, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"maxResults": 100}
        if token:
            params["pageToken"] = token
        answer = gmail.get(GMAIL + "messages", params=params)
        assert answer.status_code == 200
        body = answer.json()
        seen += [m["id"] for m in body["messages"]]
        pages += 1
        token = body.get("nextPageToken")
        if not token:
            break
    # Then every message comes once, newest first
    assert (len(seen), len(set(seen)), pages) == (230, 230, 3)
    dates = [
        int(gmail.get(GMAIL + f"messages/{i}", params={"format": "minimal"}).json()["internalDate"])
        for i in seen[::40]
    ]
    assert dates == sorted(dates, reverse=True)


def test_q_after_bounds_the_backfill_window(app: App) -> None:
    seed_mail(app, 60, days=60)
    gmail = session(app, [GMAIL_READONLY])
    cutoff = int(app.clock.timestamp()) - 30 * DAY
    recent = gmail.get(GMAIL + "messages", params={"q": f"after:{cutoff}", "maxResults": 500})
    everything = gmail.get(GMAIL + "messages", params={"maxResults": 500})
    assert 0 < len(recent.json()["messages"]) < len(everything.json()["messages"]) == 60
    for item in recent.json()["messages"]:
        message = gmail.get(GMAIL + f"messages/{item['id']}", params={"format": "minimal"}).json()
        assert int(message["internalDate"]) >= cutoff * 1000


def test_metadata_format_and_scope(app: App) -> None:
    (message_id,) = admin(app, {"messages": [
        {"from": "zoe@acme.example", "to": [USER], "subject": "Prices", "body": "secret prices",
         "date": "2026-10-01T09:00:00+00:00"}]})["messages"]  # fmt: skip
    gmail = session(app, [GMAIL_METADATA])
    # metadata with chosen headers: headers only, no body, no snippet under the metadata scope
    answer = gmail.get(
        GMAIL + f"messages/{message_id}",
        params=[
            ("format", "metadata"),
            ("metadataHeaders", "From"),
            ("metadataHeaders", "subject"),
        ],
    )
    assert answer.status_code == 200
    body = answer.json()
    assert {h["name"] for h in body["payload"]["headers"]} == {"From", "Subject"}
    assert "parts" not in body["payload"]
    assert "snippet" not in body
    # The metadata scope allows neither q nor the full format
    refused = gmail.get(GMAIL + f"messages/{message_id}", params={"format": "full"})
    assert refused.status_code == 403
    assert gmail.get(GMAIL + "messages", params={"q": "prices"}).status_code == 403
    # A body scope reads the full message
    full = session(app, [GMAIL_READONLY]).get(GMAIL + f"messages/{message_id}").json()
    data = full["payload"]["parts"][0]["body"]["data"]
    assert base64.urlsafe_b64decode(data + "==").decode() == "secret prices"


def test_scopes_and_delegation_are_enforced(app: App) -> None:
    contacts_only = session(app, ["https://www.googleapis.com/auth/contacts"])
    answer = contacts_only.get(GMAIL + "messages")
    assert answer.status_code == 403
    assert reason(answer) == "insufficientPermissions"
    other = session(app, [GMAIL_READONLY]).get(BASE + "gmail/v1/users/manager@example.com/messages")
    assert other.status_code == 403
    assert "Delegation denied" in other.json()["error"]["message"]
    assert (
        session(app, [GMAIL_READONLY]).get(BASE + f"gmail/v1/users/{USER}/profile").status_code
        == 200
    )


def test_insert_threads_replies_and_backdates_by_the_date_header(app: App) -> None:
    client = session(app, [GMAIL_INSERT])
    first = client.post(
        GMAIL + "messages",
        params={"internalDateSource": "dateHeader"},
        json={"raw": raw_message(From="zoe@acme.example", To=USER, Subject="Order",
                                 Message_ID="<a1@acme.example>",
                                 Date="Thu, 01 Oct 2026 09:00:00 +0000"), "labelIds": ["INBOX"]},
    )  # fmt: skip
    assert first.status_code == 200, first.text
    assert first.json()["internalDate"] == str(1_790_845_200_000)
    reply = client.post(
        GMAIL + "messages",
        json={"raw": raw_message(From=USER, To="zoe@acme.example", Subject="Re: Order",
                                 In_Reply_To="<a1@acme.example>"), "labelIds": ["SENT"]},
    )  # fmt: skip
    assert reply.json()["threadId"] == first.json()["threadId"]
    # The reader's scope cannot insert
    refused = session(app, [GMAIL_READONLY]).post(
        GMAIL + "messages", json={"raw": raw_message(From=USER)}
    )
    assert refused.status_code == 403


def test_history_lists_changes_and_expires(app: App) -> None:
    gmail = session(app, [GMAIL_READONLY])
    start = gmail.get(GMAIL + "profile").json()["historyId"]
    added = seed_mail(app, 7)
    # The changes since the profile's history id, paged
    query = {"startHistoryId": start, "maxResults": 5, "historyTypes": "messageAdded"}
    first = gmail.get(GMAIL + "history", params=query).json()
    second = gmail.get(GMAIL + "history", params={**query, "pageToken": first["nextPageToken"]})
    second = second.json()
    found = [h["messagesAdded"][0]["message"]["id"] for h in first["history"] + second["history"]]
    assert found == added
    assert "nextPageToken" not in second
    assert int(second["historyId"]) >= int(start) + 7
    # Nothing new: no history, the current id
    latest = second["historyId"]
    idle = gmail.get(GMAIL + "history", params={"startHistoryId": latest}).json()
    assert "history" not in idle
    # A week and a day later, with new mail since, the old start id is too old: 404
    app.clock.advance(8 * DAY)
    seed_mail(app, 1)
    expired = gmail.get(GMAIL + "history", params={"startHistoryId": start})
    assert expired.status_code == 404
    assert reason(expired) == "notFound"
    missing = gmail.get(GMAIL + "history")
    assert missing.status_code == 400


def test_rate_limit_is_per_user_per_minute(app: App) -> None:
    seed_mail(app, 3)
    admin(app, {"settings": {"enabled": True, "gmail_units_per_minute": 10}})
    gmail = session(app, [GMAIL_READONLY])
    gmail.get(GMAIL + "messages")  # 5 units
    gmail.get(GMAIL + "messages")  # 10 units
    throttled = gmail.get(GMAIL + "messages")
    assert throttled.status_code == 429
    assert reason(throttled) == "rateLimitExceeded"
    assert int(throttled.headers["Retry-After"]) >= 1
    app.clock.advance(60)
    assert gmail.get(GMAIL + "messages").status_code == 200
    # Another user has their own minute
    assert (
        session(app, [GMAIL_READONLY], "manager@example.com")
        .get(BASE + "gmail/v1/users/me/messages")
        .status_code
        == 200
    )


def test_injected_faults_use_the_apis_own_shapes(app: App) -> None:
    rules = {"rules": [{"kind": "throttle", "path": "/gmail/*", "times": 1, "retry_after": 7}]}
    assert (
        mount_sandbox(requests.Session(), BASE, app).post(BASE + "_sandbox/faults", json=rules).ok
    )
    throttled = session(app, [GMAIL_READONLY]).get(GMAIL + "messages")
    assert (throttled.status_code, reason(throttled), throttled.headers["Retry-After"]) == (
        429,
        "rateLimitExceeded",
        "7",
    )


def test_state_round_trips(app: App, tmp_path: Path) -> None:
    ids = seed_mail(app, 4)
    admin(
        app, {"generate_events": {"count": 3, "seed": 1, "days": 10, "partners": ["a@b.example"]}}
    )
    app.save(tmp_path / "state.json")
    again = registry.create("google", seed=5)
    assert isinstance(again, App)
    again.restore(tmp_path / "state.json")
    gmail = session(again, [GMAIL_READONLY])
    listed = gmail.get(GMAIL + "messages").json()["messages"]
    assert sorted(m["id"] for m in listed) == sorted(ids)
    assert len(session(again, [CALENDAR_READONLY]).get(EVENTS).json()["items"]) == 3


# ---- Calendar ----------------------------------------------------------------------------------


def _event(summary: str, start: str, guests: list[str]) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": start},
        "end": {"dateTime": start.replace(":00:00", ":30:00")},
        "attendees": [{"email": g} for g in guests],
    }


def test_calendar_full_sync_pages_then_sync_token_brings_changes(app: App) -> None:
    writer = session(app, [CALENDAR])
    made = [
        writer.post(
            EVENTS, json=_event(f"Meeting {i}", f"2026-10-0{i + 1}T10:00:00Z", ["zoe@acme.example"])
        ).json()
        for i in range(5)
    ]
    reader = session(app, [CALENDAR_READONLY])
    # Full sync from a time bound, two at a time: nextSyncToken on the last page only
    items, token, sync = [], None, None
    while True:
        params: dict[str, Any] = {
            "timeMin": "2026-10-02T00:00:00Z",
            "maxResults": 2,
            "singleEvents": "true",
        }
        if token:
            params["pageToken"] = token
        body = reader.get(EVENTS, params=params).json()
        items += body["items"]
        token = body.get("nextPageToken")
        if token is None:
            sync = body["nextSyncToken"]
            break
        assert "nextSyncToken" not in body
    assert [i["summary"] for i in items] == [f"Meeting {i}" for i in range(1, 5)]
    assert items[0]["attendees"][0]["email"] == "zoe@acme.example"
    assert items[0]["organizer"] == {"email": USER, "self": True}
    # Changes: one new, one cancelled
    new = writer.post(EVENTS, json=_event("Renewal", "2026-11-01T10:00:00Z", [])).json()
    assert writer.delete(f"{EVENTS}/{made[2]['id']}").status_code == 204
    changes = reader.get(EVENTS, params={"syncToken": sync}).json()
    assert [(i["id"], i["status"]) for i in changes["items"]] == [
        (new["id"], "confirmed"),
        (made[2]["id"], "cancelled"),
    ]
    # Nothing since: empty, a fresh token
    assert reader.get(EVENTS, params={"syncToken": changes["nextSyncToken"]}).json()["items"] == []
    assert writer.delete(f"{EVENTS}/{made[2]['id']}").status_code == 410


def test_calendar_sync_token_rules(app: App) -> None:
    reader = session(app, [CALENDAR_READONLY])
    sync = reader.get(EVENTS).json()["nextSyncToken"]
    restricted = reader.get(EVENTS, params={"syncToken": sync, "timeMin": "2026-01-01T00:00:00Z"})
    assert restricted.status_code == 400
    unordered = reader.get(EVENTS, params={"orderBy": "startTime"})
    assert unordered.status_code == 400
    assert reader.get(EVENTS, params={"syncToken": "forged"}).status_code == 400
    # Tokens expire (and an admin can invalidate them all, as an ACL change does)
    app.clock.advance(31 * DAY)
    expired = reader.get(EVENTS, params={"syncToken": sync})
    assert (expired.status_code, reason(expired)) == (410, "fullSyncRequired")
    fresh = reader.get(EVENTS).json()["nextSyncToken"]
    admin(app, {"invalidate_calendar_tokens": True})
    assert reader.get(EVENTS, params={"syncToken": fresh}).status_code == 410
    # Writing needs a write scope
    assert reader.post(EVENTS, json=_event("x", "2026-10-01T10:00:00Z", [])).status_code == 403


def test_calendar_pages_do_not_skip_events_changed_meanwhile(app: App) -> None:
    writer = session(app, [CALENDAR])
    made = [
        writer.post(EVENTS, json=_event(f"M{i}", f"2026-10-0{i + 1}T10:00:00Z", [])).json()
        for i in range(4)
    ]
    reader = session(app, [CALENDAR_READONLY])
    first = reader.get(EVENTS, params={"maxResults": 2}).json()
    writer.delete(f"{EVENTS}/{made[0]['id']}")  # changed after the first page
    second = reader.get(
        EVENTS, params={"maxResults": 2, "pageToken": first["nextPageToken"]}
    ).json()
    assert [i["summary"] for i in first["items"] + second["items"]] == ["M0", "M1", "M2", "M3"]
    later = reader.get(EVENTS, params={"syncToken": second["nextSyncToken"]}).json()
    assert [(i["id"], i["status"]) for i in later["items"]] == [(made[0]["id"], "cancelled")]


def test_gmail_over_real_https(tmp_path: Path) -> None:
    # Given the sandbox on 127.0.0.1 behind a throw-away CA, trusted by the sessions
    authority = CertificateAuthority.create(tmp_path)
    sandbox = registry.create("google", seed=5)
    assert isinstance(sandbox, App)
    server = HTTPSSandboxServer(sandbox, authority, timeout_seconds=0.5).start()
    try:
        config = sandbox.client_config()
        transport = requests.Session()
        transport.trust_env = False
        transport.verify = str(authority.ca_path)
        creds = Credentials(
            token=None,
            refresh_token=config["refresh_token"],
            token_uri=config["token_uri"],
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            scopes=[GMAIL_READONLY],
        )
        gmail = AuthorizedSession(creds, auth_request=GoogleAuthRequest(transport))
        gmail.trust_env = False
        gmail.verify = str(authority.ca_path)
        # When the reader's calls go over TLS
        profile = gmail.get(f"{server.base_url}gmail/v1/users/me/profile")
        # Then they are answered as in-process
        assert profile.status_code == 200
        assert profile.json()["emailAddress"] == USER
        assert config["gmail_api_base"] == server.base_url
    finally:
        server.stop()
