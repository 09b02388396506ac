"""Salesforce's records as they arrive, and their translation to and from the hub's fields.

Three streams, named by their sObject: ``Contact``, ``Lead`` and ``Account`` (Person Accounts
only: a person account's Contact twin is read-only and left out of the Contact stream). Each
has an ``ObjectSpec``: which API field carries which hub field. Records arrive from the REST
query (JSON, relationships nested: ``{"Account": {"Name": ...}}``) or from a Bulk API 2.0 CSV
set (flat, ``Account.Name`` columns, empty = null); both become one ``RawRecord``.

What Salesforce can hold decides the translation: one email, phones in four labelled slots
(three on a Lead), one mailing address. A Contact's company is its Account's name (read
through ``Account.Name``, written by linking an Account: ``accounts.py``); a Lead's is its own
``Company`` field. Salesforce requires LastName (and a Lead's Company): a hub contact without
them is written with the email's local part or ``[not provided]``, the placeholder Salesforce's
own lead conversion uses, and the placeholder reads back as empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contactsync.connectors.base import ContactFields, RemoteRecord
from contactsync.domain.contact import ContactField, EmailAddress, PhoneNumber, PostalAddress
from contactsync.domain.sync import FieldDirection, FieldRule

CONTACT, LEAD, ACCOUNT = "Contact", "Lead", "Account"
NOT_PROVIDED = "[not provided]"


@dataclass(frozen=True)
class PhoneSlot:
    field: str
    label: str


@dataclass(frozen=True)
class AddressFields:
    street: str
    city: str
    state: str
    postal_code: str
    country: str

    def names(self) -> tuple[str, ...]:
        return (self.street, self.city, self.state, self.postal_code, self.country)


@dataclass(frozen=True)
class ObjectSpec:
    """Where one sObject keeps each hub field (None: it has no such field)."""

    name: str
    email: str
    phones: tuple[PhoneSlot, ...]
    title: str | None
    department: str | None
    address: AddressFields
    # Lead: a plain field. Contact: the linked Account's name (``links_accounts``).
    company: str | None = None
    links_accounts: bool = False
    first_name: str = "FirstName"
    last_name: str = "LastName"
    notes: str = "Description"
    # The WHERE condition that selects this stream's records (Person Accounts only, or no
    # person-account twins) when the org has Person Accounts.
    person_condition: str | None = None

    def writable_fields(self) -> tuple[str, ...]:
        names = [self.first_name, self.last_name, self.email, self.notes]
        names += [slot.field for slot in self.phones]
        names += [n for n in (self.title, self.department, self.company) if n]
        names += list(self.address.names())
        return tuple(names)

    def mapped(self) -> frozenset[ContactField]:
        fields: set[ContactField] = {
            "given_name",
            "family_name",
            "emails",
            "phones",
            "addresses",
            "notes",
        }
        if self.title:
            fields.add("title")
        if self.department:
            fields.add("department")
        if self.company or self.links_accounts:
            fields.add("company")
        return frozenset(fields)


MAILING = AddressFields(
    "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry"
)
SPECS: dict[str, ObjectSpec] = {
    CONTACT: ObjectSpec(
        name=CONTACT,
        email="Email",
        phones=(
            PhoneSlot("Phone", "work"),
            PhoneSlot("MobilePhone", "mobile"),
            PhoneSlot("HomePhone", "home"),
            PhoneSlot("OtherPhone", "other"),
        ),
        title="Title",
        department="Department",
        address=MAILING,
        links_accounts=True,
        person_condition="IsPersonAccount = false",
    ),
    LEAD: ObjectSpec(
        name=LEAD,
        email="Email",
        phones=(PhoneSlot("Phone", "work"), PhoneSlot("MobilePhone", "mobile")),
        title="Title",
        department=None,
        address=AddressFields("Street", "City", "State", "PostalCode", "Country"),
        company="Company",
    ),
    ACCOUNT: ObjectSpec(
        name=ACCOUNT,
        email="PersonEmail",
        phones=(
            PhoneSlot("Phone", "work"),
            PhoneSlot("PersonMobilePhone", "mobile"),
            PhoneSlot("PersonHomePhone", "home"),
            PhoneSlot("PersonOtherPhone", "other"),
        ),
        title="PersonTitle",
        department="PersonDepartment",
        address=AddressFields(
            "PersonMailingStreet",
            "PersonMailingCity",
            "PersonMailingState",
            "PersonMailingPostalCode",
            "PersonMailingCountry",
        ),
        person_condition="IsPersonAccount = true",
    ),
}

# The fields every read selects besides the mapped ones.
SYSTEM_FIELDS = ("Id", "SystemModstamp", "LastModifiedDate", "OwnerId")
ACCOUNT_NAME = "Account.Name"


def spec_for(stream: str) -> ObjectSpec:
    try:
        return SPECS[stream]
    except KeyError:
        raise ValueError(f"unknown Salesforce stream {stream!r}") from None


def default_mapping(stream: str) -> list[FieldRule]:
    """The hub fields this object has, both ways; ``remote_field`` names the API field(s)."""
    spec = spec_for(stream)
    both = FieldDirection.BOTH
    rules = [
        FieldRule(hub_field="given_name", remote_field=spec.first_name, direction=both),
        FieldRule(hub_field="family_name", remote_field=spec.last_name, direction=both),
        FieldRule(hub_field="emails", remote_field=spec.email, direction=both),
        FieldRule(
            hub_field="phones",
            remote_field=",".join(slot.field for slot in spec.phones),
            direction=both,
        ),
    ]
    if spec.links_accounts:
        rules.append(FieldRule(hub_field="company", remote_field=ACCOUNT_NAME, direction=both))
    elif spec.company:
        rules.append(FieldRule(hub_field="company", remote_field=spec.company, direction=both))
    if spec.title:
        rules.append(FieldRule(hub_field="title", remote_field=spec.title, direction=both))
    if spec.department:
        rules.append(
            FieldRule(hub_field="department", remote_field=spec.department, direction=both)
        )
    rules.append(
        FieldRule(
            hub_field="addresses", remote_field=",".join(spec.address.names()), direction=both
        )
    )
    rules.append(FieldRule(hub_field="notes", remote_field=spec.notes, direction=both))
    return rules


# ---- raw records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRecord:
    """One record as read, flat: ``values`` maps API field paths ("Email", "Account.Name") to
    their text, nulls left out."""

    id: str
    object_type: str
    system_modstamp: datetime
    last_modified: datetime
    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str | None) -> str:
        return self.values.get(name, "") if name else ""

    @property
    def owner_id(self) -> str | None:
        return self.values.get("OwnerId") or None


def parse_datetime(text: str) -> datetime:
    """REST ``2024-05-01T10:20:30.000+0000`` or Bulk CSV ``2024-05-01T10:20:30.000Z``."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key != "attributes":
                _flatten(f"{prefix}{key}.", inner, out)
        return
    if value is None or value == "":
        return
    if isinstance(value, bool):
        out[prefix[:-1]] = "true" if value else "false"
    else:
        out[prefix[:-1]] = str(value)


def from_rest(object_type: str, record: Mapping[str, Any]) -> RawRecord:
    """A REST query row (nested relationships, JSON nulls)."""
    values: dict[str, str] = {}
    _flatten("", record, values)
    return _raw(object_type, values)


def from_csv(object_type: str, text: str) -> Iterator[RawRecord]:
    """The rows of one Bulk API 2.0 result set (header row first, empty cells are nulls)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        yield _raw(object_type, {k: v for k, v in row.items() if k and v})


def _raw(object_type: str, values: dict[str, str]) -> RawRecord:
    try:
        rid = values["Id"]
        modstamp = parse_datetime(values["SystemModstamp"])
        modified = parse_datetime(values.get("LastModifiedDate") or values["SystemModstamp"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"a {object_type} row without Id or SystemModstamp") from exc
    return RawRecord(rid, object_type, modstamp, modified, values)


# ---- Salesforce -> hub -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadContext:
    """What a translation needs besides the record."""

    region: str
    external_id_field: str | None
    owners: Mapping[str, str]  # OwnerId -> the owner's email
    tags: frozenset[str] = frozenset()


def _text(raw: RawRecord, name: str | None) -> str:
    value = raw.get(name).strip()
    return "" if value == NOT_PROVIDED else value


def _emails(raw: RawRecord, spec: ObjectSpec) -> tuple[EmailAddress, ...] | None:
    value = raw.get(spec.email).strip()
    if not value:
        return ()
    try:
        return (EmailAddress(address=value, label="work"),)
    except ValidationError:
        # Salesforce accepted what we cannot represent: leave the hub's emails alone.
        return None


def _phones(raw: RawRecord, spec: ObjectSpec, region: str) -> tuple[PhoneNumber, ...]:
    return tuple(
        PhoneNumber.lenient(raw.get(slot.field), region, slot.label)
        for slot in spec.phones
        if raw.get(slot.field).strip()
    )


def _addresses(raw: RawRecord, spec: ObjectSpec) -> tuple[PostalAddress, ...] | None:
    parts = [raw.get(name).strip() for name in spec.address.names()]
    if not any(parts):
        return ()
    street, city, state, postal_code, country = parts
    try:
        return (
            PostalAddress(
                street=street,
                city=city,
                region=state,
                postal_code=postal_code,
                country=country,
                label="work",
            ),
        )
    except ValidationError:
        return None


def _company(raw: RawRecord, spec: ObjectSpec) -> str | None:
    if spec.links_accounts:
        # No Account: Salesforce holds no company for this contact. None leaves the hub's
        # company alone (it may come from another source) instead of clearing it.
        return _text(raw, ACCOUNT_NAME) or None
    if spec.company:
        return _text(raw, spec.company)
    return None


def to_fields(raw: RawRecord, spec: ObjectSpec, region: str) -> ContactFields:
    values: dict[str, Any] = {
        "given_name": _text(raw, spec.first_name),
        "family_name": _text(raw, spec.last_name),
        "emails": _emails(raw, spec),
        "phones": _phones(raw, spec, region),
        "addresses": _addresses(raw, spec),
        "notes": raw.get(spec.notes).strip(),
        "company": _company(raw, spec),
    }
    if spec.title:
        values["title"] = _text(raw, spec.title)
    if spec.department:
        values["department"] = _text(raw, spec.department)
    try:
        return ContactFields(**values)
    except ValidationError:
        # A value longer than the hub allows: keep what fits, field by field.
        kept: dict[str, Any] = {}
        for name, value in values.items():
            try:
                ContactFields(**{name: value})
            except ValidationError:
                continue
            kept[name] = value
        return ContactFields(**kept)


def to_record(raw: RawRecord, ctx: ReadContext) -> RemoteRecord:
    spec = spec_for(raw.object_type)
    owner = raw.owner_id
    hub_id = (raw.get(ctx.external_id_field).strip() or None) if ctx.external_id_field else None
    return RemoteRecord(
        remote_id=raw.id,
        object_type=raw.object_type,
        version=raw.system_modstamp.isoformat(),
        modified_at=raw.last_modified,
        fields=to_fields(raw, spec, ctx.region),
        hub_id=hub_id,
        owner_ref=ctx.owners.get(owner) if owner else None,
        company_ref=raw.values.get("AccountId") if spec.links_accounts else None,
        tags=ctx.tags,
    )


def deleted_record(object_type: str, record_id: str, deleted_at: datetime) -> RemoteRecord:
    return RemoteRecord(
        remote_id=record_id, object_type=object_type, modified_at=deleted_at, deleted=True
    )


# ---- hub -> Salesforce -------------------------------------------------------------------------


def _phone_value(phone: PhoneNumber) -> str:
    return phone.e164 or phone.raw


_LABEL_SLOTS = {
    "mobile": "mobile",
    "cell": "mobile",
    "iphone": "mobile",
    "home": "home",
    "work": "work",
    "business": "work",
    "main": "work",
    "office": "work",
    "": "work",
}


def assign_phones(spec: ObjectSpec, phones: Sequence[PhoneNumber]) -> dict[str, str | None]:
    """The slot values to write (see ``assign_phone_objects``)."""
    placed = assign_phone_objects(spec, phones)
    return {name: None if p is None else _phone_value(p) for name, p in placed.items()}


def _as_read(phone: PhoneNumber, label: str, region: str) -> PhoneNumber:
    """The number as a read will give it back from its slot, without parsing it again when it
    already has its E.164 form (the value written; parsing is the costly part of a sync)."""
    if phone.e164:
        return PhoneNumber.model_construct(raw=phone.e164, e164=phone.e164, label=label)
    return PhoneNumber.lenient(_phone_value(phone), region, label)


def assign_phone_objects(
    spec: ObjectSpec, phones: Sequence[PhoneNumber]
) -> dict[str, PhoneNumber | None]:
    """The hub's phones in the object's slots. The first as many as there are slots are kept
    (the hub's order is their importance; Salesforce cannot hold the rest); each goes to the
    slot of its label when free ("mobile" -> MobilePhone, "home" -> HomePhone, "work" ->
    Phone, others -> OtherPhone), the rest to the free slots in order. Every slot is in the
    answer: the ones left empty are cleared."""
    slots: dict[str, PhoneNumber | None] = {slot.field: None for slot in spec.phones}
    by_label = {slot.label: slot.field for slot in spec.phones}
    leftover: list[PhoneNumber] = []
    for phone in phones[: len(slots)]:
        wanted = by_label.get(_LABEL_SLOTS.get(phone.label.strip().lower(), "other"))
        if wanted is not None and slots[wanted] is None:
            slots[wanted] = phone
        else:
            leftover.append(phone)
    free = [name for name, value in slots.items() if value is None]
    for name, phone in zip(free, leftover, strict=False):
        slots[name] = phone
    return slots


def required_last_name(fields: ContactFields) -> str:
    """LastName is required: the hub's family name, else the email's local part, else the
    placeholder."""
    if fields.family_name:
        return fields.family_name
    if fields.emails:
        return fields.emails[0].address.split("@", 1)[0] or NOT_PROVIDED
    return NOT_PROVIDED


def to_payload(spec: ObjectSpec, fields: ContactFields, *, creating: bool) -> dict[str, Any]:
    """The API fields for the hub fields provided (None clears a field). A Contact's company
    is not here: it becomes an AccountId by account linking."""
    out: dict[str, Any] = {}
    if fields.given_name is not None:
        out[spec.first_name] = fields.given_name or None
    if fields.family_name is not None or creating:
        out[spec.last_name] = required_last_name(fields)
    if fields.emails is not None:
        out[spec.email] = fields.emails[0].address if fields.emails else None
    if fields.phones is not None:
        out.update(assign_phones(spec, fields.phones))
    if spec.title and fields.title is not None:
        out[spec.title] = fields.title or None
    if spec.department and fields.department is not None:
        out[spec.department] = fields.department or None
    if spec.company and (fields.company is not None or creating):
        out[spec.company] = fields.company or NOT_PROVIDED
    if fields.addresses is not None:
        first = fields.addresses[0] if fields.addresses else PostalAddress()
        values = (first.street, first.city, first.region, first.postal_code, first.country)
        for name, value in zip(spec.address.names(), values, strict=True):
            out[name] = value or None
    if fields.notes is not None:
        out[spec.notes] = fields.notes or None
    return out


def select_fields(
    spec: ObjectSpec, available: frozenset[str], external_id_field: str | None
) -> list[str]:
    """The SELECT list: system fields, then every mapped field the org has."""
    names = [*SYSTEM_FIELDS]
    names += [n for n in spec.writable_fields() if n in available]
    if spec.links_accounts and "AccountId" in available:
        names += ["AccountId", ACCOUNT_NAME]
    if external_id_field and external_id_field in available:
        names.append(external_id_field)
    return list(dict.fromkeys(names))


def representable(spec: ObjectSpec, fields: ContactFields, region: str) -> ContactFields:
    """What a record of ``spec`` holds of ``fields``, as a read will give it back (pure): one
    email, the phones the slots take in slot order, one address, no field the object lacks
    (a Lead's department, a Person Account's company), a missing last name as the value
    written for it. The engine compares and pushes only this, so what Salesforce cannot hold
    is neither sent again every round nor taken as removed when the record comes back."""
    values: dict[str, Any] = {str(k): v for k, v in fields.provided().items()}
    values.pop("middle_name", None)
    if fields.emails is not None:
        values["emails"] = fields.emails[:1]
    if fields.phones is not None:
        placed = assign_phone_objects(spec, fields.phones)
        values["phones"] = tuple(
            _as_read(phone, slot.label, region)
            for slot in spec.phones
            if (phone := placed[slot.field]) is not None
        )
    if fields.addresses is not None:
        first = fields.addresses[:1]
        values["addresses"] = first if first and any(_parts(first[0])) else ()
    if fields.family_name is not None and not fields.family_name and fields.emails is not None:
        written = required_last_name(fields)
        values["family_name"] = "" if written == NOT_PROVIDED else written
    if not spec.title:
        values.pop("title", None)
    if not spec.department:
        values.pop("department", None)
    if not (spec.company or spec.links_accounts):
        values.pop("company", None)
    return ContactFields(**values)


def _parts(address: PostalAddress) -> tuple[str, ...]:
    return (address.street, address.city, address.region, address.postal_code, address.country)
