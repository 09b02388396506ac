"""Change notifications: the validation handshake, limits, renewal, deliveries with
clientState, retries, expiry and lifecycle events, driven with requests as our connector will.
Deliveries go through the sandbox's WebhookDispatcher to a receiver mounted on its session."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
import requests

from contactsync_sandbox.microsoft import App
from tests.sandboxes.microsoft.helpers import (
    BASE,
    HOOKS,
    REP,
    Graph,
    Receiver,
    app_token,
    attach_receiver,
    contact_payload,
    query_of,
)

CONTACTS = f"users/{REP}/contacts"
MAX_MINUTES = 10_070


def _in(app: App, minutes: float) -> str:
    return (
        (app.clock.now() + timedelta(minutes=minutes))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    )


def subscription_payload(app: App, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{HOOKS}graph?tenant=acme",
        "lifecycleNotificationUrl": f"{HOOKS}lifecycle",
        "resource": f"/users/{REP}/contactFolders('contacts')/contacts",
        "expirationDateTime": _in(app, 3 * 24 * 60),
        "clientState": "s3cr3t-client-state",
    }
    body.update(overrides)
    return body


def _error(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_creation_validates_the_endpoint_first(app: App, api: Graph, receiver: Receiver) -> None:
    # When a subscription is created
    response = api.post("subscriptions", subscription_payload(app))
    # Then Graph first POSTed a URL-encoded validation token to both URLs, as text/plain
    assert response.status_code == 201, response.text
    validations = receiver.validations()
    assert [v.url.split("?")[0] for v in validations] == [f"{HOOKS}graph", f"{HOOKS}lifecycle"]
    assert validations[0].content_type == "text/plain; charset=utf-8"
    token = query_of(validations[0].url)["validationToken"]
    assert token.startswith("Validation: Testing client application reachability")
    assert query_of(validations[0].url)["tenant"] == "acme"  # the URL's own query is kept
    created = response.json()
    assert created["changeType"] == "created,updated,deleted"
    assert created["clientState"] == "s3cr3t-client-state"
    assert created["applicationId"] == app.directory.client_id
    assert api.get(f"subscriptions/{created['id']}").json()["id"] == created["id"]
    assert [s["id"] for s in api.get("subscriptions").json()["value"]] == [created["id"]]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            lambda r: (200, "text/plain", "not the token"),
            "Response must exactly match validationToken",
        ),
        (lambda r: (500, "text/plain", ""), "must respond with 200 OK to validation request"),
        (
            lambda r: (200, "application/json", query_of(r.url or "")["validationToken"]),
            "Response must exactly match validationToken",
        ),
    ],
)
def test_a_failed_handshake_refuses_the_subscription(
    app: App, api: Graph, behaviour: Any, message: str
) -> None:
    # Given a receiver that does not answer the handshake properly
    attach_receiver(app, behaviour)
    # When a subscription is created
    response = api.post("subscriptions", subscription_payload(app))
    # Then Graph refuses it with 400 and nothing is created
    assert response.status_code == 400
    assert _error(response)["code"] == "ValidationError"
    assert message in _error(response)["message"]
    assert api.get("subscriptions").json()["value"] == []


def test_a_receiver_that_times_out_fails_the_handshake(app: App, api: Graph) -> None:
    def too_slow(request: requests.PreparedRequest) -> tuple[int, str, str]:
        raise requests.ReadTimeout("no answer within 10 s")

    attach_receiver(app, too_slow)
    response = api.post("subscriptions", subscription_payload(app))
    assert response.status_code == 400
    assert _error(response)["message"] == "Subscription validation request timed out."


@pytest.mark.parametrize(
    ("overrides", "status", "code", "fragment"),
    [
        ({"notificationUrl": "http://hooks.example.test/graph"}, 400, "ValidationError", "HTTPS"),
        ({"clientState": "x" * 129}, 400, "ValidationError", "128 characters"),
        ({"expirationDateTime": "later"}, 400, "ValidationError", "not a valid date"),
        ({"changeType": "created,renamed"}, 400, "ValidationError", "renamed"),
        ({"resource": f"/users/{REP}/messages"}, 400, "ExtensionError", "not supported"),
    ],
)
def test_invalid_subscriptions_are_refused(
    app: App,
    api: Graph,
    receiver: Receiver,
    overrides: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    response = api.post("subscriptions", subscription_payload(app, **overrides))
    assert response.status_code == status
    assert _error(response)["code"] == code
    assert fragment in _error(response)["message"]
    assert receiver.validations() == []


def test_lifetime_is_capped_at_10070_minutes_and_renewed_by_patch(
    app: App, api: Graph, receiver: Receiver
) -> None:
    # When a subscription asks for the documented 10,080 minutes
    too_long = api.post(
        "subscriptions", subscription_payload(app, expirationDateTime=_in(app, 10_080))
    )
    # Then live Graph's cap applies
    assert too_long.status_code == 400
    assert _error(too_long) | {"innerError": None} == {
        "code": "ExtensionError",
        "message": f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.",
        "innerError": None,
    }
    # When one is created for a day and renewed to the maximum
    created = api.post(
        "subscriptions", subscription_payload(app, expirationDateTime=_in(app, 24 * 60))
    ).json()
    renewed = api.patch(
        f"subscriptions/{created['id']}", {"expirationDateTime": _in(app, MAX_MINUTES)}
    )
    # Then the new expiry is kept
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > created["expirationDateTime"]
    assert api.patch(f"subscriptions/{created['id']}", {"resource": "x"}).status_code == 400


def test_notifications_carry_client_state_for_each_change(
    app: App, api: Graph, receiver: Receiver
) -> None:
    # Given a subscription on the default folder
    subscription = api.post("subscriptions", subscription_payload(app)).json()
    # When a contact is created, updated and deleted
    contact = api.post(CONTACTS, contact_payload()).json()
    updated = api.patch(f"{CONTACTS}/{contact['id']}", {"jobTitle": "CFO"}).json()
    api.delete(f"{CONTACTS}/{contact['id']}")
    assert receiver.notifications() == []  # queued, not sent inline
    assert app.deliver_due() == 3
    # Then three notifications arrived, in Graph's shape, with the clientState
    notes = receiver.notifications()
    assert [n["changeType"] for n in notes] == ["created", "updated", "deleted"]
    user_id = app.directory.users[0].id
    assert notes[1] == {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "updated",
        "resource": f"Users/{user_id}/Contacts/{contact['id']}",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Contact",
            "@odata.id": f"Users/{user_id}/Contacts/{contact['id']}",
            "@odata.etag": updated["@odata.etag"],
            "id": contact["id"],
        },
        "clientState": "s3cr3t-client-state",
        "tenantId": app.directory.tenant_id,
    }
    assert "@odata.etag" not in notes[2]["resourceData"]
    # And the notification URL kept its query string
    assert all(query_of(r.url)["tenant"] == "acme" for r in receiver.received[2:])


def test_only_the_subscribed_folder_and_change_types_notify(
    app: App, api: Graph, receiver: Receiver
) -> None:
    folder = api.post(f"users/{REP}/contactFolders", {"displayName": "Salesforce Contacts"}).json()
    resource = f"users/{REP}/contactFolders/{folder['id']}/contacts"
    api.post("subscriptions", subscription_payload(app, resource=resource, changeType="deleted"))
    api.post(CONTACTS, contact_payload())  # another folder
    inside = api.post(f"{resource}", contact_payload()).json()  # created: not subscribed
    api.delete(f"{resource}/{inside['id']}")
    app.deliver_due()
    assert [(n["changeType"], n["resourceData"]["id"]) for n in receiver.notifications()] == [
        ("deleted", inside["id"])
    ]


def test_failed_deliveries_are_retried_then_reported_missed(app: App, api: Graph) -> None:
    # Given a receiver that passes the handshake but then fails every notification
    def flaky(request: requests.PreparedRequest) -> tuple[int, str, str]:
        token = query_of(request.url or "").get("validationToken")
        if token is not None:
            return 200, "text/plain", token
        return (
            (503, "text/plain", "") if "/graph" in (request.url or "") else (202, "text/plain", "")
        )

    receiver = attach_receiver(app, flaky)
    api.post("subscriptions", subscription_payload(app))
    api.post(CONTACTS, contact_payload())
    # When Graph retries on its schedule (about 4 hours)
    attempts = 0
    for _ in range(10):
        app.deliver_due()
        attempts = sum(
            1 for r in receiver.received if "/graph" in r.url and "validationToken" not in r.url
        )
        app.clock.advance(7200)
    # Then it tried several times, gave up and sent a "missed" lifecycle event
    assert attempts == len(app.webhooks.backoff) + 1
    lifecycle = [r for r in receiver.received if r.url == f"{HOOKS}lifecycle"]
    events = [n["lifecycleEvent"] for r in lifecycle for n in r.json()["value"]]
    assert "missed" in events


def test_expired_subscriptions_stop_delivering(app: App, api: Graph, receiver: Receiver) -> None:
    subscription = api.post(
        "subscriptions", subscription_payload(app, expirationDateTime=_in(app, 90))
    ).json()
    app.clock.advance(91 * 60)
    api = Graph(api.session, app_token(app, api.session))
    api.post(CONTACTS, contact_payload())
    app.deliver_due()
    assert receiver.notifications() == []
    assert api.get(f"subscriptions/{subscription['id']}").status_code == 404
    assert api.get("subscriptions").json()["value"] == []


def test_lifecycle_events(
    app: App, api: Graph, receiver: Receiver, session: requests.Session
) -> None:
    # Given a subscription expiring in 3 hours
    subscription = api.post(
        "subscriptions", subscription_payload(app, expirationDateTime=_in(app, 180))
    ).json()
    # When the clock comes within an hour of its expiry
    app.clock.advance(2 * 3600 + 60)
    app.deliver_due()
    # Then Graph asks for reauthorization on the lifecycle URL, once
    app.deliver_due()
    lifecycle = [
        n for r in receiver.received if r.url == f"{HOOKS}lifecycle" for n in r.json()["value"]
    ]
    assert [e["lifecycleEvent"] for e in lifecycle] == ["reauthorizationRequired"]
    assert lifecycle[0]["subscriptionId"] == subscription["id"]
    assert lifecycle[0]["clientState"] == "s3cr3t-client-state"
    # And the admin surface can raise the others; subscriptionRemoved ends the subscription
    for event in ("missed", "subscriptionRemoved"):
        queued = session.post(
            f"{BASE}_sandbox/lifecycle",
            json={"subscription_id": subscription["id"], "event": event},
        )
        assert queued.json() == {"queued": True}
    delivered = session.post(f"{BASE}_sandbox/deliver").json()
    assert delivered == {"delivered": 2, "pending": 0}
    api = Graph(session, app_token(app, session))  # the first token expired meanwhile
    assert api.get(f"subscriptions/{subscription['id']}").status_code == 404


def test_a_mailbox_holds_a_limited_number_of_subscriptions(
    app: App, api: Graph, receiver: Receiver
) -> None:
    app.configure_quotas({"subscriptions_per_mailbox": 2})
    for _ in range(2):
        assert api.post("subscriptions", subscription_payload(app)).status_code == 201
    refused = api.post("subscriptions", subscription_payload(app))
    assert refused.status_code == 403
    assert _error(refused)["code"] == "ExtensionError"
    assert "Maximum number of subscriptions has been reached" in _error(refused)["message"]
    other = api.post(
        "subscriptions", subscription_payload(app, resource="users/manager@example.com/contacts")
    )
    assert other.status_code == 201


def test_http_localhost_only_with_the_admin_setting(app: App, api: Graph) -> None:
    receiver = Receiver()
    app.webhooks.session.mount("http://127.0.0.1:9/", receiver)
    body = subscription_payload(
        app, notificationUrl="http://127.0.0.1:9/hook", lifecycleNotificationUrl=None
    )
    assert api.post("subscriptions", body).status_code == 400
    app.configure_quotas({"allow_http_localhost": True})
    assert api.post("subscriptions", body).status_code == 201
    assert len(receiver.validations()) == 1


def test_subscriptions_are_per_app_and_deleted_with_204(
    app: App, api: Graph, receiver: Receiver
) -> None:
    created = api.post("subscriptions", subscription_payload(app)).json()
    assert api.delete(f"subscriptions/{created['id']}").status_code == 204
    assert api.delete(f"subscriptions/{created['id']}").status_code == 404
    api.post(CONTACTS, contact_payload())
    app.deliver_due()
    assert receiver.notifications() == []
