"""Microsoft sandbox: seed a realistic mailbox in-process, then time Graph's largest pages
(a 200-item delta page, a 1,000-item list page) and a $batch of 20 creates, through msal and
requests on the in-process transport. Throttling is off (quotas {"enabled": false})."""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable

import msal
import requests

from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.registry import create

BASE = "https://microsoft.sandbox.test/"
COMMAND = ".venv/bin/python -m benchmarks sandbox_microsoft"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _figures(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    _say(
        f"{label:<38} median {statistics.median(ordered) * 1000:8.1f} ms   "
        f"p95 {p95 * 1000:8.1f} ms   (n={len(ordered)})"
    )


def _timed(call: Callable[[], requests.Response], expected: int) -> tuple[float, requests.Response]:
    start = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - start
    if response.status_code != expected:
        raise RuntimeError(f"unexpected {response.status_code}: {response.text[:300]}")
    return elapsed, response


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sandbox_microsoft")
    parser.add_argument("--count", type=int, default=100_000, help="contacts to seed")
    parser.add_argument("--pages", type=int, default=20, help="pages (and batches) to time")
    args = parser.parse_args(argv)

    app = create("microsoft", seed=1)
    app.configure_quotas({"enabled": False})
    session = mount_sandbox(requests.Session(), BASE, app)
    config = app.client_config()
    client = msal.ConfidentialClientApplication(
        config["client_id"],
        client_credential=config["client_secret"],
        authority=config["authority"],
        instance_discovery=False,
        http_client=session,
    )
    token = client.acquire_token_for_client(scopes=[config["scope"]])["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    contacts = f"{config['graph_base']}/users/{config['user_id']}/contacts"
    delta = (
        f"{config['graph_base']}/users/{config['user_id']}/contactFolders/contacts/contacts/delta"
    )

    start = time.perf_counter()
    app.seed({"count": args.count, "seed": 1, "overlap": 0.3})
    _say(f"seeded {args.count:,} contacts in {time.perf_counter() - start:.1f} s")

    samples: list[float] = []
    url = delta
    prefer = {**headers, "Prefer": "odata.maxpagesize=200"}
    for _ in range(args.pages):
        elapsed, response = _timed(functools.partial(session.get, url, headers=prefer), 200)
        samples.append(elapsed)
        body = response.json()
        url = body.get("@odata.nextLink") or body["@odata.deltaLink"]
    _figures("delta page (maxpagesize=200)", samples)

    samples = []
    url = f"{contacts}?$top=1000"
    for _ in range(args.pages):
        elapsed, response = _timed(functools.partial(session.get, url, headers=headers), 200)
        samples.append(elapsed)
        url = response.json().get("@odata.nextLink", f"{contacts}?$top=1000")
    _figures("list page ($top=1000)", samples)

    samples = []
    for n in range(args.pages):
        batch = {
            "requests": [
                {
                    "id": str(i),
                    "method": "POST",
                    "url": f"/users/{config['user_id']}/contacts",
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "givenName": "Bench",
                        "surname": f"{n}-{i}",
                        "companyName": "Acme Corp",
                    },
                }
                for i in range(20)
            ]
        }
        elapsed, _ = _timed(
            functools.partial(
                session.post, f"{config['graph_base']}/$batch", json=batch, headers=headers
            ),
            200,
        )
        samples.append(elapsed)
    _figures("$batch of 20 creates", samples)
    _say(f"reproduce: {COMMAND} [--count N] [--pages P]")
