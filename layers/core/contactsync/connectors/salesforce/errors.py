"""Salesforce's error table: one place that says what each answer means.

Whole calls fail with a JSON array ``[{"message", "errorCode", "fields"}]`` (the token endpoint
with ``{"error", "error_description"}``); items of an sObject Collection fail inside a 200 with
``{"statusCode", "message", "fields"}``. Only codes and field names ever reach our messages:
Salesforce's own messages quote the refused value ("invalid email address: ..."), and contact
data never goes into errors or logs.

``REQUEST_LIMIT_EXCEEDED`` (403, never a Retry-After) names two limits: the org's daily API
allocation and the concurrent long-running requests. The ``Sforce-Limit-Info`` header on the
same answer tells them apart without reading the message: usage at the allocation is the daily
limit (QuotaExhausted, stop for the day); usage below it is the concurrency limit (Throttled,
try again after a pause).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ErrorKind,
    InvalidRequest,
    MutationError,
    QuotaExhausted,
    Throttled,
    TransientError,
)
from contactsync.connectors.http import retry_after_seconds

_CODE = re.compile(r"^[A-Za-z0-9_:.\-]{1,80}$")
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class SessionExpired(AuthError):
    """401 INVALID_SESSION_ID: the session id timed out or was revoked. The client gets a new
    session from the token endpoint and repeats the request once."""


class RemoteNotFound(ConnectorError):
    """The record (or resource) does not exist or is in the recycle bin."""

    kind: ErrorKind = "not_found"


class QueryLocatorExpired(InvalidRequest):
    """INVALID_QUERY_LOCATOR: a query cursor idle for 15 minutes, or pushed out by the 10 a
    user may hold open. The reader re-issues its query from the last position."""


class ReplicationWindowPassed(ConnectorError):
    """getDeleted / getUpdated refused the start date (INVALID_REPLICATION_DATE: older than the
    window the org keeps)."""

    kind: ErrorKind = "invalid"


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int

    @property
    def exhausted(self) -> bool:
        return self.limit > 0 and self.used >= self.limit


def usage(response: requests.Response) -> Usage | None:
    """``Sforce-Limit-Info: api-usage=N/M`` (more keys may follow)."""
    match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
    return Usage(int(match.group(1)), int(match.group(2))) if match else None


def _first_error(response: requests.Response) -> tuple[str, list[str]]:
    """The first error's code and fields, never its message."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}", []
    item: Any = body[0] if isinstance(body, list) and body else body
    if not isinstance(item, Mapping):
        return f"http_{response.status_code}", []
    code = item.get("errorCode") or item.get("statusCode") or item.get("error")
    fields = item.get("fields")
    return (
        _safe_code(code, response.status_code),
        [str(f)[:80] for f in fields] if isinstance(fields, list) else [],
    )


def _safe_code(code: object, status: int) -> str:
    return code if isinstance(code, str) and _CODE.match(code) else f"http_{status}"


def _fields_note(fields: list[str]) -> str:
    return f"fields: {', '.join(fields[:5])}" if fields else ""


def classify(
    response: requests.Response, last_usage: Usage | None, throttle_wait: float
) -> ConnectorError | None:
    """None for a success; otherwise the error the HTTP client raises (throttling and 5xx are
    retried by it, everything else is raised at once). ``last_usage`` is the usage seen on an
    earlier answer, for a 403 that carries none."""
    status = response.status_code
    if status < 300:
        return None
    code, fields = _first_error(response)
    note = _fields_note(fields)
    if status in (429, 503) and "Retry-After" in response.headers:
        # Salesforce sends none, but a proxy or a maintenance window may: honour it.
        return Throttled(code, "", retry_after=retry_after_seconds(response, throttle_wait))
    if status == 300:
        return InvalidRequest("MULTIPLE_CHOICES", "the external id matches several records")
    if status == 401:
        if code == "INVALID_SESSION_ID":
            return SessionExpired(code, "session expired or invalid")
        return AuthError(code, "Salesforce refused the session")
    if status == 403:
        if code == "REQUEST_LIMIT_EXCEEDED":
            seen = usage(response) or last_usage
            if seen is not None and not seen.exhausted:
                wait = retry_after_seconds(response, throttle_wait)
                return Throttled(code, "concurrent request limit", retry_after=wait)
            return QuotaExhausted(code, "the org's daily API allocation is used up")
        return AuthError(code, "Salesforce refused the request for this user")
    if status == 404:
        return RemoteNotFound(code, note)
    if status == 429:
        return Throttled(code, "", retry_after=retry_after_seconds(response, throttle_wait))
    if status >= 500:
        return TransientError(code, "")
    if code == "INVALID_QUERY_LOCATOR":
        return QueryLocatorExpired(code, "")
    if code == "INVALID_REPLICATION_DATE":
        return ReplicationWindowPassed(code, "")
    return InvalidRequest(code, note)


def token_error(response: requests.Response) -> ConnectorError | None:
    """The OAuth token endpoint's table: ``{"error": "invalid_grant", ...}`` and friends."""
    status = response.status_code
    if status < 300:
        return None
    code, _ = _first_error(response)
    if status >= 500 or status == 429:
        return TransientError(code, "the token endpoint failed")
    return AuthError(code, "the token endpoint refused our credentials")


# ---- per-item results of sObject Collections ---------------------------------------------------

_INVALID = frozenset(
    {
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
        "STRING_TOO_LONG",
        "DUPLICATES_DETECTED",
        "DUPLICATE_VALUE",
        "DUPLICATE_EXTERNAL_ID",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "FIELD_INTEGRITY_EXCEPTION",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_PERSON_ACCOUNT_OPERATION",
        "JSON_PARSER_ERROR",
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "MISSING_ARGUMENT",
    }
)
_NOT_FOUND = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "MALFORMED_ID"})
_TRANSIENT = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "QUERY_TIMEOUT",
    }
)


def item_error(raw: object) -> MutationError:
    """One failed item of a collection: ``{"id", "success": false, "errors": [...]}``."""
    errors = raw.get("errors") if isinstance(raw, Mapping) else None
    first = errors[0] if isinstance(errors, list) and errors else {}
    if not isinstance(first, Mapping):
        first = {}
    code = _safe_code(first.get("statusCode") or first.get("errorCode"), 200)
    raw_fields = first.get("fields")
    fields = [str(f)[:80] for f in raw_fields] if isinstance(raw_fields, list) else []
    return MutationError(kind=item_kind(code, fields), code=code, message=_fields_note(fields))


def item_kind(code: str, fields: list[str]) -> ErrorKind:
    if code in _NOT_FOUND:
        return "not_found"
    if code == "INVALID_CROSS_REFERENCE_KEY":
        # The record's own id names nothing (deleted and purged, or never existed); with a
        # field named, a reference the record holds (AccountId) is the bad one.
        return "not_found" if not fields or fields == ["Id"] else "invalid"
    if code in _TRANSIENT:
        return "transient"
    if code == "REQUEST_LIMIT_EXCEEDED":
        return "quota"
    if code in _INVALID:
        return "invalid"
    return "invalid"


def as_item_error(exc: ConnectorError) -> MutationError:
    """A whole-call error as one item's result."""
    return MutationError(
        kind=exc.kind, code=exc.code, message=str(exc)[:200], retry_after=exc.retry_after
    )
