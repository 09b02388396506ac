"""What the SQLite store alone costs for an initial sync of N contacts: the rows the real sync
writes, with its commit pattern, through the store's own schema and settings, and nothing
else (no models, no JSON, no providers). The initial-sync benchmark cannot go below this.

Per contact, as counted in a real Salesforce -> hub -> Outlook sync (a trace of its SQL):
- pull, one transaction per 10,000-record page, sent 4,096 entities at a time as the store
  does: a contact (~2 KB), its Salesforce link (~0.9 KB), a change-log entry (~1 KB) and an
  outbox entry, with 13 index entries (email, 2 phones, name, name and company, 4 words;
  the link's contact, account and stream; the change's contact);
- push, per chunk of 200: one transaction for the Outlook links (4 index entries each), one
  that deletes the outbox entries.
Keys are hashes, as the real ids are: every insert lands at a random place in its B-tree.

    .venv/bin/python -m benchmarks store_floor [N ...]        (default 10000 50000 100000)
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from contactsync.store.sqlite import (
    DELETE_ENTITY,
    INSERT_INDEX,
    PENDING_ENTITIES,
    UPSERT_ENTITY,
    SQLiteStore,
)

DEFAULT_SIZES = [10_000, 50_000, 100_000]
PAGE = 10_000  # Salesforce Bulk API result page
PUSH_CHUNK = 200  # push.APPLY_CHUNK
ORG = "org-531f0481dcc0"
SF, MS = "acc-salesforce-efa29b08", "acc-microsoft-1c0ffee5"


def _h(text: str, size: int = 32) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _pulled(i: int) -> tuple[list[tuple[Any, ...]], list[tuple[str, ...]]]:
    contact, link, change = f"c-{_h(f'c{i}')}", f"l-{_h(f'l{i}', 40)}", f"ch-{_h(f'ch{i}')}"
    entities = [
        (ORG, "contact", contact, 1, "x" * 2000, None, "[]"),
        (ORG, "link", link, 1, "y" * 900, None, "[]"),
        (ORG, "change", change, 1, "z" * 950, 1.0, "[]"),
        (ORG, "outbox", contact, 1, "o" * 400, None, "[]"),
    ]
    name = _h(f"n{i}", 12)
    index = [
        (ORG, "contact", "email", f"{name}.{i}@oceanic.example", contact),
        (ORG, "contact", "phone", "+1" + str(int(_h(f"p{i}", 12), 16))[:10], contact),
        (ORG, "contact", "phone", "+1" + str(int(_h(f"q{i}", 12), 16))[:10], contact),
        (ORG, "contact", "name", name, contact),
        (ORG, "contact", "name_company", f"{name}|oceanic", contact),
        *((ORG, "contact", "word", w, contact) for w in (name[:6], name[6:], "oceanic", "air")),
        (ORG, "link", "contact", contact, link),
        (ORG, "link", "account", SF, link),
        (ORG, "link", "stream", f"{SF}|Contact", link),
        (ORG, "change", "contact", contact, change),
    ]
    return entities, index


def _pushed(i: int) -> tuple[tuple[Any, ...], list[tuple[str, ...]], tuple[str, ...]]:
    contact, link = f"c-{_h(f'c{i}')}", f"l-{_h(f'm{i}', 40)}"
    index = [
        (ORG, "link", "contact", contact, link),
        (ORG, "link", "account", MS, link),
        (ORG, "link", "stream", f"{MS}|contact", link),
        (ORG, "link", "created_by", "sync-microsoft", link),
    ]
    return (ORG, "link", link, 1, "y" * 900, None, "[]"), index, (ORG, "outbox", contact)


def _send(conn: sqlite3.Connection, entities: list[Any], index: list[Any]) -> None:
    conn.executemany(UPSERT_ENTITY, sorted(entities))
    conn.executemany(INSERT_INDEX, sorted(index))


def run(count: int) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="bench-store-floor-")) / "hub.db"
    conn = SQLiteStore(path)._conn  # the store's schema and settings
    started = time.perf_counter()
    per_send = max(1, PENDING_ENTITIES // 4)  # contacts per send: four entities each
    for page in range(0, count, PAGE):
        conn.execute("BEGIN IMMEDIATE")
        for start in range(page, min(count, page + PAGE), per_send):
            entities: list[Any] = []
            index: list[Any] = []
            for i in range(start, min(count, page + PAGE, start + per_send)):
                e, x = _pulled(i)
                entities += e
                index += x
            _send(conn, entities, index)
        conn.execute("COMMIT")
    pulled = time.perf_counter()
    for start in range(0, count, PUSH_CHUNK):
        rows = [_pushed(i) for i in range(start, min(count, start + PUSH_CHUNK))]
        conn.execute("BEGIN IMMEDIATE")
        _send(conn, [r[0] for r in rows], [x for r in rows for x in r[1]])
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(DELETE_ENTITY, sorted(r[2] for r in rows))
        conn.execute("COMMIT")
    done = time.perf_counter()
    conn.close()
    return {
        "pull": round(pulled - started, 1),
        "push": round(done - pulled, 1),
        "total": round(done - started, 1),
        "mb": round(path.stat().st_size / 2**20),
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or DEFAULT_SIZES
    print(f"{'contacts':>9} | {'pull s':>7} {'push s':>7} {'total s':>8} {'file MB':>8}")
    for size in sizes:
        r = run(size)
        print(f"{size:>9} | {r['pull']:>7} {r['push']:>7} {r['total']:>8} {r['mb']:>8}", flush=True)
    print("reproduce: .venv/bin/python -m benchmarks store_floor " + " ".join(map(str, sizes)))
