"""Lambda handler of the public routes (no authorizer): provider webhooks, verified per
delivery, and the OAuth callback, authenticated by its single-use state. Each webhook only
queues a pull on the PullQueue and answers within the providers' deadlines."""

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
PUBLIC_PREFIXES = ("/webhooks/", "/oauth/callback")


@cache
def resolver() -> APIGatewayHttpResolver:
    ctx = build_cloud_context(
        os.environ,
        boto3.client("dynamodb"),
        boto3.client("secretsmanager"),
        boto3.client("sqs"),
    )
    return build_app(ctx)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    path = str(event.get("rawPath") or "")
    if not path.startswith(PUBLIC_PREFIXES):  # only public routes are wired to this function
        return {
            "statusCode": 404,
            "headers": {"Content-Type": "application/problem+json"},
            "body": '{"title":"Not Found","status":404}',
            "isBase64Encoded": False,
        }
    return resolver().resolve(event, context)
