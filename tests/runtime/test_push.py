"""A provider's push function under moto: hub contacts from its FIFO push queue written to the
spoke (the Aircall sandbox), with per-item outcomes deciding what SQS delivers again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contactsync.connectors.aircall import STREAM
from contactsync.domain.contact import ContactField, FieldProvenance, HubContact, PhoneNumber
from contactsync.domain.link import Link
from contactsync.domain.sync import SyncSettings
from contactsync.runtime.aws import dedupe_id, group_id
from contactsync.runtime.fanout import PushMessage
from contactsync.sync.ingest import contact_id_for
from functions.push import app
from tests.runtime.cloud import FakeContext
from tests.runtime.harness import World, sqs_event

NOW = datetime(2024, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def aircall_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER", "aircall")


def hub_contact(world: World, contact_id: str, given: str, number: str) -> HubContact:
    """An organisation contact created in the hub by a person (a business contact)."""
    fields: tuple[ContactField, ...] = ("given_name", "family_name", "phones")
    return world.store.create(
        HubContact(
            org_id=world.org_id,
            id=contact_id,
            given_name=given,
            family_name="Schrute",
            phones=[PhoneNumber.parse(number, "US", "work")],
            provenance={
                f: FieldProvenance(source="user:u-1", source_ts=NOW, hub_version=1) for f in fields
            },
            created_at=NOW,
            updated_at=NOW,
        )
    )


def queue_push(world: World, account_id: str, contact_id: str, version: int = 1) -> None:
    message = PushMessage(
        org_id=world.org_id, account_id=account_id, contact_id=contact_id, hub_version=version
    )
    world.sqs.send_message(
        QueueUrl=world.queues["AircallPushQueue"],
        MessageBody=message.model_dump_json(),
        MessageGroupId=group_id(world.org_id, account_id),
        MessageDeduplicationId=dedupe_id(account_id, contact_id, str(version)),
    )


def run_pushes(world: World) -> tuple[dict[str, object], list[str]]:
    messages = world.messages("AircallPushQueue")
    event = sqs_event(messages, world.queue_arn("AircallPushQueue"))
    return dict(app.handler(event, FakeContext(timeout_seconds=120))), [
        m["MessageId"] for m in messages
    ]


def remote_contacts(world: World) -> list[dict[str, object]]:
    return list(world.aircall.call("GET", "/contacts?per_page=50")["contacts"])


def test_hub_contacts_are_created_in_the_spoke_once(world: World) -> None:
    account, sync = world.connect_aircall()
    hub_contact(world, "c-dwight", "Dwight", "+1 570 555 0101")
    hub_contact(world, "c-mose", "Mose", "+1 570 555 0102")
    # When the fan-out's messages for both reach the Aircall push function
    queue_push(world, account.id, "c-dwight")
    queue_push(world, account.id, "c-mose")
    response, _ = run_pushes(world)
    # Then both are in Aircall, linked, and the sync counts them
    assert response == {"batchItemFailures": []}
    assert sorted(str(c["first_name"]) for c in remote_contacts(world)) == ["Dwight", "Mose"]
    links = world.store.lookup(Link, world.org_id, "contact", "c-dwight")
    assert [lk.account_id for lk in links] == [account.id]
    assert world.store.get(SyncSettings, world.org_id, sync.id).status.counts.in_sync == 2
    # When the same message is delivered again (at-least-once), nothing more is written
    queue_push(world, account.id, "c-dwight", version=2)
    assert run_pushes(world)[0] == {"batchItemFailures": []}
    assert len(remote_contacts(world)) == 2


def test_a_throttled_push_is_delivered_again_and_then_goes_through(world: World) -> None:
    account, _ = world.connect_aircall()
    hub_contact(world, "c-angela", "Angela", "+1 570 555 0103")
    # Given Aircall answering 429 to every create for now
    world.aircall.app.faults.configure([])
    rules = [{"kind": "throttle", "path": "^/v1/contacts$", "method": "POST", "retry_after": 5}]
    world.aircall.session.post(
        world.aircall.app.client_config()["admin"] + "faults", json={"rules": rules}
    )
    queue_push(world, account.id, "c-angela")
    response, ids = run_pushes(world)
    # Then the message is reported failed (SQS delivers it again) and nothing was created
    assert response == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    assert remote_contacts(world) == []
    # When the limit has passed and the message comes back, the contact is created once
    world.aircall.app.faults.configure([])
    world.aircall.clock.advance(60)
    queue_push(world, account.id, "c-angela", version=2)
    assert run_pushes(world)[0] == {"batchItemFailures": []}
    assert [c["first_name"] for c in remote_contacts(world)] == ["Angela"]


def test_a_refusal_for_good_is_recorded_and_not_retried(world: World) -> None:
    account, sync = world.connect_aircall()
    hub_contact(world, "c-creed", "Creed", "+1 570 555 0104")
    # Given Aircall refusing the contact's data (400)
    rules = [{"kind": "error", "path": "^/v1/contacts$", "method": "POST", "status": 400}]
    world.aircall.session.post(
        world.aircall.app.client_config()["admin"] + "faults", json={"rules": rules}
    )
    queue_push(world, account.id, "c-creed")
    # Then the message is acknowledged and the refusal is in the sync's status
    assert run_pushes(world)[0] == {"batchItemFailures": []}
    status = world.store.get(SyncSettings, world.org_id, sync.id).status
    assert [e.contact_id for e in status.record_errors] == ["c-creed"]
    assert status.counts.failing == 1


def test_messages_of_another_providers_account_are_dropped(world: World) -> None:
    account, _ = world.connect_aircall()
    hub_contact(world, "c-oscar", "Oscar", "+1 570 555 0105")
    queue_push(world, account.id, "c-oscar")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVIDER", "salesforce")
        assert run_pushes(world)[0] == {"batchItemFailures": []}
    assert remote_contacts(world) == []


def test_an_unreadable_message_goes_to_the_dead_letter_queue(world: World) -> None:
    world.connect_aircall()
    world.sqs.send_message(
        QueueUrl=world.queues["AircallPushQueue"],
        MessageBody='{"not": "a push"}',
        MessageGroupId="g",
        MessageDeduplicationId="d",
    )
    response, ids = run_pushes(world)
    assert response == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}


def test_a_contact_pulled_from_the_spoke_is_not_pushed_back(world: World) -> None:
    # Given an Aircall contact already in the hub through a pull (linked, in step)
    world.aircall.add("Kelly")
    account, _ = world.connect_aircall()
    from functions.pull import app as pull_app
    from tests.runtime.test_pull import run_pulls, schedule_fires

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVIDER", "aircall")
        schedule_fires(world, account.id)
        run_pulls(world)
    [remote] = remote_contacts(world)
    contact_id = contact_id_for(account.id, STREAM, str(remote["id"]))
    # When the fan-out's message for it (the source spoke gets its own changes) is pushed
    queue_push(world, account.id, contact_id)
    assert run_pushes(world)[0] == {"batchItemFailures": []}
    # Then Aircall was not written to: the plan found it in step
    assert len(remote_contacts(world)) == 1
    assert pull_app is not None
