"""Seed 003's rules across the real connectors: deletes where auto-removal is off are restored,
even for records that came from the address book itself; a personal contact the user drags into
the synced folder stays one person."""

from __future__ import annotations

from pathlib import Path

from contactsync.connectors.base import Create
from contactsync.domain import HubContact, Provider, Visibility
from tests.connectors.conformance import new_fields
from tests.support.world import World


def test_a_labelled_google_contact_deleted_by_the_user_is_restored(tmp_path: Path) -> None:
    # Given a Google-only organisation with a contact the rep put in the "Salesforce" label
    world = World.build(tmp_path, [Provider.GOOGLE])
    [made] = world.user_client(Provider.GOOGLE).apply(
        "person",
        [Create(hub_id="made-by-the-rep", fields=new_fields(1), object_type="person", marked=True)],
    )
    assert made.ok
    world.converge()
    [link] = [lk for lk in world.links(Provider.GOOGLE) if lk.marked]
    contact = world.store.get(HubContact, world.org_id, link.contact_id)
    assert contact.visibility is Visibility.ORGANISATION
    # When the rep deletes it in Google (auto-removal from Google is off by default)
    world.clock.advance(60)
    world.user_delete(Provider.GOOGLE, link.remote_id, "person")
    reports = world.converge()
    # Then it is re-created in the label from the hub, and the hub contact is not archived
    assert sum(r.spokes[world.accounts[Provider.GOOGLE].id].restored for r in reports) == 1
    [again] = [lk for lk in world.links(Provider.GOOGLE) if lk.marked]
    assert again.contact_id == contact.id
    assert again.remote_id != link.remote_id
    assert not world.store.get(HubContact, world.org_id, contact.id).archived
    names = [r.fields.given_name for r in world.remote_records(Provider.GOOGLE, "person")]
    assert names.count("Zoë1") == 1


def test_a_personal_contact_dragged_into_the_salesforce_folder_stays_one_person(
    tmp_path: Path,
) -> None:
    # Given a rep's Outlook contacts synced as personal contacts
    world = World.build(tmp_path, [Provider.MICROSOFT])
    world.seed(Provider.MICROSOFT, 5, overlap=0.0)
    world.converge()
    before = world.contacts()
    assert len(before) == 5
    assert all(c.personal for c in before)
    # When the rep drags one into the "Salesforce Contacts" folder (Outlook gives it a new id)
    [link] = [lk for lk in world.links(Provider.MICROSOFT) if not lk.marked][:1]
    world.admin_call(
        Provider.MICROSOFT, "move", {"contact_id": link.remote_id, "folder": "Salesforce Contacts"}
    )
    world.converge()
    # Then it is still one contact, now an organisation contact linked to the folder's record
    after = world.contacts()
    assert len(after) == 5
    moved = world.store.get(HubContact, world.org_id, link.contact_id)
    assert moved.visibility is Visibility.ORGANISATION
    [marked] = [lk for lk in world.links(Provider.MICROSOFT) if lk.contact_id == moved.id]
    assert marked.marked
    assert marked.remote_id != link.remote_id


def test_a_marked_copy_of_a_known_person_joins_that_person_not_a_duplicate(
    tmp_path: Path,
) -> None:
    # Given Salesforce contacts, and the rep's own Outlook copies of the same people (personal)
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.MICROSOFT])
    world.seed(Provider.SALESFORCE, 6, seed=11, overlap=1.0)
    world.seed(Provider.MICROSOFT, 6, seed=11, overlap=1.0)
    world.converge()
    organisation = {k: c for c in world.contacts() if not c.personal for k in c.email_keys()}
    personal, known = next(
        (p, organisation[k])
        for p in world.contacts()
        if p.personal
        for k in p.email_keys()
        if k in organisation
    )
    [copy] = [lk for lk in world.links(Provider.MICROSOFT) if lk.contact_id == personal.id]
    in_salesforce = len(world.remote_records(Provider.SALESFORCE, "Contact"))
    # When the rep edits their copy, then drags it into the "Salesforce Contacts" folder
    world.clock.advance(60)
    world.user_edit(Provider.MICROSOFT, copy.remote_id, "contact", notes="Met at the trade show")
    world.converge()
    world.clock.advance(60)
    world.admin_call(
        Provider.MICROSOFT, "move", {"contact_id": copy.remote_id, "folder": "Salesforce Contacts"}
    )
    world.converge()
    # Then the person is still one organisation contact, with the rep's newer notes; Salesforce
    # has no new record, and its record and every Outlook record of the person say the same
    assert world.store.get(HubContact, world.org_id, known.id).notes == "Met at the trade show"
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == in_salesforce
    for provider, stream in ((Provider.SALESFORCE, "Contact"), (Provider.MICROSOFT, "contact")):
        mine = {lk.remote_id for lk in world.links(provider) if lk.contact_id == known.id}
        notes = [r.fields.notes for r in world.remote_records(provider, stream)
                 if r.remote_id in mine]  # fmt: skip
        assert notes
        assert set(notes) == {"Met at the trade show"}, provider
    for counts in world.service.reconcile().values():
        assert (counts["diverged"], counts["unlinked"], counts["unpushed"]) == (0, 0, 0), counts


def test_every_record_of_a_contact_in_one_mailbox_is_kept_in_step(tmp_path: Path) -> None:
    # Given a contact in the rep's "Salesforce Contacts" folder, and a second record of the same
    # person the rep filed there themselves (a copy: Outlook allows it)
    world = World.build(tmp_path, [Provider.MICROSOFT])
    outlook = world.user_client(Provider.MICROSOFT)
    for hub_id in ("first-copy", "second-copy"):
        [made] = outlook.apply(
            "contact",
            [Create(hub_id=hub_id, fields=new_fields(1), object_type="contact", marked=True)],
        )
        assert made.ok
        world.converge()
    [contact] = world.contacts()
    records = [lk.remote_id for lk in world.links(Provider.MICROSOFT)]
    assert len(records) == 2  # one person, both records linked to it
    # When the hub changes the person
    world.clock.advance(60)
    change = {"notes": "Prefers mornings"}
    world.gallery().update(world.actor(), contact.id, change, contact.version)
    world.converge()
    # Then both records say so, not only the first
    read = world.remote_records(Provider.MICROSOFT, "contact")
    notes = {r.remote_id: r.fields.notes for r in read}
    assert [notes[r] for r in records] == ["Prefers mornings", "Prefers mornings"]
