"""Lambda handler of the management API (API Gateway HTTP API behind its JWT authorizer): parse
nothing, resolve the route, return. Everything else lives in contactsync.api."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from contactsync.api import build_app
from contactsync.api.aws import build_cloud_context

logger = Logger()


@cache
def resolver() -> APIGatewayHttpResolver:
    """Built on the first invocation (not at import: tests enter moto's mock first)."""
    ctx = build_cloud_context(
        os.environ,
        boto3.client("dynamodb"),
        boto3.client("secretsmanager"),
        boto3.client("sqs"),
    )
    return build_app(ctx)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver().resolve(event, context)
