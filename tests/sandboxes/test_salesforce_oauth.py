"""Salesforce's OAuth 2.0 web server flow on the sandbox: the authorize endpoint driven with plain
requests (redirects are read from the Location header, never followed), the code exchanged at
/services/oauth2/token, and the session proven with the unpatched simple-salesforce client.

Each test reads Given / When / Then. Time only moves through the sandbox's virtual clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from simple_salesforce import Salesforce

from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.salesforce import SalesforceSandbox
from tests.sandboxes.salesforce.fixtures import BASE, INSTANCE, app, clock, session

__all__ = ["app", "clock", "session"]  # fixtures used by name

REDIRECT = "https://app.example.test/oauth/callback"
STATE = "st-" + "x" * 40


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize(
    session: requests.Session, app: SalesforceSandbox, **params: str | None
) -> requests.Response:
    """The browser's GET of the authorize URL; ``None`` drops a parameter."""
    config = app.client_config()
    query: dict[str, str | None] = {
        "response_type": "code",
        "client_id": config["client_id"],
        "redirect_uri": REDIRECT,
        "state": STATE,
        **params,
    }
    sent = {k: v for k, v in query.items() if v is not None}
    return session.get(config["authorize_url"], params=sent, allow_redirects=False)


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent(
    session: requests.Session, app: SalesforceSandbox, **params: str | None
) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    answer = redirected(authorize(session, app, code_challenge=challenge, **params))
    return answer["code"], verifier


def exchange(
    session: requests.Session,
    app: SalesforceSandbox,
    code: str,
    verifier: str | None,
    **form: str | None,
) -> requests.Response:
    config = app.client_config()
    body: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": config["client_id"],
        "client_secret": config["client_secret"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **form,
    }
    return session.post(config["token_url"], data={k: v for k, v in body.items() if v is not None})


def oauth_error(response: requests.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error"], body["error_description"]


# ---- the happy path, through simple-salesforce ------------------------------------------------


def test_web_server_flow_and_simple_salesforce(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    # Given Pam consents at the authorize endpoint with PKCE
    rep = app.org.credentials.user_by_name("rep@example.com")
    assert rep is not None
    code, verifier = consent(session, app, login_hint="rep@example.com", scope="api refresh_token")
    # When the client exchanges the code with its secret and the verifier
    response = exchange(session, app, code, verifier)
    # Then it gets Salesforce's token response, for Pam
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "access_token", "refresh_token", "signature", "scope", "instance_url", "id",
        "token_type", "issued_at",
    ]  # fmt: skip
    assert body["scope"] == "api refresh_token"
    assert body["instance_url"] == INSTANCE
    assert body["id"] == f"{INSTANCE}/id/{app.org.credentials.org_id}/{rep.id}"
    assert (body["token_type"], body["issued_at"].isdigit()) == ("Bearer", True)
    # And the signature is HMAC-SHA256(consumer secret, id + issued_at), as Salesforce signs it
    secret = app.client_config()["client_secret"].encode()
    mac = hmac.new(secret, (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert body["signature"] == base64.b64encode(mac).decode()
    # And simple-salesforce works with the session, as Pam
    sf = Salesforce(
        session_id=body["access_token"], instance_url=body["instance_url"], session=session
    )
    created = sf.Contact.create({"LastName": "Halpert", "Email": "jim@example.com"})
    owner = sf.query(f"SELECT OwnerId FROM Contact WHERE Id = '{created['id']}'")
    assert owner["records"][0]["OwnerId"] == rep.id
    # And the refresh token refreshes like the seeded one
    config = app.client_config()
    refreshed = session.post(
        config["token_url"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
        },
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["id"] == body["id"]
    again = Salesforce(
        session_id=refreshed.json()["access_token"], instance_url=INSTANCE, session=session
    )
    assert again.query("SELECT COUNT() FROM Contact")["totalSize"] == 1


def test_scopes_decide_the_refresh_token(app: SalesforceSandbox, session: requests.Session) -> None:
    # Without scope the connected app grants all it has; the admin is the default user
    code, verifier = consent(session, app)
    body = exchange(session, app, code, verifier).json()
    assert body["scope"] == "refresh_token api id"
    assert body["id"].endswith("/" + app.org.credentials.admin.id)
    assert "refresh_token" in body
    # offline_access is refresh_token's other name; api alone gives no refresh token
    code, verifier = consent(session, app, scope="api offline_access")
    assert "refresh_token" in exchange(session, app, code, verifier).json()
    code, verifier = consent(session, app, scope="api")
    assert "refresh_token" not in exchange(session, app, code, verifier).json()


def test_basic_auth_and_a_flow_without_pkce(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    config = app.client_config()
    code = redirected(authorize(session, app))["code"]
    response = session.post(
        config["token_url"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(config["client_id"], config["client_secret"]),
    )
    assert response.status_code == 200, response.text


# ---- the exchange's failures ----------------------------------------------------------------


def test_pkce_is_checked(app: SalesforceSandbox, session: requests.Session) -> None:
    code, verifier = consent(session, app)
    for wrong in ("w" * 64, None):
        assert oauth_error(exchange(session, app, code, wrong)) == (
            400,
            "invalid_grant",
            "invalid code verifier",
        )
    assert exchange(session, app, code, verifier).status_code == 200


def test_codes_are_single_use(app: SalesforceSandbox, session: requests.Session) -> None:
    code, verifier = consent(session, app)
    assert exchange(session, app, code, verifier).status_code == 200
    for used_or_unknown in (code, "aPrxnope=="):
        assert oauth_error(exchange(session, app, used_or_unknown, verifier)) == (
            400,
            "invalid_grant",
            "authentication failure",
        )


def test_codes_expire_after_fifteen_virtual_minutes(
    app: SalesforceSandbox, session: requests.Session, clock: VirtualClock
) -> None:
    early, early_verifier = consent(session, app)
    late, late_verifier = consent(session, app)
    clock.advance(899)
    assert exchange(session, app, early, early_verifier).status_code == 200
    clock.advance(1)
    assert oauth_error(exchange(session, app, late, late_verifier)) == (
        400,
        "invalid_grant",
        "expired authorization code",
    )


def test_redirect_uri_and_client_are_checked(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    code, verifier = consent(session, app)
    cases: list[tuple[dict[str, str | None], tuple[str, str]]] = [
        (
            {"redirect_uri": REDIRECT + "/other"},
            ("redirect_uri_mismatch", "redirect_uri must match configuration"),
        ),
        ({"client_id": "3MVG9nope"}, ("invalid_client_id", "client identifier invalid")),
        ({"client_secret": "nope"}, ("invalid_client", "invalid client credentials")),
        ({"client_secret": None}, ("invalid_client", "invalid client credentials")),
    ]
    for change, (error, description) in cases:
        assert oauth_error(exchange(session, app, code, verifier, **change)) == (
            400,
            error,
            description,
        )
    assert exchange(session, app, code, verifier).status_code == 200


# ---- the authorize endpoint's own answers -----------------------------------------------------


def _error_page(response: requests.Response) -> str:
    """Salesforce's RemoteAccessErrorPage: no redirect to the client."""
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    return response.text


def test_a_bad_client_or_callback_never_goes_back(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    unknown = _error_page(authorize(session, app, client_id="3MVG9nope"))
    assert "error=invalid_client_id&amp;error_description=client%20identifier%20invalid" in unknown
    missing = _error_page(authorize(session, app, redirect_uri=None))
    assert "error=redirect_uri_missing" in missing
    plain_http = _error_page(authorize(session, app, redirect_uri="http://app.example.test/cb"))
    assert "error=redirect_uri_mismatch" in plain_http
    # When the connected app's callback URLs are registered, only those pass
    registered = session.post(
        BASE + "_sandbox/oauth/redirect_uris", json={"redirect_uris": [REDIRECT]}
    )
    assert registered.json() == {"redirect_uris": [REDIRECT]}
    assert session.get(BASE + "_sandbox/oauth/redirect_uris").json() == registered.json()
    assert authorize(session, app).status_code == 302
    other = _error_page(authorize(session, app, redirect_uri="https://evil.example.test/cb"))
    assert "redirect_uri%20must%20match%20configuration" in other


@pytest.mark.parametrize(
    ("params", "error", "description"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "response type not supported"),
        ({"scope": "api full"}, "invalid_scope", "the requested scope is not allowed"),
        ({"login_hint": "stranger@example.com"}, "access_denied", "end-user denied authorization"),
    ],
)
def test_other_errors_go_back_to_the_callback(
    app: SalesforceSandbox,
    session: requests.Session,
    params: dict[str, str],
    error: str,
    description: str,
) -> None:
    assert redirected(authorize(session, app, **params)) == {
        "error": error,
        "error_description": description,
        "state": STATE,
    }


def test_the_authorize_endpoint_takes_a_post_too(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    config = app.client_config()
    response = session.post(
        config["authorize_url"],
        data={"response_type": "code", "client_id": config["client_id"], "redirect_uri": REDIRECT},
        allow_redirects=False,
    )
    assert redirected(response)["code"].startswith("aPrx")


# ---- sandbox.json and persistence -------------------------------------------------------------


def test_client_config_and_state_across_a_restart(
    app: SalesforceSandbox, session: requests.Session, clock: VirtualClock
) -> None:
    assert app.client_config()["authorize_url"] == INSTANCE + "/services/oauth2/authorize"
    code, verifier = consent(session, app)
    refresh_token = exchange(session, app, code, verifier).json()["refresh_token"]
    pending, pending_verifier = consent(session, app)
    state = app.dump_state()
    restored = SalesforceSandbox(clock, seed=7)
    restored.base_url = app.base_url
    restored.load_state(state)
    again = mount_sandbox(requests.Session(), BASE, restored)
    assert exchange(again, restored, pending, pending_verifier).status_code == 200
    config = restored.client_config()
    refreshed = again.post(
        config["token_url"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
        },
    )
    assert refreshed.status_code == 200
