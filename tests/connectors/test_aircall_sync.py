"""End to end: the real SyncService with a SQLite hub and the Aircall connector on the Aircall
sandbox (in-process, virtual clock). Initial sync, edits both ways, idle rounds that write
nothing, and deletes found by the periodic reconciliation under both auto-removal settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contactsync.connectors.aircall import STREAM
from contactsync.connectors.aircall.models import representable
from contactsync.connectors.base import ContactFields, Create
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
)
from contactsync.domain.link import stream_key
from contactsync.domain.outbox import OutboxEntry
from contactsync.engine.canonical import snapshot
from contactsync.engine.merge import SpokeView
from contactsync.engine.plan import Plan, plan
from contactsync.store.base import Write
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from tests.connectors.test_aircall import Env, contact_json, e164, make_env, phone
from tests.factories import T0

ORG = "org-a"
ACCOUNT = "acc-ac"


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

    def contacts(self) -> list[HubContact]:
        return list(self.store.scan(HubContact, ORG))

    def link_of(self, contact_id: str) -> Link:
        [link] = self.store.lookup(Link, ORG, "contact", contact_id)
        return link

    def contact_for(self, remote_id: str) -> HubContact:
        link = self.store.get(Link, ORG, Link.key(ACCOUNT, STREAM, remote_id))
        return self.store.get(HubContact, ORG, link.contact_id)

    def hub_write(self, contact: HubContact, **changes: object) -> HubContact:
        """What the management API does for a user's edit: the contact with provenance, and
        an outbox entry, in one transaction."""
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

    def hub_create(self, contact_id: str, given: str, family: str, number: str) -> HubContact:
        now = self.env.clock.now()
        contact = HubContact(
            org_id=ORG,
            id=contact_id,
            given_name=given,
            family_name=family,
            phones=[PhoneNumber.parse(number, "US", "mobile")],
            emails=[EmailAddress(address=f"{given.lower()}@dundermifflin.com", label="work")],
            provenance={
                name: FieldProvenance(source="user:u-1", source_ts=now, hub_version=1)
                for name in ("given_name", "family_name", "phones", "emails")
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
        settings = self.store.get(SyncSettings, ORG, "sync-ac")
        self.store.update(
            settings.model_copy(update={"auto_removal": AutoRemoval(from_provider=from_provider)})
        )


def _idle(world: World) -> None:
    report = world.run()
    assert report.remote_writes == 0, report.to_json()
    assert report.hub_writes == 0, report.to_json()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = make_env()
    store = SQLiteStore(tmp_path / "hub.db")
    now = env.clock.now()
    store.create(Organisation(org_id=ORG, id=ORG, name="Dunder Mifflin", created_at=now))
    store.create(User(org_id=ORG, id="u-1", email=EmailAddress(address="admin@dundermifflin.com")))
    store.create(
        ConnectedAccount(
            org_id=ORG,
            id=ACCOUNT,
            provider=Provider.AIRCALL,
            owner_user_id="u-1",
            address="dundermifflin@aircall.example",
            config={"api_base": env.api},
            secret_ref="local:aircall",
        )
    )
    store.create(SyncSettings(org_id=ORG, id="sync-ac", account_id=ACCOUNT))
    service = SyncService(store, ORG, connectors=lambda _: env.connector, now=env.clock.now)
    yield World(env, store, service)
    store.close()


def test_initial_sync_then_an_idle_round(world: World) -> None:
    # Given five contacts in Aircall
    ids = world.env.seed([contact_json() for _ in range(5)])
    # When the first round runs
    report = world.run()
    # Then each became an organisation contact in the hub, linked, and nothing was pushed back
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    assert spoke.hub_created == 5
    assert report.remote_writes == 0
    assert len(world.contacts()) == 5
    contact = world.contact_for(ids[0])
    stored = world.env.contact(ids[0])
    assert contact.given_name == stored["first_name"]
    assert contact.notes == "Met at SaaStr"
    assert contact.phone_keys() == [e164(stored["phone_numbers"][0]["value"])]
    assert len(world.store.lookup_ids(Link, ORG, "stream", stream_key(ACCOUNT, STREAM))) == 5
    # and the next round writes nothing anywhere
    world.env.advance(900)
    _idle(world)


def test_an_edit_in_aircall_reaches_the_hub(world: World) -> None:
    [cid] = world.env.seed([contact_json()])
    world.run()
    world.env.advance(60)
    # When a user changes the contact in Aircall
    world.env.edit(cid, information="Prefers calls after 4pm", company_name="Vance Refrigeration")
    world.env.advance(900)
    report = world.run()
    # Then the hub has it, through an incremental read
    spoke = report.spokes[ACCOUNT]
    assert not spoke.full_scan
    assert spoke.hub_updated == 1
    assert report.remote_writes == 0
    contact = world.contact_for(cid)
    assert (contact.notes, contact.company) == ("Prefers calls after 4pm", "Vance Refrigeration")
    world.env.advance(900)
    _idle(world)


def test_an_edit_in_the_hub_reaches_aircall(world: World) -> None:
    first = phone()
    [cid] = world.env.seed([contact_json(phone_numbers=[{"label": "Work", "value": first}])])
    world.run()
    world.env.advance(60)
    # When a user edits the contact in the hub: new notes, a second phone, another email
    contact = world.contact_for(cid)
    second = phone()
    world.hub_write(
        contact,
        notes="Key account",
        phones=[*contact.phones, PhoneNumber.parse(second, "US", "mobile")],
        emails=[EmailAddress(address="new.address@mueller-soehne.de", label="work")],
    )
    report = world.run()
    # Then Aircall has it: the text by update, the details through their sub-resources
    assert report.spokes[ACCOUNT].updated == 1
    stored = world.env.contact(cid)
    assert stored["information"] == "Key account"
    # (the first number kept as the user typed it: only the new one was added)
    assert [p["value"] for p in stored["phone_numbers"]] == [first, e164(second)]
    assert [e["value"] for e in stored["emails"]] == ["new.address@mueller-soehne.de"]
    # and our own write, read back, is an echo: nothing more happens
    world.env.advance(900)
    _idle(world)


def test_a_hub_contact_is_created_in_aircall_once(world: World) -> None:
    number = phone()
    world.hub_create("c-hub-1", "Jan", "Levinson", number)
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    link = world.link_of("c-hub-1")
    assert world.env.contact(link.remote_id)["first_name"] == "Jan"
    world.env.advance(900)
    _idle(world)
    assert world.env.count() == 1


@pytest.mark.parametrize("found_by", ["count", "reconciliation"])
@pytest.mark.parametrize("from_provider", [False, True])
def test_a_delete_in_aircall_reaches_the_hub(
    world: World, from_provider: bool, found_by: str
) -> None:
    # Given a hub contact synced to Aircall, and another Aircall contact
    number = phone()
    world.hub_create("c-hub-2", "Holly", "Flax", number)
    [other] = world.env.seed([contact_json()])
    world.run()
    world.set_auto_removal(from_provider)
    if found_by == "reconciliation":
        world.env.rebuild(delete_rescan_minutes="")  # only the daily full scan finds deletes
    remote_id = world.link_of("c-hub-2").remote_id
    world.env.advance(600)
    world.run()  # the created contact is read back (and counted)
    world.env.advance(600)
    # When a user deletes it in Aircall (no tombstone: an incremental read cannot see it)
    world.env.delete(remote_id)
    world.env.advance(600)
    quiet = world.run()  # within the hour after the last full scan: not looked for yet
    assert quiet.spokes[ACCOUNT].archived == quiet.spokes[ACCOUNT].restored == 0
    world.env.advance(3000)
    if found_by == "reconciliation":
        quiet = world.run()
        assert quiet.spokes[ACCOUNT].archived == quiet.spokes[ACCOUNT].restored == 0
        world.env.advance(timedelta(hours=24).total_seconds())
    report = world.run()
    # Then a full scan ran and found it gone
    spoke = report.spokes[ACCOUNT]
    assert spoke.full_scan
    hub = world.store.get(HubContact, ORG, "c-hub-2")
    if from_provider:
        # auto-removal allows it: the hub contact is archived, Aircall keeps it deleted
        assert spoke.archived == 1
        assert hub.archived
        assert world.env.count() == 1
        assert world.store.lookup(Link, ORG, "contact", "c-hub-2") == []
    else:
        # not allowed: the contact is restored in Aircall from the hub
        assert spoke.restored == 1
        assert spoke.created == 1
        assert not hub.archived
        restored = world.link_of("c-hub-2").remote_id
        assert restored != remote_id
        assert world.env.contact(restored)["phone_numbers"][0]["value"] == e164(number)
        assert world.env.count() == 2
    assert world.contact_for(other).archived is False
    world.env.advance(900)
    _idle(world)


def test_a_twin_created_in_aircall_meanwhile_is_linked_and_merged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a hub contact about to be pushed, and a user who creates the same person in
    # Aircall (with a second number) between our pull and our push
    number, extra = phone(), phone()
    world.hub_create("c-hub-3", "Jim", "Halpert", number)
    world.env.advance(30)
    connector = world.env.connector
    apply = connector.apply

    def user_races_us(stream: str, mutations: Any) -> Any:
        world.env.seed(
            [
                contact_json(
                    first_name="Jim",
                    last_name="Halpert",
                    phone_numbers=[
                        {"label": "Work", "value": number},
                        {"label": "Home", "value": extra},
                    ],
                    information="from the dashboard",
                )
            ]
        )
        monkeypatch.setattr(connector, "apply", apply)
        return apply(stream, mutations)

    monkeypatch.setattr(connector, "apply", user_races_us)
    # When the round pushes the create
    report = world.run()
    # Then the user's contact is linked, not duplicated
    assert report.spokes[ACCOUNT].created == 1
    assert world.env.count() == 1
    # and on the next round its own values merge into the hub (it is the newer source)
    world.env.advance(900)
    world.run()
    hub = world.store.get(HubContact, ORG, "c-hub-3")
    assert hub.phone_keys() == [e164(number), e164(extra)]
    assert hub.notes == "from the dashboard"
    assert world.env.count() == 1
    world.env.advance(900)
    _idle(world)


def test_a_number_aircall_cannot_hold_is_neither_pushed_forever_nor_lost(world: World) -> None:
    # Given a hub contact with a valid number and one without an international form (an
    # extension typed in a CRM), which Aircall refuses to store
    number = phone()
    world.hub_create("c-hub-5", "Toby", "Flenderson", number)
    contact = world.store.get(HubContact, ORG, "c-hub-5")
    odd = PhoneNumber.lenient("555-0100 ext 7", "US", "work")
    assert odd.e164 is None
    world.hub_write(contact, phones=[*contact.phones, odd])
    report = world.run()
    assert report.spokes[ACCOUNT].created == 1
    remote_id = world.link_of("c-hub-5").remote_id
    assert [p["value"] for p in world.env.contact(remote_id)["phone_numbers"]] == [e164(number)]
    # Then the next rounds do not try to push it again and again
    world.env.advance(900)
    _idle(world)
    # and when a user later edits the contact in Aircall, the hub keeps the number
    world.env.advance(900)
    world.env.edit(remote_id, information="HR")
    world.env.advance(900)
    world.run()
    hub = world.store.get(HubContact, ORG, "c-hub-5")
    assert hub.notes == "HR"
    assert [p.raw for p in hub.phones] == [number, "555-0100 ext 7"]
    # and again at the next edit (the pushes in between left the link's view of Aircall true)
    world.env.advance(900)
    world.env.edit(remote_id, information="HR, annex")
    world.env.advance(900)
    report = world.run()
    hub = world.store.get(HubContact, ORG, "c-hub-5")
    assert hub.notes == "HR, annex"
    assert [p.raw for p in hub.phones] == [number, "555-0100 ext 7"]
    assert report.remote_writes == 0
    # and reconciliation does not count it as a change waiting to be pushed
    counts = world.service.reconcile()[ACCOUNT]
    assert counts["unpushed"] == 0
    assert counts["in_step"] == 1


def test_plan_for_aircall_leaves_out_numbers_it_cannot_hold() -> None:
    # Given a hub contact with a valid number and an extension-only one
    valid = PhoneNumber.parse("+1 212 555 0142", "US")
    odd = PhoneNumber.lenient("555-0100 ext 7", "US")
    contact = HubContact(
        org_id=ORG,
        id="c-plan",
        given_name="Toby",
        phones=[valid, odd],
        provenance={"given_name": FieldProvenance(source="user:u-1", source_ts=T0, hub_version=1)},
    )
    view = SpokeView(
        account_id=ACCOUNT,
        provider=Provider.AIRCALL,
        owner_user_id="u-1",
        pull_fields=frozenset({"given_name", "phones"}),
        push_fields=frozenset({"given_name", "phones"}),
        fit=representable,
    )
    # When a create is planned, then only the number Aircall can hold is sent
    created = plan(contact, [], view, {ACCOUNT: view}).mutation
    assert isinstance(created, Create)
    assert created.fields.phones == (valid,)
    # When the record holds just that number, then the contact is in step
    link = Link(
        org_id=ORG,
        id=Link.key(ACCOUNT, STREAM, "1000001"),
        contact_id="c-plan",
        account_id=ACCOUNT,
        object_type=STREAM,
        remote_id="1000001",
        snapshot=snapshot(ContactFields(given_name="Toby", phones=(valid,))),
    )
    assert plan(contact, [link], view, {ACCOUNT: view}) == Plan(None, "in step")
