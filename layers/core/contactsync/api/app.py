"""The management API and the webhooks as one Powertools ``APIGatewayHttpResolver`` with
pydantic validation; the OpenAPI document is generated from the models (``openapi_document``),
with every error documented as RFC 9457 problem+json."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.typing import LambdaContext

from contactsync.api.context import ApiContext
from contactsync.api.problems import PROBLEM_JSON, Problem, dumps, from_exception, problem
from contactsync.api.problems import validation_problem as _validation_problem
from contactsync.api.routes import accounts, contacts, me, sharing, syncs, webhooks

TITLE = "contactsync"
VERSION = "1.0.0"
DESCRIPTION = (
    "The management API of contactsync, the contact synchronisation hub: connected accounts, "
    "sync settings, the contact gallery, sharing, and the providers' webhooks. Errors are RFC "
    "9457 problem details. Every private route is scoped to the caller's organisation."
)


def build_app(ctx: ApiContext) -> APIGatewayHttpResolver:
    app = Resolver(enable_validation=True)
    app.configure_openapi(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes={"bearer": HTTPBearer(bearerFormat="JWT or contactsync local token")},
    )

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(exc: RequestValidationError) -> Response[Any]:
        return _validation_problem(list(exc.errors()))

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _media(exc: RequestUnsupportedContentType) -> Response[Any]:
        return problem(415, "Send the body as application/json.", code="unsupported_media_type")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _error(exc: Exception) -> Response[Any]:
        return from_exception(exc)

    @app.not_found
    def _not_found(exc: Exception) -> Response[Any]:
        return problem(404, "No such route.", code="no_route")

    @app.get("/health", tags=["meta"], include_in_schema=False)
    def _health() -> Response[Any]:
        return Response(200, content_type="application/json", body=dumps({"ok": True}))

    @app.get("/openapi.json", tags=["meta"], include_in_schema=False)
    def _openapi() -> Response[Any]:
        return Response(200, content_type="application/json", body=dumps(openapi_document(app)))

    me.register(app, ctx)
    accounts.register(app, ctx)
    syncs.register(app, ctx)
    contacts.register(app, ctx)
    webhooks.register(app, ctx)
    sharing.register(app, ctx)
    if ctx.settings.swagger:
        app.enable_swagger(path="/docs", title=TITLE)
    return app


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Routes that take provider payloads as they come (SOAP, JSON with any content type).
_RAW_PREFIXES = ("/webhooks/",)


class Resolver(APIGatewayHttpResolver):
    """The HTTP API resolver, refusing non-JSON bodies on the management routes with a 415
    before any parser runs (Powertools would try its form and multipart decoders on them)."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        refused = _media_refusal(event)
        if refused is not None:
            return refused
        return super().resolve(event, context)


def _media_refusal(event: Mapping[str, Any]) -> dict[str, Any] | None:
    http = (event.get("requestContext") or {}).get("http") or {}
    path = str(event.get("rawPath") or http.get("path") or "")
    if http.get("method") not in _BODY_METHODS or path.startswith(_RAW_PREFIXES):
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if not event.get("body"):
        return None
    if media != "application/json":
        return _refusal(415, "unsupported_media_type", "Send the body as application/json.")
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(event["body"]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return _refusal(400, "malformed_body", "The body is not UTF-8 JSON.")
    return None


def _refusal(status: int, code: str, detail: str) -> dict[str, Any]:
    title = "Unsupported Media Type" if status == 415 else "Bad Request"
    body = Problem(title=title, status=status, code=code, detail=detail)
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
        "cookies": [],
    }


_PROBLEM_RESPONSE = {
    "description": "A problem (RFC 9457): 400 malformed, 401 no valid token, 403 not allowed, "
    "404 not in your organisation, 409 conflict, 410 gone, 413 too large, 422 a rule broken "
    "(fields named), 502/503 provider or queue trouble",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def openapi_document(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The generated document, with Powertools' 422 (FastAPI's shape, which we never answer)
    replaced by the problem+json ``default`` response on every operation."""
    schema = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
    document: dict[str, Any] = copy.deepcopy(schema)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in problem_schema.pop("$defs", {}).items():
        components[name] = definition
    components["Problem"] = problem_schema
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            responses["default"] = _PROBLEM_RESPONSE
            for status in [s for s in responses if s.startswith("2")]:
                if int(status) in (201, 202) and "200" in responses:
                    responses.pop("200")
                    break
    return document
