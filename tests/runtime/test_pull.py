"""The pull side under moto: a provider's pull function on its FIFO due-pull queue (what a
schedule or the router puts there), and the router from the webhooks' pull queue."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contactsync.api.queue import PullAction, PullInbox, PullRequest, QueuedPull, SqsPullQueue
from contactsync.domain.accounts import Provider
from contactsync.domain.activity import Activity
from contactsync.domain.contact import HubContact
from contactsync.domain.cursor import Cursor
from contactsync.domain.link import Link, stream_key
from contactsync.domain.sync import SyncSettings, SyncState
from contactsync.runtime.aws import dedupe_id, group_id
from contactsync.runtime.bulk_state import BulkSync
from functions.pull import app
from tests.runtime.cloud import FakeContext
from tests.runtime.harness import World, sqs_event


def schedule_fires(world: World, account_id: str, at: str = "2024-11-23T12:00:00Z") -> None:
    """What the sync's EventBridge Scheduler schedule sends (schedules.py builds the body)."""
    body = {
        "org_id": world.org_id,
        "account_id": account_id,
        "action": "pull",
        "reason": "schedule",
        "requested_at": at,
    }
    world.sqs.send_message(
        QueueUrl=world.queues["AircallPullQueue"],
        MessageBody=json.dumps(body),
        MessageGroupId=group_id(world.org_id, account_id),
    )


def webhook_asks(world: World, account_id: str) -> None:
    """What the router forwards for a webhook's pull (no schedule: no upkeep, no capture)."""
    body = {"org_id": world.org_id, "account_id": account_id, "reason": "aircall"}
    world.sqs.send_message(
        QueueUrl=world.queues["AircallPullQueue"],
        MessageBody=json.dumps(body),
        MessageGroupId=group_id(world.org_id, account_id),
    )


def run_pulls(world: World, context: FakeContext | None = None) -> dict[str, object]:
    messages = world.messages("AircallPullQueue")
    event = sqs_event(messages, world.queue_arn("AircallPullQueue"))
    return dict(app.handler(event, context or FakeContext(timeout_seconds=300)))


def linked(world: World) -> int:
    assert world.account is not None
    key = stream_key(world.account.id, "contact")
    return len(world.store.lookup_ids(Link, world.org_id, "stream", key))


def status(world: World) -> SyncSettings:
    assert world.sync is not None
    return world.store.get(SyncSettings, world.org_id, world.sync.id)


@pytest.fixture(autouse=True)
def aircall_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER", "aircall")


def test_a_scheduled_pull_brings_the_accounts_contacts_into_the_hub(world: World) -> None:
    # Given an Aircall company with 12 contacts, connected, never synced
    world.aircall.seed(12)
    account, _ = world.connect_aircall()
    # When its schedule fires and the Aircall pull function takes the request
    schedule_fires(world, account.id)
    response = run_pulls(world)
    # Then every contact is in the hub, linked, and the sync is active with its count
    assert response == {"batchItemFailures": []}
    assert linked(world) == 12
    assert len(list(world.store.scan(HubContact, world.org_id))) == 12
    settings = status(world)
    assert settings.status.state is SyncState.ACTIVE
    assert settings.status.counts.in_sync == 12
    assert settings.status.last_run_at is not None
    assert world.store.load_cursor(world.org_id, account.id, "contact") is not None


def test_the_next_pull_reads_only_what_changed_and_keeps_the_count(world: World) -> None:
    world.aircall.seed(12)
    account, _ = world.connect_aircall()
    schedule_fires(world, account.id)
    run_pulls(world)
    world.aircall.clock.advance(900)
    # When one contact is edited in Aircall and two are created, then the schedule fires again
    [contact_id] = world.aircall.call("GET", "/contacts?per_page=1")["contacts"][0:1]
    world.aircall.call("POST", f"/contacts/{contact_id['id']}", information="Prefers mornings")
    world.aircall.add("Jim", "Pam")
    world.aircall.clock.advance(60)
    schedule_fires(world, account.id, at="2024-11-23T12:15:00Z")
    assert run_pulls(world) == {"batchItemFailures": []}
    # Then the hub has the edit and the new contacts, and the count followed without a recount
    assert linked(world) == 14
    assert status(world).status.counts.in_sync == 14


def test_a_scheduled_pull_also_captures_activity_and_a_webhooks_pull_does_not(
    world: World,
) -> None:
    # Given an Aircall company with contacts and calls with them (and with strangers)
    world.aircall.seed(12)
    world.aircall.app.seed({"count": 0, "calls": 15, "seed": 4, "call_spread_days": 20})
    account, _ = world.connect_aircall()
    calls = world.aircall.call("GET", "/calls?per_page=50&fetch_contact=true")["calls"]
    with_contacts = {str(c["id"]) for c in calls if c.get("contact")}
    assert 0 < len(with_contacts) < len(calls)
    # When a webhook's pull runs first: contacts only
    webhook_asks(world, account.id)
    assert run_pulls(world) == {"batchItemFailures": []}
    assert linked(world) == 12
    assert list(world.store.scan(Activity, world.org_id)) == []
    # When the schedule fires: the calls with gallery contacts are captured, nothing else
    schedule_fires(world, account.id)
    assert run_pulls(world) == {"batchItemFailures": []}
    captured = {a.remote_id for a in world.store.scan(Activity, world.org_id)}
    assert captured == with_contacts
    assert world.store.load_cursor(world.org_id, account.id, "activity.calls") is not None


def test_capture_stops_at_the_deadline_and_the_next_schedule_continues(world: World) -> None:
    world.aircall.seed(12)
    world.aircall.app.seed({"count": 0, "calls": 15, "seed": 4, "call_spread_days": 20})
    account, _ = world.connect_aircall()
    schedule_fires(world, account.id)
    # Time for the contacts' pull, none left for the capture once they are in
    run_pulls(world, FakeContext(remaining=lambda: 100.0 if linked(world) < 12 else 10.0))
    assert linked(world) == 12
    assert list(world.store.scan(Activity, world.org_id)) == []
    world.aircall.clock.advance(900)
    schedule_fires(world, account.id, at="2024-11-23T12:15:00Z")
    assert run_pulls(world) == {"batchItemFailures": []}
    assert len(list(world.store.scan(Activity, world.org_id))) > 0


def test_a_scheduled_pull_registers_the_webhook_once_and_a_webhooks_pull_does_not(
    world: World,
) -> None:
    # Given an Aircall account whose webhook URL the API wrote, nothing registered yet
    hook = "https://api.contactsync.example/webhooks/aircall/o/a"
    account, _ = world.connect_aircall(webhook_url=hook)
    webhook_asks(world, account.id)
    run_pulls(world)
    assert world.aircall.call("GET", "/webhooks")["webhooks"] == []
    # When the schedule fires, twice
    schedule_fires(world, account.id)
    assert run_pulls(world) == {"batchItemFailures": []}
    world.aircall.clock.advance(900)
    schedule_fires(world, account.id, at="2024-11-23T12:15:00Z")
    assert run_pulls(world) == {"batchItemFailures": []}
    # Then one webhook posts to our URL, and its token is in the account's secret
    [registered] = world.aircall.call("GET", "/webhooks")["webhooks"]
    assert registered["url"] == hook
    assert world.secrets.get(account.secret_ref or "")["webhook_id"] == str(
        registered["webhook_id"]
    )


def test_a_running_bulk_sync_owns_the_account(world: World) -> None:
    world.aircall.seed(5)
    account, sync = world.connect_aircall()
    world.store.create(
        BulkSync(
            org_id=world.org_id,
            id=sync.id,
            sync_id=sync.id,
            account_id=account.id,
            run_id="run-1",
            streams=["contact"],
            shard_ids=[],
            max_concurrency=1,
        )
    )
    # When the schedule fires while the bulk sync runs
    schedule_fires(world, account.id)
    assert run_pulls(world) == {"batchItemFailures": []}
    # Then the pull stood aside: nothing read, nothing written to the status
    assert linked(world) == 0
    assert status(world).status.last_run_at is None


def test_a_request_for_another_providers_account_is_dropped(world: World) -> None:
    world.aircall.seed(3)
    account, _ = world.connect_aircall()
    schedule_fires(world, account.id)

    # When the Google pull function gets the Aircall account's request (a misrouted message)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVIDER", "google")
        response = run_pulls(world)
    # Then it is acknowledged and nothing happens (the Google role could not read the secret)
    assert response == {"batchItemFailures": []}
    assert linked(world) == 0


def test_a_pull_that_finds_the_lease_held_is_retried_alone(world: World) -> None:
    world.aircall.seed(3)
    busy, _ = world.connect_aircall()
    free, _ = world.connect_aircall(address="second@aircall.example")
    # Given another worker holding one account's cursor lease (a pull still running)
    world.store.acquire_lease(
        world.org_id,
        Cursor.make_id(busy.id, "contact"),
        "another-worker",
        timedelta(minutes=10),
        world.aircall.clock.now(),
    )
    schedule_fires(world, busy.id)
    schedule_fires(world, free.id)
    messages = world.messages("AircallPullQueue")
    by_account = {json.loads(m["Body"])["account_id"]: m["MessageId"] for m in messages}
    # When both requests are handled in one batch
    response = app.handler(sqs_event(messages, "arn"), FakeContext())
    # Then only the busy account's message is reported failed (SQS delivers it again after the
    # visibility timeout), and the other account was pulled
    assert response == {"batchItemFailures": [{"itemIdentifier": by_account[busy.id]}]}
    key = stream_key(free.id, "contact")
    assert len(world.store.lookup_ids(Link, world.org_id, "stream", key)) == 3


def test_a_pull_stops_before_the_deadline_and_the_next_one_continues(world: World) -> None:
    # Given 15 contacts (three pages of 5) and an invocation that is nearly out of time
    world.aircall.seed(15)
    account, _ = world.connect_aircall(per_page="5")
    schedule_fires(world, account.id)
    left = iter([100.0, 10.0, 10.0, 10.0])
    run_pulls(world, FakeContext(remaining=lambda: next(left, 10.0)))
    # Then it committed what it read, saved where it stopped and released the lease
    first = linked(world)
    assert 0 < first < 15
    assert world.store.load_cursor(world.org_id, account.id, "contact") is not None
    # When the next pull runs with time to spare, it continues and completes the scan
    world.aircall.clock.advance(60)
    schedule_fires(world, account.id, at="2024-11-23T12:15:00Z")
    assert run_pulls(world) == {"batchItemFailures": []}
    assert linked(world) == 15


def test_the_router_forwards_a_webhooks_request_to_the_providers_queue(world: World) -> None:
    account, _ = world.connect_aircall()
    # Given a webhook's pull request on the webhooks' pull queue (as the API queues it)
    inbox = PullInbox(world.store, SqsPullQueue(world.sqs, world.queues["PullQueue"]))
    inbox.request(world.org_id, account.id, PullAction.PULL, reason="contact.updated")
    messages = world.messages("PullQueue")
    # When the router takes it
    response = app.route(sqs_event(messages, world.queue_arn("PullQueue")), FakeContext())
    # Then the Aircall pull queue has it, in the account's group, with its deduplication id
    assert response == {"batchItemFailures": []}
    [forwarded] = world.messages("AircallPullQueue")
    request = PullRequest.model_validate_json(forwarded["Body"])
    assert (request.account_id, request.reason) == (account.id, "contact.updated")
    attributes = forwarded["Attributes"]
    assert attributes["MessageGroupId"] == group_id(world.org_id, account.id)
    assert (
        attributes["MessageDeduplicationId"] == messages[0]["Attributes"]["MessageDeduplicationId"]
    )
    # and the pull worker's claim clears the webhook's marker, so new changes queue again
    marker = QueuedPull.make_id(account.id, PullAction.PULL)
    assert world.store.find(QueuedPull, world.org_id, marker)
    run_pulls_event = sqs_event([forwarded], world.queue_arn("AircallPullQueue"))
    app.handler(run_pulls_event, FakeContext())
    assert not world.store.find(QueuedPull, world.org_id, marker)


def test_the_router_drops_a_request_for_an_unknown_account(world: World) -> None:
    request = PullRequest(org_id=world.org_id, account_id="acc-gone")
    world.sqs.send_message(
        QueueUrl=world.queues["PullQueue"],
        MessageBody=request.model_dump_json(),
        MessageGroupId=group_id(world.org_id, "acc-gone"),
        MessageDeduplicationId=dedupe_id("acc-gone"),
    )
    messages = world.messages("PullQueue")
    assert app.route(sqs_event(messages, "arn"), FakeContext()) == {"batchItemFailures": []}
    for provider in ("Google", "Microsoft", "Salesforce", "Aircall"):
        assert world.messages(f"{provider}PullQueue") == []
    assert Provider.AIRCALL.value == "aircall"
