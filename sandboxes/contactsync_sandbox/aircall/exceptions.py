"""Aircall's own error shapes.

Two tiers answer a request to ``api.aircall.io``, and they speak differently:

- the gateway in front of the API (AWS API Gateway: responses carry ``apigw-requestid``) rejects
  a request before Aircall's application sees it: no ``Authorization`` header is a 401
  ``{"message": "Unauthorized"}``, credentials it does not accept are a 403
  ``{"message": "Forbidden"}``, and a path no route matches is a 404 ``{"message": "Not Found"}``.
  None of these carry the ``X-AircallApi-*`` rate-limit headers or count against the limit;
- the application answers ``{"error": "...", "troubleshoot": "..."}`` (400 invalid payload,
  404 unknown id, 422 unprocessable, 429 rate limit).

The OAuth token endpoint answers in the OAuth 2.0 error shape (RFC 6749 section 5.2).
"""

from __future__ import annotations

from typing import ClassVar

from contactsync_sandbox.core.app import ProviderError, Response, json_response


class AircallError(ProviderError):
    """An application-tier error: ``{"error": ..., "troubleshoot": ...}``."""

    status: ClassVar[int] = 400

    def __init__(
        self,
        error: str,
        troubleshoot: str,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.error = error
        self.troubleshoot = troubleshoot
        body = {"error": error, "troubleshoot": troubleshoot}
        super().__init__(json_response(body, status or self.status, headers))


class BadRequest(AircallError):
    status = 400


class NotFound(AircallError):
    status = 404

    def __init__(self, resource: str, identifier: object) -> None:
        super().__init__(
            "Not found",
            f"No {resource} with id {identifier} exists in this company. It may have been "
            "deleted: Aircall keeps no trace of deleted objects.",
        )


class Unprocessable(AircallError):
    status = 422


class TooManyRequests(AircallError):
    status = 429

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(
            "Rate limit reached",
            "Your company exceeded its Public API rate limit. Wait until the time given by "
            "the X-AircallApi-Reset header (UNIX seconds) before sending new requests.",
            headers,
        )


class ServerError(AircallError):
    def __init__(self, status: int) -> None:
        super().__init__(
            "Internal server error",
            "Something went wrong on Aircall's side; retry later.",
            status=status,
        )


class OAuthError(ProviderError):
    """``POST /v1/oauth/token`` errors: ``{"error": code, "error_description": text}``."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        self.code = code
        super().__init__(json_response({"error": code, "error_description": description}, status))


def gateway_unauthorized() -> Response:
    return json_response({"message": "Unauthorized"}, 401)


def gateway_forbidden() -> Response:
    return json_response({"message": "Forbidden"}, 403)


def gateway_not_found() -> Response:
    return json_response({"message": "Not Found"}, 404)
