"""The contact gallery: create, find by email and phone, visibility, edits, archive, merge."""

from __future__ import annotations

import pytest

from contactsync.app.gallery import Actor, Gallery
from contactsync.domain import (
    ChangeLogEntry,
    HubContact,
    InvalidInput,
    Link,
    NotFound,
    Role,
    VersionConflict,
)
from contactsync.domain.contact import PhoneNumber
from contactsync.domain.outbox import OutboxEntry
from contactsync.store.sqlite import SQLiteStore
from tests import factories as f

PAM = Actor("org-a", "u-pam")
JIM = Actor("org-a", "u-jim")
ADMIN = Actor("org-a", "u-admin", Role.ADMIN)
OTHER_ORG = Actor("org-b", "u-pam")


@pytest.fixture
def gallery(sqlite_store: SQLiteStore) -> Gallery:
    return Gallery(sqlite_store)


def dwight(gallery: Gallery, actor: Actor = PAM, **kw: object) -> HubContact:
    data = {
        "given_name": "Dwight",
        "family_name": "Schrute",
        "emails": [{"address": "Dwight@DunderMifflin.com"}],
        "phones": ["(570) 555-0134"],
        "company": "Dunder Mifflin",
        **kw,
    }
    return gallery.create(actor, data)


def test_create_then_find_by_email_phone_and_words(gallery: Gallery) -> None:
    created = dwight(gallery)
    assert created.version == 1
    assert created.phones[0].e164 == "+15705550134"
    assert created.phones[0].raw == "(570) 555-0134"
    for query in (
        "dwight@dundermifflin.com",
        "+1 570-555-0134",
        "570.555.0134",
        "schrute",
        "Dunder dwight",
    ):
        assert [c.id for c in gallery.search(JIM, query)] == [created.id], query
    assert gallery.search(JIM, "michael") == []


def test_a_number_kept_raw_is_found_as_typed_and_never_matches(
    gallery: Gallery, sqlite_store: SQLiteStore
) -> None:
    # Given a contact synced from a mailbox with a UK national number the US organisation's
    # region cannot turn into E.164, and another whose number did parse
    raw = sqlite_store.create(
        f.contact(given_name="Taro", phones=[PhoneNumber(raw="0161 496 0473")])
    )
    parsed = sqlite_store.create(f.contact(given_name="Dwight", phones=["(570) 555-0134"]))
    # Then the number finds it as typed, in another spacing too, and nothing else
    for query in ("0161 496 0473", "01614960473", "(0161) 496-0473"):
        assert [c.id for c in gallery.search(JIM, query)] == [raw.id], query
    assert [c.id for c in gallery.search(JIM, "570 555 0134")] == [parsed.id]
    # And the raw digits are a search key only: matching uses E.164 keys alone
    assert raw.phone_keys() == []
    assert raw.unparsed_phone_keys() == ["01614960473"]
    assert gallery.search(JIM, "0161 496 0000") == []


def test_create_logs_and_queues_the_push(gallery: Gallery, sqlite_store: SQLiteStore) -> None:
    created = dwight(gallery)
    history = gallery.history(PAM, created.id)
    assert [e.action for e in history] == ["create"]
    assert history[0].source == "user:u-pam"
    assert sqlite_store.find(OutboxEntry, "org-a", created.id) is not None
    assert created.provenance["emails"].source == "user:u-pam"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"given_name": "A", "emails": [{"address": "nope"}]}, "emails.0.address"),
        ({"given_name": "A", "phones": ["12"]}, "phones.0"),
        ({"given_name": "A", "phones": [42]}, "phones.0"),
        ({"given_name": "A" * 300}, "given_name"),
        ({"given_name": "A", "visibility": "secret"}, "visibility"),
        ({"given_name": "A", "archived": True}, "archived"),
        ({"given_name": "A", "shoe_size": 44}, "shoe_size"),
        ({}, "(body)"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    gallery: Gallery, sqlite_store: SQLiteStore, data: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        gallery.create(PAM, data)
    assert field in [p["field"] for p in err.value.problems]
    assert list(sqlite_store.scan(HubContact, "org-a")) == []
    assert list(sqlite_store.scan(ChangeLogEntry, "org-a")) == []


def test_personal_contacts_are_private_even_to_admins(gallery: Gallery) -> None:
    mine = dwight(gallery, visibility="personal")
    assert gallery.get(PAM, mine.id).owner_user_id == "u-pam"
    for actor in (JIM, ADMIN, OTHER_ORG):
        with pytest.raises(NotFound):
            gallery.get(actor, mine.id)
        assert gallery.search(actor, "schrute") == []
    assert [c.id for c in gallery.page(PAM, personal=True).items] == [mine.id]
    assert gallery.page(JIM).items == []


def test_update_with_version_guard(gallery: Gallery) -> None:
    created = dwight(gallery)
    updated = gallery.update(JIM, created.id, {"title": "Assistant to the Regional Manager"}, 1)
    assert updated.version == 2
    assert updated.provenance["title"].source == "user:u-jim"
    with pytest.raises(VersionConflict):
        gallery.update(PAM, created.id, {"title": "Assistant Regional Manager"}, 1)
    assert gallery.get(PAM, created.id).title == "Assistant to the Regional Manager"
    with pytest.raises(InvalidInput):
        gallery.update(PAM, created.id, {"version": 9}, 2)


def test_archive_is_reversible_and_hides_from_search(gallery: Gallery) -> None:
    created = dwight(gallery)
    gallery.set_archived(PAM, created.id, True)
    assert gallery.search(PAM, "schrute") == []
    assert gallery.page(PAM).items == []
    assert gallery.page(PAM, include_archived=True).items[0].archived
    assert not gallery.set_archived(PAM, created.id, False).archived


def test_merge_unites_and_moves_links(gallery: Gallery, sqlite_store: SQLiteStore) -> None:
    keep = dwight(gallery)
    other = gallery.create(
        PAM,
        {
            "given_name": "Dwight",
            "emails": [{"address": "beets@schrutefarms.com"}],
            "title": "Farmer",
        },
    )
    sqlite_store.create(f.link(contact_id=other.id, remote_id="003XYZ"))
    merged = gallery.merge(JIM, keep.id, other.id)
    assert merged.email_keys() == ["dwight@dundermifflin.com", "beets@schrutefarms.com"]
    assert merged.title == "Farmer"
    retired = gallery.get(PAM, other.id)
    assert (retired.archived, retired.merged_into) == (True, keep.id)
    assert [lk.contact_id for lk in sqlite_store.scan(Link, "org-a")] == [keep.id]
    with pytest.raises(InvalidInput):
        gallery.merge(PAM, keep.id, keep.id)


def test_no_call_crosses_organisations(gallery: Gallery) -> None:
    created = dwight(gallery)
    with pytest.raises(NotFound):
        gallery.update(OTHER_ORG, created.id, {"title": "x"}, 1)
    with pytest.raises(NotFound):
        gallery.set_archived(OTHER_ORG, created.id, True)
    assert gallery.get(PAM, created.id).title == ""
