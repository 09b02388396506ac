"""Talking to Microsoft Graph: configuration, credentials, tokens through msal, and a thin
Graph client over ``requests`` (retries by the shared HTTP client and our error table, one
token refresh on 401, ``$batch`` with per-item results).

Everything arrives injected: the account's config, its secrets, a ``requests.Session`` (a CA
bundle, or the sandbox mounted in-process) and a Clock. msal talks to the identity platform on
the same session. Its token cache runs on the wall clock, so a token the service already
refuses (401 InvalidAuthenticationToken) is dropped from msal's cache and fetched again once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import msal
import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ConnectorStats,
    Throttled,
    TransientError,
    Uncertain,
)
from contactsync.connectors.http import Clock, HttpClient, Pacer
from contactsync.connectors.microsoft import errors

log = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"
DEFAULT_LOGIN = "https://login.microsoftonline.com"
APP_SCOPE = "https://graph.microsoft.com/.default"
DELEGATED_SCOPE = "https://graph.microsoft.com/Contacts.ReadWrite"
USER_AGENT = "contactsync-microsoft/0.1"
BATCH_LIMIT = 20  # Graph's cap on requests in one $batch
MAX_ITEM_ATTEMPTS = 6

SecretsCallback = Callable[[dict[str, str]], None]


class MicrosoftConfig(BaseModel):
    """``ConnectedAccount.config`` for a Microsoft 365 mailbox (string values, as stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # https://login.microsoftonline.com/{tenant}; built from tenant_id when absent.
    authority: str | None = None
    tenant_id: str | None = None
    graph_base: str = DEFAULT_GRAPH_BASE
    # The mailbox (UPN or object id); the account's address when absent.
    user_id: str | None = None
    scope: str = APP_SCOPE
    delegated_scope: str = DELEGATED_SCOPE
    folder_name: str = Field(default="Salesforce Contacts", min_length=1, max_length=255)
    category: str = Field(default="Salesforce", min_length=1, max_length=255)
    category_color: str = "preset7"
    # The address book: Graph's well-known name of the default contacts folder.
    default_folder: str = "contacts"
    default_region: str = "US"
    page_size: int = Field(default=200, ge=1, le=1000)
    batch_size: int = Field(default=BATCH_LIMIT, ge=1, le=BATCH_LIMIT)
    # Our own request budget per minute (None: only Graph's 429s pace us).
    requests_per_minute: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # How long a contact's removal from the synced folder may explain a categorised contact
    # turning up outside it (a user's move out of the folder, seen in the next read at latest).
    move_window_minutes: float = Field(default=30.0, ge=0)
    # Change notifications (issue 6): where Graph posts them, and how long a subscription lives
    # (10,080 minutes in current docs, 4,230 in older ones, 10,070 accepted by live tenants).
    webhook_url: str | None = None
    lifecycle_url: str | None = None
    subscription_minutes: int = Field(default=4_230, ge=45, le=10_080)
    ca_bundle: str | None = None

    @field_validator("graph_base", "authority")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https URL (msal and Graph accept nothing else)")
        return value.rstrip("/") if value else value

    @classmethod
    def from_mapping(cls, config: Mapping[str, str]) -> MicrosoftConfig:
        return cls.model_validate({k: v for k, v in config.items() if v != ""})

    def authority_url(self) -> str:
        if self.authority:
            return self.authority
        if self.tenant_id:
            return f"{DEFAULT_LOGIN}/{self.tenant_id}"
        raise ValueError("the account's config needs authority or tenant_id")


@dataclass(frozen=True)
class Credentials:
    """The app registration's client id and secret; with a ``refresh_token`` (a user connected
    through OAuth) tokens are delegated, otherwise app-only (client credentials)."""

    client_id: str
    client_secret: str
    refresh_token: str | None = None

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str]) -> Credentials:
        client_id, secret = secrets.get("client_id"), secrets.get("client_secret")
        if not client_id or not secret:
            raise AuthError("missing_credentials", "need client_id and client_secret")
        return cls(client_id, secret, secrets.get("refresh_token") or None)

    def __repr__(self) -> str:  # never print secrets
        mode = "delegated" if self.refresh_token else "app-only"
        return f"Credentials(mode={mode!r})"


class _IdentityHttp:
    """The session as msal's HTTP client: with a timeout on every call (msal sets none on a
    client it is given) and the last answer kept (msal's result drops the Retry-After)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout
        self.last: requests.Response | None = None

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        self.last = self._session.post(url, **kwargs)
        return self.last

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        self.last = self._session.get(url, **kwargs)
        return self.last

    def close(self) -> None:
        """The session is the connector's, not msal's to close."""


class TokenSource:
    """Access tokens from msal: client credentials, or a refresh token whose rotations are
    reported through ``on_rotated``. Built lazily: msal discovers the authority on creation."""

    def __init__(
        self,
        config: MicrosoftConfig,
        credentials: Credentials,
        session: requests.Session,
        stats: ConnectorStats,
        on_rotated: SecretsCallback | None = None,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._stats = stats
        self._on_rotated = on_rotated
        self._refresh_token = credentials.refresh_token
        self._http = _IdentityHttp(session, config.timeout_seconds)
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None

    @property
    def delegated(self) -> bool:
        return self._refresh_token is not None

    def _client(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._stats.count("token.discovery")
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._credentials.client_id,
                    client_credential=self._credentials.client_secret,
                    authority=self._config.authority_url(),
                    instance_discovery=False,
                    http_client=self._http,
                )
            except requests.RequestException as exc:
                raise TransientError("authority_unreachable", type(exc).__name__) from exc
            except ValueError as exc:  # msal: the authority's discovery document was refused
                raise AuthError("authority_invalid", "the tenant's authority was refused") from exc
        return self._app

    def token(self) -> str:
        if self._token is None:
            self._token = self._acquire()
        return self._token

    def invalidate(self) -> None:
        """Graph refused the token: forget it (msal's cache too) so the next call gets another."""
        self._token = None
        if self._app is not None and not self.delegated:
            self._app.remove_tokens_for_client()

    def _acquire(self) -> str:
        app = self._client()
        try:
            if self._refresh_token is not None:
                result = app.acquire_token_by_refresh_token(
                    self._refresh_token, scopes=[self._config.delegated_scope]
                )
            else:
                result = app.acquire_token_for_client(scopes=[self._config.scope])
        except requests.RequestException as exc:
            raise TransientError("token_endpoint_unreachable", type(exc).__name__) from exc
        if result.get("token_source") != "cache":
            self._stats.count("token")
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            last = self._http.last
            headers = last.headers if last is not None and last.status_code >= 429 else {}
            raise errors.token_error(result, errors.retry_after(headers))
        rotated = result.get("refresh_token")
        delegated = self._refresh_token is not None
        if delegated and isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            if self._on_rotated is not None:
                self._on_rotated({"refresh_token": rotated})
        return token


@dataclass(frozen=True)
class BatchItem:
    """One request of a ``$batch`` (``url`` relative to the Graph version root)."""

    id: str
    method: str
    url: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        headers = dict(self.headers)
        if self.body is not None:
            headers.setdefault("Content-Type", "application/json")
            out["body"] = self.body
        if headers:
            out["headers"] = headers
        return out


@dataclass(frozen=True)
class BatchAnswer:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _item_failure(error: ConnectorError) -> BatchAnswer:
    """A whole-call failure, as the answer of each item it took down."""
    return BatchAnswer(0, error, {})


class GraphClient:
    """Graph over ``requests``: the pacer and retries of ``HttpClient``, our error table, a
    bearer token from ``TokenSource`` (refreshed once on 401), ``$batch``."""

    def __init__(
        self,
        session: requests.Session,
        config: MicrosoftConfig,
        tokens: TokenSource,
        clock: Clock,
        stats: ConnectorStats,
    ) -> None:
        self.config = config
        self.base = config.graph_base
        self.tokens = tokens
        self.pacer = Pacer(clock=clock, per_minute=config.requests_per_minute, stats=stats)
        self.stats = stats

        def classify(response: requests.Response) -> ConnectorError | None:
            error = errors.classify(response)
            if isinstance(error, TransientError) and error.retry_after:
                self.pacer.hold(error.retry_after)  # a 503's Retry-After is honoured too
            return error

        self.http = HttpClient(
            session=session,
            classify=classify,
            pacer=self.pacer,
            stats=stats,
            timeout=config.timeout_seconds,
        )

    # ---- plumbing -------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        return url

    def request(
        self,
        method: str,
        url: str,
        endpoint: str,
        *,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> requests.Response:
        """One call with a bearer token; a 401 InvalidAuthenticationToken gets one new token."""
        for attempt in range(2):
            try:
                token = self.tokens.token()
            except Throttled as exc:  # the identity platform's Retry-After holds us too
                self.pacer.hold(exc.retry_after or errors.DEFAULT_RETRY_AFTER)
                raise
            sent = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                **(headers or {}),
            }
            try:
                return self.http.request(
                    method, url, endpoint, idempotent=idempotent, headers=sent, json=json
                )
            except AuthError as exc:
                if attempt == 0 and exc.code == errors.TOKEN_EXPIRED:
                    self.tokens.invalidate()
                    continue
                raise
        raise AssertionError("unreachable")

    def get_json(
        self, path: str, endpoint: str, params: Mapping[str, str] | None = None, **kw: Any
    ) -> dict[str, Any]:
        response = self.request("GET", self.url(path, params), endpoint, **kw)
        return _json_object(response)

    def post_json(self, path: str, endpoint: str, body: Any, **kw: Any) -> dict[str, Any]:
        response = self.request("POST", self.url(path), endpoint, json=body, **kw)
        return _json_object(response)

    def pages(
        self, path: str, endpoint: str, params: Mapping[str, str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """A list's pages through ``@odata.nextLink`` (loop-safe)."""
        url: str | None = self.url(path, params)
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise TransientError("paging_loop", "Graph repeated a nextLink")
            seen.add(url)
            body = _json_object(self.request("GET", url, endpoint))
            value = body.get("value")
            yield [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
            link = body.get("@odata.nextLink")
            url = link if isinstance(link, str) and link else None

    # ---- $batch ---------------------------------------------------------------------------

    def batch(self, items: Sequence[BatchItem], *, idempotent: bool) -> dict[str, BatchAnswer]:
        """Runs ``items`` in $batch requests of ``batch_size``, one at a time (Graph runs at most
        4 items of a batch in parallel; we never send two batches at once). Items answered 429
        wait for their Retry-After (the pacer) and go again; with ``idempotent``, so do 5xx.
        Returns each item's final answer; a whole-call failure answers status 0 with the error
        as the body."""
        answers: dict[str, BatchAnswer] = {}
        pending = list(items)
        attempts: dict[str, int] = {}
        while pending:
            chunk, pending = pending[: self.config.batch_size], pending[self.config.batch_size :]
            got = self._send_batch(chunk, idempotent=idempotent)
            again: list[BatchItem] = []
            for item in chunk:
                answer = got[item.id]
                attempts[item.id] = attempts.get(item.id, 0) + 1
                if self._retry(answer, idempotent) and attempts[item.id] < MAX_ITEM_ATTEMPTS:
                    again.append(item)
                else:
                    answers[item.id] = answer
            pending = again + pending
        return answers

    def _retry(self, answer: BatchAnswer, idempotent: bool) -> bool:
        if answer.status == 429:
            self.stats.throttled += 1
            self.pacer.hold(errors.retry_after(answer.headers))
            return True
        if answer.status >= 500 and idempotent:
            self.pacer.hold(max(errors.retry_after(answer.headers, 0.0), 1.0))
            return True
        return False

    def _send_batch(
        self, chunk: Sequence[BatchItem], *, idempotent: bool
    ) -> dict[str, BatchAnswer]:
        # Each item counts against the mailbox's budget: a $batch of 20 is 20 requests.
        for _ in range(len(chunk) - 1):
            if self.pacer.per_minute:
                self.pacer.wait()
        try:
            response = self.request(
                "POST",
                self.url("$batch"),
                "batch",
                idempotent=idempotent,
                json={"requests": [item.to_json() for item in chunk]},
            )
            body = _json_object(response)
        except ConnectorError as exc:
            return {item.id: _item_failure(exc) for item in chunk}
        answers: dict[str, BatchAnswer] = {}
        for raw in body.get("responses") or ():
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                continue
            status = raw.get("status")
            headers = raw.get("headers")
            answers[raw["id"]] = BatchAnswer(
                status if isinstance(status, int) else 0,
                raw.get("body"),
                {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
            )
        missing: ConnectorError = TransientError(
            "batch_item_missing", "Graph's $batch answer left an item out"
        )
        if not idempotent:
            missing = Uncertain("batch_item_missing", "no answer for a create")
        return {item.id: answers.get(item.id) or _item_failure(missing) for item in chunk}


def _json_object(response: requests.Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError("bad_response", "Graph answered something else than JSON") from exc
    if not isinstance(body, dict):
        raise TransientError("bad_response", "Graph answered something else than an object")
    return body


def user_path(user: str) -> str:
    """``users/{id}`` with the UPN or object id escaped for a URL path."""
    return "users/" + quote(user, safe="@")


def path_id(value: str) -> str:
    return quote(value, safe="=-_")


__all__ = [
    "APP_SCOPE",
    "BATCH_LIMIT",
    "BatchAnswer",
    "BatchItem",
    "Credentials",
    "GraphClient",
    "MicrosoftConfig",
    "TokenSource",
    "path_id",
    "user_path",
]
