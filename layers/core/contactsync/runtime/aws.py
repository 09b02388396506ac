"""The AWS wiring shared by the runtime's handlers: the store on the table, account credentials
in Secrets Manager behind the connector factory (a rotated refresh token is written back to the
account's secret before the connector uses it), and the SQS queues between the steps.

Clients are built by the handler, after moto's mock in tests, and injected here."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from contactsync.api.aws import SecretsManagerStore
from contactsync.connectors.http import Clock
from contactsync.domain.accounts import Provider
from contactsync.local.connectors import connector_factory
from contactsync.runtime.settings import SecretsEnv, StoreEnv
from contactsync.secrets import SecretStore
from contactsync.store.base import Store
from contactsync.store.dynamodb import DynamoStore
from contactsync.sync.spokes import ConnectorFactory

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient


def store_from(environ: Mapping[str, str], dynamodb: DynamoDBClient) -> DynamoStore:
    return DynamoStore(dynamodb, StoreEnv.from_env(environ).TABLE_NAME)


def secrets_from(
    environ: Mapping[str, str], secretsmanager: SecretsManagerClient
) -> SecretsManagerStore:
    return SecretsManagerStore(secretsmanager, SecretsEnv.from_env(environ).SECRETS_KMS_KEY_ID)


def group_id(org_id: str, account_id: str) -> str:
    """The FIFO message group of one account's work: one at a time, in order."""
    return f"{org_id}.{account_id}"[:128]


def dedupe_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:128]


@dataclass
class FifoQueues:
    """One FIFO queue per provider (the pull queues, or the push queues)."""

    client: SQSClient
    urls: Mapping[Provider, str]

    def send(self, provider: Provider, group: str, dedupe: str, body: str) -> None:
        url = self.urls.get(provider)
        if url is None:
            raise LookupError(f"no queue for provider {provider.value}")
        self.client.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedupe
        )


@dataclass
class CloudContext:
    """What a handler's services are built from, once per execution environment: the store,
    the account secrets, the queues' client, and (tests, benchmarks) a clock and in-process
    sessions for the providers."""

    environ: Mapping[str, str]
    store: Store
    secrets: SecretStore
    sqs: SQSClient | None = None
    clock: Clock | None = None
    sessions: Mapping[str, requests.Session] | None = None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        dynamodb: DynamoDBClient,
        secretsmanager: SecretsManagerClient,
        sqs: SQSClient | None = None,
    ) -> CloudContext:
        return cls(
            environ=environ,
            store=store_from(environ, dynamodb),
            secrets=secrets_from(environ, secretsmanager),
            sqs=sqs,
        )

    def connectors(self) -> ConnectorFactory:
        """A connector factory for one invocation: each account's credentials are read from
        its secret when its connector is first built, and a rotated token is merged back into
        the secret. A fresh one per invocation reads a token another worker rotated."""
        return connector_factory(self.secrets, clock=self.clock, sessions=self.sessions)

    def queues(self, urls: Mapping[Provider, str]) -> FifoQueues:
        if self.sqs is None:
            raise RuntimeError("this function has no SQS client")
        return FifoQueues(self.sqs, urls)
