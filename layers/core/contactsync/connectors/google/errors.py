"""The People API's error table: one place that says what each answer means.

Google answers errors with its JSON envelope (``google.rpc.Status``)::

    {"error": {"code": 400, "message": "...", "status": "FAILED_PRECONDITION",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "EXPIRED_SYNC_TOKEN", ...}]}}

We branch on the HTTP status, the ``status`` string and the ErrorInfo ``reason``, never on the
message (Google's wording changes, and the ``status`` of an expired sync token differs between
reports). Messages are never copied into our errors either: some quote the submitted value (an
email address, a phone number), and contact data never reaches errors or logs. What we keep is
the status, the reason and the name of the offending field.

Batch writes fail whole; ``details`` then carries ``Batch{Create,Update}ContactsErrorDetails``
whose ``contactErrors`` maps each offending contact (its index for creates, its resource name
for updates) to a ``google.rpc.Status`` with a numeric code: those become per-item
``MutationError``s on ``BatchRejected``.

429 ``RESOURCE_EXHAUSTED`` comes without Retry-After: ``Backoff`` supplies an exponential,
capped wait that the HTTP client holds on its Pacer. A daily quota (its ErrorInfo names a
``...PerDay...`` limit) is not worth waiting for within a run: QuotaExhausted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    CursorExpired,
    ErrorKind,
    InvalidRequest,
    MutationError,
    QuotaExhausted,
    Throttled,
    TransientError,
)
from contactsync.connectors.http import retry_after_seconds

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
CONTACT_ERRORS_SUFFIX = "ContactsErrorDetails"  # Batch{Create,Update}ContactsErrorDetails

EXPIRED_SYNC_TOKEN = "EXPIRED_SYNC_TOKEN"
CONTACT_LIMIT_EXCEEDED = "CONTACT_LIMIT_EXCEEDED"
_MAX_TEXT = 80

# google.rpc.Code numbers (contactErrors carry numbers, the envelope carries names).
_GRPC_STATUS = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}


class RemoteNotFound(ConnectorError):
    """The person (or contact group) does not exist, or no longer does."""

    kind: ErrorKind = "not_found"


class StaleEtag(ConnectorError):
    """400 FAILED_PRECONDITION on an update: the person changed since the etag we sent was
    read. The connector re-reads it and re-applies only the fields it changes."""

    kind: ErrorKind = "conflict"


class ContactLimitExceeded(InvalidRequest):
    """The user's address book is full (25,000 contacts): no create fits until some go."""


class AlreadyExists(InvalidRequest):
    """409: a contact group of that name exists already."""


class BatchRejected(ConnectorError):
    """A batch write that failed whole, naming the contacts that made it fail (by index for
    creates, by resource name for updates). The others were not applied: they may be sent
    again without the offenders."""

    def __init__(
        self, code: str, message: str, kind: ErrorKind, items: dict[str, MutationError]
    ) -> None:
        super().__init__(code, message)
        self.kind = kind
        self.items = items


@dataclass(frozen=True)
class GoogleStatus:
    """What we read from an error body: never the message."""

    http_status: int
    status: str = ""
    reason: str = ""
    quota_limit: str = ""
    fields: tuple[str, ...] = ()
    contact_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [self.status or f"HTTP {self.http_status}"]
        if self.reason:
            parts.append(self.reason)
        if self.fields:
            parts.append("field " + ", ".join(f[:_MAX_TEXT] for f in self.fields[:3]))
        return " ".join(parts)[:200]


def _details(details: Any) -> tuple[str, str, tuple[str, ...], dict[str, dict[str, Any]]]:
    reason, quota_limit = "", ""
    fields: list[str] = []
    contact_errors: dict[str, dict[str, Any]] = {}
    if not isinstance(details, list):
        return reason, quota_limit, (), contact_errors
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind == ERROR_INFO and not reason:
            reason = str(detail.get("reason") or "")[:_MAX_TEXT]
            metadata = detail.get("metadata")
            if isinstance(metadata, dict):
                quota_limit = str(metadata.get("quota_limit") or "")[:_MAX_TEXT]
        elif kind == BAD_REQUEST:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                    fields.append(violation["field"])
        elif kind.endswith(CONTACT_ERRORS_SUFFIX):
            raw = detail.get("contactErrors")
            if isinstance(raw, dict):
                contact_errors = {str(k): v for k, v in raw.items() if isinstance(v, dict)}
    return reason, quota_limit, tuple(fields), contact_errors


def parse_status(response: requests.Response) -> GoogleStatus:
    """The status, ErrorInfo reason, quota limit, offending fields and contactErrors of an
    error response (an HTML page from the front end yields only the HTTP status)."""
    try:
        body = response.json()
    except ValueError:
        return GoogleStatus(response.status_code)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GoogleStatus(response.status_code)
    reason, quota_limit, fields, contact_errors = _details(error.get("details"))
    return GoogleStatus(
        http_status=response.status_code,
        status=str(error.get("status") or "")[:_MAX_TEXT],
        reason=reason,
        quota_limit=quota_limit,
        fields=fields,
        contact_errors=contact_errors,
    )


# ---- per-item errors (contactErrors) ----------------------------------------------------------


def item_error(raw: dict[str, Any]) -> MutationError:
    """One contact's ``google.rpc.Status`` from a failed batch, as a MutationError."""
    code = raw.get("code")
    status = _GRPC_STATUS.get(code, "UNKNOWN") if isinstance(code, int) else "UNKNOWN"
    reason, quota_limit, fields, _ = _details(raw.get("details"))
    described = GoogleStatus(400, status, reason, quota_limit, fields).describe()
    if status == "FAILED_PRECONDITION":
        if reason == CONTACT_LIMIT_EXCEEDED:
            return contact_limit()
        return MutationError("conflict", "etag_mismatch", described)
    if status == "NOT_FOUND":
        return MutationError("not_found", "not_found", described)
    if status in ("INVALID_ARGUMENT", "ALREADY_EXISTS", "PERMISSION_DENIED"):
        return MutationError("invalid", status.lower(), described)
    if status == "RESOURCE_EXHAUSTED":
        return MutationError("throttled", "rate_limit_exceeded", described, retry_after=60.0)
    return MutationError("transient", status.lower(), described)


def contact_limit() -> MutationError:
    return MutationError(
        "invalid",
        "contact_limit_exceeded",
        "the Google address book is full (a user can have at most 25,000 contacts): "
        "delete contacts there, then edit the contact in the hub to retry",
    )


def mutation_error(exc: ConnectorError) -> MutationError:
    """A whole-call error as one item's result."""
    return MutationError(
        kind=exc.kind, code=exc.code, message=str(exc)[:200], retry_after=exc.retry_after
    )


# ---- the table --------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Waits after 429s, which carry no Retry-After: ``initial`` seconds, doubling with each
    consecutive 429, capped at ``maximum`` (Google's quotas are per minute: a minute's wait
    always reaches a fresh window). Any other answer resets it."""

    initial: float = 2.0
    maximum: float = 64.0
    _streak: int = 0

    def next(self) -> float:
        wait = min(self.initial * 2.0**self._streak, self.maximum)
        self._streak += 1
        return wait

    def reset(self) -> None:
        self._streak = 0


def classify(response: requests.Response, backoff: Backoff) -> ConnectorError | None:
    """None for a success; otherwise the error the HTTP client raises (Throttled and
    TransientError are retried by it, the rest at once)."""
    code = response.status_code
    if code < 400:
        backoff.reset()
        return None
    if code == 429:
        info = parse_status(response)
        if "perday" in info.quota_limit.lower():
            backoff.reset()
            return QuotaExhausted("daily_quota_exhausted", info.describe())
        # Google sends no Retry-After with its 429s; should one come, it is a floor.
        wait = max(backoff.next(), retry_after_seconds(response, default=0.0))
        return Throttled("rate_limit_exceeded", info.describe(), retry_after=wait)
    backoff.reset()
    info = parse_status(response)
    described = info.describe()
    if info.contact_errors:
        items = {key: item_error(raw) for key, raw in info.contact_errors.items()}
        kind: ErrorKind = "not_found" if code == 404 else "invalid"
        return BatchRejected("batch_rejected", described, kind, items)
    if code >= 500:
        return TransientError(f"http_{code}", described)
    if code == 401:
        return AuthError("unauthenticated", "Google refused the access token after a refresh")
    if code == 403:
        return AuthError("permission_denied", described)
    if code == 404:
        return RemoteNotFound("not_found", described)
    if code == 409:
        return AlreadyExists("already_exists", described)
    if info.reason == EXPIRED_SYNC_TOKEN:
        return CursorExpired("expired_sync_token", "Google expired the sync token: full sync")
    if info.reason == CONTACT_LIMIT_EXCEEDED:
        return ContactLimitExceeded("contact_limit_exceeded", described)
    if info.status == "FAILED_PRECONDITION":
        return StaleEtag("etag_mismatch", described)
    return InvalidRequest(info.status.lower() or f"http_{code}", described)
