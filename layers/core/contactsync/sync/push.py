"""Pushing hub changes to the spokes: plan per contact and spoke, apply in provider batches,
record every per-item result.

Outbox entries name the contacts to push. An entry is removed (on the condition of its version,
so a newer change is never lost) once every spoke took the contact or refused it for good;
throttling, outages and conflicts keep it for the next round.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contactsync.connectors.base import (
    ConnectorError,
    Create,
    Delete,
    Mutation,
    MutationResult,
    RemoteRecord,
    Update,
)
from contactsync.domain.accounts import AccountStatus
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import VersionConflict
from contactsync.domain.link import Link
from contactsync.domain.outbox import OutboxEntry
from contactsync.domain.sync import RecordError
from contactsync.engine.canonical import fingerprint, hub_fields, snapshot
from contactsync.engine.deletes import DeleteAction, on_remote_delete
from contactsync.engine.merge import SpokeView
from contactsync.engine.plan import plan
from contactsync.store.base import Store, Write
from contactsync.sync.report import PlannedMutation, RunReport
from contactsync.sync.spokes import Spoke

log = logging.getLogger(__name__)

APPLY_CHUNK = 200
# How long an uncertain create waits for the record to show up before it is tried again.
PENDING_SETTLE = timedelta(minutes=10)


@dataclass
class PushContext:
    store: Store
    org_id: str
    spokes: Sequence[Spoke]
    run_id: str
    now: Callable[[], datetime]
    report: RunReport
    dry_run: bool = False
    record_errors: dict[str, list[RecordError]] = field(default_factory=lambda: defaultdict(list))
    stopped: set[str] = field(default_factory=set)  # spokes that must not be called again this run

    @property
    def views(self) -> Mapping[str, SpokeView]:
        return {s.account.id: s.view for s in self.spokes}


@dataclass
class _Item:
    contact: HubContact
    link: Link | None
    mutation: Mutation


def push_outbox(ctx: PushContext, page_size: int = 200) -> None:
    """Pushes every outbox entry, page by page."""
    for spoke in ctx.spokes:
        if spoke.runnable and spoke.view.direction.pushes:
            resolve_pending(ctx, spoke)
    token: str | None = None
    while True:
        page = ctx.store.page(OutboxEntry, ctx.org_id, limit=page_size, page_token=token)
        if page.items:
            push_entries(ctx, page.items)
        if page.next_token is None:
            return
        token = page.next_token


def _per_record(
    links: Sequence[Link], account_id: str
) -> Iterator[tuple[Link | None, Sequence[Link]]]:
    """Each of the account's records of the contact, with the links to plan it from. Usually
    one (or none: a create); a mailbox can hold two, when its owner files a copy of someone
    already synced into the marked folder, and each must be brought in step, not the first."""
    own = [lk for lk in links if lk.account_id == account_id]
    if len(own) <= 1:
        yield (own[0] if own else None), links
        return
    others = [lk for lk in links if lk.account_id != account_id]
    for link in own:
        yield link, [*others, link]


def _mutations(
    ctx: PushContext,
    spoke: Spoke,
    contact: HubContact,
    links: Sequence[Link],
    views: Mapping[str, SpokeView],
) -> Iterator[tuple[str, _Item]]:
    """The mutations that bring ``spoke`` in step with ``contact``, by stream."""
    report = ctx.report.spoke(spoke.account.id, spoke.account.provider.value)
    for mine, scoped in _per_record(links, spoke.account.id):
        decided = plan(contact, scoped, spoke.view, views)
        if decided.mutation is None:
            if decided.reason not in ("in step", "direction does not push"):
                report.excluded += 1
            continue
        stream = mine.object_type if mine else decided.mutation.object_type
        yield stream, _Item(contact, mine, decided.mutation)


def push_entries(ctx: PushContext, entries: Sequence[OutboxEntry]) -> None:
    contacts = ctx.store.get_many(HubContact, ctx.org_id, [e.contact_id for e in entries])
    views = ctx.views
    batches: dict[tuple[str, str], list[_Item]] = defaultdict(list)
    unfinished: set[str] = set()
    linked = ctx.store.lookup_many(Link, ctx.org_id, "contact", list(contacts), limit=100)
    for entry in entries:
        contact = contacts.get(entry.contact_id)
        if contact is None:
            continue
        links = linked[contact.id]
        for spoke in ctx.spokes:
            if not spoke.runnable:
                # A paused sync (or an account to reconnect) catches up when it resumes: the
                # change stays in the outbox until every spoke that will resume has taken it.
                if spoke.account.status is not AccountStatus.DELETED:
                    unfinished.add(contact.id)
                continue
            if spoke.account.id in ctx.stopped:
                unfinished.add(contact.id)
                continue
            for stream, item in _mutations(ctx, spoke, contact, links, views):
                batches[(spoke.account.id, stream)].append(item)
    by_id = {s.account.id: s for s in ctx.spokes}
    for (account_id, stream), items in batches.items():
        spoke = by_id[account_id]
        for start in range(0, len(items), APPLY_CHUNK):
            if account_id in ctx.stopped:
                unfinished.update(i.contact.id for i in items[start:])
                break
            chunk = items[start : start + APPLY_CHUNK]
            unfinished.update(_apply(ctx, spoke, stream, chunk))
    if ctx.dry_run:
        return
    with ctx.store.batch():
        ctx.store.prefetch(OutboxEntry, ctx.org_id, [e.id for e in entries])
        for entry in entries:
            if entry.contact_id in unfinished:
                continue
            # Changed again meanwhile (VersionConflict): the newer entry stays for next round.
            with contextlib.suppress(VersionConflict):
                ctx.store.delete(OutboxEntry, ctx.org_id, entry.id, expected_version=entry.version)


def _apply(ctx: PushContext, spoke: Spoke, stream: str, items: list[_Item]) -> set[str]:
    """Applies one chunk; returns the ids of contacts that must stay in the outbox."""
    report = ctx.report.spoke(spoke.account.id, spoke.account.provider.value)
    if ctx.dry_run:
        for item in items:
            ctx.report.planned.append(_planned(spoke, item))
        return set()
    try:
        results = spoke.connector.apply(stream, [i.mutation for i in items])
    except ConnectorError as exc:
        _stop(ctx, spoke, exc.kind, str(exc))
        report.errors.append(f"push {stream}: {exc.code}")
        return {i.contact.id for i in items}
    retry: set[str] = set()
    with ctx.store.batch():  # one store round trip (SQLite: one commit) per provider batch
        written = [
            (i.mutation.object_type, _written_id(i, r)) for i, r in zip(items, results, strict=True)
        ]
        ctx.store.prefetch(
            Link, ctx.org_id, [Link.key(spoke.account.id, t, rid) for t, rid in written if rid]
        )
        for item, result in zip(items, results, strict=True):
            if result.ok:
                _record_success(ctx, spoke, item, result)
                continue
            report.failed += 1
            if _record_failure(ctx, spoke, item, result):
                retry.add(item.contact.id)
    return retry


def _planned(spoke: Spoke, item: _Item) -> PlannedMutation:
    mutation = item.mutation
    fields = list(mutation.fields.provided()) if not isinstance(mutation, Delete) else []
    return PlannedMutation(
        account_id=spoke.account.id,
        kind=mutation.kind,
        contact_id=item.contact.id,
        remote_id=item.link.remote_id if item.link else None,
        fields=sorted(fields),
    )


def _record_success(ctx: PushContext, spoke: Spoke, item: _Item, result: MutationResult) -> None:
    report = ctx.report.spoke(spoke.account.id, spoke.account.provider.value)
    mutation = item.mutation
    view = spoke.view
    if isinstance(mutation, Delete):
        report.deleted += 1
        if item.link is not None:
            ctx.store.delete(Link, ctx.org_id, item.link.id)
        return
    if isinstance(mutation, Create):
        report.created += 1
        remote_id = _written_id(item, result)
        if remote_id is None:
            log.error("create reported success without an id", extra={"account": spoke.account.id})
            return
        base_snapshot: dict[str, object] = {}
        created_by: str | None = spoke.settings.id
    else:
        assert isinstance(mutation, Update)
        report.updated += 1
        assert item.link is not None
        # A provider that cannot change a record in place replaces it (Graph cannot move a
        # contact into another folder: it copies it and deletes the original) and names the
        # new record: the link follows it, or the original's delete would read as the person's.
        remote_id = _written_id(item, result)
        assert remote_id is not None  # an update keeps at least the linked record's id
        base_snapshot = dict(item.link.snapshot)
        created_by = item.link.created_by_sync
    snap = _after_write_snapshot(view, base_snapshot, mutation, result.record)
    link = Link(
        org_id=ctx.org_id,
        id=Link.key(spoke.account.id, mutation.object_type, remote_id),
        contact_id=item.contact.id,
        account_id=spoke.account.id,
        object_type=mutation.object_type,
        remote_id=remote_id,
        remote_version=result.version,
        fingerprint=fingerprint(snap),
        snapshot=snap,
        marked=bool(mutation.marked) or bool(item.link and item.link.marked),
        owner_ref=item.link.owner_ref if item.link else None,
        company_ref=(result.record.company_ref if result.record else None)
        or (item.link.company_ref if item.link else None),
        tags=item.link.tags if item.link else [],
        created_by_sync=created_by,
        last_synced_at=ctx.now(),
    )
    if item.link is not None and item.link.id == link.id:
        link = link.model_copy(update={"version": item.link.version})
    ctx.store.transact([Write(link)])
    if item.link is not None and item.link.id != link.id:
        ctx.store.delete(Link, ctx.org_id, item.link.id)  # a pending create, or a replaced record


def _written_id(item: _Item, result: MutationResult) -> str | None:
    """The remote id a successful write left the record under: a create's new id; for an
    update the provider's id when it replaced the record, else the linked one."""
    if isinstance(item.mutation, Create):
        return result.remote_id or (result.record.remote_id if result.record else None)
    return result.remote_id or (item.link.remote_id if item.link else None)


def _after_write_snapshot(
    view: SpokeView,
    base: dict[str, object],
    mutation: Create | Update,
    record: RemoteRecord | None,
) -> dict[str, object]:
    """What the remote record now holds: the provider's answer when it returned the record,
    otherwise what we had plus what we wrote."""
    if record is not None:
        return snapshot(record.fields.only(view.mapped_fields))
    return {**base, **snapshot(mutation.fields)}


def _record_failure(ctx: PushContext, spoke: Spoke, item: _Item, result: MutationResult) -> bool:
    """Handles a failed item; True when the contact must stay in the outbox."""
    error = result.error
    assert error is not None
    errors = ctx.record_errors[spoke.account.id]
    if len(errors) < 100:
        errors.append(
            RecordError(
                remote_id=item.link.remote_id if item.link else None,
                contact_id=item.contact.id,
                code=error.code[:100],
                message=error.message[:500],
                at=ctx.now(),
            )
        )
    if error.kind == "uncertain" and isinstance(item.mutation, Create):
        _write_pending(ctx, spoke, item)
        return True
    if error.kind == "not_found" and item.link is not None:
        # Deleted remotely before we saw it: the same policy as a delete read in a pull.
        action = on_remote_delete(item.link, spoke.view)
        if action is DeleteAction.RESTORE and not item.link.restore:
            ctx.store.transact([Write(item.link.to_restore())])
        ctx.store.delete(Link, ctx.org_id, item.link.id)
        return action is DeleteAction.RESTORE
    if error.kind in ("auth", "quota"):
        _stop(ctx, spoke, error.kind, error.code)
        return True
    if error.kind == "throttled":
        ctx.stopped.add(spoke.account.id)
        return True
    # invalid: the data must change before a retry can succeed; conflict, transient and
    # uncertain updates are retried next round (a conflict's fresh version arrives by pull).
    return error.kind != "invalid"


def _write_pending(ctx: PushContext, spoke: Spoke, item: _Item) -> None:
    """The create may have happened: remember it so it is never blindly repeated."""
    pending = Link(
        org_id=ctx.org_id,
        id=Link.key(spoke.account.id, "pending", item.contact.id),
        contact_id=item.contact.id,
        account_id=spoke.account.id,
        object_type=item.mutation.object_type,
        remote_id=item.contact.id,
        pending_create=True,
        marked=bool(getattr(item.mutation, "marked", False)),
        created_by_sync=spoke.settings.id,
        last_synced_at=ctx.now(),
    )
    ctx.store.transact([Write(pending)])


def resolve_pending(ctx: PushContext, spoke: Spoke) -> None:
    """For each uncertain create of this spoke: link the record if it exists; after the settle
    time without a trace, drop the marker so the next push creates it."""
    for link in ctx.store.lookup(Link, ctx.org_id, "pending", spoke.account.id, limit=1000):
        contact = ctx.store.find(HubContact, ctx.org_id, link.contact_id)
        if contact is None:
            ctx.store.delete(Link, ctx.org_id, link.id)
            continue
        fields = hub_fields(contact, spoke.view.push_fields)
        try:
            found = spoke.connector.find_created(link.object_type, contact.id, fields)
        except ConnectorError:
            continue
        if found is not None:
            snap = snapshot(found.fields.only(spoke.view.mapped_fields))
            real = Link(
                org_id=ctx.org_id,
                id=Link.key(spoke.account.id, found.object_type, found.remote_id),
                contact_id=contact.id,
                account_id=spoke.account.id,
                object_type=found.object_type,
                remote_id=found.remote_id,
                remote_version=found.version,
                fingerprint=fingerprint(snap),
                snapshot=snap,
                marked=bool(found.marked),
                created_by_sync=link.created_by_sync,
                last_synced_at=ctx.now(),
            )
            ctx.store.transact([Write(real)])
            ctx.store.delete(Link, ctx.org_id, link.id)
        elif ctx.now() - link.last_synced_at >= PENDING_SETTLE:
            ctx.store.delete(Link, ctx.org_id, link.id)
            ctx.store.transact(
                [
                    Write(
                        OutboxEntry.entry(ctx.org_id, contact.id, contact.version, "hub", ctx.now())
                    )
                ]
            )


def _stop(ctx: PushContext, spoke: Spoke, kind: str, detail: str) -> None:
    ctx.stopped.add(spoke.account.id)
    if kind == "auth":
        account = ctx.store.find(type(spoke.account), ctx.org_id, spoke.account.id)
        if account is not None and account.status is AccountStatus.CONNECTED:
            ctx.store.update(
                account.model_copy(
                    update={
                        "status": AccountStatus.NEEDS_RECONNECT,
                        "status_reason": f"the provider refused our credentials ({detail[:200]})",
                    }
                )
            )
