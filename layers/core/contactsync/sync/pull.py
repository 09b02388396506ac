"""Pulling one spoke's changes into the hub.

Per stream: take the lease, read pages from the cursor, ingest each page in one store batch,
then save the cursor under the lease (a cursor moves only after its page is committed). An
expired cursor restarts as a full scan; a full scan ends with reconciliation (linked records it
never saw are gone). Deletes are buffered and applied at the end, unless the mass-delete breaker
trips: then nothing is deleted, the cursor is dropped and the sync pauses with an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from contactsync.connectors.base import CursorExpired, RemoteRecord
from contactsync.domain.contact import HubContact
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.link import Link, stream_key
from contactsync.domain.outbox import OutboxEntry
from contactsync.engine.deletes import mass_delete
from contactsync.engine.match import record_email_keys, record_phone_keys
from contactsync.sync.ingest import (
    IngestContext,
    apply_deletions,
    contact_id_for,
    ingest,
    namesake_keys,
)

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=10)


class MassDeleteDetected(Exception):
    def __init__(self, vanished: int, linked: int) -> None:
        self.vanished = vanished
        self.linked = linked
        super().__init__(
            f"mass delete detected: {vanished} of {linked} linked records vanished in one run; "
            "nothing was deleted and the sync is paused until someone confirms"
        )


def pull_stream(
    ctx: IngestContext,
    stream: str,
    worker: str,
    now: Callable[[], datetime],
    *,
    confirmed_mass_delete: bool = False,
    rescoping: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    store, view = ctx.store, ctx.view
    name = Cursor.make_id(view.account_id, stream)
    lease = store.acquire_lease(ctx.org_id, name, worker, LEASE_TTL, now())
    try:
        cursor = store.load_cursor(ctx.org_id, view.account_id, stream)
        try:
            _read(ctx, stream, cursor, lease, now, progress)
        except CursorExpired:
            log.info(
                "cursor expired; full resync", extra={"account": view.account_id, "stream": stream}
            )
            store.delete(Cursor, ctx.org_id, name)
            _read(ctx, stream, None, lease, now, progress)
        _finish_deletes(ctx, stream, confirmed_mass_delete, rescoping)
    finally:
        store.release_lease(ctx.org_id, lease)


def _read(
    ctx: IngestContext,
    stream: str,
    cursor: Cursor | None,
    lease: Lease,
    now: Callable[[], datetime],
    progress: Callable[[int], None] | None,
) -> None:
    store, view = ctx.store, ctx.view
    value = cursor.value if cursor else None
    started = now()
    # A full scan (first sync, expired cursor, or the connector's periodic reconciliation
    # for providers without tombstones) ends by finding the linked records it never saw.
    seen: set[str] | None = None
    complete = False
    for page in ctx.connector.read(stream, value):
        ctx.now = now()
        if seen is None and page.full_scan:
            seen = set()
            ctx.report.full_scan = True
        with store.batch():
            _prefetch(ctx, page.records)
            for record in page.records:
                link_id = ingest(ctx, record)
                if seen is not None:
                    seen.add(link_id)
        if page.cursor is not None:
            base = cursor or Cursor(
                org_id=ctx.org_id,
                id=Cursor.make_id(view.account_id, stream),
                account_id=view.account_id,
                stream=stream,
            )
            cursor = store.save_cursor(
                base.model_copy(
                    update={
                        "value": page.cursor,
                        "started_at": started if page.full_scan else base.started_at,
                        "updated_at": now(),
                    }
                ),
                lease,
            )
            lease = store.renew_lease(ctx.org_id, lease, LEASE_TTL, now())
        if progress is not None:
            progress(len(page.records))
        if page.last:
            complete = True
            break
    if seen is not None and complete:
        key = stream_key(view.account_id, stream)
        for link_id in store.lookup_ids(Link, ctx.org_id, "stream", key):
            if link_id not in seen:
                ctx.deletions.append(link_id)


def _prefetch(ctx: IngestContext, records: Sequence[RemoteRecord]) -> None:
    """The rows a page's records will write when they are new (link, contact, outbox entry),
    read in a few queries rather than one per write."""
    account = ctx.view.account_id
    links = [Link.key(account, r.object_type, r.remote_id) for r in records]
    contacts = [contact_id_for(account, r.object_type, r.remote_id) for r in records]
    ctx.store.prefetch(Link, ctx.org_id, links)
    ctx.store.prefetch(HubContact, ctx.org_id, contacts)
    ctx.store.prefetch(OutboxEntry, ctx.org_id, contacts)
    # Matching looks up emails and phones; a new contact's merge suggestions, its namesakes.
    emails = [key for r in records for key in record_email_keys(r)]
    phones = [key for r in records for key in record_phone_keys(r, ctx.region)]
    names = [
        key
        for r in records
        if r.fields.given_name and r.fields.family_name
        for key in namesake_keys(r.fields.given_name, r.fields.family_name, r.fields.company or "")
    ]
    ctx.store.prefetch_index(HubContact, ctx.org_id, "email", emails)
    ctx.store.prefetch_index(HubContact, ctx.org_id, "phone", phones)
    ctx.store.prefetch_index(HubContact, ctx.org_id, "name_company", names)


def _finish_deletes(
    ctx: IngestContext, stream: str, confirmed: bool, rescoping: bool = False
) -> None:
    if not ctx.deletions:
        return
    deletions = sorted(set(ctx.deletions))
    if rescoping:
        # Left the scope, not deleted: drop the links, keep the records on both sides.
        for link_id in deletions:
            ctx.store.delete(Link, ctx.org_id, link_id)
            ctx.report.unlinked += 1
        ctx.deletions.clear()
        return
    linked = len(
        ctx.store.lookup_ids(Link, ctx.org_id, "stream", stream_key(ctx.view.account_id, stream))
    )
    if not confirmed and mass_delete(len(deletions), linked, ctx.view.mass_delete_threshold):
        ctx.report.breaker_tripped = True
        # Forget the cursor: after a person confirms, a full scan finds the deletes again.
        ctx.store.delete(Cursor, ctx.org_id, Cursor.make_id(ctx.view.account_id, stream))
        ctx.deletions.clear()
        raise MassDeleteDetected(len(deletions), linked)
    apply_deletions(ctx, deletions)
    ctx.deletions.clear()
