"""Webhook acknowledgement latency under a burst: 1,000 Microsoft Graph change notifications
(and then 1,000 Aircall deliveries) posted by concurrent senders to `contactsync serve`'s real
threaded HTTP server on 127.0.0.1, each verified, deduplicated and turned into (at most) one
queued pull per account. Target: p99 under 100 ms locally (Graph allows 3 s, Aircall 5 s).

    .venv/bin/python -m benchmarks webhooks [--count 1000] [--senders 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from contactsync.api.queue import QueuedPull, WebhookReceipt
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.local.home import Home, LocalConfig
from contactsync.local.serve import LocalRuntime, build_runtime

TARGET_P99_MS = 100.0


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _burst(url: str, bodies: list[bytes], senders: int) -> tuple[list[float], dict[int, int]]:
    local = threading.local()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def send(body: bytes) -> float:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        start = time.perf_counter()
        answer = session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        return elapsed

    with ThreadPoolExecutor(max_workers=senders) as pool:
        times = list(pool.map(send, bodies))
    return times, statuses


def _report(name: str, times: list[float], statuses: dict[int, int], wall: float) -> float:
    p50, p99 = statistics.median(times), _percentile(times, 0.99)
    _say(
        f"{name}: {len(times)} deliveries in {wall:.2f} s ({len(times) / wall:.0f}/s); "
        f"ack latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(times):.1f} ms; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    return p99


def _setup(root: Path) -> tuple[Home, str, ConnectedAccount, ConnectedAccount]:
    home = Home(root)
    store, secrets = home.store(), home.secrets()
    setup = Setup(store, secrets)
    org, admin = setup.create_organisation("Benchmark Paper", "admin@bench.example")
    home.save_config(LocalConfig(org_id=org.id, admin_user_id=admin.id))
    mailbox, _ = setup.connect(
        org.id, admin, Provider.MICROSOFT, "admin@bench.example", {}, {"refresh_token": "rt"}
    )
    phones, _ = setup.connect(
        org.id,
        admin,
        Provider.AIRCALL,
        "Bench phones",
        {},
        {"api_id": "id", "api_token": "tok", "webhook_token": "w" * 32},
    )
    store.close()
    return home, org.id, mailbox, phones


def _graph_bodies(runtime: LocalRuntime, org_id: str, account_id: str, count: int) -> list[bytes]:
    state = runtime.ctx.graph_client_state(org_id, account_id)
    expires = datetime.now(UTC).replace(microsecond=0).isoformat()
    return [
        json.dumps(
            {
                "value": [
                    {
                        "subscriptionId": "bench-subscription",
                        "subscriptionExpirationDateTime": expires,
                        "changeType": "updated",
                        "clientState": state,
                        "tenantId": "bench",
                        "resource": f"Users/u/Contacts/c{i}",
                        "resourceData": {"id": f"c{i}", "@odata.etag": f'W/"{i}"'},
                    }
                ]
            }
        ).encode()
        for i in range(count)
    ]


def _aircall_bodies(count: int) -> list[bytes]:
    now = int(time.time())
    return [
        json.dumps(
            {
                "resource": "contact",
                "event": "contact.updated",
                "timestamp": now,
                "token": "w" * 32,
                "data": {
                    "id": i,
                    "first_name": "Bench",
                    "last_name": str(i),
                    "updated_at": now,
                    "phone_numbers": [],
                    "emails": [],
                },
            }
        ).encode()
        for i in range(count)
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_webhooks")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="contactsync-bench-") as tmp:
        home, org_id, mailbox, phones = _setup(Path(tmp) / "home")
        runtime = build_runtime(home, 0, swagger=False).start(scheduler=False)
        try:
            base = runtime.url
            _say(
                f"contactsync serve on {base}: {args.count} notifications per provider, "
                f"{args.senders} concurrent senders"
            )
            worst = 0.0
            for name, path, bodies in (
                (
                    "graph",
                    f"/webhooks/microsoft/{org_id}/{mailbox.id}",
                    _graph_bodies(runtime, org_id, mailbox.id, args.count),
                ),
                ("aircall", f"/webhooks/aircall/{org_id}/{phones.id}", _aircall_bodies(args.count)),
            ):
                start = time.perf_counter()
                times, statuses = _burst(base + path, bodies, args.senders)
                worst = max(worst, _report(name, times, statuses, time.perf_counter() - start))
            store = runtime.ctx.store
            receipts = sum(1 for _ in store.scan(WebhookReceipt, org_id))
            markers = sum(1 for _ in store.scan(QueuedPull, org_id))
            queued = runtime.scheduler.queue.take_all()
            _say(
                f"effect: {receipts} deliveries recorded, {len(queued)} pulls queued "
                f"({markers} markers): one per account, the rest coalesced"
            )
            verdict = "met" if worst < TARGET_P99_MS else "MISSED"
            _say(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict} (worst p99 {worst:.1f} ms)")
            _say("reproduce: .venv/bin/python -m benchmarks webhooks --count 1000 --senders 8")
        finally:
            runtime.stop()
