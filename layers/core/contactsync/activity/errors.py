"""The error table of the Gmail and Calendar readers (Graph's is the Microsoft connector's):
what each answer means. Messages carry codes and reasons, never the body (it may quote an
address)."""

from __future__ import annotations

import contextlib
from typing import Any

import requests

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    CursorExpired,
    InvalidRequest,
    QuotaExhausted,
    Throttled,
    TransientError,
)
from contactsync.connectors.http import retry_after_seconds


class Gone(ConnectorError):
    """The item no longer exists at the source (a body asked for after a delete)."""

    kind = "not_found"


def _json(response: requests.Response) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body
    return {}


def google_reason(response: requests.Response) -> str:
    """The first ``errors[].reason`` (Gmail, Calendar) or ErrorInfo reason of Google's body."""
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return ""
    for item in error.get("errors") or ():
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            return str(item["reason"])[:60]
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            return str(detail["reason"])[:60]
    return str(error.get("status") or "")[:60]


def classify_google(
    response: requests.Response, *, expired_on: tuple[int, ...]
) -> ConnectorError | None:
    """Gmail and Calendar. ``expired_on``: the statuses that mean the cursor is too old (Gmail
    history 404, Calendar 410)."""
    status = response.status_code
    if status < 400:
        return None
    reason = google_reason(response)
    if status in expired_on:
        return CursorExpired(f"http_{status}", reason)
    if status == 429 or (
        status == 403 and reason in ("rateLimitExceeded", "userRateLimitExceeded")
    ):
        return Throttled("rate_limited", reason, retry_after=retry_after_seconds(response, 2.0))
    if status == 401:
        return AuthError("unauthenticated", reason)
    if status == 403 and reason in ("dailyLimitExceeded", "quotaExceeded"):
        return QuotaExhausted("quota", reason)
    if status == 403:
        return AuthError("forbidden", reason)
    if status == 404:
        return Gone("not_found", reason)
    if status >= 500:
        return TransientError(f"http_{status}", reason)
    return InvalidRequest(f"http_{status}", reason)
