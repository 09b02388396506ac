"""Merging an incoming remote record into a hub contact, field by field.

Only fields the source actually changed since we last synced it compete (those that differ from
the link's snapshot): a record re-saved for another reason carries every field with a new
timestamp, and letting its unchanged, stale values win would undo newer edits made elsewhere.

Each hub field remembers who wrote it and the source's timestamp (provenance). A changed value
replaces the hub's when it wins under the spoke's conflict policy:

- the same source updating its own value wins unless it is older (a replay);
- source priority: the higher-ranked account wins whatever the timestamps (seed 004's "keep
  Salesforce record"); accounts not listed rank below every listed one;
- otherwise last writer wins by source timestamp; a tie is broken by the account id, so every
  replica of the decision agrees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contactsync.connectors.base import ContactFields, RemoteRecord
from contactsync.domain.accounts import Provider
from contactsync.domain.changelog import FieldChange
from contactsync.domain.contact import ContactField, FieldProvenance, HubContact
from contactsync.domain.sync import (
    AutoRemoval,
    ConflictPolicy,
    ConflictRule,
    DefaultObject,
    Direction,
    ObjectChoice,
    Scope,
)
from contactsync.engine.canonical import canon

SHARED_SYSTEMS = frozenset({Provider.SALESFORCE, Provider.AIRCALL})


@dataclass(frozen=True)
class SpokeView:
    """What the engine needs to know about one spoke (a connected account and its settings)."""

    account_id: str
    provider: Provider
    owner_user_id: str
    owner_email: str = ""
    direction: Direction = Direction.BOTH
    pull_fields: frozenset[ContactField] = frozenset()
    push_fields: frozenset[ContactField] = frozenset()
    conflict: ConflictPolicy = field(default_factory=ConflictPolicy)
    auto_removal: AutoRemoval = field(default_factory=AutoRemoval)
    scope: Scope = field(default_factory=Scope)
    objects: ObjectChoice = ObjectChoice.CONTACTS
    default_object: DefaultObject = DefaultObject.CONTACT
    # Address books: the owner shares the contacts they add with the organisation (seed 000).
    owner_shares_contacts: bool = False
    sync_id: str = ""
    mass_delete_threshold: float = 0.2
    # What the provider can hold of a set of fields (Connector.representable); None: anything.
    fit: Callable[[ContactFields], ContactFields] | None = field(default=None, compare=False)
    # The same for a record of a given object type (Connector.representable_as); None: ``fit``.
    fit_as: Callable[[str, ContactFields], ContactFields] | None = field(
        default=None, compare=False
    )

    def fitted(self, fields: ContactFields, object_type: str | None = None) -> ContactFields:
        if object_type is not None and self.fit_as is not None:
            return self.fit_as(object_type, fields)
        return self.fit(fields) if self.fit is not None else fields

    @property
    def mapped_fields(self) -> frozenset[ContactField]:
        """Every field this spoke exchanges in either direction: the link's snapshot covers
        these."""
        return self.pull_fields | self.push_fields

    @property
    def shared_system(self) -> bool:
        """Records here are visible to the whole organisation (CRM, company phone book)."""
        return self.provider in SHARED_SYSTEMS

    @property
    def address_book(self) -> bool:
        return not self.shared_system

    def shares(self, record: RemoteRecord) -> bool:
        """Whether this record may enter the organisation's contacts: a shared system's record,
        or an address-book record that is marked for sync or whose owner shares contacts."""
        return self.shared_system or bool(record.marked) or self.owner_shares_contacts


@dataclass
class MergeOutcome:
    contact: HubContact
    changes: list[FieldChange]
    # Fields where the hub kept its value against the incoming one (the spoke will be updated).
    kept: list[ContactField]
    # Provenance moved to a newer assertion of the value the hub already had (no value change,
    # but the contact must be written so later, older changes lose to it).
    touched: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def must_write(self) -> bool:
        return bool(self.changes) or self.touched


def rank(policy: ConflictPolicy, source: str) -> int:
    try:
        return policy.priority.index(source)
    except ValueError:
        return len(policy.priority)


def incoming_wins(
    policy: ConflictPolicy,
    source: str,
    source_ts: datetime,
    current: FieldProvenance | None,
) -> bool:
    if current is None:
        return True
    if current.source == source:
        return source_ts >= current.source_ts
    if policy.rule is ConflictRule.SOURCE_PRIORITY:
        mine, theirs = rank(policy, source), rank(policy, current.source)
        if mine != theirs:
            return mine < theirs
    if source_ts != current.source_ts:
        return source_ts > current.source_ts
    return source < current.source


def merge(
    contact: HubContact,
    record: RemoteRecord,
    spoke: SpokeView,
    *,
    now: datetime,
    previous: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> MergeOutcome:
    """Merges ``record`` into ``contact`` (which may be a fresh, empty contact). ``previous`` is
    the link's snapshot of the record as last synced (None for a record never seen). Pure."""
    incoming = _widened(contact, record.fields.only(spoke.pull_fields), spoke, record.object_type)
    updates: dict[str, Any] = {}
    provenance = dict(contact.provenance)
    changes: list[FieldChange] = []
    kept: list[ContactField] = []
    touched = False
    next_version = contact.version + 1
    for name, value in sorted(incoming.items()):
        value_canon = canon(name, value)
        if previous is not None and name in previous and previous[name] == value_canon:
            continue  # the source did not change it since we last synced: nothing asserted
        current_prov = provenance.get(name)
        wins = incoming_wins(spoke.conflict, spoke.account_id, record.modified_at, current_prov)
        current = getattr(contact, name)
        if canon(name, current) == value_canon:
            # Same value, newer assertion: move the provenance so older changes lose to it.
            if (
                wins
                and current_prov is not None
                and (
                    (current_prov.source, current_prov.source_ts)
                    != (spoke.account_id, record.modified_at)
                )
            ):
                provenance[name] = current_prov.model_copy(
                    update={"source": spoke.account_id, "source_ts": record.modified_at}
                )
                touched = True
            continue
        if not wins:
            kept.append(name)
            continue
        updates[name] = list(value) if isinstance(value, tuple) else value
        provenance[name] = FieldProvenance(
            source=spoke.account_id,
            source_ts=record.modified_at,
            hub_version=next_version,
            run_id=run_id,
            reason=_reason(spoke.conflict, current_prov),
        )
        changes.append(FieldChange(field=name, old=_plain(current), new=_plain(value)))
    if not updates:
        if touched:
            copy = contact.model_copy(update={"provenance": provenance})
            return MergeOutcome(copy, [], kept, touched=True)
        return MergeOutcome(contact, [], kept)
    merged = contact.model_copy(update={**updates, "provenance": provenance, "updated_at": now})
    # model_copy skips validation: re-validate so a provider's odd value cannot slip through.
    # The nested emails, phones, addresses and provenance were validated when they were made
    # (pydantic takes model instances as they are), so only the top level is checked again.
    validated = HubContact.model_validate(dict(merged.__dict__))
    validated.__dict__["version"] = contact.version
    return MergeOutcome(validated, changes, kept, touched)


_LISTS: tuple[ContactField, ...] = ("emails", "phones", "addresses")


def _widened(
    contact: HubContact, fields: ContactFields, spoke: SpokeView, object_type: str | None = None
) -> dict[ContactField, Any]:
    """The incoming values, with the hub's list entries the provider cannot hold appended: a
    Salesforce Contact reporting its one email does not mean the person's other emails are
    gone, only that Salesforce never had room for them."""
    incoming = fields.provided()
    if spoke.fit is None and spoke.fit_as is None:
        return incoming
    held = spoke.fitted(
        hub_fields_of(contact, frozenset(n for n in _LISTS if n in incoming)), object_type
    )
    for name in _LISTS:
        value: tuple[Any, ...] | None = incoming.get(name)  # type: ignore[assignment]
        if value is None:
            continue
        known = {_key(name, item) for item in tuple(getattr(held, name) or ()) + value}
        extra = tuple(item for item in getattr(contact, name) if _key(name, item) not in known)
        if extra:
            incoming[name] = value + extra
    return incoming


def _key(name: ContactField, item: Any) -> str:
    return json.dumps(canon(name, [item])[0], sort_keys=True)


def hub_fields_of(contact: HubContact, names: frozenset[ContactField]) -> ContactFields:
    return ContactFields(**{n: tuple(getattr(contact, n)) for n in names})  # type: ignore[arg-type]


def _reason(policy: ConflictPolicy, previous: FieldProvenance | None) -> str:
    if previous is None:
        return "first value"
    if policy.rule is ConflictRule.SOURCE_PRIORITY:
        return "source priority"
    return "newer source timestamp"


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
    return value
