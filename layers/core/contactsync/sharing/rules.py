"""Seed 002's sharing rules as pure functions: what a viewer may see of one activity.

Three levels: nothing, that it happened (kind, time, who, which contacts), or its content
(subject, participants, body). Everything is off by default:

- Activity sharing is per user. Off, the activity is hidden from the Stream entirely, for
  teammates and for its owner too ("neither you nor your colleagues can see that an activity
  took place"); the owner still lists their own activity to manage its sharing.
- Content sharing is per contact and per address (email address or phone number) of the
  contact; an undecided contact (the approval queue) is not shared. An activity's content is
  shared only when every gallery contact in it is shared for the addresses it used: one
  unshared contact keeps the whole email private.
- A per-event decision overrides the contact settings, both ways.
- Emails and meetings whose subject holds the word Confidential, Private, Personal or
  Privileged are unshared unless shared one by one (the per-event decision).
- A granted access request shows the content to its requester only.
- Another organisation sees nothing; an admin is a teammate like any other (no admin override:
  privacy first); a removed user sees nothing, and what a removed user shared stays shared.
- Activity from a deleted connected account is gone at once (even before its purge ends).

Nothing here reads the store: the query layer gathers the facts and asks these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.contact import fold


class Level(IntEnum):
    NONE = 0
    METADATA = 1  # that it happened: kind, when, whose, with which contacts
    CONTENT = 2  # and what: subject, participants, thread, body


CONFIDENTIAL_WORDS = frozenset({"confidential", "private", "personal", "privileged"})
_WORD = re.compile(r"[a-z0-9]+")


def is_confidential(subject: str) -> bool:
    """The subject holds one of the words (case- and accent-insensitive, whole words: "Private"
    and "PRIVILEGED & confidential" do, "privately" does not)."""
    return any(word in CONFIDENTIAL_WORDS for word in _WORD.findall(fold(subject)))


@dataclass(frozen=True)
class Viewer:
    org_id: str
    user_id: str
    active: bool = True


@dataclass(frozen=True)
class Owner:
    """The activity's owner as the rules need them: their activity-sharing switch and whether
    they are still in the organisation."""

    user_id: str
    share_activity: bool
    active: bool = True


@dataclass(frozen=True)
class ContentFacts:
    """The owner's content decisions that bear on one activity."""

    # The owner's per-event decision (None: none made).
    event: bool | None = None
    # Each gallery contact in the activity -> the owner's contact-level decision (None:
    # awaiting a decision, i.e. not shared).
    contacts: Mapping[str, bool | None] = field(default_factory=dict)
    # Each contact -> the keys (lower-cased email addresses, E.164 numbers) it took part with.
    matched: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The owner's per-address decisions for those keys.
    addresses: Mapping[str, bool | None] = field(default_factory=dict)


def contact_shared(contact_id: str, facts: ContentFacts) -> bool:
    """A contact's content is shared for this activity when each address it used is shared
    (an address decision, else the contact decision); undecided is unshared."""
    contact_decision = facts.contacts.get(contact_id)
    keys = facts.matched.get(contact_id, ())
    if not keys:
        return contact_decision is True
    for key in keys:
        decision = facts.addresses.get(key)
        if decision is None:
            decision = contact_decision
        if decision is not True:
            return False
    return True


def content_shared(activity: Activity, facts: ContentFacts) -> bool:
    """Whether the owner shares this activity's content with teammates."""
    if facts.event is not None:
        return facts.event
    if activity.activity_kind is not ActivityKind.CALL and is_confidential(activity.subject):
        return False
    if not activity.contact_ids:
        return False
    return all(contact_shared(cid, facts) for cid in activity.contact_ids)


def level(
    viewer: Viewer,
    activity: Activity,
    owner: Owner,
    facts: ContentFacts,
    *,
    granted: bool = False,
    account_deleted: bool = False,
) -> Level:
    """What ``viewer`` may see of ``activity`` in the Stream."""
    if viewer.org_id != activity.org_id or not viewer.active or account_deleted:
        return Level.NONE
    if owner.user_id != activity.owner_user_id:
        raise ValueError("the owner given is not the activity's owner")
    if not owner.share_activity:
        return Level.NONE  # hidden from the Stream entirely, for the owner too
    if viewer.user_id == owner.user_id:
        return Level.CONTENT
    if granted or content_shared(activity, facts):
        return Level.CONTENT
    return Level.METADATA


def own_level(viewer: Viewer, activity: Activity, *, account_deleted: bool = False) -> Level:
    """What the owner sees of their own activity when managing its sharing (not the Stream)."""
    if (
        viewer.org_id != activity.org_id
        or not viewer.active
        or account_deleted
        or viewer.user_id != activity.owner_user_id
    ):
        return Level.NONE
    return Level.CONTENT


def body_wanted(activity: Activity, facts: ContentFacts, *, any_grant: bool) -> bool:
    """The body is fetched and kept only while someone besides the owner may read it."""
    return any_grant or content_shared(activity, facts)


def matched_keys(
    activity: Activity, contact_keys: Mapping[str, Iterable[str]]
) -> dict[str, tuple[str, ...]]:
    """For each contact of the activity, the keys of that contact among its participants."""
    present = set(activity.participants)
    return {
        cid: tuple(sorted(k for k in contact_keys.get(cid, ()) if k in present))
        for cid in activity.contact_ids
    }


def sharing_available(active_users: int) -> bool:
    """Sharing exists only in organisations with at least two users."""
    return active_users >= 2
