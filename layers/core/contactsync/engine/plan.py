"""Planning what to write to each spoke for one hub contact.

Admission (may this contact exist in this spoke?) follows the seeds:
- a record already linked to the spoke is kept in step with the hub (two-way, edits included:
  seed 000's one-way limitation beaten);
- a new record is created only for organisation contacts that are "business" contacts: linked to
  a shared system (Salesforce, the phone system) or to a marked address-book record, or created
  in the hub as organisation contacts (seeds 003, 004). A personal contact never reaches a
  shared system or another user's mailbox;
- address books receive new records in the marked place (folder + category, label) within the
  spoke's scope (all, mine, a list view); the phone system only contacts with a valid phone
  number and a first name, of the chosen objects (seed 004).

A push sends only the fields that differ from the link's snapshot of the remote state, so after
convergence an idle round writes nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contactsync.connectors.base import ContactFields, Create, Delete, Mutation, Update
from contactsync.domain.accounts import Provider
from contactsync.domain.contact import ContactField, HubContact, Visibility
from contactsync.domain.link import Link
from contactsync.domain.sync import DefaultObject, ObjectChoice, ScopeKind
from contactsync.engine.canonical import hub_fields, snapshot
from contactsync.engine.merge import SpokeView

HUB_ORIGIN_PREFIX = "user:"


@dataclass(frozen=True)
class Plan:
    mutation: Mutation | None
    reason: str


def object_type_for(spoke: SpokeView) -> str:
    if spoke.provider is Provider.SALESFORCE:
        if spoke.objects is ObjectChoice.LEADS:
            return "Lead"
        if spoke.objects is ObjectChoice.CONTACTS:
            return "Contact"
        return "Lead" if spoke.default_object is DefaultObject.LEAD else "Contact"
    if spoke.provider is Provider.GOOGLE:
        return "person"
    return "contact"


def is_business(
    contact: HubContact, links: Sequence[Link], spokes: Mapping[str, SpokeView]
) -> bool:
    if contact.visibility is not Visibility.ORGANISATION:
        return False
    for link in links:
        spoke = spokes.get(link.account_id)
        if link.marked or (spoke is not None and spoke.shared_system):
            return True
    origin = contact.provenance.get("given_name") or contact.provenance.get("emails")
    return origin is not None and origin.source.startswith(HUB_ORIGIN_PREFIX)


def _in_scope(contact: HubContact, links: Sequence[Link], spoke: SpokeView) -> bool:
    kind = spoke.scope.kind
    if kind is ScopeKind.ALL:
        return True
    if kind is ScopeKind.MARKED:
        return False  # only records the user marked: never created by us
    if kind is ScopeKind.MINE:
        me = spoke.owner_email.lower()
        return any(link.owner_ref and link.owner_ref.lower() == me for link in links) or (
            contact.owner_user_id == spoke.owner_user_id
        )
    return any(f"listview:{spoke.scope.list_view_id}" in link.tags for link in links)


def _admits_new(
    contact: HubContact, links: Sequence[Link], spoke: SpokeView, spokes: Mapping[str, SpokeView]
) -> tuple[bool, str]:
    if contact.archived or contact.merged_into is not None:
        return False, "archived"
    if not is_business(contact, links, spokes):
        return False, "not a shared business contact"
    if spoke.provider is Provider.AIRCALL:
        if not contact.given_name or not contact.phone_keys():
            return False, "needs a first name and a valid phone number"
        crm_objects = {lk.object_type for lk in links if lk.object_type in ("Contact", "Lead")}
        if spoke.objects is ObjectChoice.CONTACTS and crm_objects == {"Lead"}:
            return False, "a lead, and only contacts are synced"
        if spoke.objects is ObjectChoice.LEADS and crm_objects == {"Contact"}:
            return False, "a contact, and only leads are synced"
    if spoke.address_book and not _in_scope(contact, links, spoke):
        return False, "outside the spoke's scope"
    return True, "admitted"


def pushed_fields(
    contact: HubContact, spoke: SpokeView, object_type: str | None = None
) -> ContactFields:
    """The hub's values of the fields pushed to ``spoke``, as far as the provider can hold them
    (``Connector.representable``, in a record of ``object_type`` when given): what cannot be
    held is neither sent nor compared, or it would be pushed again every round."""
    return spoke.fitted(hub_fields(contact, spoke.push_fields), object_type)


def plan(
    contact: HubContact,
    links: Sequence[Link],
    spoke: SpokeView,
    spokes: Mapping[str, SpokeView],
) -> Plan:
    """The mutation (if any) that brings ``spoke`` in step with ``contact``. Pure."""
    if not spoke.direction.pushes:
        return Plan(None, "direction does not push")
    mine = [lk for lk in links if lk.account_id == spoke.account_id]
    if mine:
        return _plan_linked(contact, mine[0], spoke)
    admitted, reason = _admits_new(contact, links, spoke, spokes)
    if not admitted:
        return Plan(None, reason)
    object_type = object_type_for(spoke)
    fields = pushed_fields(contact, spoke, object_type)
    return Plan(
        Create(
            hub_id=contact.id,
            fields=fields,
            object_type=object_type,
            marked=True if spoke.address_book else None,
        ),
        "create",
    )


def _plan_linked(contact: HubContact, link: Link, spoke: SpokeView) -> Plan:
    if link.pending_create:
        return Plan(None, "create outcome unknown: waiting to find the record")
    if link.restore:
        if contact.archived or contact.merged_into is not None:
            return Plan(None, "archived: nothing to restore")
        fields = pushed_fields(contact, spoke, link.object_type)
        restored = Create(
            hub_id=contact.id,
            fields=fields,
            object_type=link.object_type,
            marked=True if link.marked else None,
        )
        return Plan(restored, "restore a record deleted where auto-removal is off")
    if contact.archived or contact.merged_into is not None:
        if spoke.auto_removal.to_provider:
            return Plan(Delete(remote_id=link.remote_id, object_type=link.object_type), "delete")
        return Plan(None, "archived; auto-removal to this spoke is off")
    pushed = pushed_fields(contact, spoke, link.object_type)
    wanted = snapshot(pushed)
    changed: dict[ContactField, object] = {}
    current = pushed.provided()
    for name, value in wanted.items():
        if link.snapshot.get(name) != value:
            changed[name] = current[name]  # type: ignore[index]
    if not changed:
        if link.repair_marker:
            return Plan(marker_repair(link), "restore the sync marker")
        return Plan(None, "in step")
    return Plan(
        Update(
            remote_id=link.remote_id,
            fields=ContactFields(**changed),  # type: ignore[arg-type]
            object_type=link.object_type,
            version=link.remote_version,
            marked=True if link.marked else None,
        ),
        "update",
    )


def marker_repair(link: Link) -> Update:
    """An update that changes no field and restores the record's sync marker."""
    return Update(
        remote_id=link.remote_id,
        fields=ContactFields(),
        object_type=link.object_type,
        version=link.remote_version,
        marked=True,
    )
