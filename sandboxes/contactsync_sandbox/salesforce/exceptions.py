"""Salesforce's own error shapes.

REST errors are a JSON *array* of ``{message, errorCode, fields?}`` (simple-salesforce reads
``response.json()[0]["errorCode"]`` on a 401); inside sObject Collections results the same error is
``{statusCode, message, fields}``; the OAuth token endpoint answers ``{error, error_description}``.
Models raise these; ``responses.py`` renders them.
"""

from __future__ import annotations

from typing import Any

from contactsync_sandbox.core.app import Response, json_response


class SalesforceError(Exception):
    """One REST API error: HTTP status, Salesforce error code, message, and offending fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.extra = extra or {}

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        item.update(self.extra)
        return [item]

    def item(self) -> dict[str, Any]:
        """The per-record shape used by sObject Collections (``statusCode``, not ``errorCode``)."""
        out: dict[str, Any] = {
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields or [],
        }
        out.update(self.extra)
        return out

    def bulk_error(self) -> str:
        """The ``sf__Error`` column of a Bulk API 2.0 failedResults row."""
        fields = ",".join(self.fields or [])
        return f"{self.code}:{self.message}:{fields} --"

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return json_response(self.body(), self.status, headers)


class OAuthError(Exception):
    """An answer of the OAuth token endpoint: ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        return json_response(
            {"error": self.error, "error_description": self.description}, self.status
        )


# ---- the errors the sandbox raises, by name ---------------------------------------------------

ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone"
    " header"
)


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def request_limit_exceeded() -> SalesforceError:
    return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", message)


def entity_is_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def bad_request(code: str, message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, code, message, fields)


def json_parser_error(message: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", message)


def invalid_query_locator() -> SalesforceError:
    return SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


def exceeded_id_limit(message: str) -> SalesforceError:
    return SalesforceError(400, "EXCEEDED_ID_LIMIT", message)


def rolled_back() -> SalesforceError:
    return SalesforceError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK, [])


def fault_error(status: int) -> SalesforceError:
    """What an injected ``error`` fault of this status looks like from Salesforce."""
    if status == 401:
        return invalid_session()
    if status == 403:
        return request_limit_exceeded()
    if status == 503:
        return SalesforceError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
    return SalesforceError(
        status,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support:"
        " 1234567890-12345 (-1234567890)",
    )
