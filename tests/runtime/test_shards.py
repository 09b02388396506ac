"""Sharding for the bulk sync: the contract's generic fallback, and Aircall's creation-date
windows on the Aircall sandbox (in process, virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest

from contactsync.connectors.aircall import STREAM, AircallConnector, from_account
from contactsync.connectors.aircall.paging import CursorState
from contactsync.connectors.sharding import Shard, ShardedReader, WholeStream
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.runtime.bulk import sharder_for
from contactsync.runtime.shards_aircall import AircallShards, shard_account
from tests.runtime.harness import Aircall, make_aircall


def account(aircall: Aircall, **config: str) -> ConnectedAccount:
    return ConnectedAccount(
        org_id="org-a",
        id="acc-aircall-1",
        provider=Provider.AIRCALL,
        owner_user_id="u-1",
        address="company@aircall.example",
        config={"api_base": aircall.app.client_config()["api_base"], **config},
    )


def connector(aircall: Aircall, **config: str) -> AircallConnector:
    return from_account(
        account(aircall, **config),
        aircall.credentials(),
        session=aircall.session,
        clock=aircall.clock,
    )


def read(reader: ShardedReader, shard: Shard) -> list[str]:
    return [r.remote_id for page in reader.read_shard(shard) for r in page.records]


@pytest.fixture
def aircall() -> Aircall:
    return make_aircall(rate_limited=False)


def test_windows_cover_the_company_once_under_the_shard_limit(aircall: Aircall) -> None:
    # Given 1,000 contacts created over 100 days
    aircall.seed(1000, spread_days=100)
    shards = AircallShards(connector(aircall))
    requests_before = shards.connector.stats.requests
    # When they are planned into at most 8 shards
    planned, start = shards.plan_shards(STREAM, 8)
    # Then there are at most 8 windows, contiguous, whose counts add up to the company's
    assert 4 <= len(planned) <= 8
    bounds = [(int(s.spec["from"] or 0), int(s.spec["to"] or 0)) for s in planned]
    assert all(bounds[i][1] + 1 == bounds[i + 1][0] for i in range(len(bounds) - 1))
    assert sum(s.estimate or 0 for s in planned) == 1000
    # for about two requests a shard
    assert shards.connector.stats.requests - requests_before <= 2 * len(planned) + 8
    # and reading every shard returns every contact exactly once
    ids = [i for shard in planned for i in read(shards, shard)]
    assert len(ids) == len(set(ids)) == 1000
    assert {str(i) for i in aircall.app.contacts.contacts} == set(ids)
    # and the start cursor continues incrementally from where the plan began
    assert start is not None
    assert CursorState.load(start).reconciled is not None


def test_a_window_resumes_from_a_page_cursor(aircall: Aircall) -> None:
    aircall.seed(200, spread_days=10)
    shards = AircallShards(connector(aircall))
    [whole], _ = shards.plan_shards(STREAM, 1)
    pages = shards.read_shard(whole)
    first = [next(pages), next(pages)]
    resume = first[-1].cursor
    # When another worker resumes the shard from the second page's cursor
    rest = read(shards, whole.model_copy(update={"resume": resume}))
    # Then together they read everything once
    done = [r.remote_id for p in first for r in p.records]
    assert len(done) + len(rest) == 200
    assert set(done).isdisjoint(rest)


def test_a_second_holding_more_contacts_than_a_page_is_read_whole(aircall: Aircall) -> None:
    # Given a bulk import: 130 contacts created in the same second, among others
    aircall.seed(40, spread_days=5)
    second = aircall.clock.now().timestamp() - 3600
    records: list[dict[str, Any]] = [
        {
            "first_name": f"Import{i}",
            "created_at": int(second),
            "updated_at": int(second),
            "phone_numbers": [{"label": "Work", "value": f"+1 312-555-{1000 + i:04d}"}],
        }
        for i in range(130)
    ]
    aircall.app.seed({"records": records})
    shards = AircallShards(connector(aircall))
    planned, _ = shards.plan_shards(STREAM, 5)
    ids = [i for shard in planned for i in read(shards, shard)]
    assert len(ids) == len(set(ids)) == 170


def test_an_empty_company_is_one_empty_shard(aircall: Aircall) -> None:
    shards = AircallShards(connector(aircall))
    planned, start = shards.plan_shards(STREAM, 10)
    assert len(planned) == 1
    assert read(shards, planned[0]) == []
    assert start is not None


def test_concurrent_readers_share_the_companys_budget(aircall: Aircall) -> None:
    # The connector alone would use 90 requests a minute (120 less its 25% headroom)
    assert connector(aircall).http.pacer.per_minute == 90
    shared = shard_account(account(aircall), 4)
    assert shared.config["requests_per_minute"] == "22.5"
    built = from_account(shared, aircall.credentials(), session=aircall.session)
    assert built.http.pacer.per_minute == 22.5


def test_the_fallback_reads_the_stream_whole_and_keeps_its_cursor(aircall: Aircall) -> None:
    aircall.seed(120, spread_days=10)
    reader = WholeStream(connector(aircall))
    [shard], start = reader.plan_shards(STREAM, 10)
    assert start is None
    assert shard.carries_cursor
    pages = list(reader.read_shard(shard))
    assert sum(len(p.records) for p in pages) == 120
    assert pages[-1].last
    assert pages[-1].cursor is not None
    # and the cursor it carries is an incremental read's start: only the newest second's
    # records come back (the watermark is compared with >=: they are echoes)
    newest = max(int(r.version or 0) for p in pages for r in p.records)
    follow = connector(aircall)
    again = [r for p in follow.read(STREAM, pages[-1].cursor) for r in p.records]
    assert {int(r.version or 0) for r in again} <= {newest}


def test_each_connector_gets_its_sharder(aircall: Aircall) -> None:
    assert isinstance(sharder_for(connector(aircall)), AircallShards)
    assert isinstance(AircallShards(connector(aircall)), ShardedReader)
