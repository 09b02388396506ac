"""Ingesting one remote record into the hub: match, merge, link, log, and queue the push.

Every write for one record goes in one ``transact`` call (contact, link, change log entry,
outbox entry), so the hub never holds a contact without its link or a change nobody will push.
Link ids are deterministic, so a record read twice (a retried page, a crash before the cursor
was saved) finds the link it wrote and is recognised as an echo.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from contactsync.connectors.base import Connector, RemoteRecord
from contactsync.domain.changelog import ChangeLogEntry, FieldChange
from contactsync.domain.company import company_key_loose
from contactsync.domain.contact import HubContact, Visibility, name_key
from contactsync.domain.errors import VersionConflict
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion
from contactsync.domain.outbox import OutboxEntry
from contactsync.engine.canonical import fingerprint, hub_fields, snapshot
from contactsync.engine.deletes import DeleteAction, on_remote_delete
from contactsync.engine.match import choose, fuzzy_candidates, record_email_keys, record_phone_keys
from contactsync.engine.merge import SpokeView, merge
from contactsync.store.base import Store, Write
from contactsync.sync.report import PlannedMutation, SpokeReport

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
# A number or address many contacts share (a switchboard) cannot make a match better by
# loading them all: the best of a few is chosen.
CANDIDATES_PER_KEY = 8
NAMESAKES = 10


def contact_id_for(account_id: str, object_type: str, remote_id: str) -> str:
    """Deterministic: a record ingested twice (retry, crash, parallel shard) makes one contact."""
    raw = f"{account_id}\x00{object_type}\x00{remote_id}".encode()
    return "c-" + hashlib.sha256(raw).hexdigest()[:32]


@dataclass
class IngestContext:
    store: Store
    org_id: str
    view: SpokeView
    connector: Connector
    spokes: Mapping[str, SpokeView]
    run_id: str
    now: datetime
    report: SpokeReport
    region: str = "US"
    planned: list[PlannedMutation] | None = None  # dry runs record what they would do
    # Deletes are applied at the end of the pull, after the mass-delete breaker had its say.
    deletions: list[str] = field(default_factory=list)


def ingest(ctx: IngestContext, record: RemoteRecord) -> str:
    """Ingests one record; returns its link id (the full-scan reconciliation tracks these)."""
    link_id = Link.key(ctx.view.account_id, record.object_type, record.remote_id)
    ctx.report.pulled += 1
    if record.deleted:
        if ctx.store.find(Link, ctx.org_id, link_id) is not None:
            ctx.deletions.append(link_id)
        return link_id
    for attempt in range(MAX_ATTEMPTS):
        try:
            _ingest(ctx, record, link_id)
            return link_id
        except VersionConflict:
            # Another writer (a concurrent pull of another spoke) changed the contact: re-read.
            if attempt == MAX_ATTEMPTS - 1:
                raise
    return link_id


def _ingest(ctx: IngestContext, record: RemoteRecord, link_id: str) -> None:
    store, view = ctx.store, ctx.view
    said = snapshot(record.fields.only(view.mapped_fields))
    link = store.find(Link, ctx.org_id, link_id)
    contact = _follow(store, ctx.org_id, link.contact_id) if link else None
    snap = _with_unsaid(said, link, contact, view, record.object_type)
    fp = fingerprint(snap)
    if link and contact and _is_echo(link, record, fp):
        ctx.report.echoes += 1
        _refresh_link(ctx, link, record)
        return

    writes: list[Write] = []
    is_new = False
    if contact is None and not view.pull_fields:
        # A spoke the hub only feeds: its records never create hub contacts; ours come back
        # stamped and are linked, the rest are left alone.
        stamped = _follow(store, ctx.org_id, record.hub_id) if record.hub_id else None
        if stamped is None:
            ctx.report.excluded += 1
            return
        contact = stamped
    if contact is None:
        contact, is_new, others = _resolve(ctx, record)
    else:
        others = ()
    promoted = False
    if not is_new and contact.personal and view.shares(record):
        personal = contact
        contact, writes = _promote(ctx, record, personal)
        promoted = True
        # Merged into the organisation's copy: neither is a candidate to suggest any more.
        others = tuple(o for o in others if o not in (personal.id, contact.id))

    try:
        outcome = merge(
            contact,
            record,
            view,
            now=ctx.now,
            previous=link.snapshot if link is not None and link.contact_id == contact.id else None,
            run_id=ctx.run_id,
        )
    except ValidationError as exc:
        ctx.report.failed += 1
        ctx.report.errors.append(f"{record.remote_id}: {exc.errors()[0]['msg']}")
        return
    merged = outcome.contact
    if is_new:
        writes.append(Write(merged, expected_version=0))
        ctx.report.hub_created += 1
    elif outcome.must_write or promoted:
        writes.append(Write(merged, expected_version=contact.version))
        if outcome.changed or promoted:
            ctx.report.hub_updated += 1
    ctx.report.conflicts += len(outcome.kept)

    same = link if link is not None and link.contact_id == merged.id else None
    snap = _with_unsaid(said, same, merged, view, record.object_type)
    fp = fingerprint(snap)
    new_link = Link(
        org_id=ctx.org_id,
        id=link_id,
        contact_id=merged.id,
        account_id=view.account_id,
        object_type=record.object_type,
        remote_id=record.remote_id,
        remote_version=record.version,
        fingerprint=fp,
        snapshot=snap,
        marked=bool(record.marked),
        repair_marker=record.marker_repair,
        owner_ref=record.owner_ref,
        company_ref=record.company_ref,
        tags=sorted(record.tags),
        created_by_sync=link.created_by_sync if link else None,
        last_synced_at=ctx.now,
    )
    writes.append(
        Write(new_link if link is None else new_link.model_copy(update={"version": link.version}))
    )
    contact_written = is_new or outcome.must_write or promoted
    hub_version = merged.version + 1 if contact_written else merged.version
    if outcome.changes or is_new:
        writes.append(
            Write(_log_entry(ctx, merged.id, outcome.changes, is_new), expected_version=0)
        )
    if (
        is_new
        or outcome.changed
        or promoted
        or outcome.kept
        or record.marker_repair
        or link is None
    ):
        # Stored at the hub version it names (OutboxEntry.entry): a push that read an older
        # entry cannot remove this one.
        entry = OutboxEntry.entry(ctx.org_id, merged.id, hub_version, view.account_id, ctx.now)
        writes.append(Write(entry))
    store.transact(writes)
    if ctx.planned is not None and (is_new or outcome.changed):
        ctx.planned.append(
            PlannedMutation(
                account_id=view.account_id,
                kind="hub_create" if is_new else "hub_update",
                contact_id=merged.id,
                remote_id=record.remote_id,
                fields=[c.field for c in outcome.changes],
            )
        )
    _suggest(ctx, merged, others, is_new)


def remote_snapshot(
    record: RemoteRecord, link: Link | None, contact: HubContact | None, view: SpokeView
) -> dict[str, object]:
    """What the link should say the remote record holds, read the way ingest reads it."""
    said = snapshot(record.fields.only(view.mapped_fields))
    return _with_unsaid(said, link, contact, view, record.object_type)


def _with_unsaid(
    said: dict[str, object],
    link: Link | None,
    contact: HubContact | None,
    view: SpokeView,
    object_type: str,
) -> dict[str, object]:
    """The record's snapshot, completed for the mapped fields it does not provide (None: the
    source says nothing of them; a Salesforce Contact without an Account tells no company): the
    link's last knowledge of each, else the hub's value as the provider would hold it. Silence
    is then neither a change to merge nor a difference to push every round."""
    missing = view.mapped_fields - said.keys()
    if not missing:
        return said
    previous = link.snapshot if link is not None else {}
    out = dict(said)
    for name in missing:
        if name in previous:
            out[name] = previous[name]
    rest = frozenset(n for n in missing if n not in out)
    if rest and contact is not None:
        out.update(snapshot(view.fitted(hub_fields(contact, rest), object_type)))
    return out


def _is_echo(link: Link, record: RemoteRecord, fp: str) -> bool:
    return (
        link.fingerprint == fp and link.marked == bool(record.marked) and not record.marker_repair
    )


def _refresh_link(ctx: IngestContext, link: Link, record: RemoteRecord) -> None:
    """Keeps the remote version (etag) current without touching the contact."""
    changed = (
        link.remote_version != record.version
        or link.owner_ref != record.owner_ref
        or link.company_ref != record.company_ref
        or sorted(record.tags) != link.tags
    )
    if changed:
        ctx.store.transact(
            [
                Write(
                    link.model_copy(
                        update={
                            "remote_version": record.version,
                            "owner_ref": record.owner_ref,
                            "company_ref": record.company_ref,
                            "tags": sorted(record.tags),
                            "last_synced_at": ctx.now,
                        }
                    ),
                    expected_version=link.version,
                )
            ]
        )


def _follow(store: Store, org_id: str, contact_id: str) -> HubContact | None:
    """The contact, following merges (a merged-away contact points at the survivor)."""
    contact = store.find(HubContact, org_id, contact_id)
    for _ in range(5):
        if contact is None or contact.merged_into is None:
            return contact
        contact = store.find(HubContact, org_id, contact.merged_into)
    return contact


def _candidates(ctx: IngestContext, record: RemoteRecord) -> list[HubContact]:
    found: dict[str, HubContact] = {}
    for key in record_email_keys(record):
        for c in ctx.store.lookup(HubContact, ctx.org_id, "email", key, limit=CANDIDATES_PER_KEY):
            found[c.id] = c
    for key in record_phone_keys(record, ctx.region):
        for c in ctx.store.lookup(HubContact, ctx.org_id, "phone", key, limit=CANDIDATES_PER_KEY):
            found[c.id] = c
    return list(found.values())


def _resolve(ctx: IngestContext, record: RemoteRecord) -> tuple[HubContact, bool, tuple[str, ...]]:
    """The contact an unlinked record belongs to: by stamped hub id, then email, then phone;
    otherwise a new one. Returns (contact, is_new, other candidates)."""
    view = ctx.view
    if record.hub_id:
        stamped = _follow(ctx.store, ctx.org_id, record.hub_id)
        if stamped is not None and not stamped.archived:
            _drop_pending(ctx, record.hub_id)
            return stamped, False, ()
    result = choose(record, view, _candidates(ctx, record), ctx.region)
    if result.contact is not None:
        return result.contact, False, result.others
    shared = view.shares(record)
    blank = HubContact.model_construct(
        org_id=ctx.org_id,
        id=contact_id_for(view.account_id, record.object_type, record.remote_id),
        version=0,
        given_name="",
        middle_name="",
        family_name="",
        emails=[],
        phones=[],
        company="",
        company_id=None,
        title="",
        department="",
        addresses=[],
        notes="",
        owner_user_id=view.owner_user_id if view.address_book else None,
        visibility=Visibility.ORGANISATION if shared else Visibility.PERSONAL,
        archived=False,
        merged_into=None,
        created_at=ctx.now,
        updated_at=ctx.now,
        provenance={},
    )
    return blank, True, ()


def _drop_pending(ctx: IngestContext, hub_id: str) -> None:
    pending_id = Link.key(ctx.view.account_id, "pending", hub_id)
    if ctx.store.find(Link, ctx.org_id, pending_id) is not None:
        ctx.store.delete(Link, ctx.org_id, pending_id)


def _promote(
    ctx: IngestContext, record: RemoteRecord, personal: HubContact
) -> tuple[HubContact, list[Write]]:
    """A personal contact whose record is now shared (marked, or its owner turned on Email
    Contact Sync) joins the organisation's contacts: merged into a matching organisation contact
    when there is one (the personal one is retired, pointing at it), otherwise made an
    organisation contact itself. The caller writes the returned contact in any case."""
    # Only the organisation's contacts compete: the personal contact itself, sharing every
    # key with its own record, would otherwise outscore the organisation's copy of the person
    # and be promoted beside it (a duplicate, pushed to every shared system).
    shared = [c for c in _candidates(ctx, record) if not c.personal]
    result = choose(record, ctx.view, shared, ctx.region)
    if result.contact is not None:
        retired = personal.model_copy(
            update={"archived": True, "merged_into": result.contact.id, "updated_at": ctx.now}
        )
        return result.contact, [Write(retired, expected_version=personal.version)]
    return personal.model_copy(update={"visibility": Visibility.ORGANISATION}), []


def _log_entry(
    ctx: IngestContext, contact_id: str, changes: list[FieldChange], is_new: bool
) -> ChangeLogEntry:
    return ChangeLogEntry(
        org_id=ctx.org_id,
        id=f"ch-{uuid.uuid4().hex}",
        contact_id=contact_id,
        at=ctx.now,
        source=ctx.view.account_id,
        run_id=ctx.run_id,
        action="create" if is_new else "update",
        reason="pulled from " + ctx.view.provider.value,
        changes=changes[:50],
    )


def namesake_keys(given: str, family: str, company: str) -> list[str]:
    """The name_company index values a contact's namesakes are found under."""
    name = name_key(given, family)
    return sorted({f"{name}|{company_key_loose(company)}", f"{name}|"})


def _namesakes(ctx: IngestContext, contact: HubContact) -> list[HubContact]:
    """Contacts with the same name at the same company or at none (the only ones a suggestion
    can name): bounded by the company, not by how common the name is in the organisation."""
    ids: list[str] = []
    for key in namesake_keys(contact.given_name, contact.family_name, contact.company):
        ids.extend(i for i in ctx.store.lookup_ids(HubContact, ctx.org_id, "name_company", key))
    ids = [i for i in dict.fromkeys(ids) if i != contact.id][:NAMESAKES]
    return list(ctx.store.get_many(HubContact, ctx.org_id, ids).values()) if ids else []


def _suggest(
    ctx: IngestContext, contact: HubContact, others: tuple[str, ...], is_new: bool
) -> None:
    pairs: list[tuple[str, float, list[str]]] = [
        (o, 0.95, ["shares an email or phone"]) for o in others
    ]
    if is_new and contact.given_name and contact.family_name:
        pairs.extend(fuzzy_candidates(contact, _namesakes(ctx, contact)))
    for other_id, score, reasons in pairs:
        suggestion_id = MergeSuggestion.make_id(contact.id, other_id)
        if ctx.store.find(MergeSuggestion, ctx.org_id, suggestion_id) is not None:
            continue
        try:
            ctx.store.create(
                MergeSuggestion(
                    org_id=ctx.org_id,
                    id=suggestion_id,
                    contact_ids=[contact.id, other_id],
                    score=score,
                    reasons=reasons,
                    created_at=ctx.now,
                )
            )
            ctx.report.merge_suggestions += 1
        except VersionConflict:
            pass  # suggested concurrently


def apply_deletions(ctx: IngestContext, link_ids: list[str]) -> None:
    """Applies the buffered remote deletes under the spoke's auto-removal policy (seed 003)."""
    for link_id in link_ids:
        link = ctx.store.find(Link, ctx.org_id, link_id)
        if link is None:
            continue
        action = on_remote_delete(link, ctx.view)
        contact = _follow(ctx.store, ctx.org_id, link.contact_id)
        if ctx.planned is not None:
            ctx.planned.append(
                PlannedMutation(ctx.view.account_id, action.value, link.contact_id, link.remote_id)
            )
        writes: list[Write] = []
        if contact is not None and action is DeleteAction.ARCHIVE and not contact.archived:
            archived = contact.model_copy(update={"archived": True, "updated_at": ctx.now})
            writes.append(Write(archived, expected_version=contact.version))
            writes.append(
                Write(
                    ChangeLogEntry(
                        org_id=ctx.org_id,
                        id=f"ch-{uuid.uuid4().hex}",
                        contact_id=contact.id,
                        at=ctx.now,
                        source=ctx.view.account_id,
                        run_id=ctx.run_id,
                        action="archive",
                        reason=f"deleted in {ctx.view.provider.value}; auto-removal allows it",
                    ),
                    expected_version=0,
                )
            )
            ctx.report.archived += 1
        elif action is DeleteAction.RESTORE:
            ctx.report.restored += 1
        else:
            ctx.report.unlinked += 1
        if contact is not None and action is not DeleteAction.UNLINK:
            version = contact.version + (1 if writes else 0)
            writes.append(
                Write(
                    OutboxEntry.entry(ctx.org_id, contact.id, version, ctx.view.account_id, ctx.now)
                )
            )
        if action is DeleteAction.RESTORE and contact is not None:
            writes.append(Write(link.model_copy(update={"contact_id": contact.id}).to_restore()))
        if writes:
            ctx.store.transact(writes)
        ctx.store.delete(Link, ctx.org_id, link_id)
