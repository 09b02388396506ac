"""The initial bulk sync of 100,000 Aircall contacts through the state machine path, locally:
the definition file template.yaml deploys, executed by moto's Step Functions engine (Plan, the
Distributed Map with the provider's concurrency, Finalise), each Lambda task dispatched to our
handlers in process, reading the Aircall sandbox (in process, virtual clock, rate limit on),
the hub in the SQLite store (moto's DynamoDB copies its whole table on every transaction).

Prints wall time, peak RSS, the counts the cost model needs (invocations and seconds per
function, state transitions, store operations, Secrets Manager calls, provider requests, the
virtual time the rate limit imposed) and per-shard figures.

    .venv/bin/python -m benchmarks bulk_sync [--count 100000] [--json bulk.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction

from contactsync.runtime.bulk_state import BulkShard, BulkSync
from contactsync.store.base import StoreStats
from tests.runtime.cloud import InProcessLambdas, functions
from tests.runtime.harness import Machine, machine_on


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class PerThread:
    """Counts events per thread: a Lambda invocation runs in one thread, start to end."""

    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def hit(self, *_: Any, **__: Any) -> None:
        self.counts[threading.get_ident()] += 1

    def now(self) -> int:
        return self.counts[threading.get_ident()]


@dataclass
class Measured(InProcessLambdas):
    """The dispatcher, also counting each invocation's provider requests."""

    requests: PerThread = field(default_factory=PerThread)
    requests_by_call: list[int] = field(default_factory=list)

    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        before = self.requests.now()
        answer = super().invoke(function, event)
        with self.lock:
            self.requests_by_call.append(self.requests.now() - before)
        return answer


def transitions(machine: Machine) -> int:
    """State transitions billed for the run: the parent's Plan, Map and Finalise, and in each
    shard's child execution RunShard, ShardDone and ShardFinished, plus RunShard and ShardDone
    again for every extra call (a retry or a shard continued after its deadline)."""
    shard_calls = [c for c in machine.lambdas.invocations if c.logical_id == "BulkShardFunction"]
    shards = len({str(c.event["shard_id"]) for c in shard_calls})
    extra = len(shard_calls) - shards
    return 3 + 3 * shards + 2 * extra


def run(count: int, json_path: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        lambdas = Measured()
        with machine_on("sqlite", Path(tmp), patch, lambdas=lambdas) as machine:
            world = machine.world
            world.aircall.session.hooks["response"].append(lambdas.requests.hit)
            secrets_calls = PerThread()
            world.secrets.client.meta.events.register(
                "before-call.secrets-manager", secrets_calls.hit
            )
            started = time.perf_counter()
            world.aircall.seed(count, spread_days=730)
            seeded = time.perf_counter() - started
            _, sync = world.connect_aircall()
            world.store.stats = StoreStats()
            virtual_start = world.aircall.clock.now()
            rss_before = peak_rss_mb()
            started = time.perf_counter()
            described = machine.run(timeout=6 * 3600)
            wall = time.perf_counter() - started
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"the bulk sync ended {described['status']}: {described}")
            bulk = world.store.get(BulkSync, world.org_id, sync.id)
            shards = world.store.get_many(BulkShard, world.org_id, bulk.shard_ids)
            stats = world.store.stats
            calls = lambdas.invocations
            memory = {n: int(p.get("MemorySize", 512)) for n, p in functions().items()}
            seconds: dict[str, float] = defaultdict(float)
            for call in calls:
                seconds[call.logical_id] += call.seconds
            per_shard: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
            for call, made in zip(calls, lambdas.requests_by_call, strict=True):
                if call.logical_id == "BulkShardFunction":
                    figures = per_shard[str(call.event["shard_id"])]
                    figures["calls"] += 1
                    figures["seconds"] += call.seconds
                    figures["requests"] += made
            result = {
                "count": count,
                "shards": len(shards),
                "max_concurrency": bulk.max_concurrency,
                "wall_seconds": round(wall, 2),
                "seed_seconds": round(seeded, 2),
                "records_per_second": round(count / wall, 1),
                "peak_rss_mb": round(max(rss_before, peak_rss_mb()), 1),
                "virtual_minutes": round(
                    (world.aircall.clock.now() - virtual_start).total_seconds() / 60, 1
                ),
                "invocations": dict(Counter(c.logical_id for c in calls)),
                "handler_seconds": {k: round(v, 2) for k, v in seconds.items()},
                "gb_seconds_local": round(sum(v * memory[k] / 1024 for k, v in seconds.items()), 2),
                "state_transitions": transitions(machine),
                "store": {"reads": stats.reads, "writes": stats.writes, "queries": stats.queries},
                "secrets_manager_calls": sum(secrets_calls.counts.values()),
                "provider_requests": sum(lambdas.requests_by_call),
                "per_shard": {
                    shard_id: {
                        "records": shards[shard_id].records,
                        "calls": int(f["calls"]),
                        "seconds": round(f["seconds"], 2),
                        "requests": int(f["requests"]),
                    }
                    for shard_id, f in sorted(
                        per_shard.items(), key=lambda kv: int(kv[0].rsplit(".", 1)[1])
                    )
                },
            }
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def report(result: dict[str, Any]) -> None:
    _say(
        f"bulk sync of {result['count']:,} Aircall contacts through the state machine "
        f"({result['shards']} shards, {result['max_concurrency']} at a time)"
    )
    _say(
        f"  wall {result['wall_seconds']:.1f} s ({result['records_per_second']:,.0f} records/s), "
        f"peak RSS {result['peak_rss_mb']:.0f} MB, seeding the sandbox took "
        f"{result['seed_seconds']:.1f} s"
    )
    _say(
        f"  provider: {result['provider_requests']:,} requests, "
        f"{result['virtual_minutes']:.0f} min of the company's rate limit (virtual clock)"
    )
    _say(f"  invocations: {result['invocations']}")
    _say(f"  handler seconds (in process): {result['handler_seconds']}")
    _say(
        f"  state transitions {result['state_transitions']}, store {result['store']}, "
        f"Secrets Manager calls {result['secrets_manager_calls']}"
    )
    shards = list(result["per_shard"].values())
    seconds = sorted(s["seconds"] for s in shards)
    records = sorted(s["records"] for s in shards)
    _say(
        f"  per shard: records {records[0]:,}..{records[-1]:,} "
        f"(median {records[len(records) // 2]:,}), seconds {seconds[0]:.2f}..{seconds[-1]:.2f} "
        f"(median {seconds[len(seconds) // 2]:.2f})"
    )
    _say("  shard    records  calls  seconds  requests")
    for shard_id, figures in result["per_shard"].items():
        _say(
            f"  {shard_id.rsplit('.', 1)[1]:>5}  {figures['records']:>9,}  {figures['calls']:>5}"
            f"  {figures['seconds']:>7.2f}  {figures['requests']:>8,}"
        )
    _say(f"reproduce: .venv/bin/python -m benchmarks bulk_sync --count {result['count']}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks bulk_sync")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--json", help="also write the figures to this file (for bench_cost)")
    args = parser.parse_args(argv)
    report(run(args.count, args.json))


if __name__ == "__main__":
    main(sys.argv[1:])
