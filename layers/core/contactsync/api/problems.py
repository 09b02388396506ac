"""RFC 9457 problem details: every error the API answers, mapped from typed exceptions in one
place. Messages name fields and rules, never values (they may be contact data or secrets)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field

from contactsync.connectors.base import ConnectorError
from contactsync.domain.errors import (
    ContactsyncError,
    InvalidInput,
    LeaseHeld,
    NotFound,
    VersionConflict,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class FieldProblem(BaseModel):
    field: str = Field(description="Where the problem is: body.x.y, query.limit, path.id")
    problem: str


class Problem(BaseModel):
    """application/problem+json (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    code: str | None = Field(default=None, description="A stable machine-readable reason")
    errors: list[FieldProblem] = Field(default_factory=list)


class ApiError(ContactsyncError):
    """An error raised by the API layer itself, with its status."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None):
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(detail)


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Gone(ApiError):
    status = 410
    code = "gone"


class TooLarge(ApiError):
    status = 413
    code = "too_large"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def problem(
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        errors=[FieldProblem(**e) for e in errors or []],
    )
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


def validation_problem(errors: list[dict[str, Any]]) -> Response[Any]:
    """Powertools' RequestValidationError errors (pydantic's) as field problems: where and
    what, never the rejected input."""
    problems = []
    for error in errors[:50]:
        loc = ".".join(str(part) for part in error.get("loc", ())) or "body"
        problems.append({"field": loc, "problem": str(error.get("msg", "is invalid"))[:300]})
    malformed = any(e.get("type") == "json_invalid" for e in errors)
    if malformed:
        return problem(
            400, "The request body is not valid JSON.", code="malformed_body", errors=problems
        )
    return problem(
        422, "The request does not match the schema.", code="invalid_request", errors=problems
    )


def from_exception(exc: Exception) -> Response[Any]:
    """The one mapping from exceptions to HTTP answers."""
    if isinstance(exc, ApiError):
        headers = {"WWW-Authenticate": 'Bearer realm="contactsync"'} if exc.status == 401 else None
        return problem(exc.status, exc.detail, code=exc.code, headers=headers)
    if isinstance(exc, InvalidInput):
        return problem(422, "The input breaks a rule.", code="invalid_input", errors=exc.problems)
    if isinstance(exc, NotFound):
        return problem(404, f"No {exc.kind} with this id.", code="not_found")
    if isinstance(exc, VersionConflict):
        return problem(
            409,
            f"The {exc.kind} changed meanwhile (now version {exc.actual}); re-read and retry.",
            code="version_conflict",
        )
    if isinstance(exc, LeaseHeld):
        return problem(409, "A sync of this account is running; retry later.", code="busy")
    if isinstance(exc, ConnectorError):
        log.warning("provider call failed", extra={"code": exc.code, "kind": exc.kind})
        status = 503 if exc.kind in ("throttled", "transient", "quota") else 502
        return problem(status, f"The provider refused or failed ({exc.kind}).", code=exc.code[:100])
    log.error("unhandled error", extra={"error": type(exc).__name__}, exc_info=exc)
    return problem(500, "Something went wrong on our side.", code="internal")


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), default=str)
