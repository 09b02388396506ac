"""Talking to Salesforce: configuration, credentials, sessions from the OAuth token endpoint,
the daily API budget, and simple-salesforce in direct mode on a governed ``requests`` session.

simple-salesforce builds the URLs, headers and bodies; every request it sends goes through
``GovernedSession``, which is where our discipline lives: the pacer (no request before a
back-off expires, an optional per-minute budget), the daily API budget (QuotaExhausted before
the org's allocation or our share of it is exceeded, from ``Sforce-Limit-Info``), the error
table (``errors.classify``), retries of what is retryable, and a new session from the token
endpoint when Salesforce answers 401 INVALID_SESSION_ID. Everything is injected: the
account's config, its secrets, an optional ``requests.Session`` (a CA bundle, or the sandbox
mounted in-process) and a Clock.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation, _Bulk2Client

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ConnectorStats,
    QuotaExhausted,
    TransientError,
)
from contactsync.connectors.http import Clock, HttpClient, Pacer
from contactsync.connectors.salesforce import errors
from contactsync.connectors.salesforce.errors import SessionExpired, Usage

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_VERSION = "59.0"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USER_AGENT = "contactsync-salesforce/0.1"
JSON = Any  # what simple-salesforce hands back from a JSON body

SecretsCallback = Callable[[dict[str, str]], None]


class SalesforceConfig(BaseModel):
    """``ConnectedAccount.config`` for a Salesforce account (string values, as stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The org's base URL, no trailing slash; taken from the token response when absent.
    instance_url: str | None = None
    login_url: str = DEFAULT_LOGIN_URL
    # Default: {login_url}/services/oauth2/token.
    token_url: str | None = None
    api_version: str = DEFAULT_VERSION
    # The connected user (JWT bearer's subject; "only my records" is theirs).
    username: str | None = None
    user_id: str | None = None
    organization_id: str | None = None
    jwt_audience: str = DEFAULT_LOGIN_URL
    ca_bundle: str | None = None
    # What this account syncs: "Contact,Lead" (any of Contact, Lead); person_accounts adds
    # Person Accounts as the "Account" stream.
    streams: str = "Contact,Lead"
    person_accounts: bool = False
    # Scope (seed 003): all, mine (OwnerId = the connected user) or list_view (list_view_id).
    scope: str = "all"
    list_view_id: str | None = None
    # The external id field that holds the hub contact id ("" when the org has none: creates
    # are then plain inserts and find_created searches by email and name).
    external_id_field: str = "Contactsync_Id__c"
    # Full scans of more records than this go through a Bulk API 2.0 query job.
    bulk_threshold: int = Field(default=10_000, ge=0)
    bulk_max_records: int = Field(default=10_000, ge=1, le=1_000_000)
    bulk_poll_seconds: float = Field(default=2.0, gt=0)
    bulk_max_wait_seconds: float = Field(default=3600.0, gt=0)
    query_batch_size: int = Field(default=2000, ge=200, le=2000)
    # The daily API budget: at most this many requests by us in any 24 hours (None: no own
    # cap), and never past this share of the org's allocation (Sforce-Limit-Info).
    daily_api_budget: int | None = Field(default=None, ge=1)
    api_usage_ceiling: float = Field(default=0.95, gt=0, le=1.0)
    # REQUEST_LIMIT_EXCEEDED below the daily allocation (concurrent long-running requests)
    # carries no Retry-After: wait this long.
    throttle_backoff_seconds: float = Field(default=5.0, ge=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    account_cache_seconds: float = Field(default=600.0, ge=0)
    default_region: str = "US"
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("instance_url", "login_url", "token_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError("Salesforce URLs must be https")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        value = value.removeprefix("v")
        major, _, minor = value.partition(".")
        if not (major.isdigit() and (minor or "0").isdigit()):
            raise ValueError("api_version looks like 59.0")
        return f"{int(major)}.{minor or '0'}"

    @field_validator("external_id_field")
    @classmethod
    def _api_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,79}", value):
            raise ValueError("external_id_field must be an API field name")
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if value not in ("all", "mine", "list_view"):
            raise ValueError("scope is all, mine or list_view")
        return value

    @classmethod
    def from_mapping(cls, config: Mapping[str, str]) -> SalesforceConfig:
        # An empty value means "the default", except for the external id field, where it
        # means "the org has none".
        kept = {k: v for k, v in config.items() if v != "" or k == "external_id_field"}
        settings = cls.model_validate(kept)
        if settings.scope == "list_view" and not settings.list_view_id:
            raise ValueError("scope list_view needs list_view_id")
        return settings

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.login_url}/services/oauth2/token"

    def stream_names(self) -> list[str]:
        names = [s.strip() for s in self.streams.split(",") if s.strip()]
        unknown = [s for s in names if s not in ("Contact", "Lead")]
        if unknown:
            raise ValueError(f"unknown Salesforce stream {unknown[0]!r}: Contact or Lead")
        if self.person_accounts:
            names.append("Account")
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Credentials:
    """The connected app and the user's grant: a refresh token, or a JWT bearer key."""

    client_id: str
    client_secret: str = ""
    refresh_token: str = ""
    private_key: str = ""
    access_token: str = ""

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str]) -> Credentials:
        creds = cls(
            client_id=secrets.get("client_id", ""),
            client_secret=secrets.get("client_secret", ""),
            refresh_token=secrets.get("refresh_token", ""),
            private_key=secrets.get("jwt_private_key") or secrets.get("private_key", ""),
            access_token=secrets.get("access_token", ""),
        )
        if not creds.client_id or not (creds.refresh_token or creds.private_key):
            raise AuthError(
                "missing_credentials", "need client_id and a refresh_token or a jwt_private_key"
            )
        return creds

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(client_id={self.client_id[:6]}..., grant={self.grant})"

    @property
    def grant(self) -> str:
        return "refresh_token" if self.refresh_token else "jwt_bearer"


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str | None
    identity_url: str | None

    @property
    def user_id(self) -> str | None:
        """The identity URL ends in /id/{org id}/{user id}."""
        if not self.identity_url:
            return None
        parts = urlsplit(self.identity_url).path.rstrip("/").split("/")
        return parts[-1] if len(parts) >= 3 and parts[-3] == "id" else None


class TokenSource:
    """Sessions from the token endpoint: the refresh_token grant, or a JWT bearer assertion
    signed with the connected app's key and posted to ``token_url`` (simple-salesforce's own
    JWT login always posts to login.salesforce.com). A rotated refresh token is reported."""

    def __init__(
        self,
        config: SalesforceConfig,
        credentials: Credentials,
        http: HttpClient,
        clock: Clock,
        on_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.http = http
        self.clock = clock
        self.on_rotated = on_rotated

    def fetch(self) -> Token:
        creds = self.credentials
        if creds.refresh_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.refresh_token,
                "client_id": creds.client_id,
            }
            if creds.client_secret:
                form["client_secret"] = creds.client_secret
        else:
            form = {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        response = self.http.request(
            "POST",
            self.config.token_endpoint,
            "oauth.token",
            data=form,
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json()
            token = Token(
                access_token=str(body["access_token"]),
                instance_url=body.get("instance_url"),
                identity_url=body.get("id"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("bad_token_response", "no access_token in the answer") from exc
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != creds.refresh_token:
            self.credentials = Credentials(
                creds.client_id, creds.client_secret, rotated, creds.private_key
            )
            if self.on_rotated is not None:
                self.on_rotated({"refresh_token": rotated})
        return token

    def _assertion(self) -> str:
        if not self.config.username:
            raise AuthError("missing_username", "the JWT bearer grant needs config username")
        now = self.clock.now()
        claims = {
            "iss": self.credentials.client_id,
            "sub": self.config.username,
            "aud": self.config.jwt_audience,
            "exp": int((now + timedelta(minutes=3)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        try:
            return jwt.encode(claims, self.credentials.private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthError("bad_private_key", "the JWT private key cannot sign") from exc


@dataclass
class ApiBudget:
    """The daily API budget. Our own requests are counted per minute over a sliding 24 hours;
    the org's usage is what the last ``Sforce-Limit-Info`` said. ``check`` raises
    QuotaExhausted before a request that would go past either."""

    clock: Clock
    daily: int | None = None
    ceiling: float = 0.95
    last: Usage | None = None
    _minutes: deque[list[int]] = field(default_factory=deque)
    _total: int = 0

    def observe(self, response: requests.Response) -> None:
        seen = errors.usage(response)
        if seen is not None:
            self.last = seen

    def used_today(self) -> int:
        minute = int(self.clock.now().timestamp()) // 60
        while self._minutes and self._minutes[0][0] <= minute - 1440:
            self._total -= self._minutes.popleft()[1]
        return self._total

    def check(self) -> None:
        if self.daily is not None and self.used_today() >= self.daily:
            raise QuotaExhausted(
                "api_budget", f"our daily budget of {self.daily} requests is spent"
            )
        last = self.last
        if last is not None and last.limit > 0 and last.used + 1 > self.ceiling * last.limit:
            raise QuotaExhausted(
                "api_usage_ceiling",
                f"the org used {last.used} of {last.limit} daily requests; we stop at "
                f"{self.ceiling:.0%}",
            )

    def count(self) -> None:
        minute = int(self.clock.now().timestamp()) // 60
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1][1] += 1
        else:
            self._minutes.append([minute, 1])
        self._total += 1


@dataclass
class BudgetPacer(Pacer):
    """The pacer, plus the daily budget: checked and counted before every attempt."""

    budget: ApiBudget | None = None

    def wait(self) -> None:
        if self.budget is not None:
            self.budget.check()
        super().wait()
        if self.budget is not None:
            self.budget.count()


def _endpoint(method: str, url: str) -> str:
    """A short name for a request, for the stats: the path after /vXX.X/, ids left out."""
    path = urlsplit(url).path
    _, _, rest = path.partition("/services/data/v")
    parts = rest.split("/")[1:] if rest else path.strip("/").split("/")
    if not parts or parts == [""]:
        return method.lower()
    head = parts[0]
    if head == "sobjects" and len(parts) > 2:
        return f"sobjects.{parts[2]}" if parts[2] in ("deleted", "updated", "describe") else head
    if head == "jobs":
        return "bulk.results" if parts[-1] == "results" else "bulk.job"
    if head in ("query", "queryAll") and len(parts) > 1 and parts[1]:
        return "query.more"
    if head == "composite":
        return f"composite.{method.lower()}"
    return head


class GovernedSession(requests.Session):
    """The session simple-salesforce is given: each request goes through our HttpClient (pacer,
    budget, error table, retries) on the real ``inner`` session, and a 401 INVALID_SESSION_ID
    is answered with a new session and one more try."""

    def __init__(self, inner: requests.Session) -> None:
        super().__init__()
        self.inner = inner
        self.http: HttpClient | None = None
        self.renew: Callable[[], str] | None = None
        self._purpose: tuple[str, bool] | None = None

    @contextlib.contextmanager
    def purpose(self, endpoint: str, *, idempotent: bool = True) -> Iterator[None]:
        """Names the requests sent inside (for the stats) and whether a lost answer may be
        retried (creates: not)."""
        previous, self._purpose = self._purpose, (endpoint, idempotent)
        try:
            yield
        finally:
            self._purpose = previous

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        assert self.http is not None, "GovernedSession used before it was wired"
        if args:
            raise TypeError("GovernedSession takes keyword arguments only")
        kwargs.pop("timeout", None)
        endpoint, idempotent = self._purpose or (_endpoint(method, url), True)
        try:
            return self.http.request(method, url, endpoint, idempotent=idempotent, **kwargs)
        except SessionExpired:
            if self.renew is None:
                raise
            token = self.renew()
            headers = dict(kwargs.pop("headers", None) or {})
            headers["Authorization"] = f"Bearer {token}"
            try:
                return self.http.request(
                    method, url, endpoint, idempotent=idempotent, headers=headers, **kwargs
                )
            except SessionExpired as again:
                raise AuthError(again.code, "a fresh session was refused too") from again


def build_session(session: requests.Session | None, ca_bundle: str | None) -> requests.Session:
    if session is None:
        session = requests.Session()
        if ca_bundle:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
            session.verify = ca_bundle
    session.headers.setdefault("User-Agent", USER_AGENT)
    return session


class SalesforceApi:
    """simple-salesforce in direct mode, built lazily on the first session. One method per
    call we make; SOQL is built by the caller with ``format_soql``."""

    def __init__(
        self,
        config: SalesforceConfig,
        credentials: Credentials,
        *,
        session: requests.Session | None,
        clock: Clock,
        stats: ConnectorStats,
        on_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        inner = build_session(session, config.ca_bundle)
        self.budget = ApiBudget(clock, config.daily_api_budget, config.api_usage_ceiling)
        self.pacer = BudgetPacer(
            clock=clock, per_minute=config.requests_per_minute, stats=stats, budget=self.budget
        )

        def classify(response: requests.Response) -> ConnectorError | None:
            self.budget.observe(response)
            return errors.classify(response, self.budget.last, config.throttle_backoff_seconds)

        self.session = GovernedSession(inner)
        self.session.http = HttpClient(
            session=inner,
            classify=classify,
            pacer=self.pacer,
            stats=stats,
            timeout=config.timeout_seconds,
        )
        self.session.renew = self._renew
        oauth_http = HttpClient(
            session=inner,
            classify=errors.token_error,
            pacer=Pacer(clock=clock, stats=stats),
            stats=stats,
            timeout=config.timeout_seconds,
            max_attempts=3,
        )
        self.tokens = TokenSource(config, credentials, oauth_http, clock, on_rotated)
        self._initial_token = credentials.access_token
        self._sf: Salesforce | None = None
        self.user_id: str | None = config.user_id

    # ---- sessions -------------------------------------------------------------------------

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            if self._initial_token and self.config.instance_url:
                access, instance = self._initial_token, self.config.instance_url
            else:
                access, instance = self._login()
            self._sf = Salesforce(
                session_id=access,
                instance_url=instance,
                session=self.session,
                version=self.config.api_version,
                object_pairs_hook=dict,
            )
        return self._sf

    def _login(self) -> tuple[str, str]:
        token = self.tokens.fetch()
        instance = self.config.instance_url or token.instance_url
        if not instance:
            raise AuthError("no_instance_url", "neither the config nor the token names the org")
        if self.user_id is None:
            self.user_id = token.user_id
        return token.access_token, instance.rstrip("/")

    def _renew(self) -> str:
        access, _ = self._login()
        if self._sf is not None:
            self._sf.session_id = access
            self._sf.headers["Authorization"] = f"Bearer {access}"
        return access

    def connected_user_id(self) -> str:
        """The connected user's id: config, else the token's identity URL, else userinfo."""
        if self.user_id is None:
            _ = self.sf
        if self.user_id is None:
            info = self.get_json(self._oauth_url("userinfo"), "oauth.userinfo")
            user = info.get("user_id") if isinstance(info, dict) else None
            if not isinstance(user, str):
                raise AuthError("no_user_id", "userinfo named no user")
            self.user_id = user
        return self.user_id

    def _oauth_url(self, path: str) -> str:
        return f"https://{self.sf.sf_instance}/services/oauth2/{path}"

    def get_json(self, url: str, endpoint: str) -> JSON:
        with self.session.purpose(endpoint):
            response = self.session.request(
                "GET", url, headers={"Authorization": f"Bearer {self.sf.session_id}"}
            )
        return _json(response)

    # ---- REST -----------------------------------------------------------------------------

    def query(self, soql: str) -> JSON:
        headers = {"Sforce-Query-Options": f"batchSize={self.config.query_batch_size}"}
        with self.session.purpose("query"):
            return self.sf.query(soql, headers=headers)

    def query_more(self, next_url: str) -> JSON:
        headers = {"Sforce-Query-Options": f"batchSize={self.config.query_batch_size}"}
        with self.session.purpose("query.more"):
            return self.sf.query_more(next_url, identifier_is_url=True, headers=headers)

    def deleted(self, sobject: str, start: datetime, end: datetime) -> JSON:
        with self.session.purpose("sobjects.deleted"):
            return getattr(self.sf, sobject).deleted(start, end)

    def describe(self, sobject: str) -> JSON:
        with self.session.purpose("sobjects.describe"):
            return getattr(self.sf, sobject).describe()

    def list_view_describe(self, sobject: str, view_id: str) -> JSON:
        with self.session.purpose("listviews.describe"):
            return self.sf.restful(f"sobjects/{sobject}/listviews/{view_id}/describe")

    def limits(self) -> JSON:
        with self.session.purpose("limits"):
            return self.sf.limits()

    def collection(
        self, method: str, path: str, *, endpoint: str, idempotent: bool = True, **kwargs: Any
    ) -> JSON:
        """POST / PATCH / DELETE on ``composite/sobjects...``; a list of per-item results."""
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json"), ensure_ascii=False)
        with self.session.purpose(endpoint, idempotent=idempotent):
            return self.sf.restful(path, method=method, **kwargs)

    # ---- Bulk API 2.0 ----------------------------------------------------------------------

    def _bulk(self, sobject: str) -> _Bulk2Client:
        sf = self.sf
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + sf.session_id,
            "X-PrettyPrint": "1",
        }
        return _Bulk2Client(sobject, sf.bulk2_url, headers, self.session)

    def bulk_query_create(self, sobject: str, soql: str) -> JSON:
        with self.session.purpose("bulk.create"):
            return self._bulk(sobject).create_job(Operation.query, soql)

    def bulk_query_job(self, sobject: str, job_id: str) -> JSON:
        with self.session.purpose("bulk.poll"):
            return self._bulk(sobject).get_job(job_id, True)

    def bulk_query_results(
        self, sobject: str, job_id: str, locator: str, max_records: int
    ) -> tuple[str, str]:
        """One result set: (CSV text, the next locator or "" after the last)."""
        with self.session.purpose("bulk.results"):
            result = self._bulk(sobject).get_query_results(job_id, locator, max_records)
        return str(result["records"]), str(result["locator"] or "")


def _json(response: requests.Response) -> JSON:
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError("bad_response", "an answer that is not JSON") from exc


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}"
