"""The runtime's world for tests and benchmarks: an organisation in moto (the template's table,
queues and secrets), an Aircall account on the in-process sandbox with a virtual clock, the
handlers' contexts pointed at it, and the bulk-sync state machine executing in moto with its
tasks dispatched to our handlers."""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from contactsync.api.aws import SecretsManagerStore
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.org import User
from contactsync.domain.sync import SyncSettings
from contactsync.runtime.aws import CloudContext
from contactsync.runtime.schedules import run_id
from contactsync.store.base import Store
from contactsync.store.dynamodb import DynamoStore
from contactsync.store.sqlite import SQLiteStore
from contactsync_sandbox.aircall import App as AircallApp
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from tests.runtime.cloud import (
    REGION,
    STAGE,
    InProcessLambdas,
    create_functions,
    queue_attributes,
    queue_name,
    state_machine_definition,
)
from tests.support.aws import create_table_from_template

# As template.yaml's Globals set them, before any handler module (and its Powertools Metrics)
# is imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "contactsync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "contactsync")

BULK_FUNCTIONS = ["BulkPlanFunction", "BulkShardFunction", "BulkFinaliseFunction"]

TABLE = "contactsync-test"
AIRCALL_BASE = "https://aircall.sandbox.test/"
PROVIDERS = ("Google", "Microsoft", "Salesforce", "Aircall")
QUEUES = (
    "PullQueue",
    *(f"{p}{kind}Queue" for p in PROVIDERS for kind in ("Pull", "Push")),
    "StreamDeadLetterQueue",
    "ScheduleDeadLetterQueue",
)
HANDLER_MODULES = ("pull", "push", "fanout", "bulk")


@dataclass
class Aircall:
    app: AircallApp
    clock: VirtualClock
    session: requests.Session

    def seed(self, count: int, spread_days: float = 365.0, seed: int = 3) -> None:
        self.app.seed({"count": count, "seed": seed, "spread_days": spread_days})

    def add(self, *first_names: str) -> list[str]:
        """Creates contacts as a user of the company would; returns their ids."""
        records = [
            {
                "first_name": name,
                "last_name": "Halpert",
                "phone_numbers": [{"label": "Work", "value": f"+1 212-555-{7000 + i:04d}"}],
            }
            for i, name in enumerate(first_names)
        ]
        return [str(i) for i in self.app.seed({"records": records})["ids"]]

    def call(self, method: str, path: str, **body: Any) -> dict[str, Any]:
        """The Aircall API as a user of the company calls it."""
        response = self.session.request(
            method,
            self.app.client_config()["api_base"] + path,
            json=body or None,
            auth=(self.credentials()["api_id"], self.credentials()["api_token"]),
        )
        assert response.status_code < 300, response.text
        return dict(response.json()) if response.content else {}

    def credentials(self) -> dict[str, str]:
        key = self.app.client_config()["api_keys"][0]
        return {"api_id": key["api_id"], "api_token": key["api_token"]}


def make_aircall(rate_limited: bool = True) -> Aircall:
    clock = VirtualClock()
    app = AircallApp(clock, seed=7)
    if not rate_limited:
        app.configure_quotas({"enabled": False})
    return Aircall(app, clock, mount_sandbox(requests.Session(), AIRCALL_BASE, app))


@dataclass
class World:
    """The organisation in the cloud: its store, the AWS clients, the queues by logical id."""

    store: Store
    secrets: SecretsManagerStore
    sqs: Any
    queues: dict[str, str]
    aircall: Aircall
    org_id: str = ""
    admin: User | None = None
    account: ConnectedAccount | None = None
    sync: SyncSettings | None = None
    environ: dict[str, str] = field(default_factory=dict)
    dynamodb: Any = None  # the table's client, when the hub is on DynamoDB
    # In-process sessions of other providers' sandboxes, by provider.
    sessions: dict[str, requests.Session] = field(default_factory=dict)

    def context(self) -> CloudContext:
        return CloudContext(
            environ=self.environ,
            store=self.store,
            secrets=self.secrets,
            sqs=self.sqs,
            clock=self.aircall.clock,
            sessions={"aircall": self.aircall.session, **self.sessions},
        )

    def connect_aircall(
        self, address: str = "dundermifflin@aircall.example", **config: str
    ) -> tuple[ConnectedAccount, SyncSettings]:
        assert self.admin is not None
        account, sync = Setup(self.store, self.secrets).connect(
            self.org_id,
            self.admin,
            Provider.AIRCALL,
            address,
            {"api_base": self.aircall.app.client_config()["api_base"], **config},
            self.aircall.credentials(),
        )
        self.account, self.sync = account, sync
        return account, sync

    def queue_arn(self, logical_id: str) -> str:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[logical_id], AttributeNames=["QueueArn"]
        )
        return str(attributes["Attributes"]["QueueArn"])

    def messages(self, logical_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Receives (and deletes) up to ``limit`` messages of a queue, as Lambda would get them."""
        got: list[dict[str, Any]] = []
        while len(got) < limit:
            answer = self.sqs.receive_message(
                QueueUrl=self.queues[logical_id],
                MaxNumberOfMessages=min(10, limit - len(got)),
                AttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                break
            for message in batch:
                self.sqs.delete_message(
                    QueueUrl=self.queues[logical_id], ReceiptHandle=message["ReceiptHandle"]
                )
            got.extend(batch)
        return got


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event as Lambda delivers the messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1732364400000",
                    "SenderId": "AROAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1732364400000",
                    **{
                        k: v
                        for k, v in m.get("Attributes", {}).items()
                        if k in ("MessageGroupId", "MessageDeduplicationId", "SequenceNumber")
                    },
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def environ(world: World) -> dict[str, str]:
    def urls(kind: str) -> str:
        return json.dumps(
            {p.lower(): world.queues[f"{p}{kind}Queue"] for p in PROVIDERS}, sort_keys=True
        )

    def arns(kind: str) -> str:
        return json.dumps(
            {p.lower(): world.queue_arn(f"{p}{kind}Queue") for p in PROVIDERS}, sort_keys=True
        )

    return {
        "TABLE_NAME": TABLE,
        "POWERTOOLS_SERVICE_NAME": "contactsync",
        "POWERTOOLS_METRICS_NAMESPACE": "contactsync",
        "AWS_DEFAULT_REGION": REGION,
        "PULL_QUEUE_URLS": urls("Pull"),
        "PUSH_QUEUE_URLS": urls("Push"),
        "PULL_QUEUE_ARNS": arns("Pull"),
        "SCHEDULE_GROUP": f"contactsync-{STAGE}",
        "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/contactsync-test-scheduler",
        "SCHEDULE_DLQ_ARN": world.queue_arn("ScheduleDeadLetterQueue"),
        "BULK_STATE_MACHINE_ARN": (
            f"arn:aws:states:{REGION}:123456789012:stateMachine:contactsync-{STAGE}-bulk-sync"
        ),
    }


def point_handlers_at(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every handler module builds its context from ``cloud()``: give it the world's."""
    for name in HANDLER_MODULES:
        module = importlib.import_module(f"functions.{name}.app")
        monkeypatch.setattr(module, "cloud", world.context)


@dataclass
class Machine:
    world: World
    client: Any
    arn: str
    lambdas: InProcessLambdas
    waits: list[float] = field(default_factory=list)

    def run(self, name: str | None = None, timeout: float = 600.0) -> dict[str, Any]:
        """Starts the sync's bulk sync as the schedule manager does, and waits for its end."""
        sync = self.world.sync
        assert sync is not None
        task = {"org_id": self.world.org_id, "sync_id": sync.id, "run_id": run_id(sync)}
        execution = self.client.start_execution(
            stateMachineArn=self.arn, name=name or task["run_id"], input=json.dumps(task)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = self.client.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            assert time.monotonic() < deadline, "the bulk sync did not finish"
            time.sleep(0.02)

    def shard_calls(self) -> Counter[str]:
        return Counter(
            str(call.event["shard_id"])
            for call in self.lambdas.invocations
            if call.logical_id == "BulkShardFunction"
        )


def new_world(
    store: Store, sqs: Any, secrets: SecretsManagerStore, *, rate_limited: bool = True
) -> World:
    world = World(store, secrets, sqs, {}, make_aircall(rate_limited=rate_limited))
    org, admin = Setup(store, secrets).create_organisation("Dunder Mifflin", "michael@dm.com")
    world.org_id, world.admin = org.id, admin
    return world


@contextmanager
def moto_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
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
        world = World(store, secrets, sqs, queues, make_aircall(), dynamodb=dynamodb)
        world.environ = environ(world)
        for name, value in world.environ.items():
            monkeypatch.setenv(name, value)
        org, admin = Setup(store, secrets).create_organisation(
            "Dunder Mifflin", "michael@dundermifflin.com"
        )
        world.org_id, world.admin = org.id, admin
        point_handlers_at(world, monkeypatch)
        yield world


class OneCallAtATime:
    """A client whose calls never overlap. The state machine runs shards on parallel threads
    (in AWS each is its own Lambda), and moto's DynamoDB is not thread-safe: TransactWriteItems
    deep-copies a table that another thread may be writing ("dictionary changed size during
    iteration")."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@contextmanager
def machine_on(
    store_kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lambdas: InProcessLambdas | None = None,
) -> Iterator[Machine]:
    """moto executing state machines, the bulk functions dispatched in process (by ``lambdas``);
    the hub on DynamoDB (moto) or SQLite."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        secrets = SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION))
        sqs = boto3.client("sqs", region_name=REGION)
        if store_kind == "dynamodb":
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            create_table_from_template(dynamodb, TABLE)
            store: Store = DynamoStore(OneCallAtATime(dynamodb), TABLE, sleep=lambda _: None)
        else:
            store = SQLiteStore(tmp_path / "hub.db")
        world = new_world(store, sqs, secrets)
        monkeypatch.setenv("TABLE_NAME", TABLE)
        point_handlers_at(world, monkeypatch)
        lambdas = lambdas or InProcessLambdas()
        machine_client = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        arns = create_functions(
            boto3.client("lambda", region_name=REGION), iam, BULK_FUNCTIONS, lambdas
        )
        role = iam.create_role(RoleName="contactsync-test-states", AssumeRolePolicyDocument="{}")
        arn = machine_client.create_state_machine(
            name="contactsync-test-bulk-sync",
            definition=state_machine_definition(arns),
            roleArn=role["Role"]["Arn"],
        )["stateMachineArn"]
        machine = Machine(world, machine_client, arn, lambdas)
        # Retry backoff waits are recorded, not slept (the policy is the template's).
        monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=machine.waits.append))
        with lambdas.installed():
            yield machine
        store.close()
