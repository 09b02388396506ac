"""The cost model: USD a month for 100,000 contacts kept in sync between two spokes (seed 004:
the phone system and the CRM) at a 15-minute schedule, with 0.1%, 1% and 10% of the contacts
changing each day, from counts measured by running the real handlers.

What is measured (moto, the Aircall sandbox in process, DynamoDB capacity units computed from
the item sizes of every call the store makes):
- an idle scheduled pull (nothing changed);
- the cost of one change: its pull and ingest, the fan-out's relay, the push that writes it to
  the other spoke, the source spoke's push that finds it in step, and the echo the other spoke's
  next pull reads back;
each as Lambda invocations, handler time, DynamoDB read and write request units, SQS requests,
Secrets Manager calls and provider API requests.

Lambda time in the cloud is mostly waiting on those calls, so a handler's duration is modelled
as its measured CPU time plus a typical latency per call (LATENCY below), at the memory
template.yaml gives it. Prices are AWS's public us-east-1 list prices (arm64 Lambda, DynamoDB
on-demand, SQS FIFO) without the free tier; the one-off initial bulk sync is priced from
bench_bulk_sync's figures when given (``--bulk FILE``), else from its structure.

Costs split in two: usage, which grows with contacts and churn (the model's answer: USD per
100,000 contacts per month), and the deployment's fixed monthly floor (the KMS key, the secrets,
the alarms, the queues' idle long polling), paid once however many contacts it syncs.

    .venv/bin/python -m benchmarks cost [--contacts 100000] [--changes 20] [--bulk bulk.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contactsync.domain.contact import FieldProvenance, HubContact
from contactsync.domain.outbox import OutboxEntry
from contactsync.runtime.aws import group_id
from contactsync.store.base import Write
from tests.runtime.cloud import FakeContext, filtered, functions, stream_records
from tests.runtime.harness import TABLE, World, moto_world, sqs_event
from tests.support.aws import template

MONTH_DAYS = 30
SCHEDULE_MINUTES = 15
SPOKES = 2
CHURN = (0.001, 0.01, 0.10)


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000133334  # arm64
    lambda_request: float = 0.20 / 1e6
    state_transition: float = 0.025 / 1000
    dynamodb_wru: float = 0.625 / 1e6
    dynamodb_rru: float = 0.125 / 1e6
    dynamodb_gb_month: float = 0.25
    pitr_gb_month: float = 0.20
    sqs_fifo_request: float = 0.50 / 1e6
    sqs_request: float = 0.40 / 1e6
    secrets_call: float = 0.05 / 10_000
    secret_month: float = 0.40
    kms_key_month: float = 1.00
    kms_request: float = 0.03 / 10_000
    alarm_month: float = 0.10
    scheduler_invocation: float = 1.00 / 1e6


PRICES = Prices()
# Typical latency of one call from a Lambda function, in seconds.
LATENCY = {"dynamodb": 0.006, "sqs": 0.010, "secrets": 0.015, "provider": 0.150}
# Each queue Lambda drains is long-polled (20 s) by its pollers while idle, five assumed: the
# empty receives are billed as SQS requests.
IDLE_RECEIVES_PER_QUEUE = 5 * (86_400 // 20) * MONTH_DAYS
# DynamoDB bills an item's storage with 100 bytes of overhead.
ITEM_OVERHEAD = 100


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _size(value: Any) -> int:
    """A DynamoDB attribute value's size in bytes (names are counted by the caller)."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        return math.ceil(len(str(raw).lstrip("-").replace(".", "")) / 2) + 1
    if kind in ("M",):
        return 3 + sum(len(k.encode()) + _size(v) for k, v in raw.items())
    if kind in ("L",):
        return 3 + sum(_size(v) for v in raw)
    if kind == "BOOL" or kind == "NULL":
        return 1
    return len(str(raw))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


@dataclass
class Usage:
    invocations: float = 0.0
    gb_seconds: float = 0.0
    rru: float = 0.0
    wru: float = 0.0
    sqs: float = 0.0
    secrets: float = 0.0
    provider: float = 0.0
    dynamodb_calls: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def __mul__(self, factor: float) -> Usage:
        return Usage(*(getattr(self, f.name) * factor for f in fields(self)))

    def usd(self) -> dict[str, float]:
        return {
            "lambda": self.invocations * PRICES.lambda_request
            + self.gb_seconds * PRICES.lambda_gb_second,
            "dynamodb": self.rru * PRICES.dynamodb_rru + self.wru * PRICES.dynamodb_wru,
            "sqs": self.sqs * PRICES.sqs_fifo_request,
            "secrets manager": self.secrets * PRICES.secrets_call,
        }


@dataclass
class Meter:
    """Counts what the handlers do (only while one runs) through the world's clients and the
    provider's session."""

    usage: Usage = field(default_factory=Usage)
    active: bool = False
    _params: dict[int, dict[str, Any]] = field(default_factory=dict)

    def snapshot(self) -> Usage:
        return Usage(**self.usage.__dict__)

    def attach(self, world: World) -> None:
        dynamodb = world.dynamodb
        dynamodb.meta.events.register("before-parameter-build.dynamodb", self._before)
        dynamodb.meta.events.register("after-call.dynamodb", self._after)
        world.sqs.meta.events.register("before-call.sqs", self._sqs)
        world.secrets.client.meta.events.register("before-call.secrets-manager", self._secret)
        world.aircall.session.hooks["response"].append(self._provider)

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        self._params[id(context)] = params

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = self._params.pop(id(context), {})
        if not self.active:
            return
        read, write = capacity(model.name, params, parsed)
        self.usage.rru += read
        self.usage.wru += write
        self.usage.dynamodb_calls += 1

    def _sqs(self, model: Any, **_: Any) -> None:
        if self.active:
            self.usage.sqs += 1

    def _secret(self, **_: Any) -> None:
        if self.active:
            self.usage.secrets += 1

    def _provider(self, *_: Any, **__: Any) -> None:
        if self.active:
            self.usage.provider += 1

    def invoke(self, name: str, handler: Callable[[], Any]) -> Any:
        """Runs one handler invocation, adding its modelled duration at the function's memory."""
        before = self.snapshot()
        self.active = True
        started = time.process_time()
        try:
            result = handler()
        finally:
            self.active = False
        cpu = time.process_time() - started
        done = self.usage - before
        waiting = (
            done.dynamodb_calls * LATENCY["dynamodb"]
            + done.sqs * LATENCY["sqs"]
            + done.secrets * LATENCY["secrets"]
            + done.provider * LATENCY["provider"]
        )
        memory = int(functions()[name].get("MemorySize", 512)) / 1024
        self.usage.invocations += 1
        self.usage.gb_seconds += (cpu + waiting) * memory
        return result


def capacity(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> tuple[float, float]:
    """Read and write request units of one DynamoDB call (on-demand rounding: 4 KB per read
    unit, strongly consistent; 1 KB per write unit; transactions count twice)."""

    def kb(size: int, unit: int) -> int:
        return max(1, math.ceil(size / unit))

    if operation == "GetItem":
        return kb(item_size(parsed.get("Item", {})), 4096), 0
    if operation == "BatchGetItem":
        items = [i for rows in parsed.get("Responses", {}).values() for i in rows]
        keys = sum(len(r["Keys"]) for r in params.get("RequestItems", {}).values())
        return sum(kb(item_size(i), 4096) for i in items) + max(0, keys - len(items)), 0
    if operation == "Query":
        size = sum(item_size(i) for i in parsed.get("Items", []))
        units = kb(size, 4096)
        return (units / 2 if params.get("IndexName") else units), 0
    if operation == "PutItem":
        return 0, kb(item_size(params["Item"]), 1024)
    if operation in ("UpdateItem", "DeleteItem"):
        return 0, 1
    if operation == "BatchWriteItem":
        writes = [w for rows in params["RequestItems"].values() for w in rows]
        return 0, sum(
            kb(item_size(w["PutRequest"]["Item"]), 1024) if "PutRequest" in w else 1 for w in writes
        )
    if operation == "TransactWriteItems":
        units = 0
        for entry in params["TransactItems"]:
            (kind, body), *_ = entry.items()
            units += 2 * (kb(item_size(body["Item"]), 1024) if kind == "Put" else 1)
        return 0, units
    return 0, 0


# ---- the measured scenario -----------------------------------------------------------------


@contextmanager
def measured_world(contacts: int) -> Iterator[tuple[World, Meter]]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    with pytest.MonkeyPatch.context() as patch, moto_world(patch) as world:
        patch.setenv("PROVIDER", "aircall")
        world.aircall.seed(contacts, spread_days=90)
        world.connect_aircall()
        meter = Meter()
        meter.attach(world)
        yield world, meter


def schedule(world: World, meter: Meter, minute: int) -> None:
    from functions.pull import app

    assert world.account is not None
    body = {
        "org_id": world.org_id,
        "account_id": world.account.id,
        "action": "pull",
        "reason": "schedule",
        "requested_at": f"2026-11-23T12:{minute:02d}:00Z",
    }
    world.sqs.send_message(
        QueueUrl=world.queues["AircallPullQueue"],
        MessageBody=json.dumps(body),
        MessageGroupId=group_id(world.org_id, world.account.id),
    )
    world.aircall.clock.advance(SCHEDULE_MINUTES * 60)
    event = sqs_event(world.messages("AircallPullQueue"), "arn:aws:sqs:::pull")
    meter.invoke("AircallPullFunction", lambda: app.handler(event, FakeContext()))


def fan_out(world: World, meter: Meter, since: int) -> int:
    from functions.fanout import app

    records = filtered("FanOutStreamMapping", stream_records(TABLE, since))
    for start in range(0, len(records), 100):
        event = {"Records": records[start : start + 100]}
        meter.invoke("FanOutFunction", lambda e=event: app.handler(e, FakeContext()))
    return len(stream_records(TABLE))


def push(world: World, meter: Meter) -> None:
    from functions.push import app

    while messages := world.messages("AircallPushQueue"):
        event = sqs_event(messages, "arn:aws:sqs:::push")
        meter.invoke("AircallPushFunction", lambda e=event: app.handler(e, FakeContext()))


def hub_edits(world: World, count: int) -> None:
    """People edit ``count`` contacts in the hub (the gallery writes contact and outbox)."""
    now = world.aircall.clock.now()
    for contact in list(world.store.scan(HubContact, world.org_id))[:count]:
        provenance = dict(contact.provenance)
        provenance["notes"] = FieldProvenance(
            source="user:u-1", source_ts=now, hub_version=contact.version + 1
        )
        changed = contact.model_copy(
            update={"notes": f"Call back {now:%H:%M}", "provenance": provenance}
        )
        world.store.transact(
            [
                Write(changed, expected_version=contact.version),
                Write(
                    OutboxEntry.entry(
                        world.org_id, contact.id, contact.version + 1, "user:u-1", now
                    )
                ),
            ]
        )


@dataclass(frozen=True)
class Storage:
    """Bytes stored per contact with one spoke, per extra spoke (its link and the link's index
    items) and per change (its change-log entry), from the measured table."""

    per_contact: float
    per_spoke: float
    per_change: float


def stored(world: World, contacts: int) -> Storage:
    by_kind: dict[str, list[int]] = {}
    pages = world.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
    for page in pages:
        for item in page["Items"]:
            kind = str(item["PK"]["S"]).split("#")[1]
            by_kind.setdefault(kind, []).append(item_size(item) + ITEM_OVERHEAD)
    total = sum(sum(sizes) for sizes in by_kind.values())
    changes = by_kind.get("change", [])
    return Storage(
        per_contact=(total - sum(changes)) / contacts,
        per_spoke=sum(by_kind.get("link", [])) / contacts,
        per_change=sum(changes) / max(1, len(changes)),
    )


def measure(contacts: int, changes: int) -> tuple[dict[str, Usage], Storage]:
    with measured_world(contacts) as (world, meter):
        schedule(world, meter, 0)  # the initial read of the small company
        first = meter.snapshot()
        since = fan_out(world, meter, 0)
        push(world, meter)
        snap = meter.snapshot()
        schedule(world, meter, 15)
        idle = meter.usage - snap
        # Changes made in the spoke: pulled, ingested, relayed, pushed back to the source
        remote = world.aircall.call("GET", f"/contacts?per_page={changes}")["contacts"]
        for contact in remote:
            world.aircall.call("POST", f"/contacts/{contact['id']}", information="Moved office")
        snap = meter.snapshot()
        schedule(world, meter, 30)
        pulled = meter.usage - snap - idle
        snap = meter.snapshot()
        since = fan_out(world, meter, since)
        relayed = meter.usage - snap
        snap = meter.snapshot()
        push(world, meter)
        in_step = meter.usage - snap
        # Changes made in the hub: relayed and written to the spoke, then read back as echoes
        hub_edits(world, changes)
        since = fan_out(world, meter, since)
        snap = meter.snapshot()
        push(world, meter)
        written = meter.usage - snap
        snap = meter.snapshot()
        schedule(world, meter, 45)
        echoed = meter.usage - snap - idle
        per = 1 / changes
        return {
            "initial read": first * (1 / contacts),
            "idle pull": idle,
            "pull and ingest": pulled * per,
            "fan-out": relayed * per,
            "push, in step": in_step * per,
            "push, written": written * per,
            "echo read back": echoed * per,
        }, stored(world, contacts)


# ---- the model -------------------------------------------------------------------------------


@dataclass
class Month:
    churn: float
    usage: Usage
    changes: float
    pulls: float
    storage_gb: float

    def usd(self) -> dict[str, float]:
        costs = self.usage.usd()
        costs["eventbridge scheduler"] = self.pulls * PRICES.scheduler_invocation
        costs["dynamodb storage+pitr"] = self.storage_gb * (
            PRICES.dynamodb_gb_month + PRICES.pitr_gb_month
        )
        return costs


def month(unit: dict[str, Usage], storage: Storage, contacts: int, churn: float) -> Month:
    pulls = SPOKES * (MONTH_DAYS * 24 * 60 / SCHEDULE_MINUTES)
    changes = contacts * churn * MONTH_DAYS
    per_change = (
        unit["pull and ingest"]
        + unit["fan-out"]
        + unit["push, in step"]
        + unit["push, written"] * (SPOKES - 1)
        + unit["echo read back"] * (SPOKES - 1)
    )
    # The measured company has one spoke: the fan-out sends a message to each.
    per_change.sqs += unit["fan-out"].sqs * (SPOKES - 1)
    usage = unit["idle pull"] * pulls + per_change * changes
    # What Lambda's pollers and the scheduler do with SQS besides the handlers' own sends: a
    # pull request is sent, received and deleted; push messages are received and deleted in
    # batches of ten.
    usage.sqs += 3 * pulls + 2 * SPOKES * changes / 10
    per_contact = storage.per_contact + storage.per_spoke * (SPOKES - 1)
    gigabytes = (contacts * per_contact + changes * storage.per_change) / 1e9
    return Month(churn, usage, changes, pulls, gigabytes)


def fixed() -> dict[str, float]:
    """What template.yaml deploys that costs by the month: its KMS keys, secrets (and one per
    connected account), alarms, and the queues Lambda's pollers drain."""
    resources = template()["Resources"].values()
    count = Counter(r["Type"] for r in resources)
    polled = sum(
        1
        for r in resources
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] != "Table"
    )
    secrets = count["AWS::SecretsManager::Secret"] + SPOKES
    return {
        "kms key": count["AWS::KMS::Key"] * PRICES.kms_key_month,
        f"{secrets} secrets at rest": secrets * PRICES.secret_month,
        f"{count['AWS::CloudWatch::Alarm']} alarms": count["AWS::CloudWatch::Alarm"]
        * PRICES.alarm_month,
        f"idle polling of {polled} queues": polled
        * IDLE_RECEIVES_PER_QUEUE
        * PRICES.sqs_fifo_request,
    }


def initial_sync(unit: dict[str, Usage], contacts: int, bulk: dict[str, Any] | None) -> float:
    """One-off, in USD: the bulk sync of one spoke's contacts (the state machine, and each
    contact read, ingested and relayed as the measured initial read did)."""
    shards = bulk["shards"] if bulk is not None else 40
    scale = contacts / bulk["count"] if bulk is not None else 1.0
    transitions = bulk["state_transitions"] * scale if bulk is not None else 3 + 3 * shards
    per_contact = unit["initial read"] + unit["fan-out"] + unit["push, in step"]
    return (
        transitions * PRICES.state_transition
        + sum((per_contact * contacts).usd().values())
        - contacts * unit["initial read"].invocations * PRICES.lambda_request
        + 3 * shards * PRICES.lambda_request
    )


def report(
    unit: dict[str, Usage], storage: Storage, contacts: int, bulk: dict[str, Any] | None
) -> None:
    _say("measured per operation: a contact of the initial read, an idle pull, per change")
    _say("  operation            invocations  GB-s      RRU     WRU    SQS  secrets  provider")
    for name, u in unit.items():
        _say(
            f"  {name:<20} {u.invocations:>11.3f} {u.gb_seconds:>6.3f} {u.rru:>8.1f}"
            f" {u.wru:>7.1f} {u.sqs:>6.2f} {u.secrets:>8.2f} {u.provider:>9.2f}"
        )
    _say(
        f"  stored: {storage.per_contact:,.0f} bytes a contact, {storage.per_spoke:,.0f} more a "
        f"spoke, {storage.per_change:,.0f} a change (its change-log entry)"
    )
    floor = fixed()
    _say()
    _say(
        f"USD a month for {contacts:,} contacts, {SPOKES} spokes, a {SCHEDULE_MINUTES}-minute "
        "schedule (usage; fixed floor below)"
    )
    header = "  churn/day   changes/mo  lambda  dynamodb   sqs  secrets  scheduler  storage  total"
    _say(header)
    totals = {}
    for churn in CHURN:
        m = month(unit, storage, contacts, churn)
        costs = m.usd()
        total = sum(costs.values())
        totals[churn] = total
        _say(
            f"  {churn:>8.1%} {m.changes:>12,.0f} {costs['lambda']:>7.2f} {costs['dynamodb']:>9.2f}"
            f" {costs['sqs']:>5.2f} {costs['secrets manager']:>8.2f}"
            f" {costs['eventbridge scheduler']:>10.2f} {costs['dynamodb storage+pitr']:>8.2f}"
            f" {total:>6.2f}"
        )
    _say()
    _say(
        "fixed floor a month, whatever the contacts: "
        + ", ".join(f"{k} {v:.2f}" for k, v in floor.items())
        + f" = {sum(floor.values()):.2f} USD"
    )
    _say(
        f"one-off: the initial bulk sync of {contacts:,} contacts of one spoke, "
        f"{initial_sync(unit, contacts, bulk):.2f} USD"
    )
    verdict = "under" if totals[0.01] < 3 else "over"
    _say(
        f"target: usage at 1% daily churn {totals[0.01]:.2f} USD, {verdict} 3 USD; with the fixed "
        f"floor {totals[0.01] + sum(floor.values()):.2f} USD for the whole deployment"
    )
    _say(
        "reproduce: .venv/bin/python -m benchmarks cost"
        + (" --bulk FILE (from benchmarks bulk_sync --json FILE)" if bulk else "")
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks cost")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=20, help="changes measured per kind")
    parser.add_argument("--sample", type=int, default=40, help="contacts in the measured run")
    parser.add_argument("--bulk", help="figures written by `benchmarks bulk_sync --json`")
    args = parser.parse_args(argv)
    bulk = json.loads(Path(args.bulk).read_text()) if args.bulk else None
    started = datetime.now(UTC)
    unit, storage = measure(args.sample, args.changes)
    _say(f"(a company of {args.sample} contacts, {args.changes} changes of each kind)")
    report(unit, storage, args.contacts, bulk)
    _say(f"(measured in {(datetime.now(UTC) - started).total_seconds():.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
