"""Realistic seed data: generated people become Contacts of business Accounts (one per company),
written in the shapes a real org holds them: phones typed in varied formats, emails in varied
case, timestamps bulk-loaded (many records share a SystemModstamp second)."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from contactsync_sandbox.core.people import Person, Phone, format_phone, people_for, vary_email
from contactsync_sandbox.salesforce.models import DAY, Org, Record, WriteContext
from contactsync_sandbox.salesforce.schema import OBJECTS

COUNTRIES = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "JP": "Japan",
    "BR": "Brazil",
    "IN": "India",
    "ES": "Spain",
}
SHARED_STAMP = 20  # records written in the same second, as a data load does
CACHE_UP_TO = 10_000


def _blank(name: str) -> Record:
    rec: Record = {}
    for f in OBJECTS[name].fields:
        rec[f.name] = (False if f.default is None else f.default) if f.type == "boolean" else None
    return rec


def _account_for(org: Org, company: str, domain: str, stamp: int) -> str:
    table = org.tables["Account"]
    for rec in table.records.values():
        if rec.get("Name") == company and not rec.get("IsPersonAccount"):
            return str(rec["Id"])
    rec = _blank("Account")
    rid = org.seq.next("001")
    owner = org.credentials.admin.id
    rec.update(
        Id=rid,
        Name=company,
        RecordTypeId=org.record_type_id(person=False),
        Website=f"https://www.{domain}",
        Type="Customer",
        OwnerId=owner,
        CreatedById=owner,
        LastModifiedById=owner,
        CreatedDate=stamp,
        LastModifiedDate=stamp,
        SystemModstamp=stamp,
    )
    table.records[rid] = rec
    table.index_add(rec)
    return rid


@dataclass(frozen=True)
class Typed:
    """A person as typed into Salesforce: phones formatted, email in this system's case."""

    person: Person
    email: str
    phone: str | None
    mobile: str | None
    home: str | None


def _typed(person: Person, i: int) -> Typed:
    by_label: dict[str, list[Phone]] = {}
    for phone in person.phones:
        by_label.setdefault(phone.label, []).append(phone)

    def phone_of(label: str, shift: int) -> str | None:
        found = by_label.get(label)
        return format_phone(found[0], i % 4 + shift) if found else None

    email = vary_email(person.emails[0].address, i)
    if len(person.emails) > 1 and i % 5 == 0:
        email = vary_email(person.emails[1].address, i + 1)
    return Typed(person, email, phone_of("work", 0), phone_of("mobile", 1), phone_of("home", 2))


@functools.lru_cache(maxsize=4)
def _typed_people_cached(count: int, seed: int, overlap: float, start: int) -> tuple[Typed, ...]:
    return _typed_people_uncached(count, seed, overlap, start)


def _typed_people_uncached(count: int, seed: int, overlap: float, start: int) -> tuple[Typed, ...]:
    people = people_for("salesforce", count, seed, overlap, start)
    return tuple(_typed(person, start + n) for n, person in enumerate(people))


def _typed_people(count: int, seed: int, overlap: float, start: int) -> tuple[Typed, ...]:
    """Generating and formatting people is the slow part of seeding (phonenumbers). Small
    batches are kept, so a test suite that seeds the same volume many times pays once; large
    ones are not, as half a million objects kept alive would slow every garbage collection."""
    if count <= CACHE_UP_TO:
        return _typed_people_cached(count, seed, overlap, start)
    return _typed_people_uncached(count, seed, overlap, start)


def _contact(typed: Typed, account_id: str, owner: str, stamps: tuple[int, int]) -> Record:
    rec = _blank("Contact")
    person = typed.person
    created, modified = stamps
    rec.update(
        FirstName=person.first_name,
        LastName=person.last_name,
        Name=f"{person.first_name} {person.last_name}",
        Email=typed.email,
        Phone=typed.phone,
        MobilePhone=typed.mobile,
        HomePhone=typed.home,
        Title=person.title,
        Department=person.department or None,
        AccountId=account_id,
        MailingStreet=person.street,
        MailingCity=person.city,
        MailingPostalCode=person.postal_code,
        MailingCountry=COUNTRIES.get(person.region, person.region),
        Description=person.notes or None,
        OwnerId=owner,
        CreatedById=owner,
        LastModifiedById=owner,
        CreatedDate=created,
        LastModifiedDate=modified,
        SystemModstamp=modified,
    )
    return rec


def generate(org: Org, count: int, seed: int, overlap: float) -> list[str]:
    """``count`` Contacts (and their Accounts) spread over the last 45 days."""
    now = org.now()
    span = 45 * DAY
    rng = random.Random(f"salesforce:{seed}:seed")
    start = org.seeded
    owners = [u.id for u in org.credentials.users]
    contacts = org.tables["Contact"]
    new_ids = org.seq.reserve("003", count)
    accounts: dict[str, str] = {}
    for i, typed in enumerate(_typed_people(count, seed, overlap, start)):
        person = typed.person
        created = now - span + (i // SHARED_STAMP) * SHARED_STAMP * span // max(count, 1)
        modified = created
        if rng.random() < 0.2:
            modified = min(now, created + rng.randrange(DAY, 30 * DAY))
        account_id = accounts.get(person.company)
        if account_id is None:
            account_id = _account_for(org, person.company, person.company_domain, now - span - DAY)
            accounts[person.company] = account_id
        owner = owners[rng.randrange(len(owners))]
        rec = _contact(typed, account_id, owner, (created, modified))
        rec["Id"] = new_ids[i]
        contacts.records[new_ids[i]] = rec
    contacts.rebuild()
    org.seeded += count
    return new_ids


def add_records(org: Org, records: list[Any]) -> dict[str, list[str]]:
    """Explicit records in Salesforce's JSON shape (``attributes.type`` names the sObject, Contact
    by default); system fields (CreatedDate, SystemModstamp, ...) may be set."""
    ctx = WriteContext(org.credentials.admin.id, system=True)
    created: dict[str, list[str]] = {}
    for raw in records:
        if not isinstance(raw, dict):
            raise ValueError("each record must be a JSON object")
        attributes = raw.get("attributes") or {}
        name = attributes.get("type", "Contact") if isinstance(attributes, dict) else "Contact"
        body = {k: v for k, v in raw.items() if k != "attributes"}
        rid = org.create(str(name), body, ctx)
        created.setdefault(str(name), []).append(rid)
    return created
