"""Talking to the People API: configuration, credentials, the authenticated session (google-auth's
``AuthorizedSession``, which refreshes the access token), the error-table-driven HTTP client and
a thin wrapper over each endpoint we use.

Everything arrives injected: the account's config, its secrets (``client_id``,
``client_secret``, ``refresh_token``), optionally a ``requests.Session`` that carries the
transport (a CA bundle, or a sandbox mounted in-process) and a Clock. The injected session's
adapters and TLS settings are copied onto the AuthorizedSession, and token refreshes go through
the injected session itself (otherwise google-auth refreshes through a private session of its
own, which would bypass both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials as OAuthCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ConnectorStats,
    TransientError,
)
from contactsync.connectors.google import errors
from contactsync.connectors.google.models import (
    PERSON_FIELDS_MASK,
    USER_CONTACT_GROUP,
    BatchCreateAnswer,
    BatchGetAnswer,
    BatchUpdateAnswer,
    ConnectionsPage,
    GroupsPage,
    PersonResponse,
    RawGroup,
)
from contactsync.connectors.http import Clock, HttpClient, Pacer

DEFAULT_API_BASE = "https://people.googleapis.com/"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts"
USER_AGENT = "contactsync-google/0.1"
MAX_BATCH_GET = 200
M = TypeVar("M", bound=BaseModel)

SecretsCallback = Callable[[dict[str, str]], None]


class GoogleConfig(BaseModel):
    """``ConnectedAccount.config`` for a Google account (string values, as stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_base: str = DEFAULT_API_BASE
    token_uri: str = DEFAULT_TOKEN_URI
    ca_bundle: str | None = None
    # The contact group (label) that marks a contact for sync (seed 003's "Salesforce").
    label: str = Field(default="Salesforce", min_length=1, max_length=100)
    page_size: int = Field(default=1000, ge=1, le=1000)
    default_region: str = Field(default="US", min_length=2, max_length=2)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # A budget of our own (requests a minute); unset: Google's 429s alone pace us.
    requests_per_minute: float | None = Field(default=None, gt=0)
    # 429s carry no Retry-After: the first wait, doubled per consecutive 429, up to the cap.
    backoff_initial_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=64.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=20)
    # How far back find_created looks for a person a lost create may have made.
    find_created_hours: float = Field(default=24.0, gt=0)

    @field_validator("api_base", "token_uri")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("Google endpoints must be https URLs")
        return value

    @field_validator("api_base")
    @classmethod
    def _root(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @classmethod
    def from_mapping(cls, config: Mapping[str, str]) -> GoogleConfig:
        return cls.model_validate({k: v for k, v in config.items() if v != ""})


@dataclass(frozen=True)
class Secrets:
    """An OAuth client and one user's refresh token (``access_token`` optional: a token still
    valid saves the first refresh)."""

    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str | None = None

    @classmethod
    def from_mapping(cls, secrets: Mapping[str, str]) -> Secrets:
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not secrets.get(k)]
        if missing:
            raise AuthError("missing_credentials", "need " + ", ".join(missing))
        return cls(
            secrets["client_id"],
            secrets["client_secret"],
            secrets["refresh_token"],
            secrets.get("access_token") or None,
        )

    def __repr__(self) -> str:  # never print secrets
        return "Secrets(client_id=..., client_secret=..., refresh_token=...)"


class GoogleSession(AuthorizedSession):
    """google-auth's AuthorizedSession, whose token-refresh failures become our errors: a
    refused refresh token (``invalid_grant``: revoked, expired) is an AuthError (the account
    needs reconnecting); an unreachable or failing token endpoint a TransientError. Either way
    the API request itself was never sent."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response: requests.Response = super().request(*args, **kwargs)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise TransientError("token_refresh_failed", "the token endpoint failed") from exc
            raise AuthError("invalid_grant", "Google refused the refresh token") from exc
        except google.auth.exceptions.TransportError as exc:
            raise TransientError("token_endpoint_unreachable", "no answer") from exc
        return response


def build_session(
    config: GoogleConfig, secrets: Secrets, transport: requests.Session | None = None
) -> GoogleSession:
    """The authenticated session. ``transport`` (injected) carries requests: its adapters and
    TLS settings are copied, and token refreshes go through it."""
    if transport is None:
        transport = requests.Session()
    if config.ca_bundle and transport.verify is True:
        transport.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        transport.verify = config.ca_bundle
    credentials = OAuthCredentials(  # type: ignore[no-untyped-call]
        token=secrets.access_token,
        refresh_token=secrets.refresh_token,
        token_uri=config.token_uri,
        client_id=secrets.client_id,
        client_secret=secrets.client_secret,
    )
    refresher = AuthRequest(transport)
    session = GoogleSession(credentials, auth_request=refresher)  # type: ignore[no-untyped-call]
    for prefix, adapter in transport.adapters.items():
        session.mount(prefix, adapter)
    session.verify = transport.verify
    session.trust_env = transport.trust_env
    session.cert = transport.cert
    session.proxies = dict(transport.proxies)
    session.headers["User-Agent"] = USER_AGENT
    return session


class RotationWatch:
    """Reports a refresh token Google rotated (the token endpoint may return a new one, which
    google-auth adopts) through ``on_secret_rotated``, once per new value."""

    def __init__(self, credentials: Any, callback: SecretsCallback | None) -> None:
        self.credentials = credentials
        self.callback = callback
        self.known = credentials.refresh_token

    def check(self) -> None:
        current = self.credentials.refresh_token
        if current and current != self.known:
            self.known = current
            if self.callback is not None:
                self.callback({"refresh_token": current})


def make_http(
    session: GoogleSession,
    config: GoogleConfig,
    clock: Clock,
    stats: ConnectorStats,
    rotation: RotationWatch,
) -> HttpClient:
    pacer = Pacer(clock=clock, per_minute=config.requests_per_minute, stats=stats)
    backoff = errors.Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)

    def classify(response: requests.Response) -> ConnectorError | None:
        rotation.check()
        return errors.classify(response, backoff)

    return HttpClient(
        session=session,
        classify=classify,
        pacer=pacer,
        stats=stats,
        timeout=config.timeout_seconds,
        max_attempts=config.max_attempts,
    )


def _parse(model: type[M], response: requests.Response) -> M:
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        # A 2xx we cannot read: say so without echoing the body (it holds contact data).
        raise TransientError("bad_response", f"unexpected {model.__name__} shape") from exc


class PeopleApi:
    """One method per endpoint; URLs and parameters built here only. Resource names travel in
    JSON bodies and in query values (URL-encoded by requests), never in a path."""

    def __init__(self, http: HttpClient, api_base: str, page_size: int) -> None:
        self.http = http
        self.base = api_base
        self.page_size = page_size

    def _url(self, path: str) -> str:
        return self.base + path

    # ---- people: reads ------------------------------------------------------------------------

    def connections(self, params: Mapping[str, str]) -> ConnectionsPage:
        """One page; ``params`` may override the fields read (not in a sync: sync tokens need
        the same personFields every time)."""
        query = {"personFields": PERSON_FIELDS_MASK, "pageSize": str(self.page_size), **params}
        response = self.http.request(
            "GET", self._url("v1/people/me/connections"), "people.connections.list", params=query
        )
        return _parse(ConnectionsPage, response)

    def batch_get(self, names: Sequence[str]) -> list[PersonResponse]:
        """Up to 200 people by resource name; missing ones answer 404 in their item."""
        query: list[tuple[str, str]] = [("personFields", PERSON_FIELDS_MASK)]
        query += [("resourceNames", name) for name in names]
        response = self.http.request(
            "GET", self._url("v1/people:batchGet"), "people.batchGet", params=query
        )
        return _parse(BatchGetAnswer, response).responses

    # ---- people: writes -----------------------------------------------------------------------

    def batch_create(self, people: Sequence[dict[str, Any]]) -> list[PersonResponse]:
        """Up to 200 contacts; not idempotent (a lost answer raises Uncertain)."""
        body = {
            "contacts": [{"contactPerson": p} for p in people],
            "readMask": PERSON_FIELDS_MASK,
        }
        response = self.http.request(
            "POST",
            self._url("v1/people:batchCreateContacts"),
            "people.batchCreateContacts",
            idempotent=False,
            json=body,
        )
        return _parse(BatchCreateAnswer, response).created_people

    def batch_update(
        self, people: Mapping[str, dict[str, Any]], mask: Sequence[str]
    ) -> dict[str, PersonResponse]:
        """Up to 200 contacts by resource name, each with its etag; ``mask`` names the fields
        replaced (wholesale) in every one of them."""
        body = {
            "contacts": dict(people),
            "updateMask": ",".join(mask),
            "readMask": PERSON_FIELDS_MASK,
        }
        response = self.http.request(
            "POST",
            self._url("v1/people:batchUpdateContacts"),
            "people.batchUpdateContacts",
            json=body,
        )
        return _parse(BatchUpdateAnswer, response).update_result

    def batch_delete(self, names: Sequence[str]) -> None:
        """Up to 500 contacts; a name that does not exist fails the whole batch (404)."""
        self.http.request(
            "POST",
            self._url("v1/people:batchDeleteContacts"),
            "people.batchDeleteContacts",
            json={"resourceNames": list(names)},
        )

    # ---- contact groups -----------------------------------------------------------------------

    def groups(self) -> Iterator[RawGroup]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            query = {"pageSize": "1000", "groupFields": "name,groupType"}
            if token:
                query["pageToken"] = token
            response = self.http.request(
                "GET", self._url("v1/contactGroups"), "contactGroups.list", params=query
            )
            page = _parse(GroupsPage, response)
            yield from page.contact_groups
            token = page.next_page_token
            if not token:
                return
            if token in seen:
                raise TransientError("repeated_page_token", "contactGroups.list")
            seen.add(token)

    def find_group(self, name: str) -> str | None:
        """The resource name of the user's contact group called ``name``."""
        for group in self.groups():
            if group.group_type == USER_CONTACT_GROUP and group.name == name:
                return group.resource_name
        return None

    def create_group(self, name: str) -> RawGroup:
        """409 ALREADY_EXISTS (AlreadyExists) when the user has a group of that name."""
        response = self.http.request(
            "POST",
            self._url("v1/contactGroups"),
            "contactGroups.create",
            json={"contactGroup": {"name": name}, "readGroupFields": "name,groupType"},
        )
        return _parse(RawGroup, response)
