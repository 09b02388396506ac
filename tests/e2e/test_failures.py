"""End to end under adversity: the same person from three systems, lost create responses,
a crash between a page's commit and its cursor, throttling storms, expired cursors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contactsync.domain import HubContact, Link, Provider
from contactsync.store.base import Store
from contactsync.sync.service import SyncService
from tests.support.world import ALL, World


def test_the_same_person_from_three_systems_with_differently_formatted_phones(
    tmp_path: Path,
) -> None:
    # Given one person in Salesforce, Aircall and the rep's synced Outlook folder, with the
    # phone number typed three ways and no email in common
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.AIRCALL, Provider.MICROSOFT])
    world.admin_call(
        Provider.SALESFORCE,
        "seed",
        {"records": [{"FirstName": "Toby", "LastName": "Flenderson", "Phone": "(570) 555-0199"}]},
    )
    world.admin_call(
        Provider.AIRCALL,
        "seed",
        {
            "records": [
                {
                    "first_name": "Toby",
                    "last_name": "Flenderson",
                    "phone_numbers": [{"label": "work", "value": "+1 570-555-0199"}],
                }
            ]
        },
    )
    world.admin_call(Provider.MICROSOFT, "seed", {"folder": "Salesforce Contacts", "records": [
        {"givenName": "Toby", "surname": "Flenderson", "businessPhones": ["+15705550199"],
         "categories": ["Salesforce"]}]})  # fmt: skip
    # When they sync
    world.converge(6)
    # Then the hub holds one person, linked to all three records, and no system got a copy
    tobys = [c for c in world.contacts() if c.family_name == "Flenderson"]
    assert len(tobys) == 1
    assert tobys[0].phone_keys() == ["+15705550199"]
    links = world.store.lookup(Link, world.org_id, "contact", tobys[0].id)
    assert {lk.account_id for lk in links} == {world.accounts[p].id for p in world.accounts}
    for provider in world.accounts:
        stream = "Contact" if provider is Provider.SALESFORCE else "contact"
        named = [
            r
            for r in world.remote_records(provider, stream)
            if r.fields.family_name == "Flenderson"
        ]
        assert len(named) == 1, provider


@pytest.mark.parametrize(
    ("provider", "stream", "create_path"),
    [
        (Provider.AIRCALL, "contact", "^/v1/contacts$"),
        (Provider.GOOGLE, "person", "batchCreateContacts$"),
    ],
)
def test_a_create_whose_response_was_lost_is_found_not_repeated(
    tmp_path: Path, provider: Provider, stream: str, create_path: str
) -> None:
    # Given Salesforce contacts on their way to another system, which drops the answer to a
    # create after committing it
    world = World.build(tmp_path, [Provider.SALESFORCE, provider])
    world.seed(Provider.SALESFORCE, 6, overlap=0.0)
    rule = {"kind": "drop_after_commit", "method": "POST", "path": create_path, "times": 1}
    world.admin_call(provider, "faults", {"rules": [rule]})
    # When they sync (the lost create waits to be found, then is linked)
    first = world.sync()
    assert first.spokes[world.accounts[provider].id].failed >= 1
    world.sync()  # at once: the record may not show in the provider's reads yet
    world.converge(6)
    # Then every contact is there exactly once, and linked
    records = world.remote_records(provider, stream)
    people = [(r.fields.given_name, r.fields.family_name) for r in records]
    assert len(people) == len(set(people))
    linked = [lk for lk in world.links(provider) if not lk.pending_create]
    assert len(linked) == len(records) == len(world.contacts())


class Crash(Exception):
    """A process dying at the worst moment."""


def test_a_crash_between_a_pages_commit_and_its_cursor_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Salesforce org and a process that dies right after committing a page, before
    # saving the cursor that covers it
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.MICROSOFT])
    world.seed(Provider.SALESFORCE, 30, overlap=0.0)
    real_save = Store.save_cursor
    calls = {"n": 0}

    def dying_save(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(type(world.store), "save_cursor", dying_save)
    with pytest.raises(Crash):
        world.service.run_once()
    # When a new process takes over once the lease has expired
    world.clock.advance(15 * 60)
    world.service = SyncService(
        world.store, world.org_id, world.service.connectors, now=world.clock.now
    )
    world.converge(6)
    # Then every record is in the hub once and in Outlook once
    sf_records = world.remote_records(Provider.SALESFORCE, "Contact")
    hub = world.contacts()
    assert len({lk.remote_id for lk in world.links(Provider.SALESFORCE)}) == len(sf_records)
    assert len(hub) == len({lk.contact_id for lk in world.links(Provider.SALESFORCE)})
    outlook = world.remote_records(Provider.MICROSOFT, "contact")
    assert len(outlook) == len(hub)


def test_a_throttling_storm_slows_the_sync_down_and_changes_nothing_else(tmp_path: Path) -> None:
    # Given every system throttling a third of all requests
    world = World.build(tmp_path, ALL)
    for provider in ALL:
        world.seed(provider, 6)
        world.admin_call(
            provider,
            "faults",
            {"rules": [{"kind": "throttle", "rate": 0.33, "retry_after": 3}], "seed": 5},
        )
    before = world.clock.now()
    # When they sync, then the storm costs waiting, never an error, a loss or a duplicate
    world.converge(8)
    assert (world.clock.now() - before).total_seconds() > 60
    for provider in ALL:
        world.admin_call(provider, "faults", {"rules": []})
    world.converge(4)
    for account, counts in world.service.reconcile().items():
        assert (counts["diverged"], counts["missing"], counts["unpushed"], counts["unlinked"]) == (
            0,
            0,
            0,
            0,
        ), account


def test_expired_cursors_resync_without_duplicates_or_resurrections(tmp_path: Path) -> None:
    # Given all four systems in step, and a contact the rep deleted from Google before the
    # cursors expire
    world = World.build(tmp_path, ALL)
    for provider in ALL:
        world.seed(provider, 6)
    world.converge(6)
    hub_before = {c.id for c in world.contacts()}
    [personal] = [lk for lk in world.links(Provider.GOOGLE) if not lk.marked][:1]
    world.user_delete(Provider.GOOGLE, personal.remote_id, "person")
    # When eight days pass (Google's sync tokens and Graph's delta links expire after seven)
    world.clock.advance(8 * 24 * 3600)
    reports = world.converge(6)
    # Then full resyncs happened, no contact was duplicated and nothing deleted came back
    assert any(s.full_scan for r in reports for s in r.spokes.values())
    assert {c.id for c in world.contacts()} == hub_before
    google_ids = {r.remote_id for r in world.remote_records(Provider.GOOGLE, "person")}
    assert personal.remote_id not in google_ids
    assert world.store.find(Link, world.org_id, personal.id) is None
    contact = world.store.get(HubContact, world.org_id, personal.contact_id)
    assert not contact.archived  # the hub keeps what a personal address book deleted (seed 000)


def test_a_change_made_while_a_push_is_under_way_is_not_lost(tmp_path: Path) -> None:
    from contactsync.app.gallery import Actor
    from contactsync.domain.outbox import OutboxEntry
    from contactsync.sync.push import PushContext, push_entries
    from contactsync.sync.report import RunReport

    # Given a synced contact edited in the hub, and a push that has read its outbox entry
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.AIRCALL])
    world.seed(Provider.AIRCALL, 3, overlap=0.0)
    world.converge(4)
    gallery, admin = world.gallery(), Actor.of(world.admin)
    contact = world.contacts()[0]
    contact = gallery.update(admin, contact.id, {"family_name": "First"}, contact.version)
    read = list(world.store.scan(OutboxEntry, world.org_id))
    # When a second edit lands before that push finishes
    gallery.update(admin, contact.id, {"family_name": "Second"}, contact.version)
    spokes = world.service.spokes()
    ctx = PushContext(
        world.store, world.org_id, spokes, "run-x", world.clock.now, RunReport("run-x")
    )
    push_entries(ctx, read)
    # Then the second edit is still queued, and the next round delivers it everywhere
    assert [e.contact_id for e in world.store.scan(OutboxEntry, world.org_id)] == [contact.id]
    world.converge(4)
    names = {r.fields.family_name for r in world.remote_records(Provider.SALESFORCE, "Contact")}
    assert "Second" in names
