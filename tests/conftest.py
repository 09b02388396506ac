"""Shared fixtures. AWS credentials are fake and set before any client exists; moto's mock_aws
is entered before the client is built (moto done right)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from contactsync.store.base import Store
from contactsync.store.dynamodb import DynamoStore
from contactsync.store.sqlite import SQLiteStore
from tests.support.aws import create_table_from_template

for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}.items():
    os.environ[_key] = _value


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamo_store(aws: None) -> DynamoStore:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    create_table_from_template(client, "contactsync-test")
    return DynamoStore(client, "contactsync-test", sleep=lambda _: None)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "contactsync.db")
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Store:
    """The contract suite runs unchanged against both implementations."""
    name = "sqlite_store" if request.param == "sqlite" else "dynamo_store"
    fixture: Store = request.getfixturevalue(name)
    return fixture
