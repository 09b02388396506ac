"""The cloud wiring of the API, shared by the thin Lambda handlers (functions/api,
functions/webhooks): configuration validated once from the function's environment, the
DynamoDB store, Secrets Manager for account credentials and the deployment's keys, and the
SQS pull queue. Clients are built by the handler (after moto's mock in tests) and injected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from contactsync.api.context import ApiContext
from contactsync.api.queue import PullInbox, SqsPullQueue
from contactsync.api.settings import ApiSettings, JwtClaims, Mode, ProviderOAuth
from contactsync.domain.accounts import Provider
from contactsync.domain.base import Model
from contactsync.store.dynamodb import DynamoStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient


class CloudEnv(Model):
    """The API functions' environment (template.yaml sets every variable)."""

    model_config = Model.model_config | {"extra": "ignore"}

    TABLE_NAME: str = Field(min_length=1)
    PULL_QUEUE_URL: str = Field(min_length=1)
    WEBHOOK_KEY_SECRET_ARN: str = Field(min_length=1)
    OAUTH_CLIENTS_SECRET_ARN: str | None = None
    SECRETS_KMS_KEY_ID: str | None = None
    PUBLIC_BASE_URL: str = Field(min_length=1)
    JWT_ORG_CLAIM: str = "custom:org_id"
    JWT_USER_CLAIM: str = "custom:user_id"
    JWT_ROLE_CLAIM: str = "custom:role"


@dataclass
class SecretsManagerStore:
    """Account credentials, one secret per account, named by its secret_ref."""

    client: SecretsManagerClient
    kms_key_id: str | None = None

    def get(self, ref: str) -> dict[str, str]:
        try:
            answer = self.client.get_secret_value(SecretId=ref)
        except self.client.exceptions.ResourceNotFoundException as exc:
            raise KeyError(ref) from exc
        values: dict[str, str] = json.loads(answer["SecretString"])
        return values

    def put(self, ref: str, values: dict[str, str]) -> None:
        body = json.dumps(values, sort_keys=True)
        try:
            self.client.put_secret_value(SecretId=ref, SecretString=body)
        except self.client.exceptions.ResourceNotFoundException:
            extra: dict[str, Any] = {"KmsKeyId": self.kms_key_id} if self.kms_key_id else {}
            self.client.create_secret(Name=ref, SecretString=body, **extra)

    def delete(self, ref: str) -> None:
        try:
            self.client.delete_secret(SecretId=ref, RecoveryWindowInDays=7)
        except self.client.exceptions.ResourceNotFoundException:
            return


def _secret_json(client: SecretsManagerClient, arn: str) -> Any:
    return json.loads(client.get_secret_value(SecretId=arn)["SecretString"])


def build_cloud_context(
    environ: Mapping[str, str],
    dynamodb: DynamoDBClient,
    secretsmanager: SecretsManagerClient,
    sqs: SQSClient,
) -> ApiContext:
    env = CloudEnv.model_validate(dict(environ))
    webhook = _secret_json(secretsmanager, env.WEBHOOK_KEY_SECRET_ARN)
    webhook_key = webhook["key"] if isinstance(webhook, dict) else str(webhook)
    oauth: dict[Provider, ProviderOAuth] = {}
    if env.OAUTH_CLIENTS_SECRET_ARN:
        raw = _secret_json(secretsmanager, env.OAUTH_CLIENTS_SECRET_ARN) or {}
        oauth = {Provider(k): ProviderOAuth.model_validate(v) for k, v in raw.items()}
    settings = ApiSettings(
        mode=Mode.CLOUD,
        public_base_url=env.PUBLIC_BASE_URL.rstrip("/"),
        webhook_key=webhook_key,
        oauth=oauth,
        claims=JwtClaims(org=env.JWT_ORG_CLAIM, user=env.JWT_USER_CLAIM, role=env.JWT_ROLE_CLAIM),
    )
    store = DynamoStore(dynamodb, env.TABLE_NAME)
    secrets = SecretsManagerStore(secretsmanager, env.SECRETS_KMS_KEY_ID)
    inbox = PullInbox(store, SqsPullQueue(sqs, env.PULL_QUEUE_URL))
    from contactsync.local.connectors import connector_factory  # requests only, no local deps

    return ApiContext(
        settings=settings,
        store=store,
        secrets=secrets,
        inbox=inbox,
        connectors=connector_factory(secrets),
    )
