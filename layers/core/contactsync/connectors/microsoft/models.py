"""Outlook's own shapes (Graph's contact resource) and their translation to and from the hub's
``ContactFields`` / ``RemoteRecord``. Nothing outside this package knows these shapes.

Outlook keeps phones and addresses in fixed slots: ``businessPhones`` (2), ``mobilePhone`` (1),
``homePhones`` (2); ``businessAddress``, ``homeAddress``, ``otherAddress``; and at most three
``emailAddresses``. The hub keeps ordered lists. Reading lists the slots in one fixed order
(business, mobile, home; business, home, other addresses); writing puts the hub's values into
slots *in the hub's order* (an order-preserving assignment that honours labels where it can),
so what we read back is the list we wrote and an idle round stays idle. Values beyond Outlook's
caps are not written (the hub keeps them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from contactsync.connectors.base import ContactFields, RemoteRecord
from contactsync.domain.contact import EmailAddress, PhoneNumber, PostalAddress
from contactsync.domain.sync import FieldRule

STREAM = "contact"  # plan.object_type_for(Microsoft): one stream, named by its object type
MAX_EMAILS = 3
# Phone slots in reading order; writing assigns the hub's phones to them in order.
PHONE_SLOTS: tuple[str, ...] = ("business", "business", "mobile", "home", "home")
ADDRESS_SLOTS: tuple[str, ...] = ("business", "home", "other")
ADDRESS_PROPERTIES = {
    "business": "businessAddress",
    "home": "homeAddress",
    "other": "otherAddress",
}
# What a hub label asks for (anything else goes where it fits).
_PHONE_LABELS = {
    "work": "business",
    "business": "business",
    "office": "business",
    "main": "business",
    "mobile": "mobile",
    "cell": "mobile",
    "iphone": "mobile",
    "home": "home",
}
_ADDRESS_LABELS = {
    "work": "business",
    "business": "business",
    "office": "business",
    "home": "home",
    "other": "other",
}
# Labels the hub gets for what it reads from each slot.
SLOT_LABELS = {"business": "work", "mobile": "mobile", "home": "home", "other": "other"}
# The properties a read asks for ($select): the mapped fields, the markers and the versions.
SELECT = (
    "id",
    "givenName",
    "middleName",
    "surname",
    "displayName",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
    "companyName",
    "jobTitle",
    "department",
    "businessAddress",
    "homeAddress",
    "otherAddress",
    "personalNotes",
    "categories",
    "parentFolderId",
    "lastModifiedDateTime",
    "changeKey",
)
# Never sent back: Graph owns them.
READ_ONLY = frozenset(
    {"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "parentFolderId"}
)


class _Raw(BaseModel):
    # Graph adds properties over time: keep what we know, ignore the rest.
    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class RawEmail(_Raw):
    address: str | None = None
    name: str | None = None


class RawAddress(_Raw):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    country_or_region: str | None = None
    postal_code: str | None = None

    def empty(self) -> bool:
        return not any(
            (v or "").strip()
            for v in (self.street, self.city, self.state, self.country_or_region, self.postal_code)
        )


class RawContact(_Raw):
    """A Graph contact as a read returns it (a delta item may be a ``@removed`` stub)."""

    id: str
    etag: str | None = Field(default=None, alias="@odata.etag")
    removed: dict[str, Any] | None = Field(default=None, alias="@removed")
    parent_folder_id: str | None = None
    created_date_time: str | None = None
    last_modified_date_time: str | None = None
    given_name: str | None = None
    middle_name: str | None = None
    surname: str | None = None
    display_name: str | None = None
    email_addresses: list[RawEmail] = []
    business_phones: list[str | None] = []
    home_phones: list[str | None] = []
    mobile_phone: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    business_address: RawAddress | None = None
    home_address: RawAddress | None = None
    other_address: RawAddress | None = None
    personal_notes: str | None = None
    categories: list[str] = []

    @property
    def is_removed(self) -> bool:
        return self.removed is not None

    def has_category(self, category: str) -> bool:
        wanted = category.casefold()
        return any(c.casefold() == wanted for c in self.categories)

    def address(self, slot: str) -> RawAddress | None:
        return {
            "business": self.business_address,
            "home": self.home_address,
            "other": self.other_address,
        }[slot]


def parse_contact(raw: Mapping[str, Any]) -> RawContact | None:
    """None for an item that is not a contact we can read (logged by the caller by id only)."""
    try:
        return RawContact.model_validate(raw)
    except ValidationError:
        return None


def parse_time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---- Graph -> hub ----------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return (value or "").strip()


def _emails(raw: RawContact) -> tuple[EmailAddress, ...]:
    found: list[EmailAddress] = []
    for entry in raw.email_addresses:
        address = _text(entry.address)
        if not address:
            continue
        try:
            found.append(EmailAddress(address=address))
        except ValidationError:
            continue  # Outlook keeps anything (X.500 addresses, typos); the hub cannot
    return tuple(found)


def _phones(raw: RawContact, region: str, written: Container[str]) -> tuple[PhoneNumber, ...]:
    values: list[tuple[str, str | None]] = [("business", p) for p in raw.business_phones]
    values.append(("mobile", raw.mobile_phone))
    values.extend(("home", p) for p in raw.home_phones)
    return tuple(
        PhoneNumber.lenient(value, region, SLOT_LABELS[slot], written=written)
        for slot, value in values
        if value and value.strip()
    )


def _addresses(raw: RawContact) -> tuple[PostalAddress, ...]:
    found: list[PostalAddress] = []
    for slot in ADDRESS_SLOTS:
        address = raw.address(slot)
        if address is None or address.empty():
            continue
        found.append(
            PostalAddress(
                street=_text(address.street)[:500],
                city=_text(address.city)[:255],
                region=_text(address.state)[:255],
                postal_code=_text(address.postal_code)[:40],
                country=_text(address.country_or_region)[:255],
                label=SLOT_LABELS[slot],
            )
        )
    return tuple(found)


def to_fields(raw: RawContact, region: str, written: Container[str] = ()) -> ContactFields:
    """``written``: the E.164 numbers just sent in the write ``raw`` answers (see
    PhoneNumber.lenient)."""
    return ContactFields(
        given_name=_text(raw.given_name),
        middle_name=_text(raw.middle_name),
        family_name=_text(raw.surname),
        emails=_emails(raw),
        phones=_phones(raw, region, written),
        company=_text(raw.company_name),
        title=_text(raw.job_title),
        department=_text(raw.department),
        addresses=_addresses(raw),
        notes=(raw.personal_notes or "").strip(),
    )


def to_record(
    raw: RawContact,
    *,
    region: str,
    now: datetime,
    marked: bool,
    marker_repair: bool = False,
    written: Container[str] = (),
) -> RemoteRecord:
    if raw.is_removed:
        return RemoteRecord(
            remote_id=raw.id, object_type=STREAM, modified_at=now, deleted=True, marked=marked
        )
    return RemoteRecord(
        remote_id=raw.id,
        object_type=STREAM,
        version=raw.etag,
        modified_at=parse_time(raw.last_modified_date_time, now),
        fields=to_fields(raw, region, written),
        marked=marked,
        marker_repair=marker_repair,
    )


# ---- hub -> Graph ----------------------------------------------------------------------------


def _slot_score(label: str, slot: str, labels: Mapping[str, str]) -> int:
    return 1 if labels.get(label.strip().lower()) == slot else 0


# Solved assignments by (labels, slots, label table): contacts share a handful of label
# sequences ("work", "mobile"), and this runs for every phone and address of every push.
_ASSIGNED: dict[tuple[tuple[str, ...], tuple[str, ...], int], tuple[object, tuple[int, ...]]] = {}


def assign_slots(
    labels: Sequence[str], slots: Sequence[str], wanted: Mapping[str, str]
) -> list[int]:
    """An order-preserving assignment of values (by their labels) to ``slots``: value i goes to
    a slot after value i-1's, as many labels honoured as possible (ties: earlier slots). Values
    beyond the slots' count are not placed. Returns the slot index of each placed value."""
    key = (tuple(labels), tuple(slots), id(wanted))
    hit = _ASSIGNED.get(key)
    if hit is not None and hit[0] is wanted:
        return list(hit[1])
    result = _assign_slots(key[0], key[1], wanted)
    if len(_ASSIGNED) < 4096:  # labels are user text: bounded
        _ASSIGNED[key] = (wanted, result)
    return list(result)


def _assign_slots(
    labels: Sequence[str], slots: Sequence[str], wanted: Mapping[str, str]
) -> tuple[int, ...]:
    count = min(len(labels), len(slots))

    @functools.cache
    def best(i: int, s: int) -> tuple[int, tuple[int, ...]]:
        if i == count:
            return 0, ()
        options: list[tuple[int, tuple[int, ...]]] = []
        for slot in range(s, len(slots) - (count - i) + 1):
            score, rest = best(i + 1, slot + 1)
            options.append((score + _slot_score(labels[i], slots[slot], wanted), (slot, *rest)))
        return max(options, key=lambda o: o[0])  # max keeps the first (earliest) of equals

    return best(0, 0)[1]


def phone_properties(phones: Sequence[PhoneNumber]) -> dict[str, Any]:
    """``businessPhones``, ``mobilePhone`` and ``homePhones`` for the hub's phones."""
    business: list[str] = []
    home: list[str] = []
    mobile: str | None = None
    for phone, kind in placed_phones(phones):
        value = phone.e164 or phone.raw
        if kind == "business":
            business.append(value)
        elif kind == "home":
            home.append(value)
        else:
            mobile = value
    return {"businessPhones": business, "mobilePhone": mobile, "homePhones": home}


def placed_phones(phones: Sequence[PhoneNumber]) -> list[tuple[PhoneNumber, str]]:
    """The phones that get a slot, with their slot, in reading order."""
    placed = assign_slots([p.label for p in phones], PHONE_SLOTS, _PHONE_LABELS)
    return [(phone, PHONE_SLOTS[slot]) for phone, slot in zip(phones, placed, strict=False)]


def placed_addresses(addresses: Sequence[PostalAddress]) -> list[tuple[PostalAddress, str]]:
    kept = [a for a in addresses if not _blank(a)]
    placed = assign_slots([a.label for a in kept], ADDRESS_SLOTS, _ADDRESS_LABELS)
    return [(a, ADDRESS_SLOTS[slot]) for a, slot in zip(kept, placed, strict=False)]


def _blank(address: PostalAddress) -> bool:
    parts = (address.street, address.city, address.region, address.postal_code, address.country)
    return not any(p.strip() for p in parts)


def representable(fields: ContactFields) -> ContactFields:
    """What Outlook holds of ``fields``, as a read gives it back: three emails; five phones in
    their slots (business, mobile, home: the hub's order is kept, see ``assign_slots``); three
    addresses. The engine compares and sends only this, so what Outlook cannot hold is neither
    pushed every round nor taken as removed when it comes back without it."""
    update: dict[str, Any] = {}
    if fields.emails is not None:
        update["emails"] = fields.emails[:MAX_EMAILS]
    if fields.phones is not None:
        update["phones"] = tuple(
            phone.model_copy(update={"label": SLOT_LABELS[slot]})
            for phone, slot in placed_phones(fields.phones)
        )
    if fields.addresses is not None:
        update["addresses"] = tuple(
            address.model_copy(update={"label": SLOT_LABELS[slot]})
            for address, slot in placed_addresses(fields.addresses)
        )
    return fields.model_copy(update=update) if update else fields


def _graph_address(address: PostalAddress | None) -> dict[str, str]:
    if address is None:
        return {"street": "", "city": "", "state": "", "countryOrRegion": "", "postalCode": ""}
    return {
        "street": address.street,
        "city": address.city,
        "state": address.region,
        "countryOrRegion": address.country,
        "postalCode": address.postal_code,
    }


def address_properties(addresses: Sequence[PostalAddress]) -> dict[str, Any]:
    by_slot = {slot: address for address, slot in placed_addresses(addresses)}
    return {ADDRESS_PROPERTIES[s]: _graph_address(by_slot.get(s)) for s in ADDRESS_SLOTS}


def compose_display_name(
    given: str | None, middle: str | None, family: str | None, fallback: str = ""
) -> str:
    """What Outlook shows: the name parts, else the company or the first email."""
    name = " ".join(p.strip() for p in (given, middle, family) if p and p.strip())
    return name or fallback


NAME_FIELDS = ("given_name", "middle_name", "family_name")
_SIMPLE: dict[str, str] = {
    "given_name": "givenName",
    "middle_name": "middleName",
    "family_name": "surname",
    "company": "companyName",
    "title": "jobTitle",
    "department": "department",
    "notes": "personalNotes",
}


def contact_properties(fields: ContactFields, display_name: str | None = None) -> dict[str, Any]:
    """The Graph properties for the fields ``fields`` provides (a create body, or a PATCH that
    sends only what changed). Lists are sent whole: Graph replaces collections."""
    provided = fields.provided()
    body: dict[str, Any] = {}
    for name, prop in _SIMPLE.items():
        if name in provided:
            body[prop] = str(provided[name])
    if fields.emails is not None:
        body["emailAddresses"] = [
            {"address": e.address, "name": display_name or e.address}
            for e in fields.emails[:MAX_EMAILS]
        ]
    if fields.phones is not None:
        body.update(phone_properties(fields.phones))
    if fields.addresses is not None:
        body.update(address_properties(fields.addresses))
    if display_name is not None:
        body["displayName"] = display_name
    return body


def display_name_for(fields: ContactFields) -> str:
    emails = fields.emails or ()
    fallback = fields.company or (emails[0].address if emails else "")
    return compose_display_name(fields.given_name, fields.middle_name, fields.family_name, fallback)


def updated_display_name(current: RawContact, fields: ContactFields) -> str:
    """The displayName to send with a name change: recomposed from the new name when Outlook's
    was the composition of the old one (or empty), the user's own otherwise."""
    old = compose_display_name(current.given_name, current.middle_name, current.surname)
    shown = _text(current.display_name)
    if shown and shown != old:
        return shown
    given = fields.given_name if fields.given_name is not None else current.given_name
    middle = fields.middle_name if fields.middle_name is not None else current.middle_name
    family = fields.family_name if fields.family_name is not None else current.surname
    fallback = _text(current.company_name) or next(
        (_text(e.address) for e in current.email_addresses if _text(e.address)), ""
    )
    return compose_display_name(given, middle, family, fallback)


def copy_properties(raw: Mapping[str, Any], categories: Iterable[str]) -> dict[str, Any]:
    """A contact's writable properties (for the copy that "moves" it: Graph cannot move)."""
    body = {
        k: v
        for k, v in raw.items()
        if k not in READ_ONLY and not k.startswith("@") and k != "categories"
    }
    body["categories"] = list(categories)
    return body


def with_category(categories: Iterable[str], category: str) -> list[str]:
    kept = list(categories)
    if not any(c.casefold() == category.casefold() for c in kept):
        kept.append(category)
    return kept


def without_category(categories: Iterable[str], category: str) -> list[str]:
    return [c for c in categories if c.casefold() != category.casefold()]


def odata_string(value: str) -> str:
    """An OData string literal: single quotes doubled (the URL encoding is requests')."""
    return "'" + value.replace("'", "''") + "'"


def default_mapping() -> list[FieldRule]:
    pairs: list[tuple[Any, str]] = [
        ("given_name", "givenName"),
        ("middle_name", "middleName"),
        ("family_name", "surname"),
        ("emails", "emailAddresses"),
        ("phones", "businessPhones,mobilePhone,homePhones"),
        ("company", "companyName"),
        ("title", "jobTitle"),
        ("department", "department"),
        ("addresses", "businessAddress,homeAddress,otherAddress"),
        ("notes", "personalNotes"),
    ]
    return [FieldRule(hub_field=h, remote_field=r) for h, r in pairs]


Matcher = Callable[[RawContact], bool]


def same_person(fields: ContactFields) -> Matcher:
    """Whether a contact found by a search is the one ``fields`` describes (for find_created)."""
    emails = {e.key for e in fields.emails or ()}
    given = (fields.given_name or "").casefold()
    family = (fields.family_name or "").casefold()

    def matches(raw: RawContact) -> bool:
        if (raw.given_name or "").strip().casefold() != given:
            return False
        if (raw.surname or "").strip().casefold() != family:
            return False
        theirs = {(e.address or "").strip().lower() for e in raw.email_addresses}
        return not emails or bool(emails & theirs)

    return matches
