"""OpenAPI fragments shared by the routes."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def ok(description: str, status: int = 200) -> dict[int, OpenAPIResponse]:
    return {status: {"description": description}}
