"""The error shapes of Microsoft Graph and of the Microsoft identity platform (AAD v2.0).

Graph answers ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}``; the token endpoints answer the OAuth 2.0 shape with AAD's additions
(``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``), each
``error_description`` starting with the ``AADSTSnnnn`` code. Models raise these exceptions; the
edge (responses.py) renders them with the request id and the virtual clock's date.
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """An error in Graph's shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self, request_id: str, client_request_id: str, date: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }


class AADError(Exception):
    """An error from the token or discovery endpoints, in AAD's OAuth 2.0 shape."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{status} {error}: AADSTS{aadsts}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, trace_id: str, correlation_id: str, timestamp: str) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}Z"
            ),
            "error_codes": [self.aadsts],
            "timestamp": f"{timestamp}Z",
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


# ---- Graph errors ---------------------------------------------------------------------------


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def id_malformed() -> GraphError:
    return GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def invalid_user(user: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")


def access_denied() -> GraphError:
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def me_needs_delegated() -> GraphError:
    return GraphError(
        400, "BadRequest", "/me request is only valid with delegated authentication flow."
    )


def invalid_token(message: str) -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri='
            '"https://login.microsoftonline.com/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        },
    )


def bad_json() -> GraphError:
    return GraphError(
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and "
        "payload is of valid JSON format.",
    )


def unknown_property(name: str, type_name: str) -> GraphError:
    return GraphError(
        400,
        "RequestBodyRead",
        f"The property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure "
        "to only use property names that are defined by the type or mark the type as open type.",
    )


def wrong_type(name: str, expected: str) -> GraphError:
    return GraphError(
        400,
        "RequestBodyRead",
        f"Cannot convert the value of property '{name}' to the expected type '{expected}'.",
    )


def read_only_property() -> GraphError:
    return GraphError(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")


def too_many_values(prop: str, count: int, limit: int) -> GraphError:
    return GraphError(
        400,
        "ErrorInvalidArgument",
        f"The multi value property {prop} has {count} entries, that exceeds the max allowed "
        f"value of {limit}",
    )


def unknown_select(name: str, type_name: str) -> GraphError:
    return GraphError(
        400,
        "BadRequest",
        f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
    )


def invalid_filter() -> GraphError:
    return GraphError(
        400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
    )


def invalid_query(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidUrlQuery", message)


def segment_not_found(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def method_not_allowed() -> GraphError:
    return GraphError(
        405, "BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def etag_conflict() -> GraphError:
    return GraphError(
        412,
        "ErrorIrresolvableConflict",
        "The send or update operation could not be performed because the change key passed in "
        "the request does not match the current change key for the item.",
    )


def folder_exists() -> GraphError:
    return GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")


def distinguished_folder() -> GraphError:
    return GraphError(
        403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
    )


def category_exists(name: str) -> GraphError:
    return GraphError(409, "Conflict", f"A category with the name '{name}' already exists.")


def enum_value(value: str) -> GraphError:
    return GraphError(400, "RequestBodyRead", f"Requested value '{value}' was not found.")


def sync_state_not_found(detail: str) -> GraphError:
    return GraphError(410, "SyncStateNotFound", detail)


def throttled(message: str, retry_after: int) -> GraphError:
    return GraphError(429, "ApplicationThrottled", message, {"Retry-After": str(retry_after)})


def subscription_error(message: str) -> GraphError:
    return GraphError(400, "ValidationError", message)


def extension_error(status: int, reason: str, operation: str = "Create") -> GraphError:
    names = {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}
    return GraphError(
        status,
        "ExtensionError",
        f"Operation: {operation}; Exception: [Status Code: {names.get(status, status)}; "
        f"Reason: {reason}]",
    )


def resource_not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


def batch_error(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def failed_dependency() -> GraphError:
    return GraphError(
        424, "FailedDependency", "The request failed because a request it depends on failed."
    )


def server_error(status: int) -> GraphError:
    codes = {
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }
    return GraphError(status, codes.get(status, "UnknownError"), "The service is unavailable.")


# ---- identity platform errors ---------------------------------------------------------------


def tenant_not_found(tenant: str, error: str = "invalid_request") -> AADError:
    return AADError(
        400,
        error,
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def invalid_client_secret(client_id: str) -> AADError:
    return AADError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    )


def unknown_client(client_id: str, tenant: str) -> AADError:
    return AADError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your "
        "authentication request to the wrong tenant.",
    )


def missing_parameter(name: str) -> AADError:
    return AADError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def missing_client_secret() -> AADError:
    return AADError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def unsupported_grant(grant_type: str) -> AADError:
    return AADError(
        400,
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def client_credentials_scope(scope: str) -> AADError:
    return AADError(
        400,
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have "
        "a scope value with /.default suffixed to the resource identifier (application ID URI).",
    )


def invalid_grant(aadsts: int, description: str) -> AADError:
    return AADError(400, "invalid_grant", aadsts, description)


def pkce_mismatch() -> AADError:
    return AADError(
        400,
        "invalid_grant",
        50148,
        "The code_verifier does not match the code_challenge supplied in the authorization "
        "request for PKCE.",
    )


def reply_address_mismatch() -> AADError:
    return AADError(
        400,
        "invalid_grant",
        500112,
        "The reply address does not match the reply address provided when requesting the "
        "authorization code.",
    )


def aad_throttled() -> AADError:
    return AADError(
        429,
        "temporarily_unavailable",
        90055,
        "The server is temporarily unable to service your request due to throttling. Retry "
        "the request after the time given in the Retry-After header.",
    )


def aad_unavailable(status: int) -> AADError:
    return AADError(
        status,
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
    )
