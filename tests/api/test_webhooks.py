"""Webhooks, driven by the sandboxes' real deliveries (Graph notifications after the validation
handshake and lifecycle events, Aircall deliveries with their token, Salesforce outbound SOAP
messages), plus forged, stale, replayed, oversized and malformed bodies: 4xx and no state
change. A webhook only queues a pull; duplicates and replays queue nothing more."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contactsync.activity import reader_factory, register_call_webhook
from contactsync.api.queue import PullAction, QueuedPull, WebhookReceipt
from contactsync.api.routes.accounts import ensure_webhook_config
from contactsync.api.wsgi import WsgiTransport
from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.activity import Activity, ActivityKind
from contactsync_sandbox import registry
from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.salesforce import SalesforceSandbox
from tests.api.conftest import AIRCALL, API, Env
from tests.sandboxes.microsoft.helpers import Graph, contact_payload, graph

SF = "https://salesforce.sandbox.test/"


def state(env: Env) -> tuple[int, int, int]:
    """What a webhook can change: receipts, queued markers, queued messages."""
    receipts = sum(1 for _ in env.store.scan(WebhookReceipt, env.org.id))
    markers = sum(1 for _ in env.store.scan(QueuedPull, env.org.id))
    return receipts, markers, len(env.queue)


def unchanged(env: Env, call: Callable[[], Any]) -> Any:
    before = state(env)
    result = call()
    assert state(env) == before
    return result


# ---- Microsoft Graph ------------------------------------------------------------------------


@pytest.fixture
def mailbox(env: Env) -> ConnectedAccount:
    account, _ = Setup(env.store, env.secrets).connect(
        env.org.id, env.rep, Provider.MICROSOFT, "rep@example.com", {}, {"refresh_token": "rt"}
    )
    return account


def url(env: Env, account: ConnectedAccount, suffix: str = "") -> str:
    return f"/webhooks/{account.provider.value}/{env.org.id}/{account.id}{suffix}"


def subscribe(env: Env, account: ConnectedAccount) -> tuple[Graph, dict[str, Any]]:
    api = graph(env.microsoft, env.session)
    expires = env.microsoft.clock.now() + timedelta(days=2)
    answer = api.post(
        "/subscriptions",
        {
            "changeType": "created,updated,deleted",
            "notificationUrl": API + url(env, account),
            "lifecycleNotificationUrl": API + url(env, account, "/lifecycle"),
            "resource": "/users/rep@example.com/contacts",
            "expirationDateTime": expires.isoformat().replace("+00:00", "Z"),
            "clientState": env.ctx.graph_client_state(env.org.id, account.id),
        },
    )
    assert answer.status_code == 201, answer.text
    return api, answer.json()


def test_graph_validation_handshake_and_notifications(env: Env, mailbox: ConnectedAccount) -> None:
    # Given a Graph subscription, created after our endpoint answered the validation handshake
    api, subscription = subscribe(env, mailbox)
    assert state(env) == (0, 0, 0)
    # When a contact is created and updated in the mailbox and Graph delivers
    created = api.post("/users/rep@example.com/contacts", contact_payload())
    api.patch(f"/users/rep@example.com/contacts/{created.json()['id']}", {"jobTitle": "VP"})
    assert env.microsoft.deliver_due() == 2
    # Then one pull is queued for that mailbox (the second notification coalesces)
    requests = env.queue.take_all()
    assert [(r.account_id, r.action) for r in requests] == [(mailbox.id, PullAction.PULL)]
    assert subscription["clientState"] is not None


def test_graph_validation_answers_text_plain(env: Env, mailbox: ConnectedAccount) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    answer = env.anonymous.call("POST", url(env, mailbox), params={"validationToken": token})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == token


def test_graph_lifecycle_events(env: Env, mailbox: ConnectedAccount) -> None:
    api, subscription = subscribe(env, mailbox)
    for event in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
        assert api.session.post(
            env.microsoft.client_config()["admin"] + "lifecycle",
            json={"subscription_id": subscription["id"], "event": event},
        ).ok
        if event == "subscriptionRemoved":
            break
    env.microsoft.deliver_due()
    actions = sorted(r.action.value for r in env.queue.take_all())
    assert actions == ["reauthorize", "resync"]


def _note(env: Env, account: ConnectedAccount, **overrides: Any) -> dict[str, Any]:
    note = {
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "changeType": "updated",
        "resource": "Users/rep/Contacts/AAA",
        "resourceData": {"id": "AAA", "@odata.etag": 'W/"1"'},
        "clientState": env.ctx.graph_client_state(env.org.id, account.id),
        "tenantId": "t",
    }
    note.update(overrides)
    return note


def test_graph_replays_and_duplicates_have_no_effect(env: Env, mailbox: ConnectedAccount) -> None:
    body = {"value": [_note(env, mailbox)]}
    first = env.anonymous.post(url(env, mailbox), json=body)
    assert first.status_code == 202
    assert first.json()["outcome"] == "accepted"
    after_first = state(env)
    replay = unchanged(env, lambda: env.anonymous.post(url(env, mailbox), json=body))
    assert replay.status_code == 202
    assert replay.json()["outcome"] == "duplicate"
    assert after_first[2] == 1


def test_graph_forged_stale_malformed_and_oversized(env: Env, mailbox: ConnectedAccount) -> None:
    path = url(env, mailbox)
    forged = unchanged(
        env,
        lambda: env.anonymous.post(
            path, json={"value": [_note(env, mailbox, clientState="guess")]}
        ),
    )
    assert forged.status_code == 401
    other_account = unchanged(
        env,
        lambda: env.anonymous.post(
            path,
            json={
                "value": [
                    _note(
                        env,
                        mailbox,
                        clientState=env.ctx.graph_client_state(env.org.id, "acc-other"),
                    )
                ]
            },
        ),
    )
    assert other_account.status_code == 401
    stale = unchanged(
        env,
        lambda: env.anonymous.post(
            path,
            json={
                "value": [
                    _note(env, mailbox, subscriptionExpirationDateTime="2020-01-01T00:00:00Z")
                ]
            },
        ),
    )
    assert stale.status_code == 401
    for bad in (b"{not json", b"[]", b'{"value": []}', b'{"value": [{"no": "id"}]}'):
        answer = unchanged(
            env,
            lambda bad=bad: env.anonymous.call(
                "POST", path, data=bad, headers={"Content-Type": "application/json"}
            ),
        )
        assert answer.status_code == 400, bad
        assert answer.headers["Content-Type"] == "application/problem+json"
    huge = {"value": [_note(env, mailbox, resource="x" * 2_000_000)]}
    assert unchanged(env, lambda: env.anonymous.post(path, json=huge)).status_code == 413
    long_token = unchanged(
        env, lambda: env.anonymous.call("POST", path, params={"validationToken": "x" * 2000})
    )
    assert long_token.status_code == 422


def test_graph_unknown_deleted_and_disabled_accounts(env: Env, mailbox: ConnectedAccount) -> None:
    body = {"value": [_note(env, mailbox)]}
    assert (
        unchanged(
            env, lambda: env.anonymous.post(f"/webhooks/microsoft/{env.org.id}/acc-nope", json=body)
        ).status_code
        == 404
    )
    assert (
        unchanged(
            env,
            lambda: env.anonymous.post(
                f"/webhooks/microsoft/{env.other_org.id}/{mailbox.id}", json=body
            ),
        ).status_code
        == 404
    )
    assert (
        unchanged(
            env,
            lambda: env.anonymous.post(f"/webhooks/aircall/{env.org.id}/{mailbox.id}", json=body),
        ).status_code
        == 404
    )
    stored = env.store.get(ConnectedAccount, env.org.id, mailbox.id)
    env.store.update(stored.model_copy(update={"status": AccountStatus.DISABLED}))
    ignored = unchanged(env, lambda: env.anonymous.post(url(env, mailbox), json=body))
    assert (ignored.status_code, ignored.json()["outcome"]) == (202, "ignored")


def test_a_queue_failure_forgets_the_delivery_so_the_retry_counts(
    env: Env, mailbox: ConnectedAccount
) -> None:
    body = {"value": [_note(env, mailbox)]}

    def broken(request: Any) -> None:
        raise ConnectionError("queue down")

    real = env.queue.send
    env.queue.send = broken  # type: ignore[method-assign]
    failed = unchanged(env, lambda: env.anonymous.post(url(env, mailbox), json=body))
    assert failed.status_code == 503
    env.queue.send = real  # type: ignore[method-assign]
    assert env.anonymous.post(url(env, mailbox), json=body).json()["outcome"] == "accepted"
    assert len(env.queue) == 1


# ---- Aircall --------------------------------------------------------------------------------


def connect_phones(env: Env) -> tuple[ConnectedAccount, dict[str, Any]]:
    """The admin connects the company's Aircall with its API key (no webhook registered)."""
    config = env.aircall.client_config()
    account, _ = Setup(env.store, env.secrets).connect(
        env.org.id,
        env.admin,
        Provider.AIRCALL,
        "DM phones",
        {"api_base": config["api_base"]},
        {"api_id": config["api_id"], "api_token": config["api_token"]},
    )
    return account, config


@pytest.fixture
def phones(env: Env) -> tuple[ConnectedAccount, dict[str, Any]]:
    account, config = connect_phones(env)
    auth = (config["api_id"], config["api_token"])
    hook = env.session.post(
        config["api_base"] + "/webhooks",
        auth=auth,
        json={
            "url": API + url(env, account),
            "custom_name": "contactsync",
            "events": ["contact.created", "contact.updated", "contact.deleted"],
        },
    ).json()["webhook"]
    ref = account.secret_ref or ""
    env.secrets.put(
        ref,
        {**env.secrets.get(ref), "webhook_id": hook["webhook_id"], "webhook_token": hook["token"]},
    )
    return account, config


def _aircall_contact(env: Env, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    auth = (config["api_id"], config["api_token"])
    body = {
        "first_name": "Stanley",
        "last_name": "Hudson",
        "phone_numbers": [{"label": "work", "value": "+15705550111"}],
        **extra,
    }
    created = env.session.post(config["api_base"] + "/contacts", auth=auth, json=body)
    assert created.status_code in (200, 201), created.text
    contact: dict[str, Any] = created.json()["contact"]
    return contact


def test_aircall_deliveries_queue_one_pull(
    env: Env, phones: tuple[ConnectedAccount, dict[str, Any]]
) -> None:
    account, config = phones
    env.aircall.configure_quotas({"webhook_duplicate_rate": 1.0})  # every event twice
    _aircall_contact(env, config)
    env.aircall.clock.advance(10)
    assert env.aircall.deliver_webhooks() == 2
    requests = env.queue.take_all()
    assert [(r.account_id, r.action) for r in requests] == [(account.id, PullAction.PULL)]
    assert sum(1 for _ in env.store.scan(WebhookReceipt, env.org.id)) == 1  # the copy: a duplicate


def _delivery(token: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "resource": "contact",
        "event": "contact.updated",
        "timestamp": int(datetime.now(UTC).timestamp()),
        "token": token,
        "data": {
            "id": 42,
            "first_name": "Stanley",
            "last_name": "Hudson",
            "updated_at": 1,
            "phone_numbers": [],
            "emails": [],
        },
    }
    body.update(overrides)
    return body


def test_aircall_forged_stale_replayed_malformed_oversized(
    env: Env, phones: tuple[ConnectedAccount, dict[str, Any]]
) -> None:
    account, _ = phones
    path = url(env, account)
    token = env.secrets.get(account.secret_ref or "")["webhook_token"]
    assert (
        unchanged(env, lambda: env.anonymous.post(path, json=_delivery("forged"))).status_code
        == 401
    )
    old = int((datetime.now(UTC) - timedelta(days=3)).timestamp())
    assert (
        unchanged(
            env, lambda: env.anonymous.post(path, json=_delivery(token, timestamp=old))
        ).status_code
        == 400
    )
    future = int((datetime.now(UTC) + timedelta(days=3)).timestamp())
    assert (
        unchanged(
            env, lambda: env.anonymous.post(path, json=_delivery(token, timestamp=future))
        ).status_code
        == 400
    )
    for bad in (b"nope", b"[]", json.dumps({"event": "contact.updated", "token": token}).encode()):
        answer = unchanged(
            env,
            lambda bad=bad: env.anonymous.call(
                "POST", path, data=bad, headers={"Content-Type": "application/json"}
            ),
        )
        assert answer.status_code == 400
    big = _delivery(token, data={"id": 1, "information": "x" * 2_000_000})
    assert unchanged(env, lambda: env.anonymous.post(path, json=big)).status_code == 413
    good = _delivery(token)
    assert env.anonymous.post(path, json=good).json()["outcome"] == "accepted"
    replay = unchanged(env, lambda: env.anonymous.post(path, json=good))
    assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    calls = unchanged(
        env,
        lambda: env.anonymous.post(
            path, json=_delivery(token, resource="call", event="call.ended", data={"id": 7})
        ),
    )
    assert calls.json()["outcome"] == "ignored"


def test_aircall_iso_timestamps_and_a_rotated_token(
    env: Env, phones: tuple[ConnectedAccount, dict[str, Any]]
) -> None:
    account, _ = phones
    path = url(env, account)
    old_token = env.secrets.get(account.secret_ref or "")["webhook_token"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert env.anonymous.post(path, json=_delivery(old_token, timestamp=now)).status_code == 200
    # The connector registered the webhook again: a new token, read afresh despite the cache
    ref = account.secret_ref or ""
    env.secrets.put(ref, {**env.secrets.get(ref), "webhook_token": "n" * 32})
    assert env.anonymous.post(path, json=_delivery("n" * 32, timestamp=now)).status_code == 200
    assert (
        env.anonymous.post(path, json=_delivery(old_token, timestamp=now + "x")).status_code == 401
    )


def test_aircall_call_webhooks_capture_calls_at_once(env: Env) -> None:
    # Given an Aircall account whose webhook URLs the API wrote
    account, config = connect_phones(env)
    account = ensure_webhook_config(env.ctx, account)
    assert account.config["calls_webhook_url"] == API + url(env, account, "/calls")
    # When the capture's reader factory first builds the account's readers, the call webhook
    # is registered with its own token (once: a second build finds it in place)
    build = reader_factory(env.secrets, sessions={"aircall": env.session})
    build(account)
    stored = env.secrets.get(account.secret_ref or "")
    assert stored["call_webhook_url"] == account.config["calls_webhook_url"]
    token = stored["call_webhook_token"]
    register_call_webhook(account, build(account), env.secrets)
    assert env.secrets.get(account.secret_ref or "") == stored
    env.aircall.seed({"count": 20, "calls": 12, "seed": 5})

    def calls() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = env.session.get(AIRCALL + "_sandbox/state").json()["state"]
        return found["calls"]

    before = {c["id"] for c in calls()}
    env.aircall.seed({"count": 0, "calls": 6, "seed": 6, "emit_events": True})
    announced = [c for c in calls() if c["id"] not in before]
    known = next(c for c in announced if c.get("contact_id"))
    Gallery(env.store).create(
        Actor.of(env.admin), {"given_name": "Caller", "phones": [known["raw_digits"]]}
    )
    # And calls happen, one with a gallery contact; Aircall sends call.ended 30 s after each
    env.aircall.clock.advance(40)
    env.aircall.deliver_webhooks()
    # Then the calls with that gallery contact are activities at once, with no capture run
    with_caller = [c for c in announced if c["raw_digits"] == known["raw_digits"]]
    activities = [a for a in env.store.scan(Activity, env.org.id) if a.account_id == account.id]
    assert sorted(a.remote_id for a in activities) == sorted(str(c["id"]) for c in with_caller)
    assert all(a.activity_kind is ActivityKind.CALL for a in activities)
    # And a replay stores nothing more; a forged token and a malformed call change nothing
    path = url(env, account, "/calls")
    auth = (config["api_id"], config["api_token"])
    call = env.session.get(f"{config['api_base']}/calls/{known['id']}", auth=auth).json()["call"]
    replay = {"resource": "call", "event": "call.ended", "timestamp": int(time.time()),
              "token": token, "data": call}  # fmt: skip
    assert env.anonymous.post(path, json=replay).json()["outcome"] == "duplicate"
    forged = env.anonymous.post(path, json={**replay, "token": "f" * 32})
    assert forged.status_code == 401
    broken = env.anonymous.post(path, json={**replay, "data": {"id": "not a call"}})
    assert broken.status_code == 400
    contact_token = env.anonymous.post(path, json={**replay, "token": "w" * 32})
    assert contact_token.status_code == 401
    after = [a for a in env.store.scan(Activity, env.org.id) if a.account_id == account.id]
    assert len(after) == len(activities)
    # And a disabled account's calls are not captured
    env.store.update(
        env.store.get(ConnectedAccount, env.org.id, account.id).model_copy(
            update={"status": AccountStatus.DISABLED}
        )
    )
    fresh = {**replay, "data": {**call, "id": 99_999}}
    assert env.anonymous.post(path, json=fresh).json()["outcome"] == "ignored"


# ---- Salesforce outbound messages -----------------------------------------------------------


@pytest.fixture
def salesforce(env: Env) -> tuple[SalesforceSandbox, ConnectedAccount]:
    app = registry.create("salesforce", env.microsoft.clock, seed=7)
    assert isinstance(app, SalesforceSandbox)
    mount_sandbox(env.session, SF, app)
    app.dispatcher.session.mount(API + "/", WsgiTransport(env.wsgi))
    config = app.client_config()
    account, _ = Setup(env.store, env.secrets).connect(
        env.org.id,
        env.admin,
        Provider.SALESFORCE,
        config["username"],
        {"organization_id": config["organization_id"], "instance_url": config["instance_url"]},
        {"refresh_token": "rt"},
    )
    endpoint = API + url(env, account) + f"?key={env.ctx.salesforce_key(env.org.id, account.id)}"
    assert env.session.post(
        config["admin"] + "outbound_messages",
        json={"sobject": "Contact", "endpoint": endpoint, "fields": ["FirstName", "LastName"]},
    ).ok
    return app, account


def _sf_contact(env: Env, app: SalesforceSandbox, last: str) -> None:
    token = app.issue_session()
    answer = env.session.post(
        SF + "services/data/v59.0/sobjects/Contact",
        json={"LastName": last},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text


def test_salesforce_outbound_messages(
    env: Env, salesforce: tuple[SalesforceSandbox, ConnectedAccount]
) -> None:
    app, account = salesforce
    _sf_contact(env, app, "Malone")
    _sf_contact(env, app, "Martin")
    delivered = app.deliver_outbound()
    assert delivered["acked"] == 1  # one SOAP message, two notifications, acknowledged
    requests = env.queue.take_all()
    assert [(r.account_id, r.action) for r in requests] == [(account.id, PullAction.PULL)]
    assert sum(1 for _ in env.store.scan(WebhookReceipt, env.org.id)) == 2


def _envelope(org_id: str, ids: list[str]) -> bytes:
    notes = "".join(
        f'<Notification><Id>{i}</Id><sObject xsi:type="sf:Contact" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>003A</sf:Id>'
        "</sObject></Notification>"
        for i in ids
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi='
        '"http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns='
        f'"http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org_id}</OrganizationId>'
        f"<ActionId>04k1</ActionId>{notes}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def test_salesforce_forged_replayed_and_malformed(
    env: Env, salesforce: tuple[SalesforceSandbox, ConnectedAccount]
) -> None:
    app, account = salesforce
    org_id = app.client_config()["organization_id"]
    key = env.ctx.salesforce_key(env.org.id, account.id)
    path = url(env, account)

    def post(body: bytes, k: str = key) -> Any:
        return env.anonymous.call(
            "POST",
            path,
            params={"key": k},
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )

    assert unchanged(env, lambda: post(_envelope(org_id, ["04l1"]), "wrong")).status_code == 401
    assert (
        unchanged(
            env, lambda: env.anonymous.call("POST", path, data=_envelope(org_id, ["04l1"]))
        ).status_code
        == 422
    )
    assert unchanged(env, lambda: post(_envelope("00D000000000999", ["04l1"]))).status_code == 403
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    for bad in (b"not xml", bomb, b"<x/>", _envelope(org_id, [])):
        assert unchanged(env, lambda bad=bad: post(bad)).status_code == 400
    ok = post(_envelope(org_id, ["04l1", "04l2"]))
    assert ok.status_code == 200
    assert "<Ack>true</Ack>" in ok.text
    replay = unchanged(env, lambda: post(_envelope(org_id, ["04l2", "04l1"])))
    assert "<Ack>true</Ack>" in replay.text  # acknowledged, so Salesforce stops retrying
