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
