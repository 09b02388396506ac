"""End to end: the real SyncService with a SQLite hub and the Microsoft connector on the
Microsoft sandbox (in-process, virtual clock). Initial sync of both folders, edits both ways,
idle rounds that write nothing, deletes under both auto-removal settings, and seed 003's
markers: a categorised contact moved into the folder, a contact moved out of it, a removed
category put back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contactsync.connectors.microsoft import STREAM
from contactsync.domain import (
    AutoRemoval,
    ConnectedAccount,
    EmailAddress,
    FieldProvenance,
    HubContact,
    Link,
    Organisation,
    PhoneNumber,
    PostalAddress,
    Provider,
    SyncSettings,
    User,
    Visibility,
)
from contactsync.domain.contact import CONTACT_FIELDS
from contactsync.domain.outbox import OutboxEntry
from contactsync.store.base import Write
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from tests.connectors.test_microsoft import FOLDER, Env, make_env

ORG = "org-a"
ACCOUNT = "acc-ms"
CATEGORY = "Salesforce"


@dataclass
class World:
    env: Env
    store: SQLiteStore
    service: SyncService

    def run(self) -> RunReport:
        self.env.clock.advance(900)
        report = self.service.run_once()
        spoke = report.spokes[ACCOUNT]
        assert not spoke.errors, spoke.errors
        return report

    def idle(self) -> None:
        report = self.run()
        assert report.remote_writes == 0, report.to_json()
        assert report.hub_writes == 0, report.to_json()

    def contacts(self) -> list[HubContact]:
        return [c for c in self.store.scan(HubContact, ORG) if not c.archived]

    def links(self, contact_id: str) -> list[Link]:
        return self.store.lookup(Link, ORG, "contact", contact_id)

    def link_of(self, contact_id: str) -> Link:
        [link] = self.links(contact_id)
        return link

    def contact_for(self, remote_id: str) -> HubContact:
        link = self.store.get(Link, ORG, Link.key(ACCOUNT, STREAM, remote_id))
        return self.store.get(HubContact, ORG, link.contact_id)

    def hub_write(self, contact: HubContact, **changes: object) -> HubContact:
        """What the management API does for a user's edit: the contact with provenance, and
        an outbox entry, in one transaction."""
        now = self.env.clock.now()
        provenance = dict(contact.provenance)
        for name in set(changes) & set(CONTACT_FIELDS):
            provenance[name] = FieldProvenance(  # type: ignore[index]
                source="user:u-1", source_ts=now, hub_version=contact.version + 1
            )
        updated = contact.model_copy(
            update={**changes, "provenance": provenance, "updated_at": now}
        )
        validated = HubContact.model_validate(updated.model_dump())
        self.store.transact(
            [
                Write(validated, expected_version=contact.version),
                Write(OutboxEntry.entry(ORG, contact.id, contact.version + 1, "user:u-1", now)),
            ]
        )
        return self.store.get(HubContact, ORG, contact.id)

    def hub_create(self, contact_id: str, given: str, family: str, **extra: Any) -> HubContact:
        now = self.env.clock.now()
        values: dict[str, Any] = {
            "given_name": given,
            "family_name": family,
            "emails": [EmailAddress(address=f"{given.lower()}@dundermifflin.com", label="work")],
            "phones": [PhoneNumber.parse("+1 570 555 0142", "US", "work")],
            "company": "Dunder Mifflin",
            **extra,
        }
        contact = HubContact(
            org_id=ORG,
            id=contact_id,
            provenance={
                name: FieldProvenance(source="user:u-1", source_ts=now, hub_version=1)
                for name in CONTACT_FIELDS
                if name in values
            },
            created_at=now,
            updated_at=now,
            **values,
        )
        self.store.transact(
            [
                Write(contact, expected_version=0),
                Write(OutboxEntry.entry(ORG, contact_id, 1, "user:u-1", now)),
            ]
        )
        return self.store.get(HubContact, ORG, contact_id)

    def set_auto_removal(self, from_provider: bool, to_provider: bool = False) -> None:
        settings = self.store.get(SyncSettings, ORG, "sync-ms")
        removal = AutoRemoval(from_provider=from_provider, to_provider=to_provider)
        self.store.update(settings.model_copy(update={"auto_removal": removal}))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = make_env()
    store = SQLiteStore(tmp_path / "hub.db")
    now = env.clock.now()
    store.create(Organisation(org_id=ORG, id=ORG, name="Dunder Mifflin", created_at=now))
    store.create(User(org_id=ORG, id="u-1", email=EmailAddress(address="rep@example.com")))
    store.create(
        ConnectedAccount(
            org_id=ORG,
            id=ACCOUNT,
            provider=Provider.MICROSOFT,
            owner_user_id="u-1",
            address="rep@example.com",
            config={"authority": "https://microsoft.sandbox.test/x"},
            secret_ref="local:microsoft",
        )
    )
    store.create(SyncSettings(org_id=ORG, id="sync-ms", account_id=ACCOUNT))
    service = SyncService(store, ORG, connectors=lambda _: env.connector, now=env.clock.now)
    yield World(env, store, service)
    store.close()


def test_initial_sync_of_both_folders_then_an_idle_round(world: World) -> None:
    # Given three contacts in the address book and two in the "Salesforce Contacts" folder
    personal = world.env.seed(3)
    synced = world.env.seed(2, folder=FOLDER, categories=[CATEGORY])
    # When the first round runs
    report = world.run()
    # Then the folder's contacts are organisation contacts, the address book's the owner's
    # personal ones, all linked, and nothing was written back
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.hub_created == 5
    assert report.remote_writes == 0
    for remote_id in synced:
        contact = world.contact_for(remote_id)
        assert contact.visibility is Visibility.ORGANISATION
        assert world.link_of(contact.id).marked
    for remote_id in personal:
        contact = world.contact_for(remote_id)
        assert contact.visibility is Visibility.PERSONAL
        assert contact.owner_user_id == "u-1"
    stored = world.env.get(synced[0])
    assert stored is not None
    contact = world.contact_for(synced[0])
    assert contact.given_name == stored["givenName"]
    assert contact.title == "Directrice commerciale"
    digits = "".join(c for c in stored["businessPhones"][0] if c.isdigit())
    assert contact.phone_keys() == ["+" + digits]
    # and the next round writes nothing anywhere
    world.idle()


def test_an_edit_in_outlook_reaches_the_hub(world: World) -> None:
    [cid] = world.env.seed(1, folder=FOLDER, categories=[CATEGORY])
    world.run()
    # When the user edits the contact in Outlook
    world.env.edit(cid, jobTitle="Head of Procurement", personalNotes="Prefers calls")
    report = world.run()
    # Then the hub has it, through an incremental read, and nothing is written back
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    assert spoke.hub_updated == 1
    assert report.remote_writes == 0
    contact = world.contact_for(cid)
    assert (contact.title, contact.notes) == ("Head of Procurement", "Prefers calls")
    world.idle()


def test_an_edit_in_the_hub_reaches_outlook(world: World) -> None:
    [cid] = world.env.seed(1, folder=FOLDER, categories=[CATEGORY])
    world.run()
    # When a user edits the contact in the hub: a new surname and title, a mobile number
    contact = world.contact_for(cid)
    world.hub_write(
        contact,
        family_name="Dubois",
        title="CFO",
        phones=[*contact.phones, PhoneNumber.parse("+33 6 12 34 56 78", "FR", "mobile")],
    )
    report = world.run()
    # Then Outlook has it, with a displayName that follows the name, the mobile in its slot,
    # and the category and untouched fields kept
    assert report.spokes[ACCOUNT].updated == 1
    stored = world.env.get(cid)
    assert stored is not None
    assert (stored["surname"], stored["jobTitle"]) == ("Dubois", "CFO")
    assert stored["displayName"] == f"{stored['givenName']} Dubois"
    assert stored["mobilePhone"] == "+33612345678"
    assert stored["categories"] == [CATEGORY]
    assert stored["companyName"] == "Société Générale Conseil"
    # and our own write, read back, is an echo: nothing more happens
    world.idle()


def test_a_hub_contact_is_created_in_the_folder_with_the_category(world: World) -> None:
    world.hub_create("c-hub-1", "Jan", "Levinson", title="VP Sales")
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    link = world.link_of("c-hub-1")
    assert link.marked
    stored = world.env.get(link.remote_id)
    assert stored is not None
    assert stored["parentFolderId"] == world.env.folder_id()
    assert stored["categories"] == [CATEGORY]
    assert (stored["displayName"], stored["jobTitle"]) == ("Jan Levinson", "VP Sales")
    world.idle()
    assert len(world.env.folder_contents(world.env.folder_id())) == 1


@pytest.mark.parametrize("from_provider", [False, True])
def test_a_delete_in_outlook_reaches_the_hub(world: World, from_provider: bool) -> None:
    # Given a hub contact synced into the folder, and a contact of the user's own
    world.hub_create("c-hub-2", "Holly", "Flax")
    [other] = world.env.seed(1, folder=FOLDER, categories=[CATEGORY])
    world.run()
    world.set_auto_removal(from_provider)
    remote_id = world.link_of("c-hub-2").remote_id
    world.idle()
    # When the user deletes it in Outlook
    world.env.delete(remote_id)
    report = world.run()
    # Then the folder's delta reported it
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    hub = world.store.get(HubContact, ORG, "c-hub-2")
    folder = world.env.folder_contents(world.env.folder_id())
    if from_provider:
        # auto-removal allows it: the hub contact is archived, Outlook keeps it deleted
        assert spoke.archived == 1
        assert hub.archived
        assert world.links("c-hub-2") == []
        assert len(folder) == 1
    else:
        # not allowed: the contact is restored in the folder from the hub
        assert spoke.restored == 1
        assert spoke.created == 1
        assert not hub.archived
        restored = world.link_of("c-hub-2").remote_id
        assert restored != remote_id
        assert {c["id"] for c in folder} == {other, restored}
    assert not world.contact_for(other).archived
    world.idle()


@pytest.mark.parametrize("from_provider", [False, True])
def test_a_categorised_contact_moves_into_the_folder_and_stays_one_contact(
    world: World, from_provider: bool
) -> None:
    # Given a contact of the user's address book, synced as a personal contact
    [cid] = world.env.seed(1, nickName="Reni", birthday="1990-05-04T00:00:00Z")
    world.run()
    world.set_auto_removal(from_provider)
    personal = world.contact_for(cid)
    assert personal.personal
    # When the user gives it the "Salesforce" category
    world.env.edit(cid, categories=[CATEGORY, "Red category"])
    report = world.run()
    # Then it became an organisation contact, and Outlook has it in the folder (a copy with
    # every property and both categories; the original is gone), linked under its new id
    assert report.spokes[ACCOUNT].hub_updated == 1
    contact = world.store.get(HubContact, ORG, personal.id)
    assert contact.visibility is Visibility.ORGANISATION
    assert world.env.get(cid) is None
    [copy] = world.env.folder_contents(world.env.folder_id())
    assert copy["nickName"] == "Reni"
    assert copy["birthday"] == "1990-05-04T00:00:00Z"
    assert copy["categories"] == [CATEGORY, "Red category"]
    link = world.link_of(personal.id)
    assert (link.remote_id, link.marked) == (copy["id"], True)
    # and the next round reads the original's removal without archiving anything: one
    # hub contact, linked to the copy, whatever the auto-removal setting
    world.idle()
    assert not world.store.get(HubContact, ORG, personal.id).archived
    assert [c.id for c in world.contacts()] == [personal.id]
    assert world.link_of(personal.id).remote_id == copy["id"]


@pytest.mark.parametrize("from_provider", [False, True])
def test_a_contact_moved_out_of_the_folder_is_unsynced_and_loses_the_category(
    world: World, from_provider: bool
) -> None:
    # Given a business contact synced into the folder, where the user gave it another category
    synced = world.hub_create("c-hub-5", "Darryl", "Philbin")
    world.run()
    cid = world.link_of(synced.id).remote_id
    world.env.edit(cid, categories=[CATEGORY, "Red category"])
    world.run()
    world.set_auto_removal(from_provider)
    # When the user moves it out of the folder (Outlook gives it a new id)
    moved = world.env.move(cid, "contacts")
    report = world.run()
    # Then the folder record is gone for the hub (archived or restored per auto-removal), the
    # moved contact lost the category and is the owner's personal contact now
    spoke = report.spokes[ACCOUNT]
    stored = world.env.get(moved)
    assert stored is not None
    assert stored["categories"] == ["Red category"]
    assert stored["parentFolderId"] != world.env.folder_id()
    personal = world.contact_for(moved)
    assert personal.personal
    assert personal.id != synced.id
    folder = world.env.folder_contents(world.env.folder_id())
    if from_provider:
        assert spoke.archived == 1
        assert world.store.get(HubContact, ORG, synced.id).archived
        assert folder == []
    else:
        # seed 003: "the Contact gets automatically re-created in the Salesforce Contacts
        # folder"
        assert spoke.restored == 1
        [recreated] = folder
        assert recreated["categories"] == [CATEGORY]
        assert world.link_of(synced.id).remote_id == recreated["id"]
    world.idle()
    assert world.env.get(moved) is not None  # the user's own copy is left alone


def test_a_removed_category_is_put_back(world: World) -> None:
    [cid] = world.env.seed(1, folder=FOLDER, categories=[CATEGORY])
    world.run()
    # When the user removes the category but leaves the contact in the folder
    world.env.edit(cid, categories=["Blue category"])
    report = world.run()
    # Then the contact stays synced and the category comes back (seed 003)
    assert report.spokes[ACCOUNT].updated == 1
    stored = world.env.get(cid)
    assert stored is not None
    assert stored["categories"] == ["Blue category", CATEGORY]
    assert world.link_of(world.contact_for(cid).id).marked
    world.idle()


def test_a_hub_archive_deletes_in_outlook_when_auto_removal_allows(world: World) -> None:
    world.hub_create("c-hub-4", "Toby", "Flenderson")
    world.run()
    world.set_auto_removal(from_provider=False, to_provider=True)
    remote_id = world.link_of("c-hub-4").remote_id
    contact = world.store.get(HubContact, ORG, "c-hub-4")
    world.hub_write(contact, archived=True)
    report = world.run()
    assert report.spokes[ACCOUNT].deleted == 1
    assert world.env.get(remote_id) is None
    world.idle()


def test_what_outlook_cannot_hold_is_neither_resent_nor_lost(world: World) -> None:
    # Given a hub contact with more emails, phones and addresses than Outlook has room for
    emails = [EmailAddress(address=f"andy.{i}@dundermifflin.com") for i in range(5)]
    phones = [PhoneNumber.parse(f"+1 570 555 01{i:02d}", "US", "work") for i in range(7)]
    addresses = [
        PostalAddress(city=city, label="work")
        for city in ("Scranton", "Nashua", "Stamford", "Utica")
    ]
    world.hub_create(
        "c-hub-6", "Andy", "Bernard", emails=emails, phones=phones, addresses=addresses
    )
    # When it is synced
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    remote_id = world.link_of("c-hub-6").remote_id
    stored = world.env.get(remote_id)
    assert stored is not None
    # Then Outlook holds what fits, in the hub's order
    assert [e["address"] for e in stored["emailAddresses"]] == [e.address for e in emails[:3]]
    assert stored["businessPhones"] == ["+15705550100", "+15705550101"]
    assert stored["mobilePhone"] == "+15705550102"
    assert stored["homePhones"] == ["+15705550103", "+15705550104"]
    assert [stored[k]["city"] for k in ("businessAddress", "homeAddress", "otherAddress")] == [
        "Scranton",
        "Nashua",
        "Stamford",
    ]
    # and the next rounds neither push the rest again nor drop it from the hub, even after
    # the user edits the contact in Outlook
    world.idle()
    world.env.edit(remote_id, jobTitle="Regional Director of Sales")
    report = world.run()
    assert report.spokes[ACCOUNT].hub_updated == 1
    assert report.remote_writes == 0  # the lists are in step as far as Outlook goes
    hub = world.store.get(HubContact, ORG, "c-hub-6")
    assert hub.title == "Regional Director of Sales"
    assert [e.address for e in hub.emails] == [e.address for e in emails]
    assert len(hub.phones) == 7
    assert len(hub.addresses) == 4
    world.idle()
    # and a hub edit of another field sends that field only
    world.env.record_requests()
    world.hub_write(hub, notes="Sings a cappella")
    assert world.run().spokes[ACCOUNT].updated == 1
    [patch] = world.env.batch_items("PATCH")
    assert patch["body"] == {"personalNotes": "Sings a cappella"}
    world.idle()
