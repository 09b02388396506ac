"""The Lambda handlers under moto: the API function behind the JWT authorizer (claims in the
event) on DynamoDB from template.yaml, the webhook function writing to the FIFO PullQueue as
the template declares it, secrets in Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from moto import mock_aws

from contactsync.api.aws import SecretsManagerStore
from contactsync.api.webhooks import derive_secret
from contactsync.app.setup import Setup
from contactsync.domain.accounts import Provider
from contactsync.domain.org import User
from contactsync.store.dynamodb import DynamoStore
from tests.support.aws import create_table_from_template, resource

REGION = "eu-west-1"
TABLE = "contactsync-test"
KEY = "k" * 64


@dataclass
class LambdaContext:
    function_name: str = "contactsync-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:contactsync-test"
    aws_request_id: str = "req-1"


@dataclass
class Cloud:
    api: ModuleType
    webhooks: ModuleType
    store: DynamoStore
    sqs: Any
    queue_url: str
    org_id: str
    admin: User


def _queue_attributes() -> dict[str, str]:
    props = resource("PullQueue")["Properties"]
    return {
        "FifoQueue": "true",
        "ContentBasedDeduplication": str(props["ContentBasedDeduplication"]).lower(),
        "DeduplicationScope": props["DeduplicationScope"],
        "FifoThroughputLimit": props["FifoThroughputLimit"],
        "VisibilityTimeout": str(props["VisibilityTimeout"]),
    }


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table_from_template(dynamodb, TABLE)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        webhook_arn = secrets.create_secret(
            Name="webhook-key", SecretString=json.dumps({"key": KEY})
        )["ARN"]
        oauth_arn = secrets.create_secret(Name="oauth", SecretString="{}")["ARN"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="pulls.fifo", Attributes=_queue_attributes())[
            "QueueUrl"
        ]
        for name, value in {
            "TABLE_NAME": TABLE,
            "PULL_QUEUE_URL": queue_url,
            "WEBHOOK_KEY_SECRET_ARN": webhook_arn,
            "OAUTH_CLIENTS_SECRET_ARN": oauth_arn,
            "PUBLIC_BASE_URL": "https://api.example.test",
            "POWERTOOLS_SERVICE_NAME": "contactsync",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        from functions.api import app as api
        from functions.webhooks import app as webhooks

        api.resolver.cache_clear()
        webhooks.resolver.cache_clear()
        store = DynamoStore(dynamodb, TABLE, sleep=lambda _: None)
        org, admin = Setup(store, SecretsManagerStore(secrets)).create_organisation(
            "Dunder Mifflin", "michael@dundermifflin.com"
        )
        yield Cloud(api, webhooks, store, sqs, queue_url, org.id, admin)
        api.resolver.cache_clear()
        webhooks.resolver.cache_clear()


def event(
    method: str, path: str, body: Any = None, claims: dict[str, Any] | None = None, query: str = ""
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "http": {"method": method, "path": path, "sourceIp": "1.2.3.4"},
        "requestId": "r",
        "stage": "$default",
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": dict(parse_qsl(query)) or None,
        "headers": {"content-type": "application/json"},
        "requestContext": context,
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def test_api_function_on_dynamodb(cloud: Cloud) -> None:
    claims = {
        "custom:org_id": cloud.org_id,
        "custom:user_id": cloud.admin.id,
        "custom:role": "admin",
    }
    me = cloud.api.handler(event("GET", "/me", claims=claims), LambdaContext())
    assert me["statusCode"] == 200, me
    assert json.loads(me["body"])["role"] == "admin"
    created = cloud.api.handler(
        event(
            "POST",
            "/contacts",
            {"given_name": "Jim", "phones": [{"raw": "+1 570 555 0100"}]},
            claims,
        ),
        LambdaContext(),
    )
    assert created["statusCode"] == 201, created
    listed = cloud.api.handler(event("GET", "/contacts", claims=claims), LambdaContext())
    assert [c["given_name"] for c in json.loads(listed["body"])["items"]] == ["Jim"]
    # Another organisation's claims see nothing of it; no claims at all is a 401
    stranger = {"custom:org_id": "org-other", "custom:user_id": cloud.admin.id}
    assert (
        cloud.api.handler(event("GET", "/contacts", claims=stranger), LambdaContext())["statusCode"]
        == 403
    )
    assert cloud.api.handler(event("GET", "/me"), LambdaContext())["statusCode"] == 401


def test_webhook_function_queues_one_pull_per_account(cloud: Cloud) -> None:
    setup = Setup(
        cloud.store, SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION))
    )
    account, _ = setup.connect(
        cloud.org_id,
        cloud.admin,
        Provider.MICROSOFT,
        "michael@dundermifflin.com",
        {},
        {"refresh_token": "rt"},
    )
    path = f"/webhooks/microsoft/{cloud.org_id}/{account.id}"
    state = derive_secret(KEY, "graph-client-state", cloud.org_id, account.id)
    note = {
        "subscriptionId": "s1",
        "changeType": "updated",
        "clientState": state,
        "resourceData": {"id": "AAA", "@odata.etag": 'W/"1"'},
    }
    first = cloud.webhooks.handler(event("POST", path, {"value": [note]}), LambdaContext())
    assert first["statusCode"] == 202, first
    replay = cloud.webhooks.handler(event("POST", path, {"value": [note]}), LambdaContext())
    assert json.loads(replay["body"])["outcome"] == "duplicate"
    second = cloud.webhooks.handler(
        event("POST", path, {"value": [{**note, "resourceData": {"id": "BBB"}}]}), LambdaContext()
    )
    assert json.loads(second["body"])["actions"] == {"pull": "coalesced"}
    forged = cloud.webhooks.handler(
        event("POST", path, {"value": [{**note, "clientState": "x"}]}), LambdaContext()
    )
    assert forged["statusCode"] == 401
    messages = cloud.sqs.receive_message(
        QueueUrl=cloud.queue_url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"]
    )["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert (body["account_id"], body["action"]) == (account.id, "pull")
    assert messages[0]["Attributes"]["MessageGroupId"] == f"{cloud.org_id}.{account.id}"
    validation = cloud.webhooks.handler(
        event("POST", path, query="validationToken=abc%20def"), LambdaContext()
    )
    assert (validation["statusCode"], validation["body"]) == (200, "abc def")


def test_webhook_function_serves_only_public_routes(cloud: Cloud) -> None:
    claims = {"custom:org_id": cloud.org_id, "custom:user_id": cloud.admin.id}
    assert (
        cloud.webhooks.handler(event("GET", "/me", claims=claims), LambdaContext())["statusCode"]
        == 404
    )


EVENTS = sorted((Path(__file__).resolve().parents[2] / "events").glob("*_*.json"))


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_sam_events_are_answered_without_a_server_error(cloud: Cloud, path: Path) -> None:
    sample = json.loads(path.read_text(encoding="utf-8"))
    module = cloud.webhooks if path.name.startswith("webhook_") else cloud.api
    answer = module.handler(sample, LambdaContext())
    assert 200 <= answer["statusCode"] < 500, answer
