"""Aircall sandbox webhooks: registration through ``/v1/webhooks`` and deliveries to an
in-process receiver, retried and given up on the virtual clock."""

from __future__ import annotations

import re
from typing import Any

import pytest

from contactsync_sandbox.aircall import App
from contactsync_sandbox.aircall.webhooks import ALL_EVENTS, DEFAULT_BACKOFF
from tests.sandboxes.aircall.helpers import (
    HOOKS,
    Aircall,
    Receiver,
    client,
    new_app,
    receiver,
)

CONTACT_EVENTS = ["contact.created", "contact.updated", "contact.deleted"]


@pytest.fixture
def app() -> App:
    return new_app(enabled=False)


@pytest.fixture
def api(app: App) -> Aircall:
    return client(app)


@pytest.fixture
def hook(app: App) -> Receiver:
    return receiver(app)


def _deliver(api: Aircall) -> dict[str, Any]:
    response = api.admin("webhooks/deliver")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


# ---- registration --------------------------------------------------------------------------


def test_create_webhook_returns_its_token(api: Aircall, app: App) -> None:
    # When
    response = api.post(
        "/webhooks",
        json={"url": HOOKS + "a", "custom_name": "contactsync", "events": CONTACT_EVENTS},
    )
    # Then
    assert response.status_code == 201
    webhook = response.json()["webhook"]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        webhook["webhook_id"],
    )
    assert webhook == {
        "webhook_id": webhook["webhook_id"],
        "direct_link": f"{api.config['api_base']}/webhooks/{webhook['webhook_id']}",
        "created_at": webhook["created_at"],
        "url": HOOKS + "a",
        "active": True,
        "events": CONTACT_EVENTS,
        "token": webhook["token"],
        "custom_name": "contactsync",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", webhook["created_at"])
    assert len(webhook["token"]) >= 16
    assert api.get(f"/webhooks/{webhook['webhook_id']}").json() == {"webhook": webhook}


def test_no_events_means_every_event(api: Aircall) -> None:
    webhook = api.create_webhook()
    assert webhook["events"] == list(ALL_EVENTS)
    assert {"contact.created", "call.ended"} <= set(webhook["events"])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"custom_name": "no url"}, "Missing url"),
        ({"url": "http://hooks.example.test/plain"}, "Invalid url"),
        ({"url": "not a url"}, "Invalid url"),
        ({"url": HOOKS, "events": ["contact.exploded"]}, "Invalid events"),
        ({"url": HOOKS, "events": "contact.created"}, "Invalid events"),
    ],
)
def test_invalid_webhooks_are_400(api: Aircall, body: dict[str, Any], error: str) -> None:
    response = api.post("/webhooks", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_plain_http_receivers_can_be_allowed_for_local_demos(api: Aircall) -> None:
    api.admin("faults", {"rules": [], "quotas": {"webhook_require_https": False}})
    assert api.post("/webhooks", json={"url": "http://127.0.0.1:8080/hooks"}).status_code == 201


def test_at_most_100_webhooks_per_company(api: Aircall) -> None:
    for i in range(100):
        api.create_webhook(custom_name=f"hook {i}")
    refused = api.post("/webhooks", json={"url": HOOKS})
    assert refused.status_code == 400
    assert refused.json()["error"] == "Webhook limit reached"
    listed = api.get("/webhooks", params={"per_page": 50, "page": 2}).json()
    assert listed["meta"]["total"] == 100
    assert listed["webhooks"][0]["custom_name"] == "hook 50"


def test_put_without_events_resubscribes_to_everything(api: Aircall) -> None:
    # Given a webhook on contact events only
    webhook = api.create_webhook(events=CONTACT_EVENTS)
    path = f"/webhooks/{webhook['webhook_id']}"
    # When it is updated without events
    renamed = api.put(path, json={"custom_name": "renamed"}).json()["webhook"]
    # Then Aircall subscribes it to every event
    assert renamed["custom_name"] == "renamed"
    assert renamed["events"] == list(ALL_EVENTS)
    # events_action adds to or removes from the list instead
    api.put(path, json={"events": CONTACT_EVENTS})
    added = api.put(path, params={"events_action": "add"}, json={"events": ["call.ended"]})
    assert added.json()["webhook"]["events"] == [*CONTACT_EVENTS, "call.ended"]
    removed = api.put(path, params={"events_action": "remove"}, json={"events": ["call.ended"]})
    assert removed.json()["webhook"]["events"] == CONTACT_EVENTS
    assert api.put(path, params={"events_action": "swap"}, json={}).status_code == 400


def test_delete_webhook(api: Aircall) -> None:
    webhook = api.create_webhook()
    path = f"/webhooks/{webhook['webhook_id']}"
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404


def test_oauth_apps_only_see_their_own_webhooks(app: App, api: Aircall) -> None:
    # Given a webhook made with the company's API key, and an installed partner app
    mine = api.create_webhook()
    code = api.admin("oauth/authorize", {"redirect_uri": "https://app.example.test/cb"}).json()
    oauth = api.config["oauth"]
    token = client(app, auth=None).session.post(
        oauth["token_url"],
        data={
            "grant_type": "authorization_code",
            "code": code["code"],
            "redirect_uri": "https://app.example.test/cb",
            "client_id": oauth["client_id"],
            "client_secret": oauth["client_secret"],
        },
    )
    partner = client(app, auth=f"Bearer {token.json()['access_token']}")
    # When the partner app creates its own
    theirs = partner.create_webhook()
    # Then neither sees the other's
    assert [w["webhook_id"] for w in partner.get("/webhooks").json()["webhooks"]] == [
        theirs["webhook_id"]
    ]
    assert partner.get(f"/webhooks/{mine['webhook_id']}").status_code == 404
    assert [w["webhook_id"] for w in api.get("/webhooks").json()["webhooks"]] == [
        mine["webhook_id"]
    ]


# ---- deliveries ----------------------------------------------------------------------------


def test_contact_events_carry_the_webhook_token(api: Aircall, app: App, hook: Receiver) -> None:
    # Given
    webhook = api.create_webhook(events=CONTACT_EVENTS)
    # When a contact is created and updated
    contact = api.create_contact()
    api.post(f"/contacts/{contact['id']}", json={"first_name": "Renée"})
    # Then nothing is sent until delivery runs
    assert hook.received == []
    assert _deliver(api)["acknowledged"] == 2
    created, updated = hook.received
    assert set(created) == {"resource", "event", "timestamp", "token", "data"}
    assert (created["resource"], created["event"]) == ("contact", "contact.created")
    assert created["token"] == webhook["token"]
    assert created["timestamp"] == int(app.clock.timestamp())
    assert created["data"]["id"] == contact["id"]
    # contact events spell their timestamps as UTC strings
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["data"]["created_at"])
    assert created["data"]["phone_numbers"] == contact["phone_numbers"]
    assert (updated["event"], updated["data"]["first_name"]) == ("contact.updated", "Renée")


def test_detail_changes_are_contact_updates(api: Aircall, hook: Receiver) -> None:
    api.create_webhook(events=["contact.updated"])
    contact = api.create_contact()
    api.post(f"/contacts/{contact['id']}/email_details", json={"value": "new@example.com"})
    _deliver(api)
    assert hook.events() == ["contact.updated"]
    assert hook.received[0]["data"]["emails"][-1]["value"] == "new@example.com"


def test_contact_deleted_carries_the_last_snapshot_emptied(api: Aircall, hook: Receiver) -> None:
    # Given
    api.create_webhook(events=["contact.deleted"])
    contact = api.create_contact()
    # When
    api.delete(f"/contacts/{contact['id']}")
    _deliver(api)
    # Then
    (deleted,) = hook.received
    assert deleted["event"] == "contact.deleted"
    data = deleted["data"]
    assert data["id"] == contact["id"]
    assert (data["first_name"], data["last_name"]) == (contact["first_name"], contact["last_name"])
    assert data["emails"] == []
    assert data["phone_numbers"] == []


def test_only_subscribed_events_of_active_webhooks_are_sent(api: Aircall, hook: Receiver) -> None:
    api.create_webhook(events=["contact.deleted"])
    api.create_contact()
    assert _deliver(api) == {"acknowledged": 0, "pending": 0}


def test_failures_are_retried_then_the_webhook_is_deactivated(api: Aircall, hook: Receiver) -> None:
    # Given a receiver that keeps failing
    webhook = api.create_webhook(events=CONTACT_EVENTS)
    path = f"/webhooks/{webhook['webhook_id']}"
    hook.status = 500
    api.create_contact()
    # When Aircall retries on its schedule
    _deliver(api)
    for gap in DEFAULT_BACKOFF[:9]:
        assert api.get(path).json()["webhook"]["active"] is True
        api.advance(gap)
        _deliver(api)
    # Then after ten failed attempts in a row the webhook is deactivated
    assert hook.attempts == 10
    assert api.get(path).json()["webhook"]["active"] is False
    # and new events are not sent to it, while the failed one is still retried
    api.create_contact()
    api.advance(DEFAULT_BACKOFF[9])
    _deliver(api)
    assert hook.attempts == 11
    # When the receiver recovers, the next retry succeeds and re-enables the webhook
    hook.status = 200
    api.advance(DEFAULT_BACKOFF[10])
    _deliver(api)
    assert hook.attempts == 12
    assert hook.events() == ["contact.created"]
    assert api.get(path).json()["webhook"]["active"] is True


def test_an_admin_reactivates_a_webhook_with_put(api: Aircall, hook: Receiver) -> None:
    api.admin("faults", {"rules": [], "quotas": {"webhook_failures_before_deactivation": 1}})
    webhook = api.create_webhook(events=CONTACT_EVENTS)
    path = f"/webhooks/{webhook['webhook_id']}"
    hook.status = 503
    api.create_contact()
    _deliver(api)
    assert api.get(path).json()["webhook"]["active"] is False
    # When re-enabled (events restated, or PUT would subscribe it to everything)
    enabled = api.put(path, json={"active": True, "events": CONTACT_EVENTS})
    # Then
    assert enabled.json()["webhook"]["active"] is True
    assert enabled.json()["webhook"]["events"] == CONTACT_EVENTS
    hook.status = 200
    api.create_contact()
    _deliver(api)
    assert hook.events() == ["contact.created"]


def test_deliveries_can_come_twice(api: Aircall, hook: Receiver) -> None:
    api.admin("faults", {"rules": [], "quotas": {"webhook_duplicate_rate": 1.0}})
    api.create_webhook(events=["contact.created"])
    ids = [api.create_contact()["id"] for _ in range(3)]
    api.advance(5)
    _deliver(api)
    received = [body["data"]["id"] for body in hook.received]
    assert sorted(received) == sorted(ids * 2)


def test_deliveries_can_come_out_of_order(api: Aircall, hook: Receiver) -> None:
    api.admin("faults", {"rules": [], "quotas": {"webhook_reorder_window_seconds": 60}})
    api.create_webhook(events=["contact.created"])
    ids = [api.create_contact()["id"] for _ in range(8)]
    api.advance(60)
    _deliver(api)
    received = [body["data"]["id"] for body in hook.received]
    assert sorted(received) == ids
    assert received != ids  # the seeded shuffle is the same at every run


def test_call_events_and_call_ended_later(api: Aircall, hook: Receiver) -> None:
    # Given
    webhook = api.create_webhook(events=["call.created", "call.ended"])
    # When a call is seeded live
    seeded = api.admin("seed", {"count": 3, "calls": 1, "emit_events": True}).json()
    _deliver(api)
    # Then call.created comes at once, call.ended about 30 seconds later
    assert hook.events() == ["call.created"]
    assert hook.received[0]["resource"] == "call"
    assert hook.received[0]["data"]["id"] == seeded["call_ids"][0]
    assert hook.received[0]["token"] == webhook["token"]
    api.advance(29)
    _deliver(api)
    assert hook.events() == ["call.created"]
    api.advance(1)
    _deliver(api)
    assert hook.events() == ["call.created", "call.ended"]
