"""Closest Connections (seed 000): strength from recency, frequency and reciprocity; on a
contact the strongest teammates, on a company its contacts closest to the organisation; never
for personal contacts; shared only while the user shares activity."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contactsync.domain.accounts import AccountStatus
from contactsync.domain.activity import ActivityKind, Contribution
from contactsync.domain.company import Account
from contactsync.domain.errors import NotFound
from contactsync.sharing.connections import (
    ClosestConnections,
    combined,
    contribution,
    reciprocity,
    score,
)
from contactsync.sharing.lifecycle import Lifecycle
from tests import factories as f
from tests.factories import T0
from tests.sharing.world import World

NOW = T0 + timedelta(days=1)


def _emails(n: int, *, days_ago: float = 1, direction: str = "outbound") -> Contribution:
    acts = [
        f.activity(occurred_at=NOW - timedelta(days=days_ago), direction=direction)
        for _ in range(n)
    ]
    return contribution(acts, NOW)


def test_more_recent_more_frequent_and_two_way_is_stronger() -> None:
    one = score([_emails(1)], NOW, NOW)
    five = score([_emails(5)], NOW, NOW)
    old_five = score([_emails(5, days_ago=240)], NOW, NOW)
    two_way = score([_emails(3), _emails(2, direction="inbound")], NOW, NOW)
    assert 0 < one < five <= 100
    assert old_five < five  # recency
    assert two_way > five  # reciprocity beats the same number one way
    assert reciprocity(0, 5) == 0
    assert reciprocity(5, 5) == 1


def test_scores_decay_when_read_later() -> None:
    part = _emails(4)
    assert score([part], NOW, NOW + timedelta(days=120)) < score([part], NOW, NOW)


def test_meetings_weigh_more_and_count_both_ways() -> None:
    meeting = contribution([f.activity(activity_kind=ActivityKind.MEETING, occurred_at=NOW)], NOW)
    email = contribution([f.activity(occurred_at=NOW)], NOW)
    assert meeting.weighted == 3 * email.weighted
    assert (meeting.inbound, meeting.outbound, meeting.meetings) == (1, 1, 1)


def test_combined_is_bounded_and_grows_with_each_user() -> None:
    assert combined([]) == 0
    assert combined([50, 50]) == 75
    assert combined([100, 10]) == 100


def _setup(world: World):  # type: ignore[no-untyped-def]
    zoe = world.contact(["zoe@acme.example"], company="Acme Corp")
    jose = world.contact(["jose@acme.example"], company="ACME Corporation")
    for user in (world.pam, world.jim):
        world.switch(user, share_activity=True)
    for i in range(6):
        world.activity(world.pam, [zoe], at=NOW - timedelta(days=i),
                       direction="inbound" if i % 2 else "outbound")  # fmt: skip
    world.activity(world.jim, [zoe], at=NOW - timedelta(days=90))
    world.activity(world.jim, [jose], kind=ActivityKind.MEETING, at=NOW - timedelta(days=2))
    return zoe, jose


def test_closest_connections_on_a_contact(world: World) -> None:
    zoe, _ = _setup(world)
    closest = ClosestConnections(world.store, lambda: NOW)
    result = closest.for_contact(world.actor(world.michael), zoe.id)
    assert result.available is True
    assert [c.user_id for c in result.items] == [world.pam.id, world.jim.id]
    pam = result.items[0]
    assert (pam.emails, pam.reciprocal) == (6, True)
    assert result.items[1].reciprocal is False
    assert pam.score > result.items[1].score


def test_only_users_who_share_activity_are_shown_and_removed_users_drop_out(
    world: World,
) -> None:
    zoe, _ = _setup(world)
    closest = ClosestConnections(world.store, lambda: NOW)
    world.switch(world.jim, share_activity=False)
    # Michael no longer sees Jim; Jim still sees himself
    michael_view = closest.for_contact(world.actor(world.michael), zoe.id)
    assert [c.user_id for c in michael_view.items] == [world.pam.id]
    jim_view = closest.for_contact(world.actor(world.jim), zoe.id)
    assert [c.user_id for c in jim_view.items] == [world.pam.id, world.jim.id]
    # Pam leaves: she is no longer in the organisation's closest connections
    Lifecycle(world.store).remove_user(world.actor(world.michael), world.pam.id)
    assert closest.for_contact(world.actor(world.jim), zoe.id).items[0].user_id == world.jim.id
    assert len(closest.for_contact(world.actor(world.jim), zoe.id).items) == 1


def test_personal_contacts_have_no_closest_connections(world: World) -> None:
    roy = world.contact(["roy@mail.example"], owner=world.pam, personal=True)
    world.switch(world.pam, share_activity=True)
    world.activity(world.pam, [roy])
    closest = ClosestConnections(world.store, lambda: NOW)
    result = closest.for_contact(world.actor(world.pam), roy.id)
    assert (result.available, result.items) == (False, [])
    with pytest.raises(NotFound):
        closest.for_contact(world.actor(world.jim), roy.id)
    with pytest.raises(NotFound):
        closest.for_contact(world.actor(world.bob), roy.id)


def test_a_deleted_accounts_part_disappears_at_once(world: World) -> None:
    zoe, _ = _setup(world)
    account = world.accounts[world.pam.id]
    world.store.update(account.model_copy(update={"status": AccountStatus.DELETED}))
    closest = ClosestConnections(world.store, lambda: NOW)
    assert [c.user_id for c in closest.for_contact(world.actor(world.jim), zoe.id).items] == [
        world.jim.id
    ]


def test_closest_connections_on_a_company(world: World) -> None:
    zoe, jose = _setup(world)
    company = world.store.create(Account(org_id="org-dm", id="co-acme", name="Acme"))
    closest = ClosestConnections(world.store, lambda: NOW)
    result = closest.for_company(world.actor(world.michael), company.id)
    assert [c.contact_id for c in result.items] == [zoe.id, jose.id]
    assert result.items[0].closest_user_id == world.pam.id
    assert result.items[1].closest_user_id == world.jim.id
    assert (
        closest.for_company(world.actor(world.michael), company.id, limit=1).items[0].contact_id
        == zoe.id
    )
    with pytest.raises(NotFound):
        closest.for_company(world.actor(world.bob), company.id)
