"""Generated Aircall data: contacts from the shared realistic people, and calls to them.

Phone numbers are written the ways people type them in international form (Aircall refuses
national formats): ``+1 212-555-0123``, ``+12125550123`` or ``+1.212.555.0123``; emails keep the
case a person gave them. The same person seeded into another provider with the same seed shows
up there in another format. Creation dates spread over the past ``spread_days`` so that
creation-date windows (the way around the 10,000-records cap) have something to split.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import phonenumbers

from contactsync_sandbox.aircall.models import Call, Contact, ContactStore, User
from contactsync_sandbox.core.people import Person, format_phone, people_for, person, vary_email

_PHONE_LABELS = {"work": "Work", "mobile": "Mobile", "home": "Home"}
_EMAIL_LABELS = {"work": "Work", "personal": "Personal"}
_MISSED_REASONS = ("agents_did_not_answer", "out_of_opening_hours", "no_available_agent")
_DAY = 86_400


def _style(universe_index: int) -> int:
    # International styles only (1: spaced, 2: E.164, 3: dotted): never the national one.
    return 1 + universe_index % 3


def contact_from_person(
    store: ContactStore, who: Person, created_at: int, updated_at: int
) -> Contact:
    style = _style(who.universe_index)
    phones = [
        store.new_detail("phone", _PHONE_LABELS[p.label], format_phone(p, style), key=p.e164)
        for p in who.phones
    ]
    emails = [
        store.new_detail(
            "email", _EMAIL_LABELS[e.label], vary_email(e.address, style), key=e.address.lower()
        )
        for e in who.emails
    ]
    information = " · ".join(part for part in (who.title, who.notes) if part) or None
    fields: dict[str, str | None] = {
        "first_name": who.first_name,
        "last_name": who.last_name,
        "company_name": who.company,
        "information": information,
    }
    return store.new_contact(fields, phones, emails, created_at, updated_at)


def generate_contacts(
    store: ContactStore,
    count: int,
    seed: int,
    overlap: float,
    now: int,
    spread_days: float,
) -> list[Contact]:
    """``count`` contacts created at regular intervals over the past ``spread_days`` (ids
    ascending with creation), a third of them updated since."""
    rng = random.Random(f"aircall-seed:{seed}")
    span = max(1, int(spread_days * _DAY))
    step = span / max(count, 1)
    start = now - span
    contacts = []
    for i, who in enumerate(people_for("aircall", count, seed=seed, overlap=overlap)):
        created = min(now, start + int(i * step + rng.random() * step))
        updated = created if rng.random() < 0.66 else rng.randint(created, now)
        contacts.append(contact_from_person(store, who, created, updated))
    return contacts


def international(number: str) -> str:
    """``+1 212-555-0123``: how a call's ``raw_digits`` shows the other party."""
    parsed = phonenumbers.parse(number, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _external_numbers(seed: int) -> Iterator[str]:
    """Numbers of callers who are nobody's contact."""
    i = 0
    while True:
        for phone in person(seed, 90_000_000 + i).phones:
            yield phone.e164
        i += 1


def generate_calls(
    store: ContactStore,
    first_id: int,
    count: int,
    seed: int,
    now: int,
    spread_days: float,
    users: tuple[User, ...],
) -> list[Call]:
    """``count`` finished calls over the past ``spread_days``: most with existing contacts
    (linked by phone number), some with unknown callers, a quarter missed."""
    rng = random.Random(f"aircall-calls:{seed}:{first_id}")
    contact_ids = sorted(store.contacts)
    strangers = _external_numbers(seed)
    span = max(1, int(spread_days * _DAY))
    starts = sorted(rng.randint(now - span, now - 60) for _ in range(count))
    calls = []
    for i, started in enumerate(starts):
        if contact_ids and rng.random() < 0.8:
            contact = store.contacts[rng.choice(contact_ids)]
            detail = rng.choice(contact.phone_numbers)
            number = detail.key or detail.value
        else:
            number = next(strangers)
        linked = store.find_by_phone(number)
        answered = rng.random() < 0.75
        talk = rng.randint(20, 1800) if answered else 0
        ring = rng.randint(3, 25)
        calls.append(
            Call(
                id=first_id + i,
                direction="inbound" if rng.random() < 0.5 else "outbound",
                started_at=started,
                answered_at=started + ring if answered else None,
                ended_at=started + ring + talk,
                raw_digits=international(number),
                user_id=rng.choice(users).id if answered else None,
                contact_id=linked.id if linked else None,
                missed_call_reason=None if answered else rng.choice(_MISSED_REASONS),
            )
        )
    return calls


def summary(contacts: list[Contact], calls: list[Call]) -> dict[str, Any]:
    return {
        "created": len(contacts),
        "ids": [c.id for c in contacts],
        "calls_created": len(calls),
        "call_ids": [c.id for c in calls],
    }
