"""Talking to Aircall: configuration, credentials, the authenticated ``requests`` session, the
rate-limit governor and a thin typed wrapper over each endpoint we use.

Aircall publishes no Python client: this is plain ``requests`` with HTTP Basic
``api_id:api_token`` (a company API key) or an OAuth bearer token (a partner app; Aircall's
tokens do not expire and come without a refresh token). Everything arrives injected: the
account's config, its secrets, and optionally a ``requests.Session`` (a CA bundle, or the
sandbox mounted in-process) and a Clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contactsync.connectors.aircall import errors
from contactsync.connectors.aircall.models import (
    ContactEnvelope,
    ContactList,
    DetailKind,
    RawContact,
    RawWebhook,
    WebhookEnvelope,
    WebhookList,
)
from contactsync.connectors.base import AuthError, ConnectorError, ConnectorStats, TransientError
from contactsync.connectors.http import Clock, HttpClient, Pacer

DEFAULT_API_BASE = "https://api.aircall.io/v1"
USER_AGENT = "contactsync-aircall/0.1"
M = TypeVar("M", bound=BaseModel)


class AircallConfig(BaseModel):
    """``ConnectedAccount.config`` for an Aircall account (string values, as stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_base: str = DEFAULT_API_BASE
    # Where Aircall posts contact.* events; None: no webhook, changes are polled only.
    webhook_url: str | None = None
    webhook_name: str = Field(default="contactsync", max_length=100)
    # The company's limit, shared with its other integrations, until X-AircallApi-Limit says.
    rate_limit_per_minute: int = Field(default=120, ge=1)
    # Our own budget; unset: the limit minus ``headroom`` (a share kept free for the others).
    requests_per_minute: float | None = Field(default=None, gt=0)
    headroom: float = Field(default=0.25, ge=0.0, lt=1.0)
    # A full scan (which finds deletes by absence) when the last one is older than this.
    reconcile_hours: float = Field(default=24.0, gt=0)
    # Contacts deleted since the last read (seen in a count) bring the full scan forward, at
    # most this often; None (an empty value) turns the check off.
    delete_rescan_minutes: float | None = Field(default=60.0, ge=0)
    per_page: int = Field(default=50, ge=1, le=50)
    query_cap: int = Field(default=10_000, ge=1)
    default_region: str = "US"
    # Aircall accepts duplicates, so a create first searches for the same person (one more
    # request per create). Off only where nothing but this sync creates contacts.
    search_before_create: bool = True
    timeout_seconds: float = Field(default=30.0, gt=0)
    ca_bundle: str | None = None

    @field_validator("api_base")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("api_base must be an https URL")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an http(s) URL")
        return value or None

    @classmethod
    def from_mapping(cls, config: Mapping[str, str]) -> AircallConfig:
        values: dict[str, str | None] = {k: v for k, v in config.items() if v != ""}
        if config.get("delete_rescan_minutes") in ("", "off"):
            values["delete_rescan_minutes"] = None
        return cls.model_validate(values)

    def budget(self, limit: int | None = None) -> float:
        if self.requests_per_minute is not None:
            return self.requests_per_minute
        return max(1.0, math.floor((limit or self.rate_limit_per_minute) * (1 - self.headroom)))


@dataclass(frozen=True)
class Credentials:
    """A company API key (Basic) or an OAuth access token (Bearer)."""

    scheme: Literal["basic", "bearer"]
    api_id: str = ""
    api_token: str = ""
    access_token: str = ""

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str]) -> Credentials:
        if secrets.get("access_token"):
            return cls("bearer", access_token=secrets["access_token"])
        if secrets.get("api_id") and secrets.get("api_token"):
            return cls("basic", api_id=secrets["api_id"], api_token=secrets["api_token"])
        raise AuthError("missing_credentials", "need api_id and api_token, or access_token")

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(scheme={self.scheme!r})"


def build_session(
    credentials: Credentials, session: requests.Session | None = None, ca_bundle: str | None = None
) -> requests.Session:
    """The authenticated session: the injected one (in-process sandbox, custom transport) or a
    new one trusting ``ca_bundle`` when given."""
    if session is None:
        session = requests.Session()
        if ca_bundle:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
            session.verify = ca_bundle
    if credentials.scheme == "basic":
        session.auth = (credentials.api_id, credentials.api_token)
    else:
        session.headers["Authorization"] = f"Bearer {credentials.access_token}"
    session.headers.setdefault("User-Agent", USER_AGENT)
    session.headers["Accept"] = "application/json"
    return session


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class RateGovernor:
    """Keeps headroom in the company's shared rate limit. The pacer's per-minute budget follows
    ``X-AircallApi-Limit``; when ``X-AircallApi-Remaining`` falls below the reserve left for
    the company's other integrations, the next request waits for the bucket to drain that
    far (at the pace ``X-AircallApi-Reset`` implies). Without the headers (possible in real
    life) the configured limit and budget apply."""

    pacer: Pacer
    clock: Clock
    config: AircallConfig
    limit: int | None = None
    # The fewest free places seen in the bucket (how close the company came to a 429).
    lowest_remaining: float | None = None

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        limit = _number(headers.get("X-AircallApi-Limit"))
        if limit is None or limit < 1:
            return
        self.limit = int(limit)
        self.pacer.per_minute = self.config.budget(self.limit)
        remaining = _number(headers.get("X-AircallApi-Remaining"))
        if remaining is None or response.status_code == 429:
            return
        if self.lowest_remaining is None or remaining < self.lowest_remaining:
            self.lowest_remaining = remaining
        deficit = math.ceil(self.limit * self.config.headroom) - remaining
        if deficit <= 0:
            return
        used = max(self.limit - remaining, 1.0)
        reset = _number(headers.get("X-AircallApi-Reset"))
        now = self.clock.now().timestamp()
        per_place = (reset - now) / used if reset is not None else 60.0 / self.limit
        self.pacer.hold(min(max(deficit * per_place, 0.0), 60.0))


def make_http(
    session: requests.Session, config: AircallConfig, clock: Clock, stats: ConnectorStats
) -> tuple[HttpClient, RateGovernor]:
    pacer = Pacer(clock=clock, per_minute=config.budget(), stats=stats)
    governor = RateGovernor(pacer, clock, config)

    def classify(response: requests.Response) -> ConnectorError | None:
        governor.observe(response)
        return errors.classify(response, clock.now().timestamp())

    http = HttpClient(
        session=session,
        classify=classify,
        pacer=pacer,
        stats=stats,
        timeout=config.timeout_seconds,
    )
    return http, governor


def _parse(model: type[M], response: requests.Response) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        # A 2xx we cannot read: say so without echoing the body (it holds contact data).
        raise TransientError("bad_response", f"unexpected {model.__name__} shape") from exc


class AircallApi:
    """One method per endpoint; paths and parameters built here only (ids are integers,
    query values are URL-encoded)."""

    def __init__(self, http: HttpClient, api_base: str) -> None:
        self.http = http
        self.base = api_base.rstrip("/")

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = self.base + path
        if params:
            url += "?" + urlencode([(k, str(v)) for k, v in params.items() if v is not None])
        return url

    # ---- contacts -------------------------------------------------------------------------

    def list_contacts(self, **params: Any) -> ContactList:
        response = self.http.request("GET", self._url("/contacts", params), "contacts.list")
        return _parse(ContactList, response)

    def search_contacts(self, **params: Any) -> ContactList:
        url = self._url("/contacts/search", params)
        return _parse(ContactList, self.http.request("GET", url, "contacts.search"))

    def get_contact(self, contact_id: int) -> RawContact:
        response = self.http.request("GET", self._url(f"/contacts/{contact_id}"), "contacts.get")
        return _parse(ContactEnvelope, response).contact

    def create_contact(self, payload: dict[str, Any]) -> RawContact:
        # Not idempotent: a lost answer raises Uncertain instead of creating a twin.
        response = self.http.request(
            "POST", self._url("/contacts"), "contacts.create", idempotent=False, json=payload
        )
        return _parse(ContactEnvelope, response).contact

    def update_contact(self, contact_id: int, payload: dict[str, Any]) -> RawContact:
        """Names, company and information (a POST; phones and emails here are ignored)."""
        url = self._url(f"/contacts/{contact_id}")
        response = self.http.request("POST", url, "contacts.update", json=payload)
        return _parse(ContactEnvelope, response).contact

    def delete_contact(self, contact_id: int) -> None:
        self.http.request("DELETE", self._url(f"/contacts/{contact_id}"), "contacts.delete")

    def add_detail(self, contact_id: int, kind: DetailKind, label: str, value: str) -> RawContact:
        url = self._url(f"/contacts/{contact_id}/{kind}_details")
        response = self.http.request(
            "POST",
            url,
            f"{kind}_details.add",
            idempotent=False,  # a repeated add would store the value twice
            json={"label": label, "value": value},
        )
        return _parse(ContactEnvelope, response).contact

    def change_detail(
        self, contact_id: int, kind: DetailKind, detail_id: int, label: str, value: str
    ) -> RawContact:
        url = self._url(f"/contacts/{contact_id}/{kind}_details/{detail_id}")
        response = self.http.request(
            "PUT", url, f"{kind}_details.change", json={"label": label, "value": value}
        )
        return _parse(ContactEnvelope, response).contact

    def remove_detail(self, contact_id: int, kind: DetailKind, detail_id: int) -> None:
        url = self._url(f"/contacts/{contact_id}/{kind}_details/{detail_id}")
        self.http.request("DELETE", url, f"{kind}_details.remove")

    # ---- webhooks -------------------------------------------------------------------------

    def list_webhooks(self, page: int, per_page: int) -> WebhookList:
        url = self._url("/webhooks", {"page": page, "per_page": per_page})
        return _parse(WebhookList, self.http.request("GET", url, "webhooks.list"))

    def get_webhook(self, webhook_id: str) -> RawWebhook:
        url = self._url(f"/webhooks/{quote(webhook_id, safe='')}")
        return _parse(WebhookEnvelope, self.http.request("GET", url, "webhooks.get")).webhook

    def create_webhook(self, body: dict[str, Any]) -> RawWebhook:
        response = self.http.request(
            "POST", self._url("/webhooks"), "webhooks.create", idempotent=False, json=body
        )
        return _parse(WebhookEnvelope, response).webhook

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> RawWebhook:
        """PUT: ``events`` must always be sent (left out, Aircall subscribes to every event)."""
        url = self._url(f"/webhooks/{quote(webhook_id, safe='')}")
        response = self.http.request("PUT", url, "webhooks.update", json=body)
        return _parse(WebhookEnvelope, response).webhook


# ---- OAuth (partner apps) ---------------------------------------------------------------------


def authorize_url(authorize_endpoint: str, client_id: str, redirect_uri: str, state: str) -> str:
    """Where an Aircall admin consents to the app (``scope=public_api``)."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "public_api",
            "state": state,
        }
    )
    return f"{authorize_endpoint}?{query}"


def exchange_code(
    session: requests.Session,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Trades the consent's one-time code for an access token; returns the secrets to store
    (``{"access_token": ...}``: it does not expire and there is no refresh token)."""
    response = session.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=timeout,
    )
    if response.status_code != 200:
        reason = ""
        try:
            body = response.json()
            reason = str(body.get("error", ""))[:60] if isinstance(body, dict) else ""
        except ValueError:
            pass
        raise AuthError("oauth_exchange_failed", f"HTTP {response.status_code} {reason}".strip())
    try:
        token = response.json()["access_token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError("oauth_exchange_failed", "no access_token in the answer") from exc
    if not isinstance(token, str) or not token:
        raise AuthError("oauth_exchange_failed", "no access_token in the answer")
    return {"access_token": token}
