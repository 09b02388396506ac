"""Google's authorization-code flow on the sandbox: the authorization endpoint driven with plain
requests (redirects are read from the Location header, never followed), the code exchanged at
the token endpoint, and the tokens proven with google-auth's Credentials and AuthorizedSession.

Each test reads Given / When / Then. Time only moves through the sandbox's virtual clock.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials

from contactsync_sandbox import registry
from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.google import App

BASE = "https://google.sandbox.test/"
CONNECTIONS = BASE + "v1/people/me/connections"
CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
REDIRECT = "https://app.example.test/oauth/callback"
STATE = "st-" + "x" * 40


# ---- fixtures and factories ------------------------------------------------------------------


@pytest.fixture
def app() -> App:
    sandbox = registry.create("google", seed=11)
    assert isinstance(sandbox, App)
    sandbox.configure_quotas({"enabled": False})
    return sandbox


@pytest.fixture
def session(app: App) -> requests.Session:
    return mount_sandbox(requests.Session(), BASE, app)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize(session: requests.Session, app: App, **params: str | None) -> requests.Response:
    """The browser's GET of the authorization URL; ``None`` drops a parameter."""
    config = app.client_config()
    query: dict[str, str | None] = {
        "client_id": config["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": f"openid email {CONTACTS_SCOPE}",
        "state": STATE,
        "access_type": "offline",
        "prompt": "consent",
        **params,
    }
    sent = {k: v for k, v in query.items() if v is not None}
    return session.get(config["auth_uri"], params=sent, allow_redirects=False)


def redirected(response: requests.Response) -> dict[str, str]:
    """The query of the redirect back to the client."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent(session: requests.Session, app: App, **params: str | None) -> tuple[str, str]:
    """A code and its PKCE verifier, for ``params`` on top of the defaults."""
    verifier, challenge = pkce_pair()
    answer = redirected(
        authorize(session, app, code_challenge=challenge, code_challenge_method="S256", **params)
    )
    return answer["code"], verifier


def exchange(
    session: requests.Session, app: App, code: str, verifier: str | None, **form: str | None
) -> requests.Response:
    config = app.client_config()
    body: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": config["client_id"],
        "client_secret": config["client_secret"],
        "code_verifier": verifier,
        **form,
    }
    return session.post(config["token_uri"], data={k: v for k, v in body.items() if v is not None})


def oauth_error(response: requests.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error"], body["error_description"]


def credentials_of(app: App, tokens: dict[str, Any]) -> Credentials:
    config = app.client_config()
    return Credentials(
        token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
    )


# ---- the happy path, through google-auth ------------------------------------------------------


def test_consent_code_exchange_and_google_auth(app: App, session: requests.Session) -> None:
    # Given Morgan consents through the authorization endpoint with PKCE and offline access
    verifier, challenge = pkce_pair()
    response = authorize(
        session,
        app,
        login_hint="manager@example.com",
        code_challenge=challenge,
        code_challenge_method="S256",
        nonce="n-0S6",
    )
    # Then Google redirects to the client with a code, the state, and what was granted
    answer = redirected(response)
    assert answer["code"].startswith("4/0A")
    assert answer["state"] == STATE
    assert answer["scope"].split() == ["openid", EMAIL_SCOPE, CONTACTS_SCOPE]
    assert (answer["authuser"], answer["prompt"]) == ("1", "consent")
    # When the client exchanges the code with the verifier
    tokens = exchange(session, app, answer["code"], verifier)
    # Then it gets Google's token response: a refresh token (offline) and an ID token (openid)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert list(body) == [
        "access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token",
    ]  # fmt: skip
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//0")
    assert (body["expires_in"], body["token_type"]) == (3599, "Bearer")
    assert body["scope"] == answer["scope"]
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == claims["azp"] == app.client_config()["client_id"]
    assert (claims["email"], claims["email_verified"], claims["nonce"]) == (
        "manager@example.com",
        True,
        "n-0S6",
    )
    assert claims["exp"] - claims["iat"] == 3600
    # And google-auth's AuthorizedSession reaches Morgan's own address book with the token
    creds = credentials_of(app, body)
    api = mount_sandbox(
        AuthorizedSession(creds, auth_request=GoogleAuthRequest(session)), BASE, app
    )
    created = api.post(
        BASE + "v1/people:createContact",
        json={"names": [{"givenName": "Ada"}], "emailAddresses": [{"value": "ada@example.com"}]},
    )
    assert created.status_code == 200, created.text
    assert app.backend.book("manager@example.com").live == 1
    assert app.backend.book("rep@example.com").live == 0
    # And the new refresh token refreshes through google-auth (no new refresh token)
    first = creds.token
    creds.refresh(GoogleAuthRequest(session))
    assert creds.token != first
    assert creds.refresh_token == body["refresh_token"]
    listed = api.get(CONNECTIONS, params={"personFields": "names"})
    assert listed.status_code == 200
    assert listed.json()["totalItems"] == 1


def test_default_user_plain_pkce_and_online_access(app: App, session: requests.Session) -> None:
    # Given a request without login_hint, with a plain challenge and online access
    verifier = "v" * 43
    answer = redirected(
        authorize(session, app, access_type=None, code_challenge=verifier)  # plain by default
    )
    # Then the sandbox's first user consented, and the exchange gives no refresh token
    assert answer["authuser"] == "0"
    body = exchange(session, app, answer["code"], verifier).json()
    assert "refresh_token" not in body
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["email"] == "rep@example.com"


# ---- the exchange's failures ----------------------------------------------------------------


def test_pkce_is_checked(app: App, session: requests.Session) -> None:
    # Given a code bound to an S256 challenge
    code, verifier = consent(session, app)
    # When the verifier is wrong or missing, Google refuses it and the code stays usable
    assert oauth_error(exchange(session, app, code, "w" * 64)) == (
        400,
        "invalid_grant",
        "Invalid code verifier.",
    )
    assert oauth_error(exchange(session, app, code, None)) == (
        400,
        "invalid_grant",
        "Missing code verifier.",
    )
    assert exchange(session, app, code, verifier).status_code == 200
    # And a verifier for a code issued without a challenge is refused too
    plain = redirected(authorize(session, app))["code"]
    assert oauth_error(exchange(session, app, plain, verifier)) == (
        400,
        "invalid_grant",
        "code_verifier or verifier is not needed.",
    )


def test_codes_are_single_use(app: App, session: requests.Session) -> None:
    code, verifier = consent(session, app)
    assert exchange(session, app, code, verifier).status_code == 200
    assert oauth_error(exchange(session, app, code, verifier)) == (
        400,
        "invalid_grant",
        "Bad Request",
    )
    assert oauth_error(exchange(session, app, "not-a-code", verifier)) == (
        400,
        "invalid_grant",
        "Malformed auth code.",
    )


def test_codes_expire_after_ten_virtual_minutes(app: App, session: requests.Session) -> None:
    # Given two codes
    early, early_verifier = consent(session, app)
    late, late_verifier = consent(session, app)
    # When 9 min 59 s pass, a code still works; at 10 minutes the other no longer does
    app.clock.advance(599)
    assert exchange(session, app, early, early_verifier).status_code == 200
    app.clock.advance(1)
    assert oauth_error(exchange(session, app, late, late_verifier)) == (
        400,
        "invalid_grant",
        "Bad Request",
    )


def test_the_redirect_uri_must_be_the_authorizations(app: App, session: requests.Session) -> None:
    code, verifier = consent(session, app)
    other = exchange(session, app, code, verifier, redirect_uri=REDIRECT + "/other")
    assert oauth_error(other) == (400, "redirect_uri_mismatch", "Bad Request")
    missing = exchange(session, app, code, verifier, redirect_uri=None)
    assert oauth_error(missing) == (400, "invalid_request", "Missing parameter: redirect_uri")
    assert exchange(session, app, code, verifier).status_code == 200


def test_the_client_must_authenticate(app: App, session: requests.Session) -> None:
    code, verifier = consent(session, app)
    assert oauth_error(exchange(session, app, code, verifier, client_id="nope")) == (
        401,
        "invalid_client",
        "The OAuth client was not found.",
    )
    assert oauth_error(exchange(session, app, code, verifier, client_secret="nope")) == (
        401,
        "invalid_client",
        "Unauthorized",
    )
    assert oauth_error(exchange(session, app, code, verifier, client_secret=None)) == (
        400,
        "invalid_request",
        "client_secret is missing.",
    )
    # HTTP Basic works as well as the form
    config = app.client_config()
    basic = session.post(
        config["token_uri"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(config["client_id"], config["client_secret"]),
    )
    assert basic.status_code == 200, basic.text


# ---- the authorization endpoint's own answers -------------------------------------------------


def _error_page(response: requests.Response) -> str:
    """Google's "Authorization Error" page: no redirect, HTML for the user."""
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    return response.text


def test_a_bad_client_or_redirect_uri_never_goes_back(app: App, session: requests.Session) -> None:
    # Given an unknown client: Error 401 invalid_client, on Google's page
    unknown = authorize(session, app, client_id="123-nope.apps.googleusercontent.com")
    assert unknown.status_code == 401
    assert "Error 401: invalid_client" in _error_page(unknown)
    # Given an http redirect URI off loopback, which no Google web client can register
    plain_http = authorize(session, app, redirect_uri="http://app.example.test/cb")
    assert plain_http.status_code == 400
    assert "Error 400: redirect_uri_mismatch" in _error_page(plain_http)
    # When the client's redirect URIs are registered, only those pass
    registered = session.post(
        BASE + "_sandbox/oauth/redirect_uris", json={"redirect_uris": [REDIRECT]}
    )
    assert registered.json() == {"redirect_uris": [REDIRECT]}
    assert authorize(session, app).status_code == 302
    other = authorize(session, app, redirect_uri="https://evil.example.test/cb")
    assert other.status_code == 400
    page = _error_page(other)
    assert "register the redirect URI in the Google Cloud Console" in page
    assert "https://evil.example.test/cb" in page
    # And loopback is open while nothing is registered
    session.post(BASE + "_sandbox/oauth/redirect_uris", json={"redirect_uris": None})
    loopback = authorize(session, app, redirect_uri="http://127.0.0.1:8080/oauth/callback")
    assert loopback.headers["Location"].startswith("http://127.0.0.1:8080/oauth/callback?code=")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": None}, "invalid_request"),
        ({"scope": "openid https://www.googleapis.com/auth/drive"}, "invalid_scope"),
        ({"access_type": "forever"}, "invalid_request"),
        ({"prompt": "none consent"}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "c" * 43, "code_challenge_method": "S512"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
    ],
)
def test_malformed_requests_get_the_error_page(
    app: App, session: requests.Session, params: dict[str, str | None], error: str
) -> None:
    response = authorize(session, app, **params)
    assert response.status_code == 400
    assert f"Error 400: {error}" in _error_page(response)


def test_login_hint_names_a_user_or_the_user_declines(app: App, session: requests.Session) -> None:
    assert redirected(authorize(session, app, login_hint="SDR@example.com"))["authuser"] == "2"
    sub = app.backend.by_email["manager@example.com"].profile_id
    assert redirected(authorize(session, app, login_hint=sub))["authuser"] == "1"
    denied = redirected(authorize(session, app, login_hint="stranger@example.com"))
    assert denied == {"error": "access_denied", "state": STATE}


# ---- refresh tokens: Google's consent rule, revocation ----------------------------------------


def test_a_refresh_token_comes_only_with_the_consent_screen(
    app: App, session: requests.Session
) -> None:
    # Given the seeded grant of the contacts scope (sandbox.json's refresh token)
    contacts_only = {"scope": CONTACTS_SCOPE, "prompt": None}
    # When the client asks again for offline access without prompt=consent
    answer = redirected(authorize(session, app, **contacts_only))
    # Then no consent screen is shown, and no refresh token comes back
    assert answer["prompt"] == "none"
    assert "refresh_token" not in exchange(session, app, answer["code"], None).json()
    # When it asks for new scopes, the consent screen is shown: a refresh token comes back
    widened = redirected(authorize(session, app, prompt=None))
    assert widened["prompt"] == "consent"
    assert "refresh_token" in exchange(session, app, widened["code"], None).json()
    # And the same scopes again need no consent, so no refresh token
    again = redirected(authorize(session, app, prompt=None))
    assert "refresh_token" not in exchange(session, app, again["code"], None).json()
    # prompt=none for scopes never granted: consent_required, back at the client
    hidden = redirected(
        authorize(session, app, login_hint="sdr@example.com", scope="openid email", prompt="none")
    )
    assert hidden == {"error": "consent_required", "state": STATE}


def test_revoking_removes_the_whole_grant(app: App, session: requests.Session) -> None:
    # Given tokens from the flow
    code, verifier = consent(session, app)
    body = exchange(session, app, code, verifier).json()
    creds = credentials_of(app, body)
    api = mount_sandbox(
        AuthorizedSession(creds, auth_request=GoogleAuthRequest(session)), BASE, app
    )
    assert api.get(CONNECTIONS, params={"personFields": "names"}).status_code == 200
    # When the user revokes the refresh token
    config = app.client_config()
    assert session.post(config["revoke_uri"], data={"token": body["refresh_token"]}).ok
    # Then it no longer refreshes, nor does the seeded one, and a second revoke fails
    with pytest.raises(RefreshError, match="Token has been expired or revoked"):
        credentials_of(app, body).refresh(GoogleAuthRequest(session))
    seeded = credentials_of(app, {"access_token": None, "refresh_token": config["refresh_token"]})
    with pytest.raises(RefreshError, match="invalid_grant"):
        seeded.refresh(GoogleAuthRequest(session))
    assert (
        session.post(config["revoke_uri"], data={"token": body["refresh_token"]}).status_code == 400
    )
    # And the next authorization shows the consent screen again, with a new refresh token
    answer = redirected(authorize(session, app, scope=CONTACTS_SCOPE, prompt=None))
    assert answer["prompt"] == "consent"
    assert "refresh_token" in exchange(session, app, answer["code"], None).json()


def test_a_user_keeps_at_most_100_refresh_tokens(app: App, session: requests.Session) -> None:
    tokens = []
    for _ in range(101):
        answer = redirected(authorize(session, app, scope=CONTACTS_SCOPE))
        tokens.append(exchange(session, app, answer["code"], None).json()["refresh_token"])
    config = app.client_config()

    def refresh(token: str) -> requests.Response:
        return session.post(
            config["token_uri"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
            },
        )

    assert oauth_error(refresh(tokens[0])) == (
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
    )
    assert refresh(tokens[1]).status_code == 200
    assert refresh(tokens[-1]).json()["scope"] == CONTACTS_SCOPE


# ---- sandbox.json and persistence -------------------------------------------------------------


def test_client_config_and_state_across_a_restart(app: App, session: requests.Session) -> None:
    # Given sandbox.json's Google entry names the authorization endpoint
    config = app.client_config()
    assert config["auth_uri"] == BASE + "o/oauth2/v2/auth"
    # And a code and a refresh token issued before a restart
    code, verifier = consent(session, app)
    refresh_token = exchange(session, app, code, verifier).json()["refresh_token"]
    pending, pending_verifier = consent(session, app)
    state = app.dump_state()
    # When a new sandbox loads the state
    restored = registry.create("google", seed=11)
    assert isinstance(restored, App)
    restored.load_state(state)
    again = mount_sandbox(requests.Session(), BASE, restored)
    # Then the pending code still exchanges, and the refresh token still refreshes
    assert exchange(again, restored, pending, pending_verifier).status_code == 200
    assert exchange(again, restored, code, verifier).status_code == 400  # used before
    creds = credentials_of(restored, {"access_token": None, "refresh_token": refresh_token})
    creds.refresh(GoogleAuthRequest(again))
    assert creds.token
