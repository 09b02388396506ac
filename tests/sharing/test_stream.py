"""The Stream per contact and per company: order, paging, one entry per email seen from several
mailboxes, personal contacts, removed users, deleted and disabled accounts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contactsync.domain.accounts import AccountStatus
from contactsync.domain.company import Account
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.org import User
from contactsync.sharing.lifecycle import Lifecycle, forget_account
from contactsync.sharing.service import Decision
from tests.factories import T0
from tests.sharing.world import World


def test_newest_first_and_paged_with_tokens(world: World) -> None:
    # Given 23 emails with Zoë, shared
    zoe = world.contact()
    world.switch(world.pam, share_activity=True)
    made = [world.activity(world.pam, [zoe], at=T0 + timedelta(hours=i)) for i in range(23)]
    jim = world.actor(world.jim)
    # When Jim pages through her Stream ten at a time
    seen, token, pages = [], None, 0
    while True:
        page = world.stream.contact_stream(jim, zoe.id, limit=10, page_token=token)
        seen += [i.id for i in page.items]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    # Then he sees each once, newest first
    assert seen == [a.id for a in reversed(made)]
    assert pages == 3
    # A token is bound to its listing and organisation
    first = world.stream.contact_stream(jim, zoe.id, limit=10).next_page_token
    other = world.contact()
    with pytest.raises(InvalidInput):
        world.stream.contact_stream(jim, other.id, page_token=first)
    with pytest.raises(InvalidInput):
        world.stream.contact_stream(jim, zoe.id, page_token="garbage")


def test_hidden_activity_does_not_shorten_pages(world: World) -> None:
    zoe = world.contact()
    world.switch(world.pam, share_activity=True)
    for i in range(5):  # Michael does not share: his activity is skipped
        world.activity(world.michael, [zoe], at=T0 + timedelta(hours=10 + i))
    shown = [world.activity(world.pam, [zoe], at=T0 + timedelta(hours=i)) for i in range(3)]
    page = world.stream.contact_stream(world.actor(world.jim), zoe.id, limit=2)
    assert [i.id for i in page.items] == [shown[2].id, shown[1].id]
    assert page.next_page_token is not None


def test_one_email_seen_from_two_mailboxes_shows_once(world: World) -> None:
    # Given Pam and Jim both on the same email with Zoë (same Message-ID), both sharing activity
    zoe = world.contact()
    for user in (world.pam, world.jim):
        world.switch(user, share_activity=True)
    key = "<CAF=abc@mail.gmail.com>"
    pams = world.activity(world.pam, [zoe], message_key=key, subject="Lunch")
    jims = world.activity(world.jim, [zoe], message_key=key, subject="Lunch")
    # Then Michael sees one entry, and Jim sees his own copy with its content
    michael_items = world.stream.contact_stream(world.actor(world.michael), zoe.id).items
    assert len(michael_items) == 1
    assert michael_items[0].copies == 2
    assert michael_items[0].level == "metadata"
    (jim_item,) = world.stream.contact_stream(world.actor(world.jim), zoe.id).items
    assert (jim_item.id, jim_item.level, jim_item.own) == (jims.id, "content", True)
    assert pams.id != jims.id


def test_metadata_hides_personal_contacts_of_others(world: World) -> None:
    # Given Pam emailed a shared contact and her own personal contact together
    zoe = world.contact()
    roy = world.contact(["roy@mail.example"], owner=world.pam, personal=True)
    world.switch(world.pam, share_activity=True)
    world.activity(world.pam, [zoe, roy])
    # Then Jim sees the email happened with Zoë, not with Roy; Pam sees both
    (item,) = world.stream.contact_stream(world.actor(world.jim), zoe.id).items
    assert item.contact_ids == [zoe.id]
    (own,) = world.stream.contact_stream(world.actor(world.pam), zoe.id).items
    assert own.contact_ids == [zoe.id, roy.id]
    with pytest.raises(NotFound):
        world.stream.contact_stream(world.actor(world.jim), roy.id)


def test_company_stream_unites_its_contacts(world: World) -> None:
    zoe = world.contact(company="Acme Corp")
    jose = world.contact(company="ACME Corporation")
    other = world.contact(company="Initech")
    world.switch(world.pam, share_activity=True)
    a = world.activity(world.pam, [zoe])
    b = world.activity(world.pam, [jose])
    world.activity(world.pam, [other])
    both = world.activity(world.pam, [zoe, jose])
    company = world.store.create(Account(org_id="org-dm", id="co-acme", name="Acme, Inc."))
    items = world.stream.company_stream(world.actor(world.jim), company.id).items
    assert [i.id for i in items] == [both.id, b.id, a.id]
    with pytest.raises(NotFound):
        world.stream.company_stream(world.actor(world.bob), company.id)


def test_a_removed_user_loses_access_at_once_and_their_sharing_stays(world: World) -> None:
    # Given Pam shared her activity and Zoë's content, and Jim's email with Zoë
    zoe = world.contact()
    personal = world.contact(owner=world.pam, personal=True)
    world.switch(world.pam, share_activity=True)
    world.switch(world.jim, share_activity=True)
    world.sharing.decide(world.actor(world.pam), [Decision(contact_id=zoe.id, shared=True)])
    email = world.activity(world.pam, [zoe], subject="Order")
    unshared = world.activity(world.pam, [zoe], subject="Personal note")  # confidential rule
    jims = world.activity(world.jim, [zoe])
    request = world.sharing.request_access(world.actor(world.jim), unshared.id)
    # When Michael removes Pam
    removal = Lifecycle(world.store).remove_user(world.actor(world.michael), world.pam.id)
    # Then Pam can read nothing any more
    with pytest.raises(NotFound):
        world.stream.contact_stream(world.actor(world.pam), zoe.id)
    with pytest.raises(NotFound):
        world.sharing.set_event(world.actor(world.pam), unshared.id, True)
    # Her mailbox is disabled (history kept), the pending request declined
    assert removal.disabled_accounts == [world.accounts[world.pam.id].id]
    assert removal.declined_requests == 1
    assert removal.personal_contacts_withheld == 1
    assert world.sharing.requests(world.actor(world.jim), "requester")[0].id == request.id
    # What she shared stays shared; what she did not stays unshared; Jim's own activity stays
    levels = {
        i.id: i.level for i in world.stream.contact_stream(world.actor(world.jim), zoe.id).items
    }
    assert levels == {email.id: "content", unshared.id: "metadata", jims.id: "content"}
    with pytest.raises(InvalidInput):
        world.sharing.request_access(world.actor(world.jim), unshared.id)
    # Her personal contacts do not enter the organisation
    with pytest.raises(NotFound):
        world.stream.contact_stream(world.actor(world.michael), personal.id)
    assert world.store.get(User, "org-dm", world.pam.id).active is False


def test_who_may_remove_whom(world: World) -> None:
    lifecycle = Lifecycle(world.store)
    with pytest.raises(NotFound):
        lifecycle.remove_user(world.actor(world.jim), world.pam.id)  # a teammate may not
    with pytest.raises(NotFound):
        lifecycle.remove_user(world.actor(world.bob), world.pam.id)  # another organisation
    with pytest.raises(InvalidInput) as err:
        lifecycle.remove_user(world.actor(world.michael), world.michael.id)  # the last admin
    assert err.value.problems[0]["field"] == "user_id"
    assert lifecycle.remove_user(world.actor(world.jim), world.jim.id).user_id == world.jim.id
    with pytest.raises(NotFound):
        lifecycle.remove_user(world.actor(world.michael), world.jim.id)  # already gone


def test_disabling_keeps_activity_and_deleting_removes_it(world: World) -> None:
    zoe = world.contact()
    world.switch(world.pam, share_activity=True)
    email = world.activity(world.pam, [zoe])
    jim = world.actor(world.jim)
    account = world.accounts[world.pam.id]
    disabled = world.store.update(account.model_copy(update={"status": AccountStatus.DISABLED}))
    assert [i.id for i in world.stream.contact_stream(jim, zoe.id).items] == [email.id]
    # Deleted: hidden at once, then purged with its part of the connection strengths
    world.store.update(disabled.model_copy(update={"status": AccountStatus.DELETED}))
    assert world.stream.contact_stream(jim, zoe.id).items == []
    forgotten = forget_account(world.store, "org-dm", account.id, world.now)
    assert (forgotten.activities, forgotten.connections) == (1, 1)
    with pytest.raises(NotFound):
        world.stream.activity(world.actor(world.pam), email.id)
    assert forget_account(world.store, "org-dm", account.id).activities == 0  # idempotent
