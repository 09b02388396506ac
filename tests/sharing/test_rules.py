"""The sharing rules as pure functions (seed 002)."""

from __future__ import annotations

import pytest

from contactsync.domain.activity import ActivityKind
from contactsync.sharing.rules import (
    ContentFacts,
    Level,
    Owner,
    Viewer,
    content_shared,
    is_confidential,
    level,
    sharing_available,
)
from tests import factories as f

PAM = Owner("u-pam", share_activity=True)
JIM = Viewer("org-a", "u-jim")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Confidential: pricing", True),
        ("PRIVILEGED & confidential", True),
        ("re: personal matter", True),
        ("Private", True),
        ("Prívate lunch", True),  # accents are folded
        ("privately held companies", False),
        ("Personalised offer", False),
        ("Quarterly review", False),
        ("", False),
    ],
)
def test_confidential_words_are_whole_words_in_any_case(subject: str, expected: bool) -> None:
    assert is_confidential(subject) is expected


def test_undecided_contacts_are_not_shared() -> None:
    activity = f.activity(contact_ids=["c-1"], participants=["c1@acme.example"])
    facts = ContentFacts(contacts={"c-1": None}, matched={"c-1": ("c1@acme.example",)})
    assert content_shared(activity, facts) is False


def test_every_contact_of_an_email_must_be_shared() -> None:
    # Given an email with two contacts, one shared and one not
    activity = f.activity(contact_ids=["c-1", "c-2"])
    facts = ContentFacts(contacts={"c-1": True, "c-2": False})
    # Then its content stays private; sharing the second shares it
    assert content_shared(activity, facts) is False
    assert content_shared(activity, ContentFacts(contacts={"c-1": True, "c-2": True})) is True


def test_an_address_decision_overrides_the_contact_decision() -> None:
    activity = f.activity(contact_ids=["c-1"], participants=["home@zoe.example"])
    matched = {"c-1": ("home@zoe.example",)}
    shared_contact_unshared_address = ContentFacts(
        contacts={"c-1": True}, matched=matched, addresses={"home@zoe.example": False}
    )
    unshared_contact_shared_address = ContentFacts(
        contacts={"c-1": False}, matched=matched, addresses={"home@zoe.example": True}
    )
    assert content_shared(activity, shared_contact_unshared_address) is False
    assert content_shared(activity, unshared_contact_shared_address) is True


def test_confidential_subjects_need_a_per_event_decision() -> None:
    activity = f.activity(subject="Confidential terms", contact_ids=["c-1"])
    shared = ContentFacts(contacts={"c-1": True})
    assert content_shared(activity, shared) is False
    assert content_shared(activity, ContentFacts(event=True, contacts={"c-1": True})) is True


def test_calls_have_no_subject_rule() -> None:
    call = f.activity(activity_kind=ActivityKind.CALL, subject="", contact_ids=["c-1"])
    assert content_shared(call, ContentFacts(contacts={"c-1": True})) is True


def test_an_event_decision_unshares_a_shared_contact() -> None:
    activity = f.activity(contact_ids=["c-1"])
    assert content_shared(activity, ContentFacts(event=False, contacts={"c-1": True})) is False


def test_activity_sharing_off_hides_everything_from_everyone() -> None:
    activity = f.activity(owner_user_id="u-pam", contact_ids=["c-1"])
    off = Owner("u-pam", share_activity=False)
    shared = ContentFacts(event=True)
    assert level(JIM, activity, off, shared) is Level.NONE
    assert level(Viewer("org-a", "u-pam"), activity, off, shared) is Level.NONE


def test_a_grant_shows_content_to_its_requester_only() -> None:
    activity = f.activity(owner_user_id="u-pam", contact_ids=["c-1"])
    facts = ContentFacts(contacts={"c-1": False})
    assert level(JIM, activity, PAM, facts, granted=True) is Level.CONTENT
    assert level(Viewer("org-a", "u-dwight"), activity, PAM, facts) is Level.METADATA


def test_other_organisations_removed_viewers_and_deleted_accounts_see_nothing() -> None:
    activity = f.activity(owner_user_id="u-pam", contact_ids=["c-1"])
    facts = ContentFacts(event=True)
    assert level(Viewer("org-b", "u-jim"), activity, PAM, facts) is Level.NONE
    assert level(Viewer("org-a", "u-jim", active=False), activity, PAM, facts) is Level.NONE
    assert level(JIM, activity, PAM, facts, account_deleted=True) is Level.NONE


def test_a_removed_owners_shared_activity_stays_shared() -> None:
    activity = f.activity(owner_user_id="u-pam", contact_ids=["c-1"])
    gone = Owner("u-pam", share_activity=True, active=False)
    assert level(JIM, activity, gone, ContentFacts(contacts={"c-1": True})) is Level.CONTENT
    assert level(JIM, activity, gone, ContentFacts(contacts={"c-1": None})) is Level.METADATA


def test_the_owner_must_be_the_activitys() -> None:
    activity = f.activity(owner_user_id="u-pam")
    with pytest.raises(ValueError, match="owner"):
        level(JIM, activity, Owner("u-jim", share_activity=True), ContentFacts())


@pytest.mark.parametrize(("users", "available"), [(0, False), (1, False), (2, True), (9, True)])
def test_sharing_needs_two_users(users: int, available: bool) -> None:
    assert sharing_available(users) is available
