"""Initial sync of N Salesforce contacts into the hub and out to the rep's Outlook folder
(Graph $batch), in-process transports, quotas off, SQLite store.

Prints contacts per second and peak RSS at each size; each size runs in its own process so
the peak RSS is that size's own. Targets (issue 4): 100,000 end to end in under 60 s on a
2-core machine, peak RSS under 500 MB, flat as N grows.

    .venv/bin/python -m benchmarks initial_sync [N ...]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = [10_000, 50_000, 100_000]


def run_one(count: int) -> dict[str, float]:
    from contactsync.domain import Provider
    from tests.support.world import World

    root = Path(tempfile.mkdtemp(prefix="bench-initial-"))
    world = World.build(root, [Provider.SALESFORCE, Provider.MICROSOFT])
    started = time.perf_counter()
    world.seed(Provider.SALESFORCE, count, overlap=0.0)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    report = world.sync()
    elapsed = time.perf_counter() - started
    sf = report.spokes[world.accounts[Provider.SALESFORCE].id]
    ms = report.spokes[world.accounts[Provider.MICROSOFT].id]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "contacts": count,
        "seed_seconds": round(seeded, 1),
        "sync_seconds": round(elapsed, 1),
        "contacts_per_second": round(count / elapsed),
        "pulled": sf.pulled,
        "hub_created": sf.hub_created,
        "outlook_created": ms.created,
        "peak_rss_mb": round(rss_mb),
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(int(argv[1]))))
        return
    sizes = [int(a) for a in argv] or DEFAULT_SIZES
    print(f"{'contacts':>9} {'sync s':>7} {'contacts/s':>10} {'outlook':>8} {'peak RSS MB':>11}")
    for size in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks", "initial_sync", "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        columns = ("contacts", "sync_seconds", "contacts_per_second", "outlook_created")
        widths = (9, 7, 10, 8)
        cells = " ".join(f"{result[c]:>{w}}" for c, w in zip(columns, widths, strict=True))
        print(f"{cells} {result['peak_rss_mb']:>11}", flush=True)
    print("reproduce: .venv/bin/python -m benchmarks initial_sync " + " ".join(map(str, sizes)))
