"""Connecting accounts with OAuth 2.0: authorization code with PKCE (S256) and state.

``start`` stores an attempt (who, which provider, the PKCE verifier, where to go back) under a
hash of the unguessable ``state`` and returns the provider's authorize URL; ``complete`` (the
public callback) takes the attempt exactly once, checks it has not expired, redeems the code at
the provider's token endpoint with the verifier, and connects (or reconnects) the account. The
state carries the organisation so the callback finds the attempt without a session."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from pydantic import Field

from contactsync.api.problems import ApiError, Gone, Unprocessable
from contactsync.api.settings import ApiSettings, ProviderOAuth
from contactsync.domain.accounts import Provider
from contactsync.domain.base import AwareDatetime, Entity, Id
from contactsync.domain.errors import VersionConflict
from contactsync.store.base import Store

OAUTH_PROVIDERS = (Provider.GOOGLE, Provider.MICROSOFT, Provider.SALESFORCE, Provider.AIRCALL)
# Providers whose access tokens expire, so an account is only usable with a refresh token
# (Aircall's OAuth tokens never expire and come without one).
REFRESHING_PROVIDERS = frozenset({Provider.GOOGLE, Provider.MICROSOFT, Provider.SALESFORCE})


class OAuthAttempt(Entity):
    kind = "oauth_attempt"

    user_id: Id
    provider: Provider
    code_verifier: str = Field(min_length=43, max_length=128)
    redirect_uri: str = Field(max_length=500)
    # Reconnecting an existing account rather than connecting a new one.
    account_id: Id | None = None
    login_hint: str | None = Field(default=None, max_length=254)
    label: str | None = Field(default=None, max_length=254)
    created_at: AwareDatetime
    ttl_seconds: int = 600
    used: bool = False

    def expires_at(self) -> datetime | None:
        return self.created_at + timedelta(seconds=self.ttl_seconds)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def attempt_id(state: str) -> str:
    return "oa-" + hashlib.sha256(state.encode()).hexdigest()[:48]


def org_of_state(state: str) -> str:
    org_id, sep, nonce = state.partition("~")
    if not sep or not org_id or len(nonce) < 32 or len(state) > 300:
        raise ApiError("The state is not one we issued.", code="bad_state")
    return org_id


@dataclass(frozen=True)
class Started:
    authorization_url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered, split into the account's credentials and facts."""

    credentials: dict[str, str]
    address: str | None
    config: dict[str, str]


@dataclass
class OAuthFlows:
    settings: ApiSettings
    store: Store
    http: requests.Session
    now: Callable[[], datetime]

    def client(self, provider: Provider) -> ProviderOAuth:
        client = self.settings.oauth.get(provider)
        if client is None:
            raise Unprocessable(
                f"No OAuth client is configured for {provider.value}.", code="not_configured"
            )
        return client

    def start(
        self,
        org_id: str,
        user_id: str,
        provider: Provider,
        *,
        account_id: str | None = None,
        login_hint: str | None = None,
        label: str | None = None,
    ) -> Started:
        client = self.client(provider)
        state = f"{org_id}~{secrets.token_urlsafe(32)}"
        verifier = secrets.token_urlsafe(64)[:96]
        now = self.now()
        attempt = OAuthAttempt(
            org_id=org_id,
            id=attempt_id(state),
            user_id=user_id,
            provider=provider,
            code_verifier=verifier,
            redirect_uri=self.settings.callback_url,
            account_id=account_id,
            login_hint=login_hint,
            label=label,
            created_at=now,
            ttl_seconds=self.settings.oauth_attempt_ttl_seconds,
        )
        self.store.create(attempt)
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": attempt.redirect_uri,
            "scope": " ".join(client.scopes),
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            **client.authorize_params,
        }
        if login_hint:
            params["login_hint"] = login_hint
        url = str(client.authorize_url)
        separator = "&" if urlsplit(url).query else "?"
        expires = attempt.expires_at()
        assert expires is not None
        return Started(f"{url}{separator}{urlencode(params)}", state, expires)

    def take(self, state: str) -> OAuthAttempt:
        """The attempt ``state`` names, removed so that it can never be used twice."""
        org_id = org_of_state(state)
        attempt = self.store.find(OAuthAttempt, org_id, attempt_id(state))
        if attempt is None or attempt.used:
            raise Gone("This connect attempt is unknown or was used already.", code="bad_state")
        try:
            # Conditional on the version read: of two concurrent callbacks, one wins.
            self.store.update(attempt.model_copy(update={"used": True}))
        except VersionConflict as exc:
            raise Gone("This connect attempt was used already.", code="bad_state") from exc
        expires = attempt.expires_at()
        if expires is not None and expires <= self.now():
            raise Gone("This connect attempt expired; start again.", code="expired_state")
        return attempt

    def redeem(self, attempt: OAuthAttempt, code: str) -> Tokens:
        client = self.client(attempt.provider)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": attempt.redirect_uri,
            "client_id": client.client_id,
            "code_verifier": attempt.code_verifier,
        }
        if client.client_secret:
            form["client_secret"] = client.client_secret
        try:
            response = self.http.post(
                str(client.token_url),
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.settings.http_timeout_seconds,
            )
        except requests.RequestException as exc:
            raise ApiError(
                "The provider's token endpoint did not answer.", code="provider_down", status=502
            ) from exc
        if response.status_code != 200:
            raise Unprocessable(
                f"The provider refused the authorization code ({response.status_code}).",
                code="code_refused",
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(
                "The token endpoint answered something else than JSON.",
                code="provider_error",
                status=502,
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ApiError(
                "The token endpoint gave no access token.", code="provider_error", status=502
            )
        if attempt.provider in REFRESHING_PROVIDERS and not body.get("refresh_token"):
            # Google sends one only when it shows the consent screen with access_type=offline:
            # the first time, or with prompt=consent. Without it the account could never sync.
            raise Unprocessable(
                "The provider gave no refresh token, so the account could not stay connected; "
                "the OAuth client must ask for offline access (Google: access_type=offline and "
                "prompt=consent; Microsoft: offline_access; Salesforce: refresh_token).",
                code="no_refresh_token",
            )
        return tokens_of(attempt.provider, body, client)


def _claims(jwt: object) -> dict[str, Any]:
    """The payload of a JWT received straight from the token endpoint over TLS (OIDC Core
    3.1.3.7 lets a client skip the signature check for tokens obtained that way)."""
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        return {}
    try:
        payload = jwt.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def tokens_of(provider: Provider, body: dict[str, Any], client: ProviderOAuth) -> Tokens:
    credentials = dict(client.account_credentials)
    credentials.setdefault("client_id", client.client_id)
    if client.client_secret:
        credentials.setdefault("client_secret", client.client_secret)
    for key in ("access_token", "refresh_token"):
        if isinstance(body.get(key), str):
            credentials[key] = body[key]
    config: dict[str, str] = {}
    address: str | None = None
    claims = _claims(body.get("id_token")) or _claims(body.get("access_token"))
    for name in ("email", "preferred_username", "upn", "unique_name"):
        if isinstance(claims.get(name), str) and "@" in claims[name]:
            address = claims[name]
            break
    if provider is Provider.SALESFORCE:
        if isinstance(body.get("instance_url"), str):
            config["instance_url"] = body["instance_url"]
        identity = body.get("id")
        if isinstance(identity, str):
            parts = identity.rstrip("/").split("/")
            if len(parts) >= 2:
                config["organization_id"], config["user_id"] = parts[-2], parts[-1]
                address = address or parts[-1]
    return Tokens(credentials, address, config)
