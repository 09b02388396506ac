"""How fast the Google People sandbox serves its largest page (1,000 people) to the real client.

Seeds a user's address book in-process (25,000 contacts: Google's per-user cap), then times
google-auth's AuthorizedSession paging through a full sync twice (the sandbox renders a contact's
JSON when it is written, so the first read should cost what the second does), and an incremental
sync after a 100-contact batch update. "request" is the client's call up to the response (sandbox
and in-process transport); "decode" is the client's own ``response.json()`` of the ~2 MB page.

    .venv/bin/python -m benchmarks sandbox_google [--contacts N] [--page-size N] [--fields F]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials

from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.google import App

BASE = "https://google.sandbox.test/"
FIELDS = (
    "names,emailAddresses,phoneNumbers,organizations,addresses,biographies,memberships,metadata"
)
COMMAND = ".venv/bin/python -m benchmarks sandbox_google"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _summary(label: str, request_ms: list[float], decode_ms: list[float]) -> str:
    median, p95 = statistics.median(request_ms), _percentile(request_ms, 0.95)
    return (
        f"{label:<28} pages={len(request_ms):>3}  request median {median:6.1f} ms"
        f"  p95 {p95:6.1f} ms   decode median {statistics.median(decode_ms):6.1f} ms"
    )


def _pages(
    session: AuthorizedSession, params: dict[str, Any]
) -> tuple[list[float], list[float], dict[str, Any]]:
    request_ms: list[float] = []
    decode_ms: list[float] = []
    body: dict[str, Any] = {}
    page_params = dict(params)
    while True:
        start = time.perf_counter()
        response = session.get(BASE + "v1/people/me/connections", params=page_params)
        received = time.perf_counter()
        body = response.json()
        decoded = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"sandbox answered {response.status_code}: {response.text[:300]}")
        request_ms.append((received - start) * 1000)
        decode_ms.append((decoded - received) * 1000)
        if "nextPageToken" not in body:
            return request_ms, decode_ms, body
        page_params = {**params, "pageToken": body["nextPageToken"]}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_sandbox_google")
    parser.add_argument("--contacts", type=int, default=25_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--fields", default=FIELDS)
    args = parser.parse_args(argv)

    app = App(seed=1)
    app.configure_quotas({"enabled": False, "max_contacts_per_user": None})
    transport = mount_sandbox(requests.Session(), BASE, app)
    config = app.client_config()

    start = time.perf_counter()
    app.seed({"count": args.contacts, "seed": 1})
    seeded = time.perf_counter() - start

    credentials = Credentials(
        token=None,
        refresh_token=config["refresh_token"],
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
    )
    session = AuthorizedSession(credentials, auth_request=GoogleAuthRequest(transport))
    mount_sandbox(session, BASE, app)
    params = {"personFields": args.fields, "pageSize": args.page_size, "requestSyncToken": "true"}

    cold_req, cold_dec, last = _pages(session, params)
    warm_req, warm_dec, last = _pages(session, params)

    changes = {
        p["resourceName"]: {"etag": p["etag"], "biographies": [{"value": "Renewal moved to Q4"}]}
        for p in last["connections"][:100]
    }
    batch = {"contacts": changes, "updateMask": "biographies", "readMask": "metadata"}
    response = session.post(BASE + "v1/people:batchUpdateContacts", json=batch)
    if response.status_code != 200:
        raise RuntimeError(f"batch update failed: {response.status_code} {response.text[:300]}")
    app.clock.advance(60)  # past the sync propagation delay
    sync_params = {
        "personFields": args.fields,
        "pageSize": args.page_size,
        "syncToken": last["nextSyncToken"],
    }
    sync_req, sync_dec, _ = _pages(session, sync_params)

    _out(f"contacts seeded: {args.contacts} in {seeded:.1f} s; page size {args.page_size}")
    _out(f"personFields: {args.fields}")
    _out(_summary("full sync, first read", cold_req, cold_dec))
    _out(_summary("full sync, second read", warm_req, warm_dec))
    _out(_summary("incremental, 100 changes", sync_req, sync_dec))
    _out(f"reproduce: {COMMAND}")
