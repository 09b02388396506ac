"""The store contract: one suite, run unchanged against SQLite and DynamoDB (moto, with the
table from template.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from contactsync.domain import (
    AccessRequest,
    Account,
    Activity,
    ChangeLogEntry,
    ConnectedAccount,
    ConnectionStrength,
    Cursor,
    Entity,
    HubContact,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    Link,
    MergeSuggestion,
    NotFound,
    Organisation,
    SharingFlag,
    SyncSettings,
    User,
    VersionConflict,
)
from contactsync.domain.accounts import AccountStatus
from contactsync.domain.merge import SuggestionStatus
from contactsync.domain.sharing import AccessStatus
from contactsync.domain.sync import Direction, SyncState
from contactsync.store.base import Store, Write
from tests import factories as f
from tests.factories import T0

# (factory, a field to change on update, its new value)
ENTITIES: list[tuple[Callable[..., Entity], str, Any]] = [
    (lambda org: f.org(org), "name", "Renamed Org"),
    (lambda org: f.user(org), "name", "Pam Beesly"),
    (lambda org: f.connected_account(org), "status", AccountStatus.DISABLED),
    (lambda org: f.sync_settings(org), "direction", Direction.TO_HUB),
    (lambda org: f.contact(org, "c-1"), "title", "Regional Manager"),
    (lambda org: f.company(org), "domain", "dundermifflin.com"),
    (lambda org: f.link(org), "fingerprint", "abc123"),
    (lambda org: f.cursor(org), "value", "token-2"),
    (lambda org: f.sharing_flag(org), "content_shared", True),
    (lambda org: f.activity(org), "subject", "Quarterly review"),
    (lambda org: f.merge_suggestion(org), "status", SuggestionStatus.DISMISSED),
    (lambda org: f.change(org, change_id="ch-1"), "reason", "merged"),
    (lambda org: f.connection_strength(org), "as_of", T0.replace(hour=10)),
    (lambda org: f.access_request(org), "status", AccessStatus.GRANTED),
]
IDS = [
    "organisation", "user", "connected_account", "sync_settings", "contact", "account", "link",
    "cursor", "sharing_flag", "activity", "merge_suggestion", "change_log",
    "connection_strength", "access_request",
]  # fmt: skip


@pytest.mark.parametrize(("factory", "field", "value"), ENTITIES, ids=IDS)
def test_create_read_update_every_entity(
    store: Store, factory: Callable[..., Entity], field: str, value: Any
) -> None:
    # Given a new entity
    entity = factory("org-a")
    # When it is created, read back and updated
    created = store.create(entity)
    read = store.get(type(entity), "org-a", entity.id)
    updated = store.update(read.model_copy(update={field: value}))
    # Then versions advance and the stored entity is what was written
    assert created.version == 1
    assert read == created
    assert updated.version == 2
    again = store.get(type(entity), "org-a", entity.id)
    assert getattr(again, field) == getattr(updated, field)
    assert again.version == 2


@pytest.mark.parametrize(
    "factory",
    [lambda: f.contact("org-a", "c-9"), lambda: f.company("org-a", "co-9")],
    ids=["contact", "account"],
)
def test_archive_keeps_the_record(
    store: Store, factory: Callable[[], HubContact | Account]
) -> None:
    entity = store.create(factory())
    archived = store.update(entity.model_copy(update={"archived": True}))
    found = store.get(type(entity), "org-a", entity.id)
    assert found.archived is True
    assert archived.version == 2


@pytest.mark.parametrize("kind", [Link, Cursor], ids=["link", "cursor"])
def test_delete_removes_entity_and_index_entries(store: Store, kind: type[Entity]) -> None:
    entity = store.create(f.link() if kind is Link else f.cursor())
    store.delete(kind, "org-a", entity.id)
    assert store.find(kind, "org-a", entity.id) is None
    if kind is Link:
        assert store.lookup(Link, "org-a", "contact", "c-1") == []
    store.delete(kind, "org-a", entity.id)  # deleting twice is harmless


def test_get_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as err:
        store.get(HubContact, "org-a", "c-missing")
    assert err.value.kind == "contact"


# ---- lookups -------------------------------------------------------------------------------


def test_lookup_by_email_is_case_insensitive(store: Store) -> None:
    store.create(f.contact(contact_id="c-1", emails=["Jose.Garcia@Example.COM"]))
    store.create(f.contact(contact_id="c-2", emails=["other@example.com"]))
    found = store.lookup(HubContact, "org-a", "email", "jose.garcia@example.com")
    assert [c.id for c in found] == ["c-1"]


def test_lookup_by_phone_uses_e164(store: Store) -> None:
    store.create(f.contact(contact_id="c-1", phones=["(415) 555-2671"]))
    store.create(f.contact(contact_id="c-2", phones=["+44 20 7946 0018"]))
    assert [c.id for c in store.lookup(HubContact, "org-a", "phone", "+14155552671")] == ["c-1"]
    assert [c.id for c in store.lookup(HubContact, "org-a", "phone", "+442079460018")] == ["c-2"]


def test_lookup_follows_updates(store: Store) -> None:
    created = store.create(f.contact(contact_id="c-1", emails=["old@example.com"]))
    store.update(created.model_copy(update={"emails": [f.EmailAddress(address="new@example.com")]}))
    assert store.lookup(HubContact, "org-a", "email", "old@example.com") == []
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "new@example.com")] == ["c-1"]


def test_lookup_by_remote_id_through_the_link_key(store: Store) -> None:
    store.create(f.link(contact_id="c-7", remote_id="003AAA"))
    found = store.find(Link, "org-a", Link.key("acc-sf", "Contact", "003AAA"))
    assert found is not None
    assert found.contact_id == "c-7"
    assert store.find(Link, "org-a", Link.key("acc-sf", "Lead", "003AAA")) is None
    assert [lk.remote_id for lk in store.lookup(Link, "org-a", "contact", "c-7")] == ["003AAA"]


def test_lookup_many_answers_as_lookup_does_for_each_value(store: Store) -> None:
    for i, contact_id in enumerate(["c-2", "c-1", "c-3"]):
        store.create(f.link(contact_id=contact_id, remote_id=f"003A{i}"))
        store.create(f.link(contact_id="c-1", remote_id=f"003B{i}"))
    moved = store.create(f.link(contact_id="c-3", remote_id="003C"))
    store.update(moved.model_copy(update={"contact_id": "c-2"}))  # its old entry must not count
    store.create(f.link(contact_id="c-1", remote_id="003Z", org_id="org-b"))  # another tenant
    values = ["c-1", "c-404", "c-2", "c-3", "c-1"]
    found = store.lookup_many(Link, "org-a", "contact", values)
    assert list(found) == ["c-1", "c-404", "c-2", "c-3"]
    for value in values:
        expected = store.lookup(Link, "org-a", "contact", value)
        assert [lk.id for lk in found[value]] == [lk.id for lk in expected]
    assert sorted(lk.remote_id for lk in found["c-1"]) == ["003A1", "003B0", "003B1", "003B2"]
    assert sorted(lk.remote_id for lk in found["c-2"]) == ["003A0", "003C"]
    assert [
        len(v) for v in store.lookup_many(Link, "org-a", "contact", ["c-1"], limit=2).values()
    ] == [2]


def test_get_many_returns_only_existing(store: Store) -> None:
    for i in range(3):
        store.create(f.contact(contact_id=f"c-{i}"))
    found = store.get_many(HubContact, "org-a", ["c-0", "c-2", "c-404", "c-0"])
    assert sorted(found) == ["c-0", "c-2"]


# ---- optimistic concurrency -----------------------------------------------------------------


def test_create_twice_conflicts(store: Store) -> None:
    store.create(f.contact(contact_id="c-1"))
    with pytest.raises(VersionConflict) as err:
        store.create(f.contact(contact_id="c-1"))
    assert err.value.expected == 0
    assert err.value.actual == 1


def test_stale_update_conflicts_and_writes_nothing(store: Store) -> None:
    first = store.create(f.contact(contact_id="c-1", title="A"))
    store.update(first.model_copy(update={"title": "B"}))  # someone else wins
    with pytest.raises(VersionConflict) as err:
        store.update(first.model_copy(update={"title": "C"}))
    assert (err.value.expected, err.value.actual) == (1, 2)
    assert store.get(HubContact, "org-a", "c-1").title == "B"


def test_update_of_missing_entity_conflicts(store: Store) -> None:
    ghost = f.contact(contact_id="c-ghost").model_copy(update={"version": 3})
    with pytest.raises(VersionConflict):
        store.update(ghost)
    assert store.find(HubContact, "org-a", "c-ghost") is None


def test_transact_is_all_or_nothing(store: Store) -> None:
    existing = store.create(f.contact(contact_id="c-1"))
    store.update(existing)  # now at version 2
    writes = [
        Write(f.contact(contact_id="c-new"), expected_version=0),
        Write(existing.model_copy(update={"title": "stale"}), expected_version=1),
    ]
    with pytest.raises(VersionConflict):
        store.transact(writes)
    assert store.find(HubContact, "org-a", "c-new") is None
    assert store.get(HubContact, "org-a", "c-1").title == ""


def test_transact_writes_a_contact_with_its_link_and_change(store: Store) -> None:
    stored = store.transact(
        [
            Write(f.contact(contact_id="c-1"), 0),
            Write(f.link(contact_id="c-1"), 0),
            Write(f.change(contact_id="c-1", change_id="ch-1"), 0),
        ]
    )
    assert [e.version for e in stored] == [1, 1, 1]
    assert [c.id for c in store.lookup(ChangeLogEntry, "org-a", "contact", "c-1")] == ["ch-1"]


def test_bulk_put_is_idempotent(store: Store) -> None:
    contacts = [
        f.contact(contact_id=f"c-{i:03d}", emails=[f"bulk{i}@example.com"]) for i in range(60)
    ]
    store.bulk_put(contacts)
    store.bulk_put(contacts)  # a retried shard
    assert len(list(store.scan(HubContact, "org-a"))) == 60
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "bulk7@example.com")] == [
        "c-007"
    ]


# ---- paging ------------------------------------------------------------------------------------


def test_paging_through_10000_contacts(store: Store) -> None:
    # Given 10,000 contacts
    store.bulk_put(
        [f.contact(contact_id=f"c-{i:05d}", emails=[f"p{i}@example.com"]) for i in range(10_000)]
    )
    # When paging with opaque tokens
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.page(HubContact, "org-a", limit=700, page_token=token)
        assert len(page.items) <= 700
        seen.extend(c.id for c in page.items)
        pages += 1
        if page.next_token is None:
            break
        token = page.next_token
    # Then every contact is seen exactly once
    assert len(seen) == 10_000
    assert len(set(seen)) == 10_000
    assert pages >= 15


def test_page_limits_are_validated(store: Store) -> None:
    for limit in (0, 1001):
        with pytest.raises(InvalidInput) as err:
            store.page(HubContact, "org-a", limit=limit)
        assert err.value.problems[0]["field"] == "limit"
    with pytest.raises(InvalidInput):
        store.page(HubContact, "org-a", page_token="not base64 json!")


# ---- leases and cursors -----------------------------------------------------------------------


def test_lease_acquire_renew_and_take_over_after_expiry(store: Store) -> None:
    name = Cursor.make_id("acc-sf", "Contact")
    ttl = timedelta(minutes=5)
    a = store.acquire_lease("org-a", name, "worker-a", ttl, T0)
    assert a.token == 1
    with pytest.raises(LeaseHeld):
        store.acquire_lease("org-a", name, "worker-b", ttl, T0 + timedelta(minutes=1))
    a = store.renew_lease("org-a", a, ttl, T0 + timedelta(minutes=4))
    with pytest.raises(LeaseHeld):
        store.acquire_lease("org-a", name, "worker-b", ttl, T0 + timedelta(minutes=8))
    # After expiry, B takes over with a larger fencing token; A can neither renew nor save.
    b = store.acquire_lease("org-a", name, "worker-b", ttl, T0 + timedelta(minutes=10))
    assert b.token == 2
    with pytest.raises(LeaseLost):
        store.renew_lease("org-a", a, ttl, T0 + timedelta(minutes=10))
    with pytest.raises(LeaseLost):
        store.save_cursor(f.cursor(value="from-a"), a)
    assert store.load_cursor("org-a", "acc-sf", "Contact") is None


def test_cursor_save_and_load_under_the_lease(store: Store) -> None:
    lease = store.acquire_lease("org-a", "acc-sf.Contact", "w", timedelta(minutes=1), T0)
    saved = store.save_cursor(f.cursor(value="2026-11-01T09:00:00Z", started_at=T0), lease)
    loaded = store.load_cursor("org-a", "acc-sf", "Contact")
    assert loaded is not None
    assert loaded.value == "2026-11-01T09:00:00Z"
    assert loaded.started_at == T0
    assert loaded.version == saved.version == 1
    store.save_cursor(loaded.model_copy(update={"value": "next"}), lease)
    again = store.load_cursor("org-a", "acc-sf", "Contact")
    assert again is not None
    assert again.value == "next"


def test_cursor_needs_its_own_lease(store: Store) -> None:
    other = store.acquire_lease("org-a", "acc-g.people", "w", timedelta(minutes=1), T0)
    with pytest.raises(LeaseLost):
        store.save_cursor(f.cursor(), other)


def test_released_lease_is_free_and_tokens_keep_growing(store: Store) -> None:
    ttl = timedelta(minutes=5)
    a = store.acquire_lease("org-a", "x.y", "a", ttl, T0)
    store.release_lease("org-a", a)
    b = store.acquire_lease("org-a", "x.y", "b", ttl, T0 + timedelta(seconds=1))
    assert b.token == a.token + 1
    store.release_lease("org-a", a)  # stale release changes nothing
    with pytest.raises(LeaseHeld):
        store.acquire_lease("org-a", "x.y", "c", ttl, T0 + timedelta(seconds=2))


# ---- tenancy -----------------------------------------------------------------------------------


def test_tenant_isolation(store: Store) -> None:
    # Given the same ids in two organisations
    store.create(f.contact("org-a", "c-1", emails=["shared@example.com"], title="A"))
    store.create(f.contact("org-b", "c-1", emails=["shared@example.com"], title="B"))
    store.create(f.link("org-a", contact_id="c-1"))
    lease_a = store.acquire_lease("org-a", "acc-sf.Contact", "w", timedelta(minutes=1), T0)
    # Then reads, lookups, listings and leases see only their own organisation
    assert store.get(HubContact, "org-b", "c-1").title == "B"
    assert [c.org_id for c in store.lookup(HubContact, "org-a", "email", "shared@example.com")] == [
        "org-a"
    ]
    assert [c.title for c in store.scan(HubContact, "org-b")] == ["B"]
    assert store.lookup(Link, "org-b", "contact", "c-1") == []
    assert (
        store.acquire_lease("org-b", "acc-sf.Contact", "other", timedelta(minutes=1), T0).token == 1
    )
    # A lease of org A cannot save org B's cursor, and a token of A cannot page B
    with pytest.raises(LeaseLost):
        store.save_cursor(f.cursor("org-b"), lease_a)
    token = store.page(HubContact, "org-a", limit=1).next_token
    store.create(f.contact("org-a", "c-2"))
    token = store.page(HubContact, "org-a", limit=1).next_token
    assert token is not None
    with pytest.raises(InvalidInput):
        store.page(HubContact, "org-b", limit=1, page_token=token)
    # Deleting in B leaves A untouched
    store.delete(Link, "org-b", f.link("org-a").id)
    assert store.find(Link, "org-a", f.link("org-a").id) is not None


@pytest.mark.parametrize(
    "kind",
    [Organisation, User, ConnectedAccount, SyncSettings, HubContact, Account, Link, Cursor,
     SharingFlag, Activity, MergeSuggestion, ChangeLogEntry, ConnectionStrength,
     AccessRequest],
)  # fmt: skip
def test_listing_is_per_organisation_for_every_kind(store: Store, kind: type[Entity]) -> None:
    assert store.page(kind, "org-z", limit=10).items == []


def test_status_of_sync_settings_round_trips(store: Store) -> None:
    settings = store.create(f.sync_settings())
    status = settings.status.model_copy(update={"state": SyncState.ERROR, "last_error": "boom"})
    store.update(settings.model_copy(update={"status": status}))
    assert store.get(SyncSettings, "org-a", "sync-1").status.state is SyncState.ERROR


def test_a_failed_transact_inside_a_batch_writes_nothing_of_its_own(store: Store) -> None:
    # Given a page of writes in progress (a batch), one transact of which conflicts halfway
    existing = store.create(f.contact(contact_id="c-1"))
    with store.batch():
        store.create(f.contact(contact_id="c-before"))
        with pytest.raises(VersionConflict):
            store.transact(
                [
                    Write(f.contact(contact_id="c-half"), expected_version=0),
                    Write(existing.model_copy(update={"title": "stale"}), expected_version=7),
                ]
            )
        store.create(f.contact(contact_id="c-after"))
    # Then the page's other writes stand and nothing of the failed transact does
    assert store.find(HubContact, "org-a", "c-half") is None
    assert store.find(HubContact, "org-a", "c-before") is not None
    assert store.find(HubContact, "org-a", "c-after") is not None
    assert store.get(HubContact, "org-a", "c-1").title == ""
