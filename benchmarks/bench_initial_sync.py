"""Initial sync of N Salesforce contacts into the hub and out to the rep's Outlook folder
(Graph $batch), quotas off, SQLite store. Each size runs in its own process.

Two measurements per size:
- in-process: the sandboxes live in the syncing process (requests transport adapters), as the
  tests run: contacts per second end to end; the peak RSS includes the sandboxes' own copies
  of every contact;
- out-of-process: the sandboxes run in another process (`contactsync sandbox up`, HTTPS), so
  the syncing process's peak RSS is the sync's own: it must stay flat as N grows (pages are
  streamed, never every contact at once).

Targets (issue 4): 100,000 end to end in under 60 s on a 2-core machine, peak RSS under 500
MB, flat as N grows.

    .venv/bin/python -m benchmarks initial_sync [N ...]        (default 10000 50000 100000)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SIZES = [10_000, 50_000, 100_000]


def in_process(count: int) -> dict[str, Any]:
    from contactsync.domain import Provider
    from contactsync.local.process import sync_gc
    from tests.support.world import World

    world = World.build(
        Path(tempfile.mkdtemp(prefix="bench-initial-")), [Provider.SALESFORCE, Provider.MICROSOFT]
    )
    world.seed(Provider.SALESFORCE, count, overlap=0.0)
    started = time.perf_counter()
    with sync_gc():  # as `contactsync sync` runs a round
        report = world.sync()
    elapsed = time.perf_counter() - started
    sf = report.spokes[world.accounts[Provider.SALESFORCE].id]
    ms = report.spokes[world.accounts[Provider.MICROSOFT].id]
    return {
        "seconds": round(elapsed, 1),
        "per_second": round(count / elapsed),
        "hub": sf.hub_created,
        "outlook": ms.created,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def out_of_process(count: int) -> dict[str, Any]:

    from contactsync.local.cli import main as cli
    from contactsync.local.connectors import https_session

    root = Path(tempfile.mkdtemp(prefix="bench-initial-oop-"))
    state = root / "sandbox"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contactsync.local.cli",
            "--home",
            str(root / "sb-home"),
            "sandbox",
            "up",
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config_path = state / "sandbox.json"
        for _ in range(1200):  # up to two minutes on a loaded machine
            if config_path.exists():
                break
            time.sleep(0.1)
        sandbox = json.loads(config_path.read_text())
        http = https_session(sandbox["ca_bundle"])
        for provider in ("salesforce", "microsoft", "google", "aircall"):
            off = {"rules": [], "quotas": {"enabled": False}}
            http.post(
                sandbox[provider]["admin"] + "faults", json=off, timeout=60
            ).raise_for_status()
        only = {"ca_bundle": sandbox["ca_bundle"], "salesforce": sandbox["salesforce"],
                "microsoft": sandbox["microsoft"]}  # fmt: skip
        (root / "two.json").write_text(json.dumps(only))
        home = str(root / "home")
        assert cli(["--home", home, "init", "--sandbox", str(root / "two.json")]) == 0
        http.post(
            sandbox["salesforce"]["admin"] + "seed",
            json={"count": count, "overlap": 0.0},
            timeout=3600,
        ).raise_for_status()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        assert cli(["--home", home, "sync", "--once", "--json"]) == 0
        elapsed = time.perf_counter() - started
        return {
            "seconds": round(elapsed, 1),
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_before_mb": round(before),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        mode, count = argv[1], int(argv[2])
        result = in_process(count) if mode == "in" else out_of_process(count)
        print("RESULT " + json.dumps(result))
        return
    sizes = [int(a) for a in argv] or DEFAULT_SIZES
    print(f"{'contacts':>9} | in-process: {'s':>6} {'/s':>6} {'outlook':>8} {'RSS MB':>7} "
          f"| sandboxes apart (HTTPS): {'s':>6} {'sync RSS MB':>11}")  # fmt: skip
    for size in sizes:
        results = []
        for mode in ("in", "out"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks", "initial_sync", "--child", mode, str(size)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"the {mode}-process run of {size} failed")
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
            results.append(json.loads(line.removeprefix("RESULT ")))
        a, b = results
        left = f"{a['seconds']:>6} {a['per_second']:>6} {a['outlook']:>8} {a['rss_mb']:>7}"
        right = f"{b['seconds']:>6} {b['rss_mb']:>11}"
        print(f"{size:>9} | {'':>12}{left} | {'':>25}{right}", flush=True)
    print("reproduce: .venv/bin/python -m benchmarks initial_sync " + " ".join(map(str, sizes)))
