"""Google's own error shapes, for the People API and for the OAuth token endpoint.

API errors are Google's JSON error envelope (``google.rpc.Status`` rendered by the API front end):

    {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT", "details": [...]}}

Clients are told (and our connector must) branch on ``status`` and on the ``google.rpc.ErrorInfo``
``reason`` in ``details``, never on ``message``. Token endpoint errors are plain OAuth 2.0 bodies
``{"error": "invalid_grant", "error_description": "Bad Request"}``.

Messages marked "(verbatim)" were checked against real responses quoted in public issue threads
and client code; the others are plausible wording for cases no public source quotes.
"""

from __future__ import annotations

import json
from typing import Any

from contactsync_sandbox.core.app import ProviderError, Response, json_response

SERVICE = "people.googleapis.com"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
HELP = "type.googleapis.com/google.rpc.Help"

# (verbatim) the 401 messages of every Google API front end.
MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
# (verbatim)
NOT_FOUND_MESSAGE = "Requested entity was not found."
STALE_ETAG = (
    "Request person.etag is different than the current person.etag. "
    "Clear local cache and get the latest person."
)
STALE_SOURCE_ETAG = (
    "Request person.metadata.sources.etag is different than the current "
    "person.metadata.sources.etag. Clear local cache and get the latest person."
)
MISSING_ETAG = (
    "Request must set person.etag or person.metadata.sources.etag for the source that is "
    "being updated."
)
EXPIRED_SYNC_TOKEN = (
    "Sync token is expired. Clear local cache and retry call without the sync token."
)
INVALID_ARGUMENT_MESSAGE = "Request contains an invalid argument."
MASK_DOCS = "https://developers.google.com/people/api/rest/v1/people/get"

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
GENERIC_MESSAGE = {
    500: "Internal error encountered.",
    501: "Operation is not implemented, or supported, or enabled.",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}


def error_info(reason: str, domain: str = "googleapis.com", **metadata: str) -> dict[str, Any]:
    info: dict[str, Any] = {"@type": ERROR_INFO, "reason": reason, "domain": domain}
    if metadata:
        info["metadata"] = dict(metadata)
    return info


def error_response(
    code: int,
    message: str,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or GOOGLE_STATUS.get(code, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return json_response({"error": body}, code, headers)


def api_error(
    code: int,
    message: str,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> ProviderError:
    return ProviderError(error_response(code, message, status, details, headers))


def invalid_argument(
    message: str = INVALID_ARGUMENT_MESSAGE, field: str | None = None
) -> ProviderError:
    details = None
    if field is not None:
        violation = {"field": field, "description": message}
        details = [{"@type": BAD_REQUEST, "fieldViolations": [violation]}]
    return api_error(400, message, "INVALID_ARGUMENT", details)


def invalid_value(field: str, proto_type: str, value: Any) -> ProviderError:
    """What the API front end says when a parameter does not parse as its type (verbatim shape)."""
    shown = value if isinstance(value, str) else repr(value)
    return invalid_argument(f"Invalid value at '{field}' ({proto_type}), \"{shown}\"", field)


def unknown_name(name: str, where: str | None = None) -> ProviderError:
    """An unknown query parameter or JSON field (verbatim shape)."""
    if where is None:
        message = (
            f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
            f"Field '{name}' could not be found in request message."
        )
    else:
        message = (
            f'Invalid JSON payload received. Unknown name "{name}" at '
            f"'{where}': Cannot find field."
        )
    return invalid_argument(message, name if where is None else f"{where}.{name}")


def failed_precondition(message: str, reason: str | None = None) -> ProviderError:
    details = [error_info(reason, SERVICE)] if reason else None
    return api_error(400, message, "FAILED_PRECONDITION", details)


def not_found(message: str = NOT_FOUND_MESSAGE) -> ProviderError:
    return api_error(404, message, "NOT_FOUND")


def already_exists(message: str) -> ProviderError:
    return api_error(409, message, "ALREADY_EXISTS")


def unauthenticated(*, missing: bool, expired: bool = False) -> ProviderError:
    if missing:
        message, reason = MISSING_CREDENTIALS, "CREDENTIALS_MISSING"
        challenge = 'Bearer realm="https://accounts.google.com/"'
    else:
        message = INVALID_CREDENTIALS
        reason = "ACCESS_TOKEN_EXPIRED" if expired else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
        challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    details = [error_info(reason, service=SERVICE)]
    return api_error(401, message, "UNAUTHENTICATED", details, {"WWW-Authenticate": challenge})


def insufficient_scopes(method: str) -> ProviderError:
    details = [error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", service=SERVICE, method=method)]
    challenge = 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'
    return api_error(
        403,
        "Request had insufficient authentication scopes.",
        "PERMISSION_DENIED",
        details,
        {"WWW-Authenticate": challenge},
    )


def expired_sync_token(status: str) -> ProviderError:
    """400 + ErrorInfo ``EXPIRED_SYNC_TOKEN``; the ``status`` string differs between reports
    (FAILED_PRECONDITION in most, INVALID_ARGUMENT in some), so it is configurable."""
    return api_error(400, EXPIRED_SYNC_TOKEN, status, [error_info("EXPIRED_SYNC_TOKEN", SERVICE)])


def quota_exceeded(
    metric_name: str,
    limit_name: str,
    metric_id: str,
    limit_id: str,
    limit_value: int,
    project_number: str,
) -> Response:
    """429 RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMIT_EXCEEDED, as the API front end words it."""
    message = (
        f"Quota exceeded for quota metric '{metric_name}' and limit '{limit_name}' of service "
        f"'{SERVICE}' for consumer 'project_number:{project_number}'."
    )
    details = [
        error_info(
            "RATE_LIMIT_EXCEEDED",
            service=SERVICE,
            consumer=f"projects/{project_number}",
            quota_metric=metric_id,
            quota_limit=limit_id,
            quota_limit_value=str(limit_value),
            quota_location="global",
        ),
        {
            "@type": HELP,
            "links": [
                {
                    "description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                }
            ],
        },
    ]
    return error_response(429, message, "RESOURCE_EXHAUSTED", details)


GRPC_CODES = {
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
}


def batch_failure(method: str, errors: dict[str, ProviderError]) -> ProviderError:
    """A batch that fails whole, naming each contact that made it fail: ``details`` carries a
    ``Batch{Create,Update}ContactsErrorDetails`` whose ``contactErrors`` maps the contact's index
    (create) or resource name (update) to a ``google.rpc.Status``."""
    statuses: dict[str, dict[str, Any]] = {}
    for key, error in errors.items():
        body = json.loads(error.response.get_data(as_text=True))["error"]
        status: dict[str, Any] = {
            "code": GRPC_CODES.get(body["status"], 2),
            "message": body["message"],
        }
        if body.get("details"):
            status["details"] = body["details"]
        statuses[key] = status
    first = json.loads(next(iter(errors.values())).response.get_data(as_text=True))["error"]
    code = 404 if first["status"] == "NOT_FOUND" else 400
    details = [
        {
            "@type": f"type.googleapis.com/google.apps.people.v1.{method}ErrorDetails",
            "contactErrors": statuses,
        }
    ]
    return api_error(code, first["message"], first["status"], details)


def html_not_found(path: str) -> Response:
    """Google's front end answers an unknown URL with an HTML page, not JSON."""
    body = (
        "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
        "<title>Error 404 (Not Found)!!1</title>\n"
        f"<p><b>404.</b> <ins>That’s an error.</ins>\n<p>The requested URL <code>{path}</code> "
        "was not found on this server.  <ins>That’s all we know.</ins>\n"
    )
    return Response(body, status=404, content_type="text/html; charset=UTF-8")


def html_bad_gateway() -> Response:
    body = (
        "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
        "<title>Error 502 (Server Error)!!1</title>\n"
        "<p><b>502.</b> <ins>That’s an error.</ins>\n<p>The server encountered a temporary error "
        "and could not complete your request.<p>Please try again in 30 seconds.  "
        "<ins>That’s all we know.</ins>\n"
    )
    return Response(body, status=502, content_type="text/html; charset=UTF-8")


# ---- OAuth 2.0 token endpoint ------------------------------------------------------------------


def oauth_error(status: int, error: str, description: str) -> ProviderError:
    body = {"error": error, "error_description": description}
    return ProviderError(json_response(body, status, {"Cache-Control": "no-store"}))
