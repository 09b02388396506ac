"""Aircall's error table: one place that says what each answer means.

Two tiers answer a request to ``api.aircall.io``: the gateway (401 no credentials, 403 refused
credentials, 404 unknown route, all as ``{"message": ...}``) and the application
(``{"error": ..., "troubleshoot": ...}``: 400 invalid payload, 404 unknown id, 422
unprocessable, 429 rate limit). Only the short ``error`` title ever reaches a message: the
``troubleshoot`` text can quote the submitted value (a phone number), and contact data never
goes into errors or logs.
"""

from __future__ import annotations

import contextlib
import math

import requests

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ErrorKind,
    InvalidRequest,
    MutationError,
    Throttled,
    TransientError,
)
from contactsync.connectors.http import retry_after_seconds

# Waiting for a rate-limit reset longer than this means the clocks disagree: wait this long.
MAX_THROTTLE_WAIT = 120.0
MIN_THROTTLE_WAIT = 1.0
_MAX_TITLE = 80


class RemoteNotFound(ConnectorError):
    """The contact (or webhook, or detail) does not exist: Aircall keeps no trace of deletes."""

    kind: ErrorKind = "not_found"


class WebhookRejected(ConnectorError):
    """A webhook delivery that is malformed or does not carry our webhook's token. The receiver
    answers 401 and ingests nothing."""

    kind: ErrorKind = "invalid"


def _title(response: requests.Response) -> str:
    """Aircall's short error title (``{"error": "Invalid phone number"}``), never the
    troubleshoot text."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    title = body.get("error") or body.get("message") or ""
    return title[:_MAX_TITLE] if isinstance(title, str) else ""


def throttle_wait(response: requests.Response, now: float) -> float:
    """How long to wait after a 429: ``Retry-After`` when given, otherwise until
    ``X-AircallApi-Reset`` (UNIX seconds), bounded so a skewed clock cannot stall us."""
    wait = retry_after_seconds(response, default=0.0)
    reset = response.headers.get("X-AircallApi-Reset")
    if reset is not None:
        with contextlib.suppress(ValueError):
            wait = max(wait, float(reset) - now)
    if not math.isfinite(wait):
        wait = MAX_THROTTLE_WAIT
    return min(max(wait, MIN_THROTTLE_WAIT), MAX_THROTTLE_WAIT)


def classify(response: requests.Response, now: float) -> ConnectorError | None:
    """None for a success; otherwise the error the HTTP client raises (throttling and 5xx are
    retried by it, everything else is raised at once)."""
    status = response.status_code
    if status < 400:
        return None
    title = _title(response)
    if status == 429:
        return Throttled("rate_limited", title, retry_after=throttle_wait(response, now))
    if status == 401:
        return AuthError("unauthorized", "no credentials reached Aircall")
    if status == 403:
        return AuthError("forbidden", "Aircall refused the credentials")
    if status == 404:
        return RemoteNotFound("not_found", title)
    if status == 422:
        return InvalidRequest("unprocessable", title)
    if status >= 500:
        return TransientError(f"http_{status}", title)
    return InvalidRequest(f"http_{status}" if status != 400 else "invalid", title)


def mutation_error(exc: ConnectorError) -> MutationError:
    """A whole-call error as one item's result."""
    return MutationError(
        kind=exc.kind, code=exc.code, message=str(exc)[:200], retry_after=exc.retry_after
    )


def invalid(code: str, message: str) -> MutationError:
    return MutationError(kind="invalid", code=code, message=message)
