"""Conformance of the Microsoft sandbox's mail and calendar delta (activity capture), through
msal and requests as the activity reader uses them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from contactsync_sandbox.microsoft import App
from contactsync_sandbox.microsoft.auth import Identity
from tests.sandboxes.microsoft.helpers import BASE, Graph, app_token, new_app, session_for

REP = "rep@example.com"
INBOX = f"users/{REP}/mailFolders/inbox/messages/delta"
SENT = f"users/{REP}/mailFolders/sentitems/messages/delta"
SELECT = "subject,from,toRecipients,ccRecipients,receivedDateTime,internetMessageId,conversationId"


@pytest.fixture
def app() -> App:
    sandbox = new_app()
    sandbox.configure_quotas({"enabled": False, "delta_empty_page_rate": 0, "delta_repeat_rate": 0})
    return sandbox


@pytest.fixture
def graph(app: App) -> Graph:
    session = session_for(app)
    return Graph(session, app_token(app, session))


def admin(app: App, body: dict[str, Any]) -> dict[str, Any]:
    answer = session_for(app).post(BASE + "_sandbox/mail", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def mail(app: App, count: int, *, days_ago: float = 1, inbound: bool = True) -> list[str]:
    now = app.clock.now()
    messages = [
        {
            "from": "zoe@acme.example" if inbound else REP,
            "to": [REP] if inbound else ["zoe@acme.example"],
            "subject": f"Order {i}",
            "body": "Prices inside",
            "date": (now - timedelta(days=days_ago, minutes=i)).isoformat(),
        }
        for i in range(count)
    ]
    return list(admin(app, {"user": REP, "messages": messages})["messages"])


def rounds(graph: Graph, url: str, **params: str) -> tuple[list[dict[str, Any]], str]:
    """One delta round: follow nextLinks to the deltaLink."""
    items: list[dict[str, Any]] = []
    answer = graph.get(url, params=params, headers={"Prefer": "odata.maxpagesize=3"})
    while True:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        answer = graph.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=3"})


def test_message_delta_is_per_folder_filtered_and_incremental(app: App, graph: Graph) -> None:
    # Given old and recent inbound mail and recent sent mail
    mail(app, 2, days_ago=400)
    recent = mail(app, 5, days_ago=2)
    sent = mail(app, 2, days_ago=1, inbound=False)
    cutoff = (app.clock.now() - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # When the inbox is read from the backfill window, three at a time
    items, link = rounds(
        graph, INBOX, **{"$select": SELECT, "$filter": f"receivedDateTime ge {cutoff}"}
    )
    # Then only the window's messages come, with the selected properties only
    assert sorted(i["id"] for i in items) == sorted(recent)
    first = items[0]
    assert set(first) - {"@odata.type", "@odata.etag"} == {"id", *SELECT.split(",")}
    assert first["from"]["emailAddress"]["address"] == "zoe@acme.example"
    # The sent items folder is its own round
    sent_items, _ = rounds(graph, SENT, **{"$select": SELECT})
    assert sorted(i["id"] for i in sent_items) == sorted(sent)
    # Next round: only what changed (a new message, a deleted one), options kept in the link
    new = mail(app, 1, days_ago=0)
    admin(app, {"user": REP, "delete": [recent[0]]})
    changes, _ = rounds(graph, link)
    assert {i["id"]: "@removed" in i for i in changes} == {new[0]: False, recent[0]: True}
    assert "body" not in changes[0] or changes[0].get("@removed")


def test_message_delta_refuses_what_graph_refuses(app: App, graph: Graph) -> None:
    bad_filter = graph.get(INBOX, params={"$filter": "subject eq 'x'"})
    assert bad_filter.status_code == 400
    unsupported = graph.get(INBOX, params={"$search": "x"})
    assert unsupported.status_code == 400
    assert graph.get(f"users/{REP}/mailFolders/nowhere/messages/delta").status_code == 404
    unknown_select = graph.get(INBOX, params={"$select": "subject,nonsense"})
    assert unknown_select.status_code == 400


def test_expired_delta_links_answer_410(app: App, graph: Graph) -> None:
    mail(app, 2)
    _, link = rounds(graph, INBOX, **{"$select": SELECT})
    app.clock.advance(8 * 86_400)
    graph.token = app_token(app, graph.session)  # the old access token expired too
    gone = graph.get(link)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "SyncStateNotFound"


def test_message_body_as_text_and_permissions(app: App, graph: Graph) -> None:
    (message_id,) = mail(app, 1)
    answer = graph.get(
        f"users/{REP}/messages/{message_id}",
        params={"$select": "body"},
        headers={"Prefer": 'outlook.body-content-type="text"'},
    )
    assert answer.status_code == 200
    assert answer.json()["body"] == {"contentType": "text", "content": "Prices inside"}
    html = graph.get(f"users/{REP}/messages/{message_id}", params={"$select": "body"}).json()
    assert html["body"]["contentType"] == "html"
    assert graph.get(f"users/{REP}/messages/AAMkAGnope").status_code == 404


def test_tokens_without_mail_permission_are_refused(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contactsync_sandbox.microsoft import auth

    monkeypatch.setattr(auth, "APP_ROLES", ("Contacts.ReadWrite",))
    session = session_for(app)
    token = app_token(app, session)
    assert "Mail.Read" not in (Identity.claims(token) or {}).get("roles", [])
    refused = Graph(session, token).get(INBOX)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"


def test_calendar_view_delta(app: App, graph: Graph) -> None:
    now = app.clock.now()

    def at(days: float) -> str:
        return (now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    made = admin(app, {"user": REP, "events": [
        {"subject": "QBR", "start": at(-3), "end": at(-2.9), "attendees": ["zoe@acme.example"],
         "organizer": "zoe@acme.example"},
        {"subject": "Demo", "start": at(-1), "end": at(-0.9), "attendees": ["jose@acme.example"]},
        {"subject": "Long ago", "start": at(-900), "end": at(-899.9), "attendees": []},
    ]})["events"]  # fmt: skip
    # The window is required on the first request
    assert graph.get(f"users/{REP}/calendarView/delta").status_code == 400
    items, link = rounds(graph, f"users/{REP}/calendarView/delta",
                         startDateTime=at(-730), endDateTime=at(365))  # fmt: skip
    assert sorted(i["id"] for i in items) == sorted(made[:2])
    qbr = next(i for i in items if i["subject"] == "QBR")
    assert qbr["organizer"]["emailAddress"]["address"] == "zoe@acme.example"
    assert qbr["isOrganizer"] is False
    assert [a["emailAddress"]["address"] for a in qbr["attendees"]] == ["zoe@acme.example"]
    assert qbr["iCalUId"]
    # Changes: a cancellation and a deletion
    admin(app, {"user": REP, "cancel": [made[0]], "delete_events": [made[1]]})
    changes, _ = rounds(graph, link)
    by_id = {i["id"]: i for i in changes}
    assert by_id[made[0]]["isCancelled"] is True
    assert "@removed" in by_id[made[1]]


def test_mail_state_round_trips(app: App, tmp_path: Any, graph: Graph) -> None:
    ids = mail(app, 3)
    _, link = rounds(graph, INBOX, **{"$select": SELECT})
    app.save(tmp_path / "ms.json")
    again = new_app()
    again.restore(tmp_path / "ms.json")
    again.configure_quotas({"enabled": False})
    session = session_for(again)
    graph_again = Graph(session, app_token(again, session))
    mail(again, 1)
    changes, _ = rounds(graph_again, link)
    assert len(changes) == 1
    assert changes[0]["id"] not in ids
    assert isinstance(requests, object)
