"""The visibility matrix, through the query layer (the Stream), not the API: (owner, teammate,
admin, another organisation) x (sharing settings) x (email, meeting, call). The expected level
of each cell is written out here, from seed 002, independently of the rules module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from contactsync.domain.activity import ActivityKind
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import NotFound
from contactsync.sharing.service import Decision
from tests.sharing.world import World

NONE, META, CONTENT = "none", "metadata", "content"
KINDS = [ActivityKind.EMAIL, ActivityKind.MEETING, ActivityKind.CALL]
VIEWERS = ["owner", "teammate", "admin", "other_org"]


@dataclass(frozen=True)
class Setting:
    name: str
    # Arranges Pam's sharing for the contact and the activity (after the activity exists).
    arrange: Callable[[World, HubContact, str], None]
    # The level a teammate (and the admin) gets, by kind when it differs.
    teammate: str | dict[ActivityKind, str]
    owner: str = CONTENT
    confidential_subject: bool = False


def _nothing(world: World, contact: HubContact, activity_id: str) -> None:
    return None


def _activity_on(world: World, contact: HubContact, activity_id: str) -> None:
    world.switch(world.pam, share_activity=True)


def _decide(world: World, contact: HubContact, shared: bool, **addresses: bool) -> None:
    decision = Decision(contact_id=contact.id, shared=shared, addresses=addresses)
    world.sharing.decide(world.actor(world.pam), [decision])


def _share_contact(world: World, contact: HubContact, activity_id: str) -> None:
    _activity_on(world, contact, activity_id)
    _decide(world, contact, True)


def _shared_then_activity_off(world: World, contact: HubContact, activity_id: str) -> None:
    _share_contact(world, contact, activity_id)
    world.switch(world.pam, share_activity=False)


def _unshared(world: World, contact: HubContact, activity_id: str) -> None:
    _activity_on(world, contact, activity_id)
    _decide(world, contact, False)


def _address_unshared(world: World, contact: HubContact, activity_id: str) -> None:
    _activity_on(world, contact, activity_id)
    world.sharing.decide(
        world.actor(world.pam),
        [Decision(contact_id=contact.id, shared=True, addresses={contact.emails[0].key: False})],
    )


def _event_shared(world: World, contact: HubContact, activity_id: str) -> None:
    _share_contact(world, contact, activity_id)
    world.sharing.set_event(world.actor(world.pam), activity_id, True)


def _event_unshared(world: World, contact: HubContact, activity_id: str) -> None:
    _share_contact(world, contact, activity_id)
    world.sharing.set_event(world.actor(world.pam), activity_id, False)


def _unshared_contact_shared_event(world: World, contact: HubContact, activity_id: str) -> None:
    _unshared(world, contact, activity_id)
    world.sharing.set_event(world.actor(world.pam), activity_id, True)


SETTINGS = [
    Setting("everything off (default)", _nothing, NONE, owner=NONE),
    Setting("content shared but activity off", _shared_then_activity_off, NONE, owner=NONE),
    Setting("activity on, contact awaiting a decision", _activity_on, META),
    Setting("activity on, contact unshared", _unshared, META),
    Setting("activity and contact shared", _share_contact, CONTENT),
    Setting("contact shared, its address unshared", _address_unshared, META),
    Setting(
        "contact shared, confidential subject",
        _share_contact,
        {ActivityKind.EMAIL: META, ActivityKind.MEETING: META, ActivityKind.CALL: CONTENT},
        confidential_subject=True,
    ),
    Setting(
        "confidential subject shared one by one", _event_shared, CONTENT, confidential_subject=True
    ),
    Setting("contact shared, this event unshared", _event_unshared, META),
    Setting("contact unshared, this event shared", _unshared_contact_shared_event, CONTENT),
]


def expected(setting: Setting, viewer: str, kind: ActivityKind) -> str:
    if viewer == "other_org":
        return NONE
    if viewer == "owner":
        return setting.owner
    teammate = setting.teammate
    return teammate if isinstance(teammate, str) else teammate[kind]


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_visibility_matrix(world: World, setting: Setting, kind: ActivityKind) -> None:
    # Given Jim shares his own activity (it must not matter) and Pam communicated with a contact
    world.switch(world.jim, share_activity=True)
    contact = world.contact()
    subject = "Confidential: pricing" if setting.confidential_subject else "Paper order"
    activity = world.activity(
        world.pam, [contact], kind=kind, subject=subject, body="Dear Zoë, the price is $5."
    )
    # When Pam arranges her sharing
    setting.arrange(world, contact, activity.id)
    # Then each viewer sees what seed 002 says, and no more
    for viewer in VIEWERS:
        want = expected(setting, viewer, kind)
        got = _seen(world, viewer, contact.id, activity.id)
        assert got == want, (setting.name, viewer, kind.value)


def _seen(world: World, viewer: str, contact_id: str, activity_id: str) -> str:
    user = {
        "owner": world.pam,
        "teammate": world.jim,
        "admin": world.michael,
        "other_org": world.bob,
    }[viewer]
    actor = world.actor(user)
    try:
        items = [i for i in world.stream.contact_stream(actor, contact_id).items]
    except NotFound:
        assert viewer == "other_org"  # the contact itself is not theirs to see
        items = []
    found = [i for i in items if i.id == activity_id]
    if viewer != "owner":
        # One activity, read directly, agrees with the Stream
        try:
            direct = world.stream.activity(actor, activity_id)
        except NotFound:
            assert not found
        else:
            assert found
            assert direct.level == found[0].level
    if not found:
        return NONE
    (item,) = found
    if item.level == "metadata":
        # That it happened: no subject, no participants, no body
        assert (item.subject, item.participants, item.body) == (None, None, None)
        return META
    assert item.subject is not None
    return CONTENT
