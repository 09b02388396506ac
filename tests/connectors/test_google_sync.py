"""End to end: the real SyncService with a SQLite hub and the Google connector on the Google
sandbox (in-process, virtual clock, google-auth unpatched). Initial sync, edits both ways, idle
rounds that write nothing, deletes under both auto-removal settings, and the full resync after
an expired sync token that neither duplicates nor resurrects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contactsync.connectors.google import STREAM
from contactsync.domain import (
    AutoRemoval,
    ConnectedAccount,
    EmailAddress,
    FieldProvenance,
    HubContact,
    Link,
    Organisation,
    PhoneNumber,
    Provider,
    SyncSettings,
    User,
    Visibility,
)
from contactsync.domain.link import stream_key
from contactsync.domain.outbox import OutboxEntry
from contactsync.store.base import Write
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from tests.connectors.test_google import WEEK, Env, a_person, make_env

ORG = "org-a"
ACCOUNT = "acc-g"
SYNC = "sync-g"


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
        """A round some minutes later writes nothing anywhere."""
        self.env.advance(600)
        report = self.run()
        assert report.remote_writes == 0, report.to_json()
        assert report.hub_writes == 0, report.to_json()

    def contacts(self) -> list[HubContact]:
        return list(self.store.scan(HubContact, ORG))

    def links(self) -> list[str]:
        return self.store.lookup_ids(Link, ORG, "stream", stream_key(ACCOUNT, STREAM))

    def link_of(self, contact_id: str) -> Link:
        [link] = self.store.lookup(Link, ORG, "contact", contact_id)
        return link

    def contact_for(self, remote_id: str) -> HubContact:
        link = self.store.get(Link, ORG, Link.key(ACCOUNT, STREAM, remote_id))
        return self.store.get(HubContact, ORG, link.contact_id)

    def hub_write(self, contact: HubContact, **changes: Any) -> HubContact:
        """What the management API does for a user's edit: the contact with provenance, and an
        outbox entry, in one transaction."""
        now = self.env.clock.now()
        provenance = dict(contact.provenance)
        for name in changes:
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

    def hub_create(self, contact_id: str, given: str, family: str) -> HubContact:
        """An organisation contact a user adds in the hub (a business contact)."""
        now = self.env.clock.now()
        contact = HubContact(
            org_id=ORG,
            id=contact_id,
            given_name=given,
            family_name=family,
            emails=[EmailAddress(address=f"{given.lower()}@dundermifflin.com", label="work")],
            phones=[PhoneNumber.parse("+1 570 555 0100", "US", "work")],
            company="Dunder Mifflin",
            title="Sales",
            provenance={
                name: FieldProvenance(source="user:u-1", source_ts=now, hub_version=1)
                for name in ("given_name", "family_name", "emails", "phones", "company", "title")
            },
            created_at=now,
            updated_at=now,
        )
        self.store.transact(
            [
                Write(contact, expected_version=0),
                Write(OutboxEntry.entry(ORG, contact_id, 1, "user:u-1", now)),
            ]
        )
        return self.store.get(HubContact, ORG, contact_id)

    def set_auto_removal(self, from_provider: bool) -> None:
        settings = self.store.get(SyncSettings, ORG, SYNC)
        self.store.update(
            settings.model_copy(update={"auto_removal": AutoRemoval(from_provider=from_provider)})
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = make_env()
    store = SQLiteStore(tmp_path / "hub.db")
    now = env.clock.now()
    client = env.app.client_config()
    store.create(Organisation(org_id=ORG, id=ORG, name="Dunder Mifflin", created_at=now))
    store.create(User(org_id=ORG, id="u-1", email=EmailAddress(address="rep@example.com")))
    store.create(
        ConnectedAccount(
            org_id=ORG,
            id=ACCOUNT,
            provider=Provider.GOOGLE,
            owner_user_id="u-1",
            address="rep@example.com",
            config={"api_base": client["api_base"], "token_uri": client["token_uri"]},
            secret_ref="local:google",
        )
    )
    store.create(SyncSettings(org_id=ORG, id=SYNC, account_id=ACCOUNT))
    service = SyncService(store, ORG, connectors=lambda _: env.connector, now=env.clock.now)
    yield World(env, store, service)
    store.close()


def test_initial_sync_then_an_idle_round(world: World) -> None:
    # Given three Google contacts, two of them in the "Salesforce" label
    label = world.env.create_label()
    names = world.env.seed([a_person() for _ in range(3)])
    world.env.add_to(label, *names[:2])
    # When the first round runs
    report = world.run()
    # Then each is in the hub and linked; the labelled ones are organisation contacts, the
    # other stays its owner's (seed 000: sharing is off by default); nothing went back
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.hub_created == 3
    assert report.remote_writes == 0
    assert len(world.links()) == 3
    marked = world.contact_for(names[0])
    stored = world.env.person(names[0])
    assert marked.given_name == stored["names"][0]["givenName"]
    assert marked.company == "Vance Refrigeration"
    assert marked.phone_keys() == [stored["phoneNumbers"][0]["canonicalForm"]]
    assert marked.visibility is Visibility.ORGANISATION
    assert world.contact_for(names[2]).visibility is Visibility.PERSONAL
    assert world.link_of(marked.id).marked is True
    # and the next round writes nothing anywhere
    world.idle()


def test_an_edit_in_google_reaches_the_hub(world: World) -> None:
    [name] = world.env.seed([a_person()])
    world.run()
    world.env.advance(60)
    # When the user changes the job title and adds notes in Google
    organizations = world.env.person(name)["organizations"]
    world.env.edit(
        name,
        organizations=[{**organizations[0], "title": "Regional Manager"}],
        biographies=[{"value": "Prefers calls after 4pm"}],
    )
    world.env.advance(60)
    report = world.run()
    # Then the hub has it, through an incremental read
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    assert spoke.hub_updated == 1
    assert report.remote_writes == 0
    contact = world.contact_for(name)
    assert (contact.title, contact.notes) == ("Regional Manager", "Prefers calls after 4pm")
    world.idle()


def test_an_edit_in_the_hub_reaches_google(world: World) -> None:
    [name] = world.env.seed([a_person()])
    world.run()
    world.env.advance(60)
    # When a user edits the contact in the hub: another title, a second phone
    contact = world.contact_for(name)
    world.hub_write(
        contact,
        title="VP Sales",
        phones=[*contact.phones, PhoneNumber.parse("+44 20 7946 0958", "GB", "work")],
    )
    report = world.run()
    # Then Google has it, and what Google held beyond our fields is kept
    assert report.spokes[ACCOUNT].updated == 1
    stored = world.env.person(name)
    assert stored["organizations"][0]["title"] == "VP Sales"
    assert stored["organizations"][0]["name"] == "Vance Refrigeration"
    assert [p["canonicalForm"] for p in stored["phoneNumbers"]] == [
        contact.phones[0].e164,
        "+442079460958",
    ]
    # and our own write, read back a few seconds later, is an echo: nothing more happens
    world.idle()
    assert world.contact_for(name).title == "VP Sales"


def test_a_hub_contact_is_created_in_google_once(world: World) -> None:
    # Given a business contact added in the hub
    world.hub_create("c-hub-1", "Jan", "Levinson")
    # When the round runs
    report = world.run()
    # Then it is in Google, in the sync label, stamped with the hub id
    assert report.spokes[ACCOUNT].created == 1
    link = world.link_of("c-hub-1")
    assert link.marked
    stored = world.env.person(link.remote_id)
    assert stored["names"][0]["givenName"] == "Jan"
    assert stored["clientData"][0]["value"] == "c-hub-1"
    label = world.env.connector.api.find_group("Salesforce")
    assert label in [
        m["contactGroupMembership"]["contactGroupResourceName"] for m in stored["memberships"]
    ]
    # and it comes back as an echo, never as a second contact
    world.idle()
    world.idle()
    assert world.env.count() == 1
    assert len(world.contacts()) == 1


def test_a_lost_create_answer_is_linked_not_repeated(world: World) -> None:
    # Given Google commits our create but the answer is lost
    world.hub_create("c-hub-lost", "Holly", "Flax")
    world.env.faults(
        {"kind": "drop_after_commit", "path": "/v1/people:batchCreateContacts", "times": 1}
    )
    report = world.run()
    assert report.spokes[ACCOUNT].failed == 1
    # When the next rounds run
    world.env.advance(600)
    world.run()
    world.idle()
    # Then the person that was made is linked (by the hub id it carries), and there is one
    assert world.env.count() == 1
    assert len(world.contacts()) == 1
    link = world.link_of("c-hub-lost")
    assert not link.pending_create
    assert world.env.person(link.remote_id)["clientData"][0]["value"] == "c-hub-lost"


@pytest.mark.parametrize("from_provider", [False, True])
def test_a_delete_in_google(world: World, from_provider: bool) -> None:
    # Given a business contact synced to Google, and another Google contact
    world.hub_create("c-hub-2", "Holly", "Flax")
    [other] = world.env.seed([a_person()])
    world.run()
    world.set_auto_removal(from_provider)
    remote_id = world.link_of("c-hub-2").remote_id
    world.env.advance(600)
    # When the user deletes it in Google
    world.env.delete(remote_id)
    world.env.advance(600)
    report = world.run()
    # Then (an incremental read reports the delete)
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    hub = world.store.get(HubContact, ORG, "c-hub-2")
    if from_provider:
        # auto-removal allows it: the hub contact is archived, Google keeps it deleted
        assert spoke.archived == 1
        assert hub.archived
        assert world.env.count() == 1
    else:
        # not allowed: the contact is restored in Google from the hub, as a new person
        assert spoke.restored == 1
        assert not hub.archived
        assert spoke.created == 1
        restored = world.link_of("c-hub-2").remote_id
        assert restored != remote_id
        assert world.env.person(restored)["names"][0]["givenName"] == "Holly"
        assert world.env.count() == 2
    assert world.contact_for(other).given_name.startswith("Zoë")
    world.idle()


def test_an_expired_sync_token_resyncs_without_duplicates_or_resurrections(
    world: World,
) -> None:
    # Given five synced Google contacts, deletes from Google allowed to archive
    names = world.env.seed([a_person() for _ in range(5)])
    world.run()
    world.set_auto_removal(True)
    contacts_before = {c.id for c in world.contacts()}
    # When one is deleted in Google and the sync token then expires (eight days later)
    world.env.advance(3600)
    world.env.delete(names[0])
    world.env.advance(WEEK + 86_400)
    report = world.run()
    # Then the round read everything again and reconciled by absence
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.archived == 1
    assert spoke.hub_created == 0
    assert report.remote_writes == 0
    assert {c.id for c in world.contacts()} == contacts_before  # no duplicates
    assert world.env.count() == 4  # nothing resurrected in Google
    assert len(world.links()) == 4
    world.idle()


def test_quota_throttling_during_a_round_is_waited_out(world: World) -> None:
    # Given Google's quotas on, with little room, and thirty contacts read in pages of five
    world.env.rebuild(page_size="5")
    world.env.seed([a_person() for _ in range(30)])
    world.env.quotas(enabled=True, critical_read_requests=3)
    # When the round runs
    report = world.run()
    # Then everything arrived; the connector waited on the clock instead of failing
    assert report.spokes[ACCOUNT].hub_created == 30
    assert world.env.connector.stats.throttled >= 1
