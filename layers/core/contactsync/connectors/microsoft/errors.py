"""Microsoft Graph's error table: one place that says what each answer means.

Graph answers errors as ``{"error": {"code", "message", "innerError": {...}}}``; the identity
platform (msal's token calls) as OAuth's ``{"error", "error_description", "error_codes"}``.
Whole requests map to a ConnectorError (the HTTP client retries throttling and 5xx, raises the
rest); the items of a ``$batch`` map to a per-item MutationError. Messages keep Graph's code and
a sanitised message only: anything Graph quotes (a value, a user's address) is cut out, and
tokens or secrets never get near a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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

# Graph's answer to a delta token it no longer holds (also seen as "resyncRequired"), and to a
# token minted for another folder.
CURSOR_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
# A 401 with this code: the access token expired or was revoked; get a new one once.
TOKEN_EXPIRED = "InvalidAuthenticationToken"
# What Graph says without a Retry-After header: its docs suggest a few seconds.
DEFAULT_RETRY_AFTER = 5.0
MAX_RETRY_AFTER = 600.0
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_MAX_MESSAGE = 160


class RemoteNotFound(ConnectorError):
    """The contact, folder or subscription does not exist (any more)."""

    kind: ErrorKind = "not_found"


class Conflict(ConnectorError):
    """412 ErrorIrresolvableConflict (a stale If-Match), 409 (a name already taken)."""

    kind: ErrorKind = "conflict"


def graph_error(body: Any) -> tuple[str, str]:
    """(code, sanitised message) of a Graph error body; ("", "") when it is not one."""
    if not isinstance(body, Mapping):
        return "", ""
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        return (
            code if isinstance(code, str) else "",
            sanitise(message) if isinstance(message, str) else "",
        )
    if isinstance(error, str):  # the identity platform's OAuth shape
        return error, ""
    return "", ""


def sanitise(message: str) -> str:
    """Graph's message without anything it quotes (values, addresses), shortened."""
    return _QUOTED.sub("'…'", message)[:_MAX_MESSAGE]


def retry_after(headers: Mapping[str, str], default: float = DEFAULT_RETRY_AFTER) -> float:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def error_for(status: int, code: str, message: str, headers: Mapping[str, str]) -> ConnectorError:
    """The table. ``code`` is Graph's error code ("" when the body had none)."""
    label = code or f"http_{status}"
    if code.lower() in CURSOR_CODES or status == 410:
        return CursorExpired(label, "the delta token is gone: a full resync follows")
    if status == 429:
        return Throttled(label, message, retry_after=retry_after(headers))
    if status == 401:
        return AuthError(label, message or "Graph refused the access token")
    if status == 403:
        return AuthError(label, message or "access denied")
    if status == 404:
        return RemoteNotFound(label, message)
    if status in (409, 412):
        return Conflict(label, message)
    if status == 507 or code == "ErrorQuotaExceeded":
        return QuotaExhausted(label, message)
    if status >= 500:
        return TransientError(label, message, retry_after=retry_after(headers, 0.0))
    return InvalidRequest(label, message)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def classify(response: requests.Response) -> ConnectorError | None:
    """None for a success; otherwise the error the HTTP client raises or retries."""
    if response.status_code < 400:
        return None
    code, message = graph_error(_body(response))
    return error_for(response.status_code, code, message, response.headers)


def item_error(status: int, body: Any, headers: Mapping[str, str]) -> MutationError:
    """One ``$batch`` item's failure as a per-item result."""
    code, message = graph_error(body)
    error = error_for(status, code, message, headers)
    kind = error.kind
    if isinstance(error, CursorExpired):
        kind = "invalid"
    return MutationError(kind=kind, code=error.code, message=message, retry_after=error.retry_after)


def from_exception(exc: ConnectorError) -> MutationError:
    """A whole-call failure as one item's result."""
    return MutationError(
        kind=exc.kind, code=exc.code, message=str(exc)[:_MAX_MESSAGE], retry_after=exc.retry_after
    )


# ---- the identity platform (msal results) --------------------------------------------------

_AUTH_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope", "invalid_request"}
)


def token_error(result: Mapping[str, Any], retry: float = DEFAULT_RETRY_AFTER) -> ConnectorError:
    """msal's failed result (a dict, never raised) as a ConnectorError; ``retry`` is the
    answer's Retry-After. The description is left out: it echoes the client id and tenant."""
    error = result.get("error")
    code = error if isinstance(error, str) and error else "token_error"
    codes = result.get("error_codes")
    detail = f"AADSTS{codes[0]}" if isinstance(codes, list) and codes else ""
    if code in _AUTH_ERRORS:
        return AuthError(code, detail or "the identity platform refused the credentials")
    if code == "temporarily_unavailable":
        return Throttled(code, detail, retry_after=retry)
    return TransientError(code, detail)
