"""The Gmail and Calendar APIs' error shapes: Google's JSON envelope with the older ``errors``
list that both APIs still send beside ``status``:

    {"error": {"code": 404, "message": "Requested entity was not found.",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}],
               "status": "NOT_FOUND"}}

Clients branch on the status code and ``errors[].reason`` (``notFound`` for an expired Gmail
``startHistoryId``, ``fullSyncRequired`` for an expired Calendar sync token,
``rateLimitExceeded``), never on the message.
"""

from __future__ import annotations

from typing import Any

from contactsync_sandbox.core.app import ProviderError, Response, json_response
from contactsync_sandbox.google.exceptions import ERROR_INFO, GOOGLE_STATUS

NOT_FOUND = "Requested entity was not found."
FULL_SYNC = "Sync token is no longer valid, a full sync is required."
INSUFFICIENT = "Request had insufficient authentication scopes."


def error_response(
    code: int,
    message: str,
    reason: str,
    *,
    domain: str = "global",
    location: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    item: dict[str, Any] = {"message": message, "domain": domain, "reason": reason}
    if location is not None:
        item.update(location=location, locationType="parameter")
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "errors": [item],
        "status": GOOGLE_STATUS.get(code, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return json_response({"error": body}, code, headers)


def fail(code: int, message: str, reason: str, **kwargs: Any) -> ProviderError:
    return ProviderError(error_response(code, message, reason, **kwargs))


def invalid(message: str, location: str | None = None) -> ProviderError:
    return fail(
        400, message, "invalidArgument" if location is None else "invalid", location=location
    )


def bad_request(message: str, reason: str = "badRequest") -> ProviderError:
    return fail(400, message, reason)


def not_found() -> ProviderError:
    return fail(404, NOT_FOUND, "notFound")


def full_sync_required() -> ProviderError:
    return fail(410, FULL_SYNC, "fullSyncRequired")


def delegation_denied(user: str) -> ProviderError:
    return fail(403, f"Delegation denied for {user}", "forbidden")


def insufficient_scopes(service: str, method: str) -> ProviderError:
    details = [
        {
            "@type": ERROR_INFO,
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": service, "method": method},
        }
    ]
    return ProviderError(
        error_response(403, INSUFFICIENT, "insufficientPermissions", details=details)
    )


def forbidden(message: str) -> ProviderError:
    return fail(403, message, "forbidden")


def rate_limited(message: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(429, message, "rateLimitExceeded", domain="usageLimits", headers=headers)


def server_error(code: int) -> Response:
    message = {
        500: "Internal error encountered.",
        503: "The service is currently unavailable.",
    }.get(code, "Backend Error")
    return error_response(code, message, "backendError")
