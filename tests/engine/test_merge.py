"""The pure engine: merge, match, plan, deletes. Property-based where a law should hold for
every input."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contactsync.connectors.base import ContactFields, Create, Delete, RemoteRecord, Update
from contactsync.domain import (
    AutoRemoval,
    ConflictPolicy,
    ConflictRule,
    Direction,
    EmailAddress,
    HubContact,
    PhoneNumber,
    Provider,
    Visibility,
)
from contactsync.domain.contact import CONTACT_FIELDS, FieldProvenance
from contactsync.engine.canonical import fingerprint, hub_fields, snapshot
from contactsync.engine.deletes import DeleteAction, mass_delete, on_remote_delete
from contactsync.engine.match import choose
from contactsync.engine.merge import SpokeView, incoming_wins, merge
from contactsync.engine.plan import plan
from tests import factories as f
from tests.factories import T0

ALL = frozenset(CONTACT_FIELDS)


def spoke(
    account_id: str = "acc-sf", provider: Provider = Provider.SALESFORCE, **kw: object
) -> SpokeView:
    return SpokeView(
        account_id=account_id,
        provider=provider,
        owner_user_id=str(kw.pop("owner_user_id", "u-1")),
        pull_fields=ALL,
        push_fields=ALL,
        **kw,  # type: ignore[arg-type]
    )


def record(remote_id: str = "r1", minutes: int = 0, **fields: object) -> RemoteRecord:
    return RemoteRecord(
        remote_id=remote_id,
        object_type="Contact",
        modified_at=T0 + timedelta(minutes=minutes),
        fields=ContactFields(**fields),  # type: ignore[arg-type]
    )


# ---- merge -------------------------------------------------------------------------------------

sources = st.sampled_from(["acc-a", "acc-b", "acc-c"])
updates = st.lists(
    st.tuples(sources, st.integers(0, 50), st.text("abcxyz", min_size=1, max_size=5)),
    min_size=1,
    max_size=8,
    unique_by=lambda u: (u[0], u[1]),
)


def _interleave(ups: list[tuple[str, int, str]], rnd: random.Random) -> list[tuple[str, int, str]]:
    """One arrival order: each source's states in its own time order, sources interleaved."""
    queues = {src: sorted((u for u in ups if u[0] == src), key=lambda u: u[1]) for src, _, _ in ups}
    order = []
    while any(queues.values()):
        src = rnd.choice(sorted(s for s, q in queues.items() if q))
        order.append(queues[src].pop(0))
    return order


def _replay(order: list[tuple[str, int, str]], policy: ConflictPolicy | None = None) -> str:
    contact = f.contact(contact_id="c-1", title="")
    previous: dict[str, dict[str, object]] = {}
    for source, minute, value in order:
        view = spoke(source, conflict=policy) if policy else spoke(source)
        rec = record(minutes=minute, title=value)
        contact = merge(contact, rec, view, now=T0, previous=previous.get(source)).contact
        previous[source] = snapshot(rec.fields)
    return contact.title


def _changes(ups: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The updates that change their source's value (what a source actually asserted)."""
    events, last = [], {}
    for src, minute, value in sorted(ups, key=lambda u: (u[0], u[1])):
        if last.get(src) != value:
            events.append((src, minute, value))
        last[src] = value
    return events


@settings(max_examples=300, deadline=None)
@given(updates, st.randoms(use_true_random=False))
def test_last_writer_wins_whatever_the_arrival_order(
    ups: list[tuple[str, int, str]], rnd: random.Random
) -> None:
    """Replicas receiving the same changes interleaved differently agree (convergence), on the
    newest change, ties broken by account id."""
    first = _replay(_interleave(ups, rnd))
    second = _replay(_interleave(ups, rnd))
    assert first == second
    best = max(_changes(ups), key=lambda u: (u[1], [-ord(ch) for ch in u[0]]))
    assert first == best[2]


def test_an_unchanged_stale_field_does_not_undo_a_newer_edit() -> None:
    """Salesforce re-saves a record (another field changed) with its old title: the newer title
    from Google must survive."""
    contact = f.contact(contact_id="c-1", title="Buyer")
    sf_before = record(minutes=0, title="Buyer", department="Sales")
    google = merge(contact, record(minutes=10, title="Head Buyer"), spoke("acc-g"), now=T0).contact
    assert google.title == "Head Buyer"
    sf_after = record(minutes=20, title="Buyer", department="Procurement")
    merged = merge(google, sf_after, spoke(), now=T0, previous=snapshot(sf_before.fields)).contact
    assert (merged.title, merged.department) == ("Head Buyer", "Procurement")


@settings(max_examples=150, deadline=None)
@given(updates, st.randoms(use_true_random=False))
def test_source_priority_beats_time(ups: list[tuple[str, int, str]], rnd: random.Random) -> None:
    policy = ConflictPolicy(rule=ConflictRule.SOURCE_PRIORITY, priority=["acc-b"])
    title = _replay(_interleave(ups, rnd), policy)
    from_b = [u for u in ups if u[0] == "acc-b"]
    if from_b:
        assert title == max(from_b, key=lambda u: u[1])[2]


def test_merge_of_equal_values_changes_nothing() -> None:
    contact = f.contact(contact_id="c-1", given_name="Zoë", emails=["zoe@example.com"])
    outcome = merge(
        contact,
        record(given_name="Zoë", emails=(EmailAddress(address="ZOE@example.com"),)),
        spoke(),
        now=T0,
    )
    assert not outcome.changed
    assert outcome.contact is contact


def test_merge_records_provenance_and_changes() -> None:
    contact = f.contact(contact_id="c-1", title="Clerk")
    outcome = merge(contact, record(minutes=5, title="Manager"), spoke(), now=T0, run_id="run-1")
    assert outcome.contact.title == "Manager"
    prov = outcome.contact.provenance["title"]
    assert (prov.source, prov.source_ts, prov.run_id) == (
        "acc-sf",
        T0 + timedelta(minutes=5),
        "run-1",
    )
    assert [(c.field, c.old, c.new) for c in outcome.changes] == [("title", "Clerk", "Manager")]


def test_merge_keeps_newer_hub_value_and_says_so() -> None:
    contact = f.contact(contact_id="c-1", title="New")
    contact = contact.model_copy(
        update={
            "provenance": {
                "title": FieldProvenance(
                    source="acc-g", source_ts=T0 + timedelta(hours=1), hub_version=1
                )
            }
        }
    )
    outcome = merge(contact, record(minutes=5, title="Old"), spoke(), now=T0)
    assert outcome.contact.title == "New"
    assert outcome.kept == ["title"]


def test_pull_only_the_mapped_fields() -> None:
    contact = f.contact(contact_id="c-1", title="Clerk", department="")
    view = SpokeView(
        account_id="acc-sf",
        provider=Provider.SALESFORCE,
        owner_user_id="u-1",
        pull_fields=frozenset({"department"}),
        push_fields=ALL,
    )
    outcome = merge(contact, record(title="CEO", department="Sales"), view, now=T0)
    assert (outcome.contact.title, outcome.contact.department) == ("Clerk", "Sales")


def test_tie_is_broken_by_account_id() -> None:
    current = FieldProvenance(source="acc-b", source_ts=T0, hub_version=1)
    policy = ConflictPolicy()
    assert incoming_wins(policy, "acc-a", T0, current)
    assert not incoming_wins(policy, "acc-c", T0, current)
    assert not incoming_wins(policy, "acc-b", T0 - timedelta(seconds=1), current)  # a replay


# ---- canonical forms and fingerprints ------------------------------------------------------------


def test_fingerprint_ignores_formatting_but_not_values() -> None:
    a = ContactFields(
        emails=(EmailAddress(address="Pam@Example.com"),),
        phones=(PhoneNumber.parse("(415) 555-2671", "US"),),
        title="  Receptionist ",
    )
    b = ContactFields(
        emails=(EmailAddress(address="pam@example.com"),),
        phones=(PhoneNumber.parse("+1 415-555-2671", "US"),),
        title="Receptionist",
    )
    assert fingerprint(snapshot(a)) == fingerprint(snapshot(b))
    c = b.model_copy(update={"title": "Office Manager"})
    assert fingerprint(snapshot(b)) != fingerprint(snapshot(c))


# ---- matching ------------------------------------------------------------------------------------


def test_the_same_person_from_three_systems_with_differently_formatted_phones() -> None:
    hub = f.contact(contact_id="c-1", emails=[], phones=["(415) 555-2671"])
    for raw in ("+1 415 555 2671", "415.555.2671", "+14155552671"):
        rec = record(phones=(PhoneNumber.lenient(raw, "US"),))
        assert choose(rec, spoke(), [hub]).contact == hub


def test_email_match_beats_phone_match_and_suggests_the_other() -> None:
    by_phone = f.contact(contact_id="c-phone", emails=[], phones=["(415) 555-2671"])
    by_email = f.contact(contact_id="c-email", emails=["pam@example.com"])
    rec = record(
        emails=(EmailAddress(address="PAM@example.com"),),
        phones=(PhoneNumber.parse("4155552671", "US"),),
    )
    result = choose(rec, spoke(), [by_phone, by_email])
    assert result.contact == by_email
    assert result.how == "email"
    assert result.others == ("c-phone",)


def test_personal_contacts_only_match_their_owner_s_unshared_records() -> None:
    mine = f.contact(contact_id="c-mine", visibility=Visibility.PERSONAL, owner_user_id="u-1")
    theirs = f.contact(contact_id="c-theirs", visibility=Visibility.PERSONAL, owner_user_id="u-2",
                       emails=[mine.emails[0].address])  # fmt: skip
    rec = record(emails=(mine.emails[0],))
    book = spoke("acc-g", Provider.GOOGLE)
    assert choose(rec, book, [mine, theirs]).contact == mine
    # A Salesforce record never merges into anyone's personal contact.
    assert choose(rec, spoke(), [mine, theirs]).contact is None


# ---- planning ------------------------------------------------------------------------------------


def test_personal_contact_never_reaches_a_shared_system() -> None:
    contact = f.contact(contact_id="c-1", visibility=Visibility.PERSONAL, owner_user_id="u-1")
    views = {"acc-sf": spoke(), "acc-g": spoke("acc-g", Provider.GOOGLE)}
    links = [
        f.link(contact_id="c-1", account_id="acc-g", object_type="person", remote_id="people/c1")
    ]
    assert plan(contact, links, views["acc-sf"], views).mutation is None


def test_business_contact_is_created_in_salesforce_as_the_default_object() -> None:
    contact = f.contact(contact_id="c-1")
    views = {"acc-sf": spoke(), "acc-ac": spoke("acc-ac", Provider.AIRCALL)}
    links = [f.link(contact_id="c-1", account_id="acc-ac", object_type="contact", remote_id="42")]
    decided = plan(contact, links, views["acc-sf"], views)
    assert isinstance(decided.mutation, Create)
    assert decided.mutation.object_type == "Contact"
    assert decided.mutation.hub_id == "c-1"


def test_aircall_needs_a_first_name_and_a_valid_phone() -> None:
    views = {"acc-sf": spoke(), "acc-ac": spoke("acc-ac", Provider.AIRCALL)}
    links = [f.link(contact_id="c-1")]
    no_phone = f.contact(contact_id="c-1")
    assert plan(no_phone, links, views["acc-ac"], views).mutation is None
    callable_ = f.contact(contact_id="c-1", phones=["(415) 555-2671"])
    assert isinstance(plan(callable_, links, views["acc-ac"], views).mutation, Create)
    nameless = f.contact(contact_id="c-1", given_name="", phones=["(415) 555-2671"])
    assert plan(nameless, links, views["acc-ac"], views).mutation is None


def test_update_sends_only_changed_fields_and_nothing_when_in_step() -> None:
    contact = f.contact(contact_id="c-1", title="Manager")
    view = spoke()
    snap = snapshot(hub_fields(contact, view.push_fields))
    link = f.link(contact_id="c-1", snapshot=snap, fingerprint=fingerprint(snap))
    assert plan(contact, [link], view, {"acc-sf": view}).mutation is None
    changed = contact.model_copy(update={"title": "Director"})
    decided = plan(changed, [link], view, {"acc-sf": view})
    assert isinstance(decided.mutation, Update)
    assert decided.mutation.fields.provided() == {"title": "Director"}


def test_direction_to_hub_never_pushes() -> None:
    view = spoke(direction=Direction.TO_HUB)
    assert plan(f.contact(contact_id="c-1"), [], view, {"acc-sf": view}).mutation is None


def test_archived_contact_is_deleted_only_where_auto_removal_allows() -> None:
    contact = f.contact(contact_id="c-1", archived=True)
    link = f.link(contact_id="c-1")
    allowed = spoke(auto_removal=AutoRemoval(to_provider=True))
    assert isinstance(plan(contact, [link], allowed, {"acc-sf": allowed}).mutation, Delete)
    kept = spoke()
    assert plan(contact, [link], kept, {"acc-sf": kept}).mutation is None


# ---- deletes -------------------------------------------------------------------------------------


def test_remote_delete_policy() -> None:
    marked = f.link(marked=True, account_id="acc-ms", object_type="contact")
    personal = f.link(account_id="acc-g", object_type="person")
    outlook = spoke("acc-ms", Provider.MICROSOFT)
    assert on_remote_delete(marked, outlook) is DeleteAction.RESTORE
    assert on_remote_delete(personal, spoke("acc-g", Provider.GOOGLE)) is DeleteAction.UNLINK
    assert on_remote_delete(f.link(), spoke()) is DeleteAction.RESTORE
    removal = spoke(auto_removal=AutoRemoval(from_provider=True))
    assert on_remote_delete(f.link(), removal) is DeleteAction.ARCHIVE


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0.01, 1.0))
def test_mass_delete_breaker(vanished: int, linked: int, threshold: float) -> None:
    tripped = mass_delete(vanished, linked, threshold)
    if vanished < 10:
        assert not tripped
    if tripped:
        assert vanished > threshold * max(linked, 1)


def test_hub_contact_model_used_by_factories_is_valid() -> None:
    assert isinstance(f.contact(), HubContact)


def _one_email(fields: ContactFields) -> ContactFields:
    """A provider with room for one email (a Salesforce Contact's Email field)."""
    if fields.emails is None:
        return fields
    return fields.model_copy(update={"emails": fields.emails[:1]})


def test_a_provider_without_room_does_not_erase_what_it_cannot_hold() -> None:
    contact = f.contact(contact_id="c-1", emails=["pam@dundermifflin.com", "pam@home.example"])
    crm = spoke(fit=_one_email)
    # Salesforce reports its one email: the second one, which it never had room for, stays.
    seen = merge(contact, record(minutes=5, emails=(contact.emails[0],)), crm, now=T0)
    assert seen.contact.email_keys() == ["pam@dundermifflin.com", "pam@home.example"]
    # Salesforce changes its email: the primary is replaced, the other kept.
    new = EmailAddress(address="pam.beesly@dundermifflin.com")
    changed = merge(contact, record(minutes=9, emails=(new,)), crm, now=T0).contact
    assert changed.email_keys() == ["pam.beesly@dundermifflin.com", "pam@home.example"]


def test_plans_compare_only_what_the_provider_can_hold() -> None:
    entered = FieldProvenance(source="user:u-1", source_ts=T0, hub_version=1)
    contact = f.contact(
        contact_id="c-1",
        emails=["pam@dundermifflin.com", "pam@home.example"],
        provenance={"given_name": entered},  # created in the hub: a business contact
    )
    crm = spoke(fit=_one_email)
    created = plan(contact, [], crm, {"acc-sf": crm})
    assert isinstance(created.mutation, Create)
    assert [e.key for e in created.mutation.fields.emails or ()] == ["pam@dundermifflin.com"]
    snap = snapshot(_one_email(hub_fields(contact, crm.push_fields)))
    link = f.link(contact_id="c-1", snapshot=snap, fingerprint=fingerprint(snap))
    assert plan(contact, [link], crm, {"acc-sf": crm}).mutation is None
