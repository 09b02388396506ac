"""An incremental round with k changed contacts among N: provider API calls and store
operations as a function of k, for N = 1,000 and N = 100,000. They must not grow with N
(cursors, delta links and the outbox make a round's work proportional to what changed).

Salesforce -> hub -> Outlook, in-process, quotas off. After the initial sync and a settling
round, k Salesforce contacts are edited (a new title) and one round runs.

    .venv/bin/python -m benchmarks incremental [N ...]    (default 1000 100000; the 100,000
                                                            initial sync takes minutes)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from contactsync.connectors.base import ContactFields, Update
from contactsync.domain import ConnectedAccount, Provider
from tests.support.world import World

KS = (1, 10, 100)


def _round(world: World, k: int, salt: int) -> dict[str, int]:
    links = sorted(world.links(Provider.SALESFORCE), key=lambda lk: lk.remote_id)[:k]
    client = world.user_client(Provider.SALESFORCE)
    updates = [
        Update(lk.remote_id, ContactFields(title=f"Title {salt}-{i}"), lk.object_type)
        for i, lk in enumerate(links)
    ]
    for start in range(0, len(updates), 200):
        assert all(r.ok for r in client.apply("Contact", updates[start : start + 200]))
    world.clock.advance(90)
    connectors = {
        p: world.service.connectors(world.store.get(ConnectedAccount, world.org_id, a.id))
        for p, a in world.accounts.items()
    }
    before_calls = {p: c.stats.requests for p, c in connectors.items()}
    before_store = (world.store.stats.reads, world.store.stats.writes, world.store.stats.queries)
    report = world.sync()
    sf = report.spokes[world.accounts[Provider.SALESFORCE].id]
    ms = report.spokes[world.accounts[Provider.MICROSOFT].id]
    assert sf.hub_updated == k, (sf.hub_updated, k)
    assert ms.updated == k, (ms.updated, k)
    return {
        "salesforce_calls": connectors[Provider.SALESFORCE].stats.requests
        - before_calls[Provider.SALESFORCE],
        "graph_calls": connectors[Provider.MICROSOFT].stats.requests
        - before_calls[Provider.MICROSOFT],
        "store_reads": world.store.stats.reads - before_store[0],
        "store_writes": world.store.stats.writes - before_store[1],
        "store_queries": world.store.stats.queries - before_store[2],
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1_000, 100_000]
    print(f"{'N':>7} {'k':>4} {'SF calls':>8} {'Graph calls':>11} ", end="")
    print(f"{'reads':>6} {'writes':>6} {'queries':>7}")
    for n in sizes:
        world = World.build(
            Path(tempfile.mkdtemp(prefix="bench-incr-")), [Provider.SALESFORCE, Provider.MICROSOFT]
        )
        world.seed(Provider.SALESFORCE, n, overlap=0.0)
        world.converge(6)
        for salt, k in enumerate(KS):
            r = _round(world, k, salt)
            print(
                f"{n:>7} {k:>4} {r['salesforce_calls']:>8} {r['graph_calls']:>11} "
                f"{r['store_reads']:>6} {r['store_writes']:>6} {r['store_queries']:>7}",
                flush=True,
            )
    print("reproduce: .venv/bin/python -m benchmarks incremental " + " ".join(map(str, sizes)))
