"""Fixtures of the runtime tests: moto holding the table, secrets and queues as template.yaml
declares them, an organisation with an Aircall account whose API is the in-process sandbox on a
virtual clock, and the handlers' cached contexts pointed at all of it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from contactsync.api.aws import SecretsManagerStore
from contactsync.app.setup import Setup
from contactsync.store.dynamodb import DynamoStore
from tests.runtime.cloud import REGION, queue_attributes, queue_name
from tests.runtime.harness import (
    QUEUES,
    TABLE,
    World,
    environ,
    make_aircall,
    point_handlers_at,
)
from tests.support.aws import create_table_from_template


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """moto with the template's table and queues; an organisation whose Aircall account has
    its credentials in Secrets Manager; every handler module's context pointed at it."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table_from_template(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name=REGION)
        queues = {
            logical: sqs.create_queue(
                QueueName=queue_name(logical), Attributes=queue_attributes(logical)
            )["QueueUrl"]
            for logical in QUEUES
        }
        secrets = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION))
        store = DynamoStore(dynamodb, TABLE, sleep=lambda _: None)
        world = World(store, secrets, sqs, queues, make_aircall())
        world.environ = environ(world)
        for name, value in world.environ.items():
            monkeypatch.setenv(name, value)
        org, admin = Setup(store, secrets).create_organisation(
            "Dunder Mifflin", "michael@dundermifflin.com"
        )
        world.org_id, world.admin = org.id, admin
        point_handlers_at(world, monkeypatch)
        yield world
