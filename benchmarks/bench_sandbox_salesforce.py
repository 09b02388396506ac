"""Salesforce sandbox: seed 100,000 contacts in-process, then time the provider's largest page
(a 2,000-row REST query page, first page and nextRecordsUrl pages) and a 10,000-row Bulk 2.0
result set, all through the unpatched simple-salesforce client.

Run: .venv/bin/python -m benchmarks sandbox_salesforce [--count N] [--pages N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import requests
from simple_salesforce import Salesforce
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.salesforce import SalesforceSandbox

BASE = "https://salesforce.sandbox.test/"
FIELDS = (
    "Id, FirstName, LastName, Name, Email, Phone, MobilePhone, HomePhone, Title, Department,"
    " AccountId, Account.Name, OwnerId, MailingStreet, MailingCity, MailingPostalCode,"
    " MailingCountry, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp"
)
SELECT = "SELECT " + FIELDS + " FROM Contact"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000.0


def _summary(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    _say(
        f"{label}: median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms"
        f" over {len(ordered)} pages"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sandbox_salesforce")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args(argv)

    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    app = SalesforceSandbox(clock, seed=1)
    session = mount_sandbox(requests.Session(), BASE, app)
    session.post(BASE + "_sandbox/faults", json={"rules": [], "quotas": {"enabled": False}})

    seed_ms = _timed(lambda: session.post(BASE + "_sandbox/seed", json={"count": args.count}))
    _say(f"seeded {args.count:,} contacts in {seed_ms / 1000:.2f} s")

    sf = Salesforce(
        session_id=app.issue_session(),
        instance_url=BASE.rstrip("/"),
        session=session,
        version="59.0",
    )
    # SOQL made of constants only: nothing to escape
    sync_query = SELECT + " WHERE SystemModstamp >= 2026-01-01T00:00:00Z"
    sync_query += " ORDER BY SystemModstamp ASC, Id ASC"
    first_pages = [_timed(lambda: sf.query(sync_query)) for _ in range(max(3, args.pages // 4))]
    _summary("REST first page (2,000 rows, WHERE/ORDER BY SystemModstamp, index)", first_pages)

    scan_query = SELECT + " WHERE Email LIKE '%gmail%' ORDER BY LastName"
    scans = [_timed(lambda: sf.query(scan_query)) for _ in range(3)]
    _summary("REST first page (full scan, LIKE + ORDER BY LastName)", scans)

    page = sf.query(sync_query)
    more: list[float] = []
    served: list[float] = []
    for _ in range(args.pages):
        if page["done"]:
            page = sf.query(sync_query)
        url = page["nextRecordsUrl"]
        served.append(_serve_only(app, url, sf.session_id))
        start = time.perf_counter()
        page = sf.query_more(url, True)
        more.append((time.perf_counter() - start) * 1000.0)
    _summary("REST nextRecordsUrl page (2,000 rows), served by the app", served)
    _summary("REST nextRecordsUrl page (2,000 rows), through simple-salesforce", more)

    headers = {"Authorization": f"Bearer {sf.session_id}"}
    jobs = BASE + "services/data/v59.0/jobs/query"
    job = session.post(jobs, json={"operation": "query", "query": SELECT}, headers=headers).json()
    while session.get(f"{jobs}/{job['id']}", headers=headers).json()["state"] != "JobComplete":
        pass
    sets: list[float] = []
    for n in range(min(args.pages, args.count // 10_000 or 1)):
        locator = "" if n == 0 else _locator(n * 10_000)
        params = {"maxRecords": "10000", **({"locator": locator} if locator else {})}
        sets.append(
            _timed(
                lambda params=params: session.get(  # type: ignore[misc]
                    f"{jobs}/{job['id']}/results", params=params, headers=headers
                )
            )
        )
    _summary("Bulk 2.0 result set (10,000 rows CSV)", sets)
    _say("reproduce: .venv/bin/python -m benchmarks sandbox_salesforce")


def _serve_only(app: SalesforceSandbox, path: str, token: str) -> float:
    """The sandbox's own time for a page: routing, session, rendering and JSON encoding, without
    the client's JSON decoding (simple-salesforce decodes into OrderedDicts, which costs as
    much again)."""
    environ = EnvironBuilder(
        method="GET", path=path, base_url=BASE, headers={"Authorization": f"Bearer {token}"}
    ).get_environ()
    start = time.perf_counter()
    app.handle(Request(environ)).get_data()
    return (time.perf_counter() - start) * 1000.0


def _locator(offset: int) -> str:
    import base64

    return base64.b64encode(str(offset).encode()).decode().rstrip("=")
