"""The functions' configuration: one pydantic model per concern, validated once from the
environment template.yaml sets (the handler passes ``os.environ``; core code never reads it).
Queue addresses per provider arrive as one JSON object each, e.g.
``PUSH_QUEUE_URLS={"google": "https://sqs...", ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import ConfigDict, Field, Json, StringConstraints

from contactsync.domain.accounts import Provider
from contactsync.domain.base import Model

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class EnvModel(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        return cls.model_validate(dict(environ))


class StoreEnv(EnvModel):
    TABLE_NAME: NonEmpty


class SecretsEnv(EnvModel):
    # New account secrets are encrypted with this key (rotations rewrite existing ones).
    SECRETS_KMS_KEY_ID: str | None = None


class WorkerEnv(EnvModel):
    """A pull or push worker: the provider whose accounts it serves, and how long before the
    invocation's deadline it stops starting new pages."""

    PROVIDER: Provider
    DEADLINE_MARGIN_SECONDS: float = Field(default=30.0, ge=1.0, le=300.0)


class PullQueuesEnv(EnvModel):
    PULL_QUEUE_URLS: Json[dict[Provider, NonEmpty]]


class PushQueuesEnv(EnvModel):
    PUSH_QUEUE_URLS: Json[dict[Provider, NonEmpty]]


class ScheduleEnv(EnvModel):
    """The schedule manager: where schedules live, the role EventBridge Scheduler assumes,
    the due-pull queue of each provider they feed and the dead-letter queue of failed sends;
    and the bulk-sync state machine it starts for a new sync."""

    SCHEDULE_GROUP: NonEmpty
    SCHEDULER_ROLE_ARN: NonEmpty
    PULL_QUEUE_ARNS: Json[dict[Provider, NonEmpty]]
    SCHEDULE_DLQ_ARN: NonEmpty
    BULK_STATE_MACHINE_ARN: NonEmpty


class BulkEnv(EnvModel):
    DEADLINE_MARGIN_SECONDS: float = Field(default=60.0, ge=1.0, le=600.0)
    # How often a running shard writes its progress into the sync's status.
    PROGRESS_EVERY_SECONDS: float = Field(default=10.0, ge=0.0, le=600.0)
