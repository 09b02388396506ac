"""Volume runs (``-m slow``, ``-s`` to see the figures): a Gmail backfill of thousands of
messages through google-auth in-process, then the Stream and Closest Connections over them.

    .venv/bin/pytest -m slow -s -p no:cacheprovider tests/activity/test_volume.py

They assert what must hold at volume (everything captured once, pages full, memory-flat reads),
and print timings; they never assert on wall-clock time."""

from __future__ import annotations

import time

import pytest

from contactsync.app.gallery import Actor
from contactsync.domain.activity import Activity
from contactsync.domain.company import Account
from contactsync.sharing.connections import ClosestConnections
from contactsync.sharing.service import SharingService
from contactsync.sharing.stream import StreamQuery
from tests.activity.conftest import Env

MESSAGES = 3000
CONTACTS = 60


@pytest.mark.slow
def test_backfill_and_stream_at_volume(env: Env) -> None:
    partners = [f"client{i}@acme.example" for i in range(CONTACTS)]
    for i, address in enumerate(partners):
        env.contact(env.admin, given_name=f"Client{i}", company="Acme Corp",
                    emails=[{"address": address}])  # fmt: skip
    env.gmail_account(env.pam)
    body = {"count": MESSAGES, "seed": 4, "days": 150, "partners": partners}
    env.google_admin({"user": "rep@example.com", "generate": body})
    SharingService(env.store, env.clock.now).update_settings(
        Actor.of(env.pam), {"share_activity": True}
    )

    started = time.perf_counter()
    report = env.capture().run()
    capture_seconds = time.perf_counter() - started
    stored = sum(1 for _ in env.store.scan(Activity, env.org.id))
    assert stored == MESSAGES
    assert report.stored == MESSAGES

    contact = env.store.lookup_ids(Activity, env.org.id, "owner", env.pam.id)
    assert len(contact) == MESSAGES
    query = StreamQuery(env.store, env.clock.now)
    zoe_id = sorted({a.contact_ids[0] for a in env.store.scan(Activity, env.org.id)})[0]
    started = time.perf_counter()
    seen, token, pages = 0, None, 0
    while True:
        page = query.contact_stream(Actor.of(env.admin), zoe_id, limit=50, page_token=token)
        seen += len(page.items)
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    stream_seconds = time.perf_counter() - started
    started = time.perf_counter()
    closest = ClosestConnections(env.store, env.clock.now)
    company_id = "co-acme"
    env.store.create(Account(org_id=env.org.id, id=company_id, name="Acme"))
    result = closest.for_company(Actor.of(env.admin), company_id, limit=10)
    closest_seconds = time.perf_counter() - started
    assert len(result.items) == 10
    # The company's Stream holds every one of the messages: three pages of 50
    started = time.perf_counter()
    token = None
    company_seen: list[str] = []
    for _ in range(3):
        page = query.company_stream(Actor.of(env.admin), company_id, limit=50, page_token=token)
        company_seen += [i.id for i in page.items]
        token = page.next_page_token
    company_page_ms = (time.perf_counter() - started) * 1000 / 3
    assert len(set(company_seen)) == 150
    print(
        f"\ncapture: {MESSAGES} Gmail messages in {capture_seconds:.1f} s "
        f"({MESSAGES / capture_seconds:.0f}/s, {report.streams[0].pages} pages); "
        f"one contact's Stream: {seen} items in {pages} pages, {stream_seconds * 1000:.0f} ms; "
        f"company Closest Connections over {CONTACTS} contacts: {closest_seconds * 1000:.0f} ms; "
        f"company Stream ({MESSAGES} activities): {company_page_ms:.0f} ms a page of 50"
    )
