"""Aircall at scale, on the sandbox's virtual clock with its rate limit on (120 requests a
minute per company, shared with the customer's other integrations):

1. N hub contacts pushed out to Aircall: elapsed virtual time against the floor the limit
   sets (one request per create, no batch endpoint), with the default search-before-create
   (Aircall accepts duplicates) and without it;
2. a full scan of N Aircall contacts despite its 10,000-records-per-query cap: every contact
   found exactly once, requests and virtual time.

    .venv/bin/python -m benchmarks aircall [N]     (default N = 100,000; ~10 min of wall time)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from contactsync.domain import ConnectedAccount, Link, Provider
from contactsync.domain.link import stream_key
from tests.support.world import World

LIMIT_PER_MINUTE = 120


def _push(count: int, search: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-aircall-"))
    world = World.build(root, [Provider.SALESFORCE, Provider.AIRCALL])
    aircall = world.apps[Provider.AIRCALL]
    aircall.configure_quotas({"enabled": True, "requests_per_minute": LIMIT_PER_MINUTE})
    world.reconfigure(Provider.AIRCALL, search_before_create="true" if search else "false")
    account = world.accounts[Provider.AIRCALL]
    world.seed(Provider.SALESFORCE, count, overlap=0.0)
    started_virtual = world.clock.now()
    started = time.perf_counter()
    report = world.sync()
    wall = time.perf_counter() - started
    virtual = (world.clock.now() - started_virtual).total_seconds()
    spoke = report.spokes[account.id]
    connector = world.service.connectors(
        world.store.get(ConnectedAccount, world.org_id, account.id)
    )
    key = stream_key(account.id, "contact")
    linked = len(world.store.lookup_ids(Link, world.org_id, "stream", key))
    return {
        "created": spoke.created,
        "linked": linked,
        "requests": connector.stats.requests,
        "throttled": connector.stats.throttled,
        "virtual_hours": virtual / 3600,
        "floor_hours": spoke.created / LIMIT_PER_MINUTE / 60,
        "wall_seconds": wall,
    }


def _scan(count: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-aircall-scan-"))
    world = World.build(root, [Provider.AIRCALL])
    world.apps[Provider.AIRCALL].configure_quotas(
        {"enabled": True, "requests_per_minute": LIMIT_PER_MINUTE}
    )
    world.seed(Provider.AIRCALL, count, overlap=0.0)
    client = world.user_client(Provider.AIRCALL)
    started_virtual = world.clock.now()
    seen: set[str] = set()
    records = 0
    for page in client.read("contact", None):
        for record in page.records:
            records += 1
            seen.add(record.remote_id)
        if page.last:
            break
    return {
        "contacts": count,
        "records": records,
        "distinct": len(seen),
        "requests": client.stats.requests,
        "virtual_hours": (world.clock.now() - started_virtual).total_seconds() / 3600,
    }


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 100_000
    for search in (True, False):
        r = _push(count, search)
        print(
            f"push {count} to Aircall, search before create {'on ' if search else 'off'}: "
            f"{r['created']:.0f} created, {r['linked']:.0f} linked, {r['requests']:.0f} requests, "
            f"{r['throttled']:.0f} throttled; {r['virtual_hours']:.1f} h virtual vs floor "
            f"{r['floor_hours']:.1f} h ({r['virtual_hours'] / max(r['floor_hours'], 1e-9):.2f}x); "
            f"{r['wall_seconds']:.0f} s wall",
            flush=True,
        )
    s = _scan(count)
    print(
        f"full scan of {count} Aircall contacts: {s['records']:.0f} records, {s['distinct']:.0f} "
        f"distinct, {s['requests']:.0f} requests, {s['virtual_hours']:.1f} h virtual at "
        f"{LIMIT_PER_MINUTE}/min"
    )
    print(f"reproduce: .venv/bin/python -m benchmarks aircall {count}")
