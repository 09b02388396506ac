"""The push fan-out under moto: outbox entries written with hub changes reach, through the
table's stream (filtered as the event source mapping filters it), the push queue of every spoke
whose sync runs, pushes and may hold the contact."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contactsync.api.aws import SecretsManagerStore
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.contact import FieldProvenance, HubContact, PhoneNumber
from contactsync.domain.link import Link
from contactsync.domain.outbox import OutboxEntry
from contactsync.domain.sync import Direction, Scope, ScopeKind, SyncState, SyncStatus
from contactsync.runtime.aws import group_id
from contactsync.runtime.fanout import PushMessage
from contactsync.store.base import Write
from functions.fanout import app
from tests.runtime.cloud import FakeContext, filtered, stream_records
from tests.runtime.harness import TABLE, World

NOW = datetime(2024, 11, 23, 12, 0, tzinfo=UTC)


def hub_edit(world: World, contact_id: str, given: str) -> HubContact:
    """What the gallery does for a person's edit: the contact and its outbox entry together."""
    current = world.store.find(HubContact, world.org_id, contact_id)
    version = current.version if current else 0
    contact = HubContact(
        org_id=world.org_id,
        id=contact_id,
        version=version,
        given_name=given,
        family_name="Beesly",
        phones=[PhoneNumber.parse("+1 212 555 0199", "US", "work")],
        provenance={"given_name": FieldProvenance(source="user:u-1", source_ts=NOW, hub_version=1)},
        created_at=NOW,
        updated_at=NOW,
    )
    world.store.transact(
        [
            Write(contact, expected_version=version),
            Write(OutboxEntry.entry(world.org_id, contact_id, version + 1, "user:u-1", NOW)),
        ]
    )
    return world.store.get(HubContact, world.org_id, contact_id)


def connect(world: World, provider: Provider, address: str, **changes: object) -> ConnectedAccount:
    assert world.admin is not None
    account, sync = Setup(world.store, SecretsManagerStore(world.secrets.client)).connect(
        world.org_id, world.admin, provider, address, {}, {"refresh_token": "x"}
    )
    if changes:
        world.store.update(sync.model_copy(update=changes))
    return account


def relay(world: World, since: int = 0) -> dict[str, object]:
    records = filtered("FanOutStreamMapping", stream_records(TABLE, since))
    return dict(app.handler({"Records": records}, FakeContext()))


def pushes(world: World, provider: str) -> list[PushMessage]:
    return [
        PushMessage.model_validate_json(m["Body"]) for m in world.messages(f"{provider}PushQueue")
    ]


def test_a_hub_change_reaches_every_spoke_that_may_take_it(world: World) -> None:
    # Given an Aircall account (running), a Salesforce account that only feeds the hub, a paused
    # Google account, and an Outlook mailbox syncing only the contacts its user marked
    aircall, _ = world.connect_aircall()
    connect(world, Provider.SALESFORCE, "admin@dm.example", direction=Direction.TO_HUB)
    connect(
        world,
        Provider.GOOGLE,
        "pam@dm.example",
        status=SyncStatus(state=SyncState.PAUSED),
    )
    outlook = connect(
        world, Provider.MICROSOFT, "jim@dm.example", scope=Scope(kind=ScopeKind.MARKED)
    )
    since = len(stream_records(TABLE))
    # When a person edits a contact in the hub
    hub_edit(world, "c-pam", "Pam")
    assert relay(world, since) == {"batchItemFailures": []}
    # Then the Aircall push queue has one message for it, in the account's group
    [message] = pushes(world, "Aircall")
    assert (message.account_id, message.contact_id, message.hub_version) == (
        aircall.id,
        "c-pam",
        1,
    )
    # and no other spoke was asked: Salesforce does not take pushes, Google is paused, and the
    # mailbox takes only marked contacts (this one is not linked to it)
    for provider in ("Salesforce", "Google", "Microsoft"):
        assert pushes(world, provider) == []
    # and the relayed outbox entry is gone
    assert world.store.find(OutboxEntry, world.org_id, "c-pam") is None
    # When the contact is linked to the mailbox and edited again, the mailbox gets it too
    world.store.create(
        Link(
            org_id=world.org_id,
            id=Link.key(outlook.id, "contact", "AAMk1"),
            contact_id="c-pam",
            account_id=outlook.id,
            object_type="contact",
            remote_id="AAMk1",
        )
    )
    since = len(stream_records(TABLE))
    hub_edit(world, "c-pam", "Pamela")
    relay(world, since)
    assert [m.account_id for m in pushes(world, "Microsoft")] == [outlook.id]
    assert [m.hub_version for m in pushes(world, "Aircall")] == [2]


def test_the_mapping_passes_only_entity_writes_and_replays_change_nothing(world: World) -> None:
    world.connect_aircall()
    since = len(stream_records(TABLE))
    hub_edit(world, "c-1", "Kevin")
    records = stream_records(TABLE, since)
    passed = filtered("FanOutStreamMapping", records)
    # Index items (the contact's phone and name index entries) never reach the function
    assert len(passed) < len(records)
    assert all(r["dynamodb"]["Keys"]["SK"]["S"] == "E" for r in passed)
    assert {r["eventName"] for r in passed} <= {"INSERT", "MODIFY"}
    # When the same batch is delivered twice (at-least-once), one message is queued
    app.handler({"Records": passed}, FakeContext())
    app.handler({"Records": passed}, FakeContext())
    messages = world.messages("AircallPushQueue")
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert messages[0]["Attributes"]["MessageGroupId"] == group_id(world.org_id, body["account_id"])
    # and removing the relayed entry (a REMOVE record) is not relayed again
    assert filtered("FanOutStreamMapping", stream_records(TABLE, since + len(records))) == []
