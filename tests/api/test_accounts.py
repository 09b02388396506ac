"""Connected accounts: OAuth connects (authorization code + PKCE + state) against the Google,
Microsoft, Salesforce and Aircall sandboxes' real authorize and token endpoints, API-key connects
for Aircall, list with status, disable, reconnect, and delete after confirmation."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials
from simple_salesforce import Salesforce

from contactsync.api.jobs import Consumer
from contactsync.api.oauth import OAuthAttempt, attempt_id, pkce_challenge
from contactsync.api.queue import PullAction
from contactsync.app.setup import Setup
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.cursor import Cursor
from contactsync.domain.link import Link
from contactsync.domain.sharing import AccessRequest
from contactsync.domain.sync import SyncSettings
from contactsync.local.connectors import connector_factory
from contactsync.sync.service import SyncService
from contactsync_sandbox.core import mount_sandbox
from tests.api.conftest import AIRCALL, API, GOOGLE, SALESFORCE, Client, Env


def consent(env: Env, authorization_url: str) -> str:
    """What the user's browser does: the provider redirects back to our callback."""
    answer = env.session.get(authorization_url, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    location: str = answer.headers["Location"]
    assert location.startswith(API + "/oauth/callback?")
    return location


def callback(env: Env, location: str) -> requests.Response:
    return env.session.get(location, allow_redirects=False)  # no bearer: the state is the key


def test_microsoft_connect_with_pkce(env: Env) -> None:
    # When Pam starts a Microsoft connect
    started = env.as_rep.post("/accounts/connect/microsoft", json={"login_hint": "rep@example.com"})
    assert started.status_code == 201
    url = started.json()["authorization_url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == started.json()["state"]
    assert query["redirect_uri"] == API + "/oauth/callback"
    stored = env.store.find(OAuthAttempt, env.org.id, attempt_id(query["state"]))
    assert stored is not None
    assert pkce_challenge(stored.code_verifier) == query["code_challenge"]
    # And consents at Microsoft, which redirects back
    location = consent(env, url)
    done = callback(env, location)
    # Then her mailbox is connected, named by the token, with two-way sync settings
    assert done.status_code == 201, done.text
    account = done.json()["account"]
    assert account["provider"] == "microsoft"
    assert account["address"].lower() == "rep@example.com"
    assert account["owner_user_id"] == env.rep.id
    assert (
        account["config"]["webhook_url"] == f"{API}/webhooks/microsoft/{env.org.id}/{account['id']}"
    )
    assert done.json()["sync"]["direction"] == "both"
    stored_account = env.store.get(ConnectedAccount, env.org.id, account["id"])
    secret = env.secrets.get(stored_account.secret_ref or "")
    assert secret["refresh_token"]
    assert secret["webhook_client_state"]
    assert "secret_ref" not in account
    assert "refresh_token" not in done.text
    # A replayed callback changes nothing
    assert callback(env, location).status_code == 410
    assert len(list(env.store.scan(ConnectedAccount, env.org.id))) == 1


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("provider", ["microsoft", "google", "salesforce"])
def test_a_wrong_verifier_is_refused_by_the_provider(env: Env, provider: str) -> None:
    started = env.as_admin.post(f"/accounts/connect/{provider}", json={}).json()
    attempt = env.store.get(OAuthAttempt, env.org.id, attempt_id(started["state"]))
    env.store.update(attempt.model_copy(update={"code_verifier": "x" * 64}))
    done = callback(env, consent(env, started["authorization_url"]))
    assert done.status_code == 422
    assert done.json()["code"] == "code_refused"
    assert list(env.store.scan(ConnectedAccount, env.org.id)) == []


def test_tampered_unknown_and_expired_states(env: Env) -> None:
    assert (
        env.anonymous.get("/oauth/callback", params={"state": "nonsense", "code": "c"}).status_code
        == 400
    )
    forged = f"{env.org.id}~{'A' * 43}"
    assert (
        env.anonymous.get("/oauth/callback", params={"state": forged, "code": "c"}).status_code
        == 410
    )
    started = env.as_rep.post("/accounts/connect/microsoft", json={}).json()
    attempt = env.store.get(OAuthAttempt, env.org.id, attempt_id(started["state"]))
    env.store.update(
        attempt.model_copy(
            update={"ttl_seconds": 60, "created_at": attempt.created_at.replace(year=2020)}
        )
    )
    expired = env.anonymous.get("/oauth/callback", params={"state": started["state"], "code": "c"})
    assert expired.status_code == 410
    assert expired.json()["code"] == "expired_state"
    denied = env.as_rep.post("/accounts/connect/microsoft", json={}).json()
    refused = env.anonymous.get(
        "/oauth/callback", params={"state": denied["state"], "error": "access_denied"}
    )
    assert refused.status_code == 422
    assert list(env.store.scan(ConnectedAccount, env.org.id)) == []


def test_connect_rules(env: Env) -> None:
    assert (
        env.as_rep.post("/accounts/connect/salesforce", json={}).status_code == 403
    )  # admins only
    assert env.as_admin.post("/accounts/connect/exchange", json={}).status_code == 422
    env.ctx.settings.oauth.pop(Provider.GOOGLE)
    assert env.as_admin.post("/accounts/connect/google", json={}).json()["code"] == "not_configured"
    assert env.anonymous.post("/accounts/connect/microsoft", json={}).status_code == 401


def test_aircall_install_flow(env: Env) -> None:
    started = env.as_admin.post(
        "/accounts/connect/aircall", json={"label": "Dunder Mifflin phones"}
    )
    done = callback(env, consent(env, started.json()["authorization_url"]))
    assert done.status_code == 201, done.text
    assert done.json()["account"]["address"] == "Dunder Mifflin phones"
    account = env.store.get(ConnectedAccount, env.org.id, done.json()["account"]["id"])
    assert env.secrets.get(account.secret_ref or "")["access_token"]


def test_google_connect_names_the_mailbox_by_googles_id_token(env: Env) -> None:
    # When Pam starts a Google connect: Google's authorize URL, offline access, forced consent
    started = env.as_rep.post("/accounts/connect/google", json={"login_hint": "rep@example.com"})
    assert started.status_code == 201
    url = started.json()["authorization_url"]
    assert url.startswith(GOOGLE + "o/oauth2/v2/auth?")
    query = query_of(url)
    assert (query["access_type"], query["prompt"]) == ("offline", "consent")
    assert query["code_challenge_method"] == "S256"
    # And consents at Google, which redirects back with the code (and its scope, authuser...)
    location = consent(env, url)
    assert {"code", "state", "scope", "authuser", "prompt"} <= set(query_of(location))
    done = callback(env, location)
    # Then her mailbox is connected under the address Google's ID token names, polled
    assert done.status_code == 201, done.text
    account = done.json()["account"]
    assert (account["provider"], account["address"]) == ("google", "rep@example.com")
    assert account["config"].get("webhook_url") is None
    # And the stored refresh token works with google-auth against her address book
    stored = env.store.get(ConnectedAccount, env.org.id, account["id"])
    secret = env.secrets.get(stored.secret_ref or "")
    assert secret["refresh_token"].startswith("1//0")
    credentials = Credentials(
        token=None,
        refresh_token=secret["refresh_token"],
        token_uri=stored.config["token_uri"],
        client_id=secret["client_id"],
        client_secret=secret["client_secret"],
    )
    people = mount_sandbox(
        AuthorizedSession(credentials, auth_request=GoogleAuthRequest(env.session)),
        GOOGLE,
        env.google,
    )
    listed = people.get(
        stored.config["api_base"] + "v1/people/me/connections", params={"personFields": "names"}
    )
    assert listed.status_code == 200, listed.text
    # And the same mailbox cannot be connected twice
    again = env.as_rep.post("/accounts/connect/google", json={}).json()
    refused = callback(env, consent(env, again["authorization_url"]))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "address"


def test_google_declines_a_hint_naming_no_account(env: Env) -> None:
    # An alias is no Google account: Google sends the user back with access_denied
    started = env.as_rep.post(
        "/accounts/connect/google", json={"login_hint": "rep+sales@example.com"}
    ).json()
    location = consent(env, started["authorization_url"])
    assert query_of(location)["error"] == "access_denied"
    denied = callback(env, location)
    assert (denied.status_code, denied.json()["code"]) == (422, "denied:access_denied")
    assert list(env.store.scan(ConnectedAccount, env.org.id)) == []


def test_salesforce_connect_reads_the_identity_url(env: Env) -> None:
    # When the admin connects the org through Salesforce's web server flow
    started = env.as_admin.post("/accounts/connect/salesforce", json={}).json()
    assert started["authorization_url"].startswith(SALESFORCE + "services/oauth2/authorize?")
    done = callback(env, consent(env, started["authorization_url"]))
    # Then the account carries the org, the user and the instance from the token response
    assert done.status_code == 201, done.text
    account = done.json()["account"]
    credentials = env.salesforce.org.credentials
    assert account["config"]["organization_id"] == credentials.org_id
    assert account["config"]["user_id"] == credentials.admin.id
    assert account["config"]["instance_url"] == SALESFORCE.rstrip("/")
    assert account["webhook_url"].startswith(
        f"{API}/webhooks/salesforce/{env.org.id}/{account['id']}?key="
    )
    # And its stored credentials hold a refresh token Salesforce accepts
    stored = env.store.get(ConnectedAccount, env.org.id, account["id"])
    secret = env.secrets.get(stored.secret_ref or "")
    refreshed = env.session.post(
        stored.config["token_url"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": secret["refresh_token"],
            "client_id": secret["client_id"],
            "client_secret": secret["client_secret"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    sf = Salesforce(
        session_id=refreshed.json()["access_token"],
        instance_url=account["config"]["instance_url"],
        session=env.session,
    )
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def aircall_keys(env: Env) -> dict[str, str]:
    config = env.aircall.client_config()
    return {"api_id": config["api_id"], "api_token": config["api_token"]}


def connect_aircall(env: Env) -> dict[str, Any]:
    response = env.as_admin.post(
        "/accounts/aircall", json={**aircall_keys(env), "address": "DM phones"}
    )
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()["account"]
    return account


def test_aircall_api_key_connect(env: Env) -> None:
    bad = env.as_admin.post("/accounts/aircall", json={"api_id": "nope", "api_token": "nope"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "credentials_rejected"
    assert env.as_rep.post("/accounts/aircall", json=aircall_keys(env)).status_code == 403
    account = connect_aircall(env)
    assert account["config"]["webhook_url"].endswith(
        f"/webhooks/aircall/{env.org.id}/{account['id']}"
    )
    again = env.as_admin.post(
        "/accounts/aircall", json={**aircall_keys(env), "address": "DM phones"}
    )
    assert again.status_code == 422  # already connected


def test_a_connect_registers_the_webhooks_at_once_and_pulls_nothing(env: Env) -> None:
    # Given an Aircall company with contacts, connected through the API
    env.aircall.seed({"count": 4, "seed": 2})
    account = connect_aircall(env)
    # Then one request to register the webhooks was queued
    [request] = env.queue.take_all()
    assert (request.account_id, request.action) == (account["id"], PullAction.PREPARE)
    # When a consumer takes it (the local scheduler, or the cloud's pull worker)
    connectors = connector_factory(env.secrets, sessions={"aircall": env.session})
    service = SyncService(env.store, env.org.id, connectors)
    report = Consumer(env.store, env.ctx.inbox, connectors, service).handle([request])
    # Then the contact webhook is registered and its token stored, and nothing was pulled:
    # the initial sync owns the first read
    assert report is None
    hooks = env.session.get(
        AIRCALL + "v1/webhooks", auth=(aircall_keys(env)["api_id"], aircall_keys(env)["api_token"])
    ).json()["webhooks"]
    assert [h["url"] for h in hooks] == [account["config"]["webhook_url"]]
    stored = env.store.get(ConnectedAccount, env.org.id, account["id"])
    assert env.secrets.get(stored.secret_ref or "")["webhook_token"]
    assert list(env.store.scan(Link, env.org.id)) == []


def _mailbox(env: Env, user_id: str, address: str) -> ConnectedAccount:
    owner = env.rep if user_id == env.rep.id else env.admin
    account, _ = Setup(env.store, env.secrets).connect(
        env.org.id, owner, Provider.GOOGLE, address, {}, {"refresh_token": "rt"}
    )
    return account


def test_list_and_visibility(env: Env) -> None:
    mine = _mailbox(env, env.rep.id, "rep@example.com")
    theirs = _mailbox(env, env.admin.id, "michael@dundermifflin.com")
    assert [a["id"] for a in env.as_rep.get("/accounts").json()["items"]] == [mine.id]
    assert {a["id"] for a in env.as_admin.get("/accounts").json()["items"]} == {mine.id, theirs.id}
    assert env.as_rep.get(f"/accounts/{theirs.id}").status_code == 404
    assert env.as_other.get(f"/accounts/{mine.id}").status_code == 404
    assert env.as_other.post(f"/accounts/{mine.id}/disable").status_code == 404
    assert (
        env.as_other.delete(f"/accounts/{mine.id}", params={"confirm": mine.address}).status_code
        == 404
    )


def test_disable_and_reconnect(env: Env) -> None:
    account = _mailbox(env, env.rep.id, "rep@example.com")
    path = f"/accounts/{account.id}"
    assert env.as_rep.post(f"{path}/disable").json()["status"] == "disabled"
    assert env.as_rep.post(f"{path}/reconnect", json={}).json()["account"]["status"] == "connected"
    # An account whose credentials the provider refused needs a new consent (OAuth)
    stored = env.store.get(ConnectedAccount, env.org.id, account.id)
    env.store.update(
        stored.model_copy(
            update={"status": AccountStatus.NEEDS_RECONNECT, "status_reason": "invalid_grant"}
        )
    )
    listed = env.as_rep.get(path).json()
    assert (listed["status"], listed["status_reason"]) == ("needs_reconnect", "invalid_grant")
    # Signing in at Google as someone else (login_hint is only a hint) is refused
    other = env.as_rep.post(f"{path}/reconnect", json={}).json()
    assert query_of(other["authorization_url"])["login_hint"] == "rep@example.com"
    swapped = {**query_of(other["authorization_url"]), "login_hint": "manager@example.com"}
    wrong_user = callback(env, consent(env, f"{GOOGLE}o/oauth2/v2/auth?{urlencode(swapped)}"))
    assert (wrong_user.status_code, wrong_user.json()["code"]) == (422, "other_account")
    # Signing in as Pam renews the credentials in place
    again = env.as_rep.post(f"{path}/reconnect", json={}).json()
    assert again["authorization_url"].startswith(GOOGLE + "o/oauth2/v2/auth?")
    state = query_of(again["authorization_url"])["state"]
    assert env.store.get(OAuthAttempt, env.org.id, attempt_id(state)).account_id == account.id
    done = callback(env, consent(env, again["authorization_url"]))
    assert done.status_code == 201, done.text
    assert done.json()["account"]["status"] == "connected"
    renewed = env.secrets.get(stored.secret_ref or "")["refresh_token"]
    assert renewed != "rt"
    assert renewed.startswith("1//0")
    assert len(list(env.store.scan(ConnectedAccount, env.org.id))) == 1


def test_aircall_reconnect_with_new_keys(env: Env) -> None:
    account = connect_aircall(env)
    path = f"/accounts/{account['id']}/reconnect"
    assert env.as_admin.post(path, json={"api_id": "x"}).status_code == 422
    assert env.as_admin.post(path, json={"api_id": "x", "api_token": "y"}).status_code == 422
    assert env.as_admin.post(path, json=aircall_keys(env)).status_code == 200


def test_delete_needs_confirmation_and_removes_the_accounts_data(env: Env) -> None:
    account = _mailbox(env, env.rep.id, "rep@example.com")
    org = env.org.id
    env.store.create(
        Activity(
            org_id=org,
            id="act-1",
            activity_kind=ActivityKind.EMAIL,
            account_id=account.id,
            owner_user_id=env.rep.id,
            remote_id="m1",
            occurred_at=account.created_at,
        )
    )
    env.store.create(
        AccessRequest(
            org_id=org,
            id="ar-1",
            activity_id="act-1",
            requester_user_id=env.admin.id,
            owner_user_id=env.rep.id,
        )
    )
    env.store.create(
        Link(
            org_id=org,
            id="l-1",
            contact_id="c-1",
            account_id=account.id,
            object_type="person",
            remote_id="people/c1",
        )
    )
    env.store.create(
        Cursor(
            org_id=org,
            id=Cursor.make_id(account.id, "person"),
            account_id=account.id,
            stream="person",
            value="tok",
        )
    )
    path = f"/accounts/{account.id}"
    wrong = env.as_rep.delete(path, params={"confirm": "someone@else.example"})
    assert wrong.status_code == 422
    assert env.as_rep.delete(path).status_code == 422  # confirm is required
    assert env.store.get(ConnectedAccount, org, account.id).status is AccountStatus.CONNECTED
    done = env.as_rep.delete(path, params={"confirm": "REP@example.com"})
    assert done.status_code == 200
    assert done.json()["removed"] == {"syncs": 1, "activities": 1, "links": 1, "cursors": 1}
    assert env.as_rep.get(path).json()["status"] == "deleted"
    assert env.store.find(Activity, org, "act-1") is None
    assert env.store.find(AccessRequest, org, "ar-1") is None  # its access requests go too
    assert list(env.store.scan(SyncSettings, org)) == []
    try:
        env.secrets.get(account.secret_ref or "")
        raise AssertionError("the secret should be gone")
    except KeyError:
        pass
    # Deleting again finishes nothing new; a deleted account cannot be revived
    assert env.as_rep.delete(path, params={"confirm": "rep@example.com"}).status_code == 200
    assert env.as_rep.post(f"{path}/reconnect", json={}).status_code == 409
    assert env.as_rep.post(f"{path}/disable").status_code == 409


def test_client_helper(env: Env) -> None:
    assert isinstance(env.as_rep, Client)


def test_a_connect_that_brings_no_refresh_token_is_refused(env: Env) -> None:
    # Given a Google client that asks for offline access but not for prompt=consent
    google = env.ctx.settings.oauth[Provider.GOOGLE]
    env.ctx.settings.oauth[Provider.GOOGLE] = google.model_copy(
        update={"authorize_params": {"access_type": "offline"}}
    )
    # And Pam connected her mailbox once, then deleted the account (her grant at Google stays)
    first = env.as_rep.post("/accounts/connect/google", json={}).json()
    done = callback(env, consent(env, first["authorization_url"]))
    assert done.status_code == 201, done.text
    path = f"/accounts/{done.json()['account']['id']}"
    assert env.as_rep.delete(path, params={"confirm": "rep@example.com"}).status_code == 200
    # When she connects it again: Google skips the consent screen, so it sends no refresh token
    again = env.as_rep.post("/accounts/connect/google", json={}).json()
    location = consent(env, again["authorization_url"])
    assert query_of(location)["prompt"] == "none"
    refused = callback(env, location)
    # Then the connect is refused, rather than leaving an account that could never sync
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "no_refresh_token"
    live = [
        a
        for a in env.store.scan(ConnectedAccount, env.org.id)
        if a.status is not AccountStatus.DELETED
    ]
    assert live == []
