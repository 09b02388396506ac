"""Sharing decisions as a user makes them (seed 002): switches, the approval queue with All and
None, per-address decisions, per-event overrides, request access; bodies follow."""

from __future__ import annotations

import pytest

from contactsync.domain.activity import Activity
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.sharing import AccessStatus, SharingFlag, SharingTarget
from contactsync.sharing.service import Decision
from tests.sharing.world import World


def _pending(world: World, user_id: str, contact_id: str) -> None:
    """The capture's first contact between a user and a contact queues a decision."""
    world.store.create(
        SharingFlag(
            org_id="org-dm",
            id=SharingFlag.make_id(user_id, SharingTarget.CONTACT, contact_id),
            user_id=user_id,
            target=SharingTarget.CONTACT,
            target_id=contact_id,
        )
    )


def test_switches_are_off_by_default_and_need_two_users(world: World) -> None:
    pam = world.actor(world.pam)
    assert world.sharing.settings(pam).model_dump() == {
        "email_contact_sync": False,
        "share_activity": False,
        "auto_share_content": False,
    }
    # An organisation of one cannot share
    world.store.update(world.reload(world.jim).model_copy(update={"active": False}))
    world.store.update(world.reload(world.michael).model_copy(update={"active": False}))
    with pytest.raises(InvalidInput) as err:
        world.sharing.update_settings(pam, {"share_activity": True})
    assert err.value.problems[0]["field"] == "share_activity"
    assert world.reload(world.pam).sharing.share_activity is False
    # Turning things off is always allowed
    assert (
        world.sharing.update_settings(pam, {"share_activity": False}).sharing.share_activity
        is False
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"share_everything": True}, "share_everything"),
        ({"share_activity": "yes"}, "share_activity"),
    ],
)
def test_bad_settings_name_the_field_and_write_nothing(
    world: World, changes: dict[str, object], field: str
) -> None:
    before = world.reload(world.pam)
    with pytest.raises(InvalidInput) as err:
        world.sharing.update_settings(world.actor(world.pam), changes)
    assert err.value.problems[0]["field"] == field
    assert world.reload(world.pam) == before


def test_the_queue_lists_new_contacts_and_all_shares_them(world: World) -> None:
    # Given two contacts awaiting Pam's decision (one with two addresses) and one decided
    zoe = world.contact(["zoe@acme.example", "zoe.home@mail.example"])
    jose = world.contact(["jose@acme.example"])
    decided = world.contact()
    for contact in (zoe, jose, decided):
        _pending(world, world.pam.id, contact.id)
    pam = world.actor(world.pam)
    world.sharing.decide(pam, [Decision(contact_id=decided.id, shared=False)])
    # When Pam opens her queue
    queue = world.sharing.queue(pam)
    # Then it lists the undecided contacts with each address
    assert [e.contact_id for e in queue] == [zoe.id, jose.id]
    assert [a.address for a in queue[0].addresses] == ["zoe@acme.example", "zoe.home@mail.example"]
    # When she clicks All
    assert world.sharing.decide_all(pam, True) == 2
    # Then the queue is empty and both are shared
    assert world.sharing.queue(pam) == []
    assert world.sharing.contact_sharing(pam, zoe.id)[0] is True
    assert world.sharing.contact_sharing(pam, decided.id)[0] is False


def test_none_unshares_the_listed_contacts_only(world: World) -> None:
    a, b = world.contact(), world.contact()
    for contact in (a, b):
        _pending(world, world.pam.id, contact.id)
    pam = world.actor(world.pam)
    assert world.sharing.decide_all(pam, False, [a.id]) == 1
    assert [e.contact_id for e in world.sharing.queue(pam)] == [b.id]
    with pytest.raises(InvalidInput) as err:
        world.sharing.decide_all(pam, True, [b.id, a.id])  # a is decided already
    assert err.value.problems[0]["field"] == "contact_ids.1"
    assert [e.contact_id for e in world.sharing.queue(pam)] == [b.id]


def test_a_bad_decision_writes_none_of_the_batch(world: World) -> None:
    zoe = world.contact(["zoe@acme.example"])
    private = world.contact(owner=world.jim, personal=True)
    pam = world.actor(world.pam)
    batches = [
        ([Decision(contact_id=zoe.id, shared=True), Decision(contact_id="c-nope", shared=True)],
         "decisions.1.contact_id"),
        ([Decision(contact_id=zoe.id, shared=True),
          Decision(contact_id=private.id, shared=True)], "decisions.1.contact_id"),
        ([Decision(contact_id=zoe.id, shared=True, addresses={"other@acme.example": True})],
         "decisions.0.addresses"),
    ]  # fmt: skip
    for decisions, field in batches:
        with pytest.raises(InvalidInput) as err:
            world.sharing.decide(pam, decisions)
        assert err.value.problems[0]["field"] == field
    assert world.store.lookup(SharingFlag, "org-dm", "user", world.pam.id) == []


def test_per_address_sharing(world: World) -> None:
    # Given a contact with a work and a home address, shared for work only
    zoe = world.contact(["zoe@acme.example", "zoe@home.example"])
    world.switch(world.pam, share_activity=True)
    pam = world.actor(world.pam)
    world.sharing.decide(
        pam, [Decision(contact_id=zoe.id, shared=True, addresses={"ZOE@home.example": False})]
    )
    work = world.activity(
        world.pam, [zoe], participants=["pam@dundermifflin.com", "zoe@acme.example"]
    )
    home = world.activity(
        world.pam, [zoe], participants=["pam@dundermifflin.com", "zoe@home.example"]
    )
    # Then Jim reads the work email only
    jim = world.actor(world.jim)
    levels = {i.id: i.level for i in world.stream.contact_stream(jim, zoe.id).items}
    assert levels == {work.id: "content", home.id: "metadata"}
    assert world.sharing.contact_sharing(pam, zoe.id)[1][1].shared is False


def test_bodies_are_kept_only_while_shared(world: World) -> None:
    # Given Pam shares activity and an email with Zoë whose body was captured
    zoe = world.contact()
    world.switch(world.pam, share_activity=True)
    pam = world.actor(world.pam)
    email = world.activity(world.pam, [zoe], body=None)
    # When she shares Zoë's content, the body is due for fetching
    world.sharing.decide(pam, [Decision(contact_id=zoe.id, shared=True)])
    stored = world.store.get(Activity, "org-dm", email.id)
    assert stored.body_due is True
    assert [a.id for a in world.store.lookup(Activity, "org-dm", "body_due", email.account_id)] == [
        email.id
    ]
    # When the capture fetched it and she then unshares the event
    world.store.update(stored.model_copy(update={"body": "Hi Zoë", "body_due": False}))
    world.sharing.set_event(pam, email.id, False)
    # Then the stored body is gone
    stored = world.store.get(Activity, "org-dm", email.id)
    assert (stored.body, stored.body_due) == (None, False)
    # And turning activity sharing off drops bodies too (nobody else may read them)
    world.sharing.set_event(pam, email.id, None)
    world.store.update(
        world.store.get(Activity, "org-dm", email.id).model_copy(
            update={"body": "Hi", "body_due": False}
        )
    )
    world.sharing.update_settings(pam, {"share_activity": False})
    assert world.store.get(Activity, "org-dm", email.id).body is None


def test_only_the_owner_overrides_an_event(world: World) -> None:
    zoe = world.contact()
    email = world.activity(world.pam, [zoe])
    with pytest.raises(NotFound):
        world.sharing.set_event(world.actor(world.jim), email.id, True)
    with pytest.raises(NotFound):
        world.sharing.set_event(world.actor(world.bob), email.id, True)


def test_request_access_granted_to_the_requester_only(world: World) -> None:
    # Given Pam shares activity but not Zoë's content
    zoe = world.contact()
    world.switch(world.pam, share_activity=True)
    email = world.activity(world.pam, [zoe], subject="Renewal")
    jim, michael, pam = world.actor(world.jim), world.actor(world.michael), world.actor(world.pam)
    assert world.stream.activity(jim, email.id).can_request_access is True
    # When Jim requests access
    request = world.sharing.request_access(jim, email.id, note="for the renewal call")
    assert request.status is AccessStatus.PENDING
    assert world.sharing.request_access(jim, email.id).id == request.id  # idempotent
    assert [r.id for r in world.sharing.requests(pam, "owner")] == [request.id]
    assert world.stream.activity(jim, email.id).access_request is AccessStatus.PENDING
    # Then only Pam can answer it
    with pytest.raises(NotFound):
        world.sharing.answer(michael, request.id, True)
    granted = world.sharing.answer(pam, request.id, True)
    assert granted.status is AccessStatus.GRANTED
    # Jim reads it; Michael still only sees that it happened; the body is now due
    assert world.stream.activity(jim, email.id).level == "content"
    assert world.stream.activity(michael, email.id).level == "metadata"
    assert world.store.get(Activity, "org-dm", email.id).body_due is True
    # When Pam withdraws it, Jim is back to metadata and the body is no longer wanted
    world.sharing.answer(pam, request.id, False)
    assert world.stream.activity(jim, email.id).level == "metadata"
    assert world.store.get(Activity, "org-dm", email.id).body_due is False
    # And Jim may ask again
    assert world.sharing.request_access(jim, email.id).status is AccessStatus.PENDING


def test_request_access_refusals(world: World) -> None:
    zoe = world.contact()
    email = world.activity(world.pam, [zoe])
    jim = world.actor(world.jim)
    # Activity not shared: Jim cannot even see it happened
    with pytest.raises(NotFound):
        world.sharing.request_access(jim, email.id)
    world.switch(world.pam, share_activity=True)
    world.sharing.decide(world.actor(world.pam), [Decision(contact_id=zoe.id, shared=True)])
    with pytest.raises(InvalidInput) as err:
        world.sharing.request_access(jim, email.id)
    assert err.value.problems[0]["field"] == "activity_id"
    with pytest.raises(NotFound):
        world.sharing.request_access(world.actor(world.bob), email.id)


def test_auto_share_shares_the_contacts_i_add(world: World) -> None:
    mine = world.contact(owner=world.pam)
    theirs = world.contact(owner=world.jim)
    for contact in (mine, theirs):
        _pending(world, world.pam.id, contact.id)
    pam = world.actor(world.pam)
    world.sharing.update_settings(pam, {"auto_share_content": True})
    assert [e.contact_id for e in world.sharing.queue(pam)] == [theirs.id]
    assert world.sharing.contact_sharing(pam, mine.id)[0] is True
