"""The bulk sync through the state machine template.yaml deploys: its definition file with the
functions created in moto, executed by moto's Step Functions engine (Distributed Map, retries),
every Lambda task dispatched to our handlers in process, reading the Aircall sandbox.

moto's DynamoDB copies the whole table on every transaction and scans it on every query, so a
table of a few thousand contacts takes it hours: the runs of 2,000 and 100,000 contacts keep the
hub in the SQLite store (the same store contract, tests/store) while Step Functions, Lambda,
Secrets Manager and SQS are moto's; a small run proves the same path on DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contactsync.api.queue import PullRequest
from contactsync.app.setup import Setup
from contactsync.connectors.base import TransientError
from contactsync.domain.accounts import Provider
from contactsync.domain.contact import HubContact
from contactsync.domain.link import Link, stream_key
from contactsync.domain.sync import SyncSettings, SyncState
from contactsync.runtime.bulk_state import BulkShard, BulkSync
from contactsync.runtime.pulls import PullWorker
from contactsync.runtime.schedules import run_id
from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.google import App as GoogleApp
from tests.runtime.harness import Machine, World, machine_on

GOOGLE_BASE = "https://google.sandbox.test/"


@pytest.fixture
def cloud_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Machine]:
    with machine_on("sqlite", tmp_path, monkeypatch) as machine:
        yield machine


@pytest.fixture
def dynamo_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Machine]:
    with machine_on("dynamodb", tmp_path, monkeypatch) as machine:
        yield machine


def linked(world: World) -> int:
    assert world.account is not None
    key = stream_key(world.account.id, "contact")
    return len(world.store.lookup_ids(Link, world.org_id, "stream", key))


def settings(world: World) -> SyncSettings:
    assert world.sync is not None
    return world.store.get(SyncSettings, world.org_id, world.sync.id)


def fail_once(shard_suffix: str) -> Any:
    """Fails the first invocation of one shard, as a provider outage would."""
    seen: set[str] = set()

    def fail(logical: str, event: dict[str, Any]) -> Exception | None:
        shard = str(event.get("shard_id", ""))
        if logical == "BulkShardFunction" and shard.endswith(shard_suffix) and shard not in seen:
            seen.add(shard)
            return TransientError("server_error", "injected: Aircall answered 503")
        return None

    return fail


def test_a_bulk_sync_completes_survives_a_shard_failure_and_leaves_the_sync_active(
    cloud_machine: Machine,
) -> None:
    world = cloud_machine.world
    # Given 2,000 contacts created over two years in Aircall, and the account connected
    world.aircall.seed(2000, spread_days=730)
    account, sync = world.connect_aircall()
    # and the provider failing one shard's first attempt
    failing = fail_once(".3")
    seen: list[tuple[SyncState, int, int | None]] = []

    def watch(logical: str, event: dict[str, Any]) -> Exception | None:
        # What a person looking at the sync's status sees as each shard starts
        status = settings(world).status
        seen.append((status.state, status.progress_done, status.progress_total))
        return failing(logical, event)

    cloud_machine.lambdas.fail = watch
    # When the bulk sync runs through the state machine
    described = cloud_machine.run()
    # Then it succeeded, over several shards at once, each read once except the failed one,
    # which alone was retried after a backoff
    assert described["status"] == "SUCCEEDED", described
    calls = cloud_machine.shard_calls()
    bulk = world.store.get(BulkSync, world.org_id, sync.id)
    assert len(bulk.shard_ids) > 4
    assert bulk.max_concurrency == 4
    assert calls[BulkShard.make_id(bulk.run_id, 3)] == 2
    assert all(n == 1 for shard, n in calls.items() if not shard.endswith(".3"))
    assert len(cloud_machine.waits) == 1
    # and every contact is in the hub, linked once
    assert linked(world) == 2000
    contacts = list(world.store.scan(HubContact, world.org_id))
    assert 1900 <= len(contacts) <= 2000  # a few seeded people share an email or phone
    # and while it ran, the status showed the sync in progress with its progress out of 2,000
    midway = [(done, total) for state, done, total in seen if 0 < done < 2000]
    assert midway
    assert all(total == 2000 for _, total in midway)
    assert {state for state, _, _ in seen} == {SyncState.IN_PROGRESS}
    # and the sync is active with its counts, its progress complete
    status = settings(world).status
    assert status.state is SyncState.ACTIVE
    assert status.counts.in_sync == 2000
    assert (status.progress_done, status.progress_total) == (2000, 2000)
    assert status.last_error is None
    # and the start-of-sync cursor is stored, with the sync's start as its signpost
    cursor = world.store.load_cursor(world.org_id, account.id, "contact")
    assert cursor is not None
    assert cursor.value is not None
    assert cursor.started_at == bulk.started_at
    assert not world.store.get(BulkSync, world.org_id, sync.id).running
    # When three contacts change in Aircall and the schedule's pull comes
    for contact in world.aircall.call("GET", "/contacts?per_page=3&order=desc")["contacts"]:
        world.aircall.call("POST", f"/contacts/{contact['id']}", information="Moved to Scranton")
    world.aircall.clock.advance(900)
    request = PullRequest(org_id=world.org_id, account_id=account.id, reason="schedule")
    report = PullWorker(world.context(), Provider.AIRCALL).handle(request)
    # Then it continues from the start-of-sync cursor: an incremental read of what changed
    assert report is not None
    pulled = report.spokes[account.id]
    assert not pulled.full_scan
    assert pulled.hub_updated == 3
    assert pulled.pulled < 60
    assert settings(world).status.counts.in_sync == 2000


def test_a_shard_that_keeps_failing_fails_the_run_and_a_redrive_repeats_only_it(
    cloud_machine: Machine,
) -> None:
    world = cloud_machine.world
    world.aircall.seed(300, spread_days=365)
    _, sync = world.connect_aircall()
    # Given one shard that fails every attempt
    broken = {"on": True}

    def fail(logical: str, event: dict[str, Any]) -> Exception | None:
        shard = str(event.get("shard_id", ""))
        if broken["on"] and logical == "BulkShardFunction" and shard.endswith(".1"):
            return TransientError("server_error", "injected: Aircall keeps answering 503")
        return None

    cloud_machine.lambdas.fail = fail
    # When the bulk sync runs
    first = cloud_machine.run()
    # Then it failed after the retry policy's attempts (7), the others shards finished,
    # and the status says what is wrong while the sync stays in progress
    assert first["status"] == "FAILED"
    bulk = world.store.get(BulkSync, world.org_id, sync.id)
    shards = world.store.get_many(BulkShard, world.org_id, bulk.shard_ids)
    failed = BulkShard.make_id(bulk.run_id, 1)
    assert cloud_machine.shard_calls()[failed] == 7
    assert [s.id for s in shards.values() if not s.done] == [failed]
    assert settings(world).status.state is SyncState.IN_PROGRESS
    assert bulk.running
    # When the cause is fixed and the run is driven again (a redrive repeats the failed states
    # with the same input; moto has no RedriveExecution, so the same input runs again)
    broken["on"] = False
    reads_before = {s.id: s.invocations for s in shards.values()}
    second = cloud_machine.run(name=f"{bulk.run_id}-redrive")
    # Then it succeeds, and only the failed shard read anything
    assert second["status"] == "SUCCEEDED", second
    after = world.store.get_many(BulkShard, world.org_id, bulk.shard_ids)
    read_again = [i for i, s in after.items() if s.invocations != reads_before[i]]
    assert read_again == [failed]
    assert settings(world).status.state is SyncState.ACTIVE
    assert settings(world).status.counts.in_sync == linked(world) == 300


def test_a_connector_without_shards_is_read_whole_and_keeps_its_cursor(
    cloud_machine: Machine,
) -> None:
    # Given a Google account (People API page tokens chain: the generic fallback, one shard)
    world = cloud_machine.world
    google = GoogleApp(world.aircall.clock, seed=11)
    google.configure_quotas({"enabled": False})
    world.sessions["google"] = mount_sandbox(requests.Session(), GOOGLE_BASE, google)
    google.seed({"count": 250, "seed": 5})
    config = google.client_config()
    assert world.admin is not None
    account, sync = Setup(world.store, world.secrets).connect(
        world.org_id,
        world.admin,
        Provider.GOOGLE,
        config["user"],
        {"api_base": config["api_base"], "token_uri": config["token_uri"]},
        {k: config[k] for k in ("client_id", "client_secret", "refresh_token")},
    )
    world.account, world.sync = account, sync
    # When its bulk sync runs
    assert cloud_machine.run()["status"] == "SUCCEEDED"
    # Then one shard read everything, and the sync token its last page carried is the cursor
    bulk = world.store.get(BulkSync, world.org_id, sync.id)
    [shard] = world.store.get_many(BulkShard, world.org_id, bulk.shard_ids).values()
    assert shard.shard.carries_cursor
    assert shard.records == 250
    cursor = world.store.load_cursor(world.org_id, account.id, "person")
    assert cursor is not None
    assert cursor.value == shard.cursor
    status = settings(world).status
    assert status.state is SyncState.ACTIVE
    assert status.counts.in_sync == 250
    assert status.progress_total == status.progress_done == 250


def test_the_bulk_sync_on_dynamodb(dynamo_machine: Machine) -> None:
    # Given a small company (moto's DynamoDB is slow) and the hub on DynamoDB
    world = dynamo_machine.world
    world.aircall.seed(24, spread_days=30)
    world.connect_aircall()
    # When the bulk sync runs, Then it completes with the counts right
    assert dynamo_machine.run()["status"] == "SUCCEEDED"
    status = settings(world).status
    assert status.state is SyncState.ACTIVE
    assert status.counts.in_sync == linked(world) == 24
    assert status.progress_done == 24


@pytest.mark.slow
def test_a_bulk_sync_of_100000_contacts(cloud_machine: Machine) -> None:
    world = cloud_machine.world
    world.aircall.seed(100_000, spread_days=730)
    account, sync = world.connect_aircall()
    cloud_machine.lambdas.fail = fail_once(".7")
    described = cloud_machine.run(timeout=3600)
    assert described["status"] == "SUCCEEDED", described
    assert cloud_machine.shard_calls()[BulkShard.make_id(run_id(sync), 7)] == 2
    status = settings(world).status
    assert status.state is SyncState.ACTIVE
    assert status.counts.in_sync == linked(world) == 100_000
    assert status.progress_done == 100_000
    assert world.store.load_cursor(world.org_id, account.id, "contact") is not None
