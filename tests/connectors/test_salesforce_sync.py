"""End to end: the real SyncService with a SQLite hub and the Salesforce connector on the
Salesforce sandbox (in-process, virtual clock, simple-salesforce unpatched). Initial sync,
edits both ways, a hub contact created once (linked to its Account), idle rounds that write
nothing, and deletes under both auto-removal settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contactsync.connectors.salesforce import NOT_PROVIDED
from contactsync.domain import (
    AutoRemoval,
    ConnectedAccount,
    DefaultObject,
    EmailAddress,
    FieldProvenance,
    HubContact,
    Link,
    ObjectChoice,
    Organisation,
    PhoneNumber,
    PostalAddress,
    Provider,
    SyncSettings,
    User,
)
from contactsync.domain.link import stream_key
from contactsync.domain.outbox import OutboxEntry
from contactsync.store.base import Write
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from tests.connectors.test_salesforce import Env, account_json, contact_json, make_env

ORG = "org-a"
ACCOUNT = "acc-sf"
SETTINGS = "sync-sf"


@dataclass
class World:
    env: Env
    store: SQLiteStore
    service: SyncService

    def run(self) -> RunReport:
        report = self.service.run_once()
        spoke = report.spokes[ACCOUNT]
        assert not spoke.errors, spoke.errors
        return report

    def idle(self) -> None:
        """A round after the clock moved on: nothing to read, nothing to write."""
        self.env.advance(900)
        report = self.run()
        assert report.remote_writes == 0, report.to_json()
        assert report.hub_writes == 0, report.to_json()

    def contacts(self) -> list[HubContact]:
        return list(self.store.scan(HubContact, ORG))

    def link_of(self, contact_id: str) -> Link:
        [link] = self.store.lookup(Link, ORG, "contact", contact_id)
        return link

    def contact_for(self, remote_id: str, sobject: str = "Contact") -> HubContact:
        link = self.store.get(Link, ORG, Link.key(ACCOUNT, sobject, remote_id))
        return self.store.get(HubContact, ORG, link.contact_id)

    def hub_write(self, contact: HubContact, **changes: object) -> HubContact:
        """What the management API does for a user's edit: the contact with provenance, and
        an outbox entry, in one transaction."""
        now = self.env.clock.now()
        provenance = dict(contact.provenance)
        for name in changes:
            if name == "archived":
                continue
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
        contact = HubContact(
            org_id=ORG,
            id=contact_id,
            given_name=given,
            family_name=family,
            emails=extra.pop(
                "emails", [EmailAddress(address=f"{given.lower()}@dundermifflin.com", label="work")]
            ),
            phones=extra.pop("phones", [PhoneNumber.parse("+1 570 555 0100", "US", "work")]),
            provenance={
                name: FieldProvenance(source="user:u-1", source_ts=now, hub_version=1)  # type: ignore[misc]
                for name in ("given_name", "family_name", "phones", "emails", *extra)
            },
            created_at=now,
            updated_at=now,
            **extra,
        )
        self.store.transact(
            [
                Write(contact, expected_version=0),
                Write(OutboxEntry.entry(ORG, contact_id, 1, "user:u-1", now)),
            ]
        )
        return self.store.get(HubContact, ORG, contact_id)

    def set_auto_removal(self, *, from_provider: bool, to_provider: bool = False) -> None:
        settings = self.store.get(SyncSettings, ORG, SETTINGS)
        self.store.update(
            settings.model_copy(
                update={
                    "auto_removal": AutoRemoval(
                        from_provider=from_provider, to_provider=to_provider
                    )
                }
            )
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = make_env()
    store = SQLiteStore(tmp_path / "hub.db")
    now = env.clock.now()
    store.create(Organisation(org_id=ORG, id=ORG, name="Dunder Mifflin", created_at=now))
    store.create(User(org_id=ORG, id="u-1", email=EmailAddress(address="admin@example.com")))
    store.create(
        ConnectedAccount(
            org_id=ORG,
            id=ACCOUNT,
            provider=Provider.SALESFORCE,
            owner_user_id="u-1",
            address="admin@example.com",
            config={"instance_url": env.config["instance_url"]},
            secret_ref="local:salesforce",
        )
    )
    # Contacts and leads (seed 004), as the connector is configured from these settings.
    settings = SyncSettings(org_id=ORG, id=SETTINGS, account_id=ACCOUNT, objects=ObjectChoice.BOTH)
    store.create(settings)
    service = SyncService(store, ORG, connectors=lambda _: env.connector, now=env.clock.now)
    yield World(env, store, service)
    store.close()


def test_initial_sync_then_an_idle_round(world: World) -> None:
    # Given five contacts of an Account in Salesforce, and a lead
    [dunder] = world.env.seed([account_json("Dunder Mifflin", "2024-01-01T00:00:00.000+0000")])
    ids = world.env.seed([contact_json(AccountId=dunder, MobilePhone="+1 570 555 0199")])
    ids += world.env.seed_n(4)
    lead_json = {"attributes": {"type": "Lead"}, "LastName": "Vance", "Company": "VR"}
    [lead] = world.env.seed([lead_json])
    # When the first round runs
    report = world.run()
    # Then each became an organisation contact in the hub, linked, and nothing was pushed
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.hub_created == 6
    assert report.remote_writes == 0
    contact = world.contact_for(ids[0])
    stored = world.env.get(ids[0])
    assert (contact.given_name, contact.title, contact.company) == (
        stored["FirstName"],
        "Einkaufsleiter",
        "Dunder Mifflin",
    )
    assert contact.phone_keys() == ["+1415555" + stored["Phone"][-4:], "+15705550199"]
    assert world.contact_for(lead, "Lead").company == "VR"
    links = world.store.lookup_ids(Link, ORG, "stream", stream_key(ACCOUNT, "Contact"))
    assert len(links) == 5
    link = world.link_of(contact.id)
    assert (link.owner_ref, link.company_ref) == ("admin@example.com", dunder)
    # and the next round writes nothing anywhere (it reads again what was stamped in the
    # minute of the first: the engine sees echoes)
    world.idle()
    world.idle()


def test_an_edit_in_salesforce_reaches_the_hub(world: World) -> None:
    [rid] = world.env.seed_n(1)
    world.run()
    world.env.advance(900)
    # When a user changes the contact in Salesforce
    world.env.edit(rid, Title="Regional Manager", Description="Prefers calls after 4pm")
    world.env.advance(900)
    report = world.run()
    # Then the hub has it, through an incremental read
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    assert spoke.hub_updated == 1
    assert report.remote_writes == 0
    contact = world.contact_for(rid)
    assert (contact.title, contact.notes) == ("Regional Manager", "Prefers calls after 4pm")
    world.idle()


def test_an_edit_in_the_hub_reaches_salesforce(world: World) -> None:
    [rid] = world.env.seed_n(1)
    world.run()
    world.env.advance(900)
    # When a user edits the contact in the hub
    contact = world.contact_for(rid)
    world.hub_write(contact, title="Assistant to the Regional Manager", department="Sales")
    report = world.run()
    # Then Salesforce has it, and only the changed fields were sent
    assert report.spokes[ACCOUNT].updated == 1
    stored = world.env.get(rid)
    assert (stored["Title"], stored["Department"]) == (
        "Assistant to the Regional Manager",
        "Sales",
    )
    # and our own write, read back, is an echo: nothing more happens
    world.idle()
    world.idle()


def test_a_hub_contact_is_created_in_salesforce_once_and_linked_to_its_account(
    world: World,
) -> None:
    [dunder] = world.env.seed([account_json("Dunder Mifflin", "2024-01-01T00:00:00.000+0000")])
    world.hub_create("c-hub-1", "Jan", "Levinson", company="Dunder Mifflin", title="VP")
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    link = world.link_of("c-hub-1")
    stored = world.env.get(link.remote_id)
    assert (stored["FirstName"], stored["AccountId"], stored["Contactsync_Id__c"]) == (
        "Jan",
        dunder,
        "c-hub-1",
    )
    world.idle()
    world.idle()
    assert len(world.env.query("SELECT Id FROM Contact")) == 1


@pytest.mark.parametrize("from_provider", [False, True])
def test_a_delete_in_salesforce(world: World, from_provider: bool) -> None:
    # Given a hub contact synced to Salesforce, and another Salesforce contact
    world.hub_create("c-hub-2", "Holly", "Flax")
    [other] = world.env.seed_n(1)
    world.run()
    world.set_auto_removal(from_provider=from_provider)
    remote_id = world.link_of("c-hub-2").remote_id
    world.env.advance(600)
    # When a user deletes it in Salesforce
    world.env.delete(remote_id)
    world.env.advance(600)
    report = world.run()
    # Then getDeleted reported it, in an incremental read
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    hub = world.store.get(HubContact, ORG, "c-hub-2")
    if from_provider:
        # auto-removal allows it: the hub contact is archived, Salesforce keeps it deleted
        assert spoke.archived == 1
        assert hub.archived
        assert world.store.lookup(Link, ORG, "contact", "c-hub-2") == []
        assert len(world.env.query("SELECT Id FROM Contact")) == 1
    else:
        # not allowed: the contact is created again in Salesforce from the hub
        assert spoke.restored == 1
        assert spoke.created == 1
        assert not hub.archived
        restored = world.link_of("c-hub-2").remote_id
        assert restored != remote_id
        assert world.env.get(restored)["LastName"] == "Flax"
        assert len(world.env.query("SELECT Id FROM Contact")) == 2
    assert world.contact_for(other).archived is False
    world.idle()
    world.idle()


def test_a_hub_archive_deletes_in_salesforce_when_allowed(world: World) -> None:
    world.hub_create("c-hub-3", "Toby", "Flenderson")
    world.run()
    world.set_auto_removal(from_provider=False, to_provider=True)
    remote_id = world.link_of("c-hub-3").remote_id
    world.env.advance(600)
    contact = world.store.get(HubContact, ORG, "c-hub-3")
    world.hub_write(contact, archived=True)
    report = world.run()
    assert report.spokes[ACCOUNT].deleted == 1
    assert world.env.query(f"SELECT Id FROM Contact WHERE Id = '{remote_id}'") == []
    world.idle()


def test_values_salesforce_cannot_hold_are_neither_pushed_forever_nor_lost(world: World) -> None:
    # Given a hub contact with two emails, five phones and two addresses
    phones = [
        PhoneNumber.parse(f"+1 570 555 01{i:02d}", "US", label)
        for i, label in enumerate(["work", "mobile", "work", "home", "fax"])
    ]
    world.hub_create(
        "c-hub-4",
        "Pam",
        "Beesly",
        emails=[
            EmailAddress(address="pam@dundermifflin.com", label="work"),
            EmailAddress(address="pam@home.example", label="home"),
        ],
        phones=phones,
        addresses=[
            PostalAddress(street="1725 Slough Ave", city="Scranton", label="work"),
            PostalAddress(street="12 Elm St", city="Scranton", label="home"),
        ],
    )
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    # Then Salesforce holds what it has room for: one email, four phones, one address
    rid = world.link_of("c-hub-4").remote_id
    stored = world.env.get(rid)
    assert stored["Email"] == "pam@dundermifflin.com"
    assert [stored[n] for n in ("Phone", "MobilePhone", "HomePhone", "OtherPhone")] == [
        "+15705550100",
        "+15705550101",
        "+15705550103",
        "+15705550102",
    ]
    assert stored["MailingStreet"] == "1725 Slough Ave"
    # and the rest is not pushed again and again
    world.idle()
    world.idle()
    # and when a user edits the contact in Salesforce, the hub keeps what Salesforce lacks
    world.env.edit(rid, Title="Office Administrator")
    world.env.advance(900)
    world.run()
    hub = world.store.get(HubContact, ORG, "c-hub-4")
    assert hub.title == "Office Administrator"
    assert hub.email_keys() == ["pam@dundermifflin.com", "pam@home.example"]
    assert len(hub.phones) == 5
    assert len(hub.addresses) == 2
    world.idle()


def test_a_lead_as_the_default_object_takes_salesforces_placeholders(world: World) -> None:
    settings = world.store.get(SyncSettings, ORG, SETTINGS)
    world.store.update(
        settings.model_copy(
            update={"objects": ObjectChoice.BOTH, "default_object": DefaultObject.LEAD}
        )
    )
    # Given a hub contact with no family name and no company, in a department
    world.hub_create("c-hub-5", "Ryan", "", department="Temps")
    report = world.run()
    # Then it became a Lead with Salesforce's required values
    assert report.spokes[ACCOUNT].created == 1
    link = world.link_of("c-hub-5")
    assert link.object_type == "Lead"
    stored = world.env.get(link.remote_id, "Lead")
    assert (stored["LastName"], stored["Company"]) == ("ryan", NOT_PROVIDED)
    # and the hub's own values stay as they were, with nothing pushed again
    world.idle()
    world.idle()
    hub = world.store.get(HubContact, ORG, "c-hub-5")
    assert (hub.family_name, hub.company, hub.department) == ("", "", "Temps")
    # and reconciliation agrees: a Lead has no department to push
    counts = world.service.reconcile()[ACCOUNT]
    assert counts.pop("samples") == {}
    assert counts == {
        "in_step": 1,
        "diverged": 0,
        "unlinked": 0,
        "missing": 0,
        "unpushed": 0,
    }


def test_after_the_deleted_window_passed_a_full_read_reconciles(world: World) -> None:
    # Given two contacts synced, with deletes reaching the hub
    world.set_auto_removal(from_provider=True)
    keep, gone = world.env.seed_n(2)
    world.run()
    # When nobody syncs for 16 days (getDeleted reaches back 15) and one is deleted meanwhile
    world.env.advance(16 * 86_400)
    world.env.delete(gone)
    world.env.advance(900)
    report = world.run()
    # Then the cursor was refused, everything was read again, and the absent one is gone
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.archived == 1
    kept = world.contact_for(keep)
    assert not kept.archived
    assert [c.archived for c in world.contacts() if c.id != kept.id] == [True]
    world.idle()
