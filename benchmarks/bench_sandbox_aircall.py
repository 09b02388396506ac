"""Aircall sandbox: time to serve its largest page (50 contacts) with 100,000 contacts seeded,
in-process through ``requests``, and what a full scan of them costs in requests.

A full scan has to get around the 10,000-records-per-query cap: it splits the creation-date
range in halves until each window holds at most 10,000 contacts (one ``per_page=1`` probe per
window), then pages through every window. At the company's 120 requests a minute, the request
count is the real cost of an initial sync.

    .venv/bin/python -m benchmarks sandbox_aircall [--count 100000] [--samples 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import requests

from contactsync_sandbox.aircall import App
from contactsync_sandbox.core import VirtualClock, mount_sandbox

BASE = "https://aircall.sandbox.test/"
PER_PAGE = 50
CAP = 10_000


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _timed(samples: int, request: Callable[[int], requests.Response]) -> tuple[float, float]:
    """Median and p95 in milliseconds of ``samples`` requests."""
    times = []
    for i in range(samples):
        start = time.perf_counter()
        response = request(i)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


class Scanner:
    """Reads every contact once through creation-date windows, counting requests."""

    def __init__(self, session: requests.Session, api: str) -> None:
        self.session = session
        self.api = api
        self.requests = 0
        self.seen: set[int] = set()

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        response = self.session.get(self.api + "/contacts", params=params)
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    def scan(self, start: int, end: int) -> None:
        total = self._get({"from": start, "to": end, "per_page": 1})["meta"]["total"]
        if total > CAP:
            middle = (start + end) // 2
            self.scan(start, middle)
            self.scan(middle + 1, end)
            return
        page = 1
        while total:
            params = {"from": start, "to": end, "per_page": PER_PAGE, "page": page}
            body = self._get(params)
            self.seen.update(c["id"] for c in body["contacts"])
            if body["meta"]["next_page_link"] is None:
                break
            page += 1


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_sandbox_aircall")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    app = App(VirtualClock(), seed=args.seed)
    session = mount_sandbox(requests.Session(), BASE, app)
    config = app.client_config()
    session.auth = (config["api_id"], config["api_token"])
    api = config["api_base"]
    session.post(config["admin"] + "faults", json={"rules": [], "quotas": {"enabled": False}})

    start = time.perf_counter()
    seeded = session.post(config["admin"] + "seed", json={"count": args.count, "seed": args.seed})
    seed_seconds = time.perf_counter() - start
    seeded.raise_for_status()
    _say(f"seeded {args.count:,} contacts in {seed_seconds:.1f} s")

    rng = random.Random(args.seed)
    last_page = min(args.count, CAP) // PER_PAGE
    pages = [rng.randint(1, last_page) for _ in range(args.samples)]
    numbers = [
        app.contacts.contacts[cid].phone_numbers[0].value
        for cid in rng.sample(sorted(app.contacts.contacts), args.samples)
    ]
    window = {"from": 0, "to": int(app.clock.timestamp()) - 86_400 * 30}

    def by_created(i: int) -> requests.Response:
        return session.get(api + "/contacts", params={"per_page": PER_PAGE, "page": pages[i]})

    def by_updated(i: int) -> requests.Response:
        params = {"per_page": PER_PAGE, "page": pages[i], "order_by": "updated_at", "order": "desc"}
        return session.get(api + "/contacts", params=params)

    def by_updated_in_window(i: int) -> requests.Response:
        params = {"per_page": PER_PAGE, "page": 1 + i % 20, "order_by": "updated_at", **window}
        return session.get(api + "/contacts", params=params)

    def search(i: int) -> requests.Response:
        return session.get(api + "/contacts/search", params={"phone_number": numbers[i]})

    _say(f"page of {PER_PAGE} contacts, in-process, {args.samples} requests each:")
    for label, request in (
        ("order_by=created_at, random pages", by_created),
        ("order_by=updated_at desc, random pages", by_updated),
        ("order_by=updated_at in a creation window", by_updated_in_window),
        ("search by phone_number", search),
    ):
        median, p95 = _timed(args.samples, request)
        _say(f"  {label:<42} median {median:6.2f} ms   p95 {p95:6.2f} ms")

    scanner = Scanner(session, api)
    start = time.perf_counter()
    scanner.scan(0, int(app.clock.timestamp()))
    scan_seconds = time.perf_counter() - start
    minutes = scanner.requests / 120
    _say(
        f"full scan: {len(scanner.seen):,} of {args.count:,} contacts in {scanner.requests:,} "
        f"requests ({scan_seconds:.1f} s in-process; {minutes:.0f} min of a 120/min budget, "
        f"{scanner.requests / 60:.0f} min at 60/min)"
    )
    _say(f"reproduce: .venv/bin/python -m benchmarks sandbox_aircall --count {args.count}")
