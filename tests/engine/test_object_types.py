"""What a provider can hold depends on the record's object (a Salesforce Lead has two phone
slots and no department, a Contact four slots and a department), and a field a record does not
tell is silence, not a value: plans, merges and ingested links go by both."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from contactsync.connectors.base import ContactFields, Create, RemoteRecord, Update
from contactsync.domain import (
    EmailAddress,
    HubContact,
    Link,
    ObjectChoice,
    Organisation,
    PhoneNumber,
    Provider,
)
from contactsync.domain.contact import CONTACT_FIELDS, FieldProvenance
from contactsync.engine.canonical import fingerprint, hub_fields, snapshot
from contactsync.engine.merge import SpokeView, merge
from contactsync.engine.plan import plan
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.ingest import IngestContext, ingest
from contactsync.sync.report import SpokeReport
from tests import factories as f
from tests.factories import T0

ALL = frozenset(CONTACT_FIELDS)
PHONES = ("+1 570 555 0101", "+1 570 555 0102", "+1 570 555 0103")


def by_object(object_type: str, fields: ContactFields) -> ContactFields:
    """A CRM whose Leads hold two phones and no department, and whose Contacts hold three."""
    room = 2 if object_type == "Lead" else 3
    values = dict(fields.provided())
    if fields.phones is not None:
        values["phones"] = fields.phones[:room]
    if object_type == "Lead":
        values.pop("department", None)
    return ContactFields(**values)  # type: ignore[arg-type]


def crm(**kw: object) -> SpokeView:
    return SpokeView(
        account_id="acc-sf",
        provider=Provider.SALESFORCE,
        owner_user_id="u-1",
        pull_fields=ALL,
        push_fields=ALL,
        fit=lambda fields: by_object("Contact", fields),
        fit_as=by_object,
        **kw,  # type: ignore[arg-type]
    )


def person(**kw: Any) -> HubContact:
    return f.contact(
        contact_id="c-1",
        phones=list(PHONES),
        department="Sales",
        provenance={"given_name": FieldProvenance(source="user:u-1", source_ts=T0, hub_version=1)},
        **kw,
    )


def linked(contact: HubContact, view: SpokeView, object_type: str) -> Link:
    snap = snapshot(view.fitted(hub_fields(contact, view.push_fields), object_type))
    return f.link(
        contact_id=contact.id,
        object_type=object_type,
        snapshot=snap,
        fingerprint=fingerprint(snap),
    )


def test_a_lead_is_compared_by_what_a_lead_holds() -> None:
    contact = person()
    view = crm()
    # A Lead holding two of the three phones and no department is in step
    lead = linked(contact, view, "Lead")
    assert plan(contact, [lead], view, {"acc-sf": view}).mutation is None
    # while a Contact holding the same would be missing the third phone and the department
    short = lead.model_copy(update={"object_type": "Contact"})
    update = plan(contact, [short], view, {"acc-sf": view}).mutation
    assert isinstance(update, Update)
    assert update.fields.phones is not None
    assert len(update.fields.phones) == 3
    assert update.fields.department == "Sales"


def test_a_create_sends_what_its_object_holds() -> None:
    contact = person()
    view = crm(objects=ObjectChoice.LEADS)
    created = plan(contact, [], view, {"acc-sf": view}).mutation
    assert isinstance(created, Create)
    assert created.object_type == "Lead"
    assert created.fields.department is None
    assert created.fields.phones is not None
    assert len(created.fields.phones) == 2


def test_a_lead_reporting_its_two_phones_does_not_remove_the_third() -> None:
    contact = person()
    view = crm()
    lead = RemoteRecord(
        remote_id="00Q1",
        object_type="Lead",
        modified_at=T0 + timedelta(minutes=5),
        fields=ContactFields(phones=tuple(contact.phones[:2])),
    )
    merged = merge(contact, lead, view, now=T0).contact
    assert merged.phone_keys() == contact.phone_keys()


# ---- ingest: a field a record does not tell -----------------------------------------------------


def ingest_one(tmp_path: Path, record: RemoteRecord, view: SpokeView) -> tuple[SQLiteStore, Link]:
    store = SQLiteStore(tmp_path / "hub.db")
    store.create(Organisation(org_id="org-a", id="org-a", name="Org", created_at=T0))
    ctx = IngestContext(
        store=store,
        org_id="org-a",
        view=view,
        connector=None,  # type: ignore[arg-type]  # ingest makes no call
        spokes={view.account_id: view},
        run_id="run-1",
        now=T0,
        report=SpokeReport(view.account_id, "salesforce"),
    )
    link_id = ingest(ctx, record)
    return store, store.get(Link, "org-a", link_id)


def test_a_field_a_record_does_not_tell_is_in_step_with_the_hub(tmp_path: Path) -> None:
    # Given a CRM contact without a company (Salesforce: a Contact without an Account)
    view = SpokeView(
        account_id="acc-sf",
        provider=Provider.SALESFORCE,
        owner_user_id="u-1",
        pull_fields=ALL,
        push_fields=ALL,
    )
    record = RemoteRecord(
        remote_id="0031",
        object_type="Contact",
        modified_at=T0,
        fields=ContactFields(
            given_name="Pam",
            family_name="Beesly",
            emails=(EmailAddress(address="pam@dundermifflin.com"),),
            phones=(PhoneNumber.parse(PHONES[0], "US"),),
            title="",
            department="",
            notes="",
            addresses=(),
        ),
    )
    # When it is ingested
    store, link = ingest_one(tmp_path, record, view)
    contact = store.get(HubContact, "org-a", link.contact_id)
    # Then its link holds the hub's (empty) company, so nothing is pushed back for it
    assert link.snapshot["company"] == ""
    assert plan(contact, [link], view, {"acc-sf": view}).mutation is None
    # and a later read that again tells no company is an echo
    refreshed = record.model_copy(update={"version": "v2"})
    ctx = IngestContext(
        store=store,
        org_id="org-a",
        view=view,
        connector=None,  # type: ignore[arg-type]
        spokes={view.account_id: view},
        run_id="run-2",
        now=T0,
        report=SpokeReport(view.account_id, "salesforce"),
    )
    ingest(ctx, refreshed)
    assert ctx.report.echoes == 1
    store.close()
