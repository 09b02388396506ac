"""The People API's own shapes (the raw ``Person`` and ``ContactGroup``) and their translation to
and from the hub's ``ContactFields`` / ``RemoteRecord``. Nothing outside this package knows them.

Mapping (hub <- Person):

- ``names[0]``: ``givenName``, ``middleName``, ``familyName`` (a singleton for contacts);
- ``emailAddresses``: ``value``, ``type`` -> the label;
- ``phoneNumbers``: ``value`` (as the user typed it) and ``canonicalForm`` (Google's E.164)
  -> ``PhoneNumber(raw, e164)``; ``type`` -> the label;
- ``organizations[0]``: ``name`` -> company, ``title``, ``department``;
- ``addresses``: ``streetAddress``, ``city``, ``region``, ``postalCode``, ``country`` (or
  ``countryCode``), ``type`` -> the label;
- ``biographies[0].value`` -> notes;
- ``memberships``: the sync label's group -> ``marked``; ``clientData`` key
  ``contactsync_hub_id`` -> ``hub_id`` (stamped on every person we create);
- ``metadata.sources[CONTACT].updateTime`` -> ``modified_at``; ``etag`` -> ``version``;
  ``metadata.deleted`` (incremental syncs only) -> a deleted record.

Writes replace listed fields wholesale, and one field holds several hub fields (``names``,
``organizations``), so an update is computed against the person as currently stored: only the
hub fields that changed are replaced, everything else in those Google fields (honorifics, an
organisation's location, a phone number's formatting, details the hub cannot hold: the 21st
email, an address without a street) is written back as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from contactsync.connectors.base import ContactFields, RemoteRecord
from contactsync.domain.contact import EmailAddress, PhoneNumber, PostalAddress, to_e164
from contactsync.domain.sync import FieldRule

STREAM = "person"  # plan.object_type_for(Google): the one stream, named by its object type
HUB_ID_KEY = "contactsync_hub_id"
MY_CONTACTS = "contactGroups/myContacts"
USER_CONTACT_GROUP = "USER_CONTACT_GROUP"
# What every read asks for (sync tokens require the same personFields on every call).
PERSON_FIELDS = (
    "names",
    "emailAddresses",
    "phoneNumbers",
    "organizations",
    "addresses",
    "biographies",
    "memberships",
    "clientData",
    "metadata",
)
PERSON_FIELDS_MASK = ",".join(PERSON_FIELDS)
# The hub's limits (HubContact): what a person holds beyond them is kept in Google, unseen.
MAX_EMAILS = 20
MAX_PHONES = 20
MAX_ADDRESSES = 5
_SHORT = 255
_NOTES = 32_000
_LABEL = 40
_POSTCODE = 40
_STREET = 500
# Output-only properties Google adds: never sent back.
_OUTPUT_ONLY = frozenset(
    {
        "metadata",
        "formattedType",
        "canonicalForm",
        "displayName",
        "displayNameLastFirst",
        "formattedProtocol",
    }
)
# Name properties derived from the parts: dropped when we change a part, so Google derives
# them again instead of keeping a stale full name.
_DERIVED_NAME = frozenset({"unstructuredName", "phoneticFullName"})


class _Raw(BaseModel):
    # Google adds properties over time: keep them (extra="allow") so that a person written back
    # loses nothing we did not mean to change.
    model_config = ConfigDict(
        extra="allow", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    def writable(self) -> dict[str, Any]:
        """As a request body item: output-only properties dropped."""
        raw = self.model_dump(by_alias=True, exclude_none=True)
        return {k: v for k, v in raw.items() if k not in _OUTPUT_ONLY}


class Source(_Raw):
    type: str | None = None
    id: str | None = None
    etag: str | None = None
    update_time: datetime | None = None


class PersonMetadata(_Raw):
    sources: list[Source] = []
    deleted: bool = False


class RawName(_Raw):
    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None


class RawEmail(_Raw):
    value: str | None = None
    type: str | None = None


class RawPhone(_Raw):
    value: str | None = None
    canonical_form: str | None = None
    type: str | None = None


class RawOrganization(_Raw):
    name: str | None = None
    title: str | None = None
    department: str | None = None


class RawAddress(_Raw):
    street_address: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class RawBiography(_Raw):
    value: str | None = None
    content_type: str | None = None


class GroupMembership(_Raw):
    contact_group_id: str | None = None
    contact_group_resource_name: str | None = None

    @property
    def resource_name(self) -> str | None:
        if self.contact_group_resource_name:
            return self.contact_group_resource_name
        return f"contactGroups/{self.contact_group_id}" if self.contact_group_id else None


class RawMembership(_Raw):
    contact_group_membership: GroupMembership | None = None


class RawClientData(_Raw):
    key: str | None = None
    value: str | None = None


class RawPerson(_Raw):
    resource_name: str
    etag: str | None = None
    metadata: PersonMetadata | None = None
    names: list[RawName] = []
    email_addresses: list[RawEmail] = []
    phone_numbers: list[RawPhone] = []
    organizations: list[RawOrganization] = []
    addresses: list[RawAddress] = []
    biographies: list[RawBiography] = []
    memberships: list[RawMembership] = []
    client_data: list[RawClientData] = []

    @property
    def deleted(self) -> bool:
        return bool(self.metadata and self.metadata.deleted)

    def updated_at(self) -> datetime | None:
        """When the person's contact data last changed (its CONTACT source's updateTime)."""
        if self.metadata is None:
            return None
        times = [s.update_time for s in self.metadata.sources if s.update_time is not None]
        contact = [
            s.update_time
            for s in self.metadata.sources
            if s.type == "CONTACT" and s.update_time is not None
        ]
        found = contact or times
        return max(found) if found else None

    def groups(self) -> list[str]:
        names = (m.contact_group_membership for m in self.memberships)
        return [g.resource_name for g in names if g is not None and g.resource_name]

    def hub_id(self) -> str | None:
        for item in self.client_data:
            if item.key == HUB_ID_KEY and item.value:
                return item.value
        return None


class RawGroup(_Raw):
    resource_name: str
    name: str | None = None
    group_type: str | None = None


# ---- response envelopes -----------------------------------------------------------------------


class ConnectionsPage(_Raw):
    connections: list[RawPerson] = []
    next_page_token: str | None = None
    next_sync_token: str | None = None


class PersonResponse(_Raw):
    """One item of batchGet / batchCreate / batchUpdate answers."""

    requested_resource_name: str | None = None
    http_status_code: int | None = None
    person: RawPerson | None = None


class BatchGetAnswer(_Raw):
    responses: list[PersonResponse] = []


class BatchCreateAnswer(_Raw):
    created_people: list[PersonResponse] = []


class BatchUpdateAnswer(_Raw):
    update_result: dict[str, PersonResponse] = {}


class GroupsPage(_Raw):
    contact_groups: list[RawGroup] = []
    next_page_token: str | None = None


# ---- Person -> hub ----------------------------------------------------------------------------


def default_mapping() -> list[FieldRule]:
    return [
        FieldRule(hub_field="given_name", remote_field="names.givenName"),
        FieldRule(hub_field="middle_name", remote_field="names.middleName"),
        FieldRule(hub_field="family_name", remote_field="names.familyName"),
        FieldRule(hub_field="emails", remote_field="emailAddresses"),
        FieldRule(hub_field="phones", remote_field="phoneNumbers"),
        FieldRule(hub_field="company", remote_field="organizations.name"),
        FieldRule(hub_field="title", remote_field="organizations.title"),
        FieldRule(hub_field="department", remote_field="organizations.department"),
        FieldRule(hub_field="addresses", remote_field="addresses"),
        FieldRule(hub_field="notes", remote_field="biographies"),
    ]


def _text(value: str | None, limit: int = _SHORT) -> str:
    return (value or "").strip()[:limit]


def _label(value: str | None) -> str:
    return (value or "").strip()[:_LABEL]


def email_of(item: RawEmail) -> EmailAddress | None:
    if not item.value:
        return None
    try:
        return EmailAddress(address=item.value.strip(), label=_label(item.type))
    except ValidationError:
        return None  # Google's check is looser than ours: such an email stays in Google only


def phone_of(item: RawPhone, region: str) -> PhoneNumber | None:
    raw = (item.value or "").strip()
    if not raw:
        return None
    label = _label(item.type)
    if item.canonical_form:
        try:  # Google's E.164, checked once by the model
            return PhoneNumber(raw=raw[:64], e164=item.canonical_form, label=label)
        except ValidationError:
            pass  # a possible but invalid number: read it as the user typed it
    return PhoneNumber(raw=raw[:64], e164=to_e164(raw, region), label=label)


def address_of(item: RawAddress) -> PostalAddress | None:
    address = PostalAddress(
        street=(item.street_address or "").strip()[:_STREET],
        city=_text(item.city),
        region=_text(item.region),
        postal_code=_text(item.postal_code, _POSTCODE),
        country=_text(item.country or item.country_code),
        label=_label(item.type),
    )
    if not any(_address_key(address)):
        return None  # only a formatted value: nothing the hub can hold (kept in Google)
    return address


def _address_key(address: PostalAddress) -> tuple[str, ...]:
    return (address.street, address.city, address.region, address.postal_code, address.country)


@dataclass(frozen=True)
class _Seen:
    """The items of one list field the hub sees (the first valid ones, up to its cap), by key."""

    keys: list[str | tuple[str, ...]]
    values: list[Any]


def _emails(person: RawPerson) -> _Seen:
    keys: list[str | tuple[str, ...]] = []
    values: list[EmailAddress] = []
    for item in person.email_addresses:
        email = email_of(item)
        if email is not None and email.key not in keys and len(values) < MAX_EMAILS:
            keys.append(email.key)
            values.append(email)
    return _Seen(keys, values)


def _phones(person: RawPerson, region: str) -> _Seen:
    keys: list[str | tuple[str, ...]] = []
    values: list[PhoneNumber] = []
    for item in person.phone_numbers:
        phone = phone_of(item, region)
        if phone is None:
            continue
        key = phone.e164 or phone.raw
        if key not in keys and len(values) < MAX_PHONES:
            keys.append(key)
            values.append(phone)
    return _Seen(keys, values)


def _addresses(person: RawPerson) -> _Seen:
    keys: list[str | tuple[str, ...]] = []
    values: list[PostalAddress] = []
    for item in person.addresses:
        address = address_of(item)
        if address is None:
            continue
        key = _address_key(address)
        if key not in keys and len(values) < MAX_ADDRESSES:
            keys.append(key)
            values.append(address)
    return _Seen(keys, values)


def to_fields(person: RawPerson, region: str) -> ContactFields:
    name = person.names[0] if person.names else RawName()
    org = person.organizations[0] if person.organizations else RawOrganization()
    notes = person.biographies[0].value if person.biographies else None
    return ContactFields(
        given_name=_text(name.given_name),
        middle_name=_text(name.middle_name),
        family_name=_text(name.family_name),
        emails=tuple(_emails(person).values),
        phones=tuple(_phones(person, region).values),
        company=_text(org.name),
        title=_text(org.title),
        department=_text(org.department),
        addresses=tuple(_addresses(person).values),
        notes=_text(notes, _NOTES),
    )


def to_record(
    person: RawPerson, *, label: str | None, region: str, fallback_time: datetime
) -> RemoteRecord:
    """The person as the engine sees it; ``label`` is the sync label's resource name (None: no
    such label, nothing is marked)."""
    modified = person.updated_at() or fallback_time
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    if person.deleted:
        return RemoteRecord(
            remote_id=person.resource_name,
            object_type=STREAM,
            version=person.etag,
            modified_at=modified,
            deleted=True,
        )
    return RemoteRecord(
        remote_id=person.resource_name,
        object_type=STREAM,
        version=person.etag,
        modified_at=modified,
        fields=to_fields(person, region),
        marked=label is not None and label in person.groups(),
        hub_id=person.hub_id(),
    )


# ---- hub -> Person ----------------------------------------------------------------------------


# Google's own types (shown translated in Google Contacts); other labels are custom types.
EMAIL_TYPES = ("home", "work", "other")
PHONE_TYPES = (
    "home",
    "work",
    "mobile",
    "homeFax",
    "workFax",
    "otherFax",
    "pager",
    "workMobile",
    "workPager",
    "main",
    "googleVoice",
    "other",
)
ADDRESS_TYPES = ("home", "work", "other")


def google_type(label: str, standard: Sequence[str]) -> str:
    """A hub label as a Google type: "Mobile" or "work mobile" as Google's own ``mobile`` and
    ``workMobile``, anything else as a custom type."""
    folded = "".join(label.split()).casefold()
    for kind in standard:
        if kind.casefold() == folded:
            return kind
    return label.strip()


def _put(item: dict[str, Any], key: str, value: str | None) -> None:
    if value:
        item[key] = value
    else:
        item.pop(key, None)


def _names(current: RawPerson | None, fields: ContactFields) -> list[dict[str, Any]]:
    item = current.names[0].writable() if current is not None and current.names else {}
    changed = False
    for hub, google in (
        ("given_name", "givenName"),
        ("middle_name", "middleName"),
        ("family_name", "familyName"),
    ):
        value = getattr(fields, hub)
        if value is not None and (item.get(google) or "") != value:
            _put(item, google, value)
            changed = True
    if changed:
        for derived in _DERIVED_NAME:
            item.pop(derived, None)
    return [item] if item else []


def _organizations(current: RawPerson | None, fields: ContactFields) -> list[dict[str, Any]]:
    items = [o.writable() for o in current.organizations] if current is not None else []
    first = items[0] if items else {}
    for hub, google in (("company", "name"), ("title", "title"), ("department", "department")):
        value = getattr(fields, hub)
        if value is not None:
            _put(first, google, value)
    rest = items[1:]
    if not (first.keys() - {"type"}):
        return rest  # nothing left of the hub's organisation
    return [first, *rest]


def _merge_list(
    current_items: Sequence[_Raw],
    seen: _Seen,
    wanted: Iterable[tuple[str | tuple[str, ...], dict[str, Any], str]],
    key_of: Callable[[int], str | tuple[str, ...] | None],
) -> list[dict[str, Any]]:
    """The wanted items in the hub's order, each written over the current item with the same
    key (so what the hub does not hold, e.g. a number's formatting, survives), followed by the
    current items the hub never saw (invalid for it, or past its cap)."""
    by_key: dict[str | tuple[str, ...], dict[str, Any]] = {}
    unseen: list[dict[str, Any]] = []
    for index, item in enumerate(current_items):
        key = key_of(index)
        if key is not None and key in seen.keys:
            by_key.setdefault(key, item.writable())
        else:
            unseen.append(item.writable())
    result: list[dict[str, Any]] = []
    used: set[str | tuple[str, ...]] = set()
    for key, new, label in wanted:
        if key in used:
            continue
        used.add(key)
        stored = by_key.get(key)
        if stored is None:
            result.append(new)
        else:
            _put(stored, "type", label or stored.get("type"))
            result.append(stored)
    return result + unseen


def _emails_out(current: RawPerson | None, emails: Sequence[EmailAddress]) -> list[dict[str, Any]]:
    items = current.email_addresses if current is not None else []
    seen = _emails(current) if current is not None else _Seen([], [])

    def key_of(i: int) -> str | None:
        email = email_of(items[i])
        return email.key if email is not None else None

    wanted = []
    for email in emails:
        kind = google_type(email.label, EMAIL_TYPES)
        new = {"value": email.address}
        _put(new, "type", kind)
        wanted.append((email.key, new, kind))
    return _merge_list(items, seen, wanted, key_of)


def _phones_out(
    current: RawPerson | None, phones: Sequence[PhoneNumber], region: str
) -> list[dict[str, Any]]:
    items = current.phone_numbers if current is not None else []
    seen = _phones(current, region) if current is not None else _Seen([], [])

    def key_of(i: int) -> str | None:
        phone = phone_of(items[i], region)
        return (phone.e164 or phone.raw) if phone is not None else None

    wanted = []
    for phone in phones:
        kind = google_type(phone.label, PHONE_TYPES)
        new = {"value": phone.e164 or phone.raw}
        _put(new, "type", kind)
        wanted.append((phone.e164 or phone.raw, new, kind))
    return _merge_list(items, seen, wanted, key_of)


def _addresses_out(
    current: RawPerson | None, addresses: Sequence[PostalAddress]
) -> list[dict[str, Any]]:
    items = current.addresses if current is not None else []
    seen = _addresses(current) if current is not None else _Seen([], [])

    def key_of(i: int) -> tuple[str, ...] | None:
        address = address_of(items[i])
        return _address_key(address) if address is not None else None

    wanted = []
    for address in addresses:
        if not any(_address_key(address)):
            continue  # an empty address is nothing to store
        kind = google_type(address.label, ADDRESS_TYPES)
        new: dict[str, Any] = {}
        for key, value in (
            ("streetAddress", address.street),
            ("city", address.city),
            ("region", address.region),
            ("postalCode", address.postal_code),
            ("country", address.country),
            ("type", kind),
        ):
            _put(new, key, value)
        wanted.append((_address_key(address), new, kind))
    return _merge_list(items, seen, wanted, key_of)


def _biographies(current: RawPerson | None, notes: str) -> list[dict[str, Any]]:
    if not notes:
        return []
    if current is not None and current.biographies and current.biographies[0].value == notes:
        return [current.biographies[0].writable()]
    return [{"value": notes, "contentType": "TEXT_PLAIN"}]


def person_fields(
    current: RawPerson | None, fields: ContactFields, region: str
) -> dict[str, list[dict[str, Any]]]:
    """The Google fields that hold the hub fields ``fields`` provides, as they must be written
    (over ``current``, the person as stored, for an update)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if any(v is not None for v in (fields.given_name, fields.middle_name, fields.family_name)):
        out["names"] = _names(current, fields)
    if any(v is not None for v in (fields.company, fields.title, fields.department)):
        out["organizations"] = _organizations(current, fields)
    if fields.emails is not None:
        out["emailAddresses"] = _emails_out(current, fields.emails)
    if fields.phones is not None:
        out["phoneNumbers"] = _phones_out(current, fields.phones, region)
    if fields.addresses is not None:
        out["addresses"] = _addresses_out(current, fields.addresses)
    if fields.notes is not None:
        out["biographies"] = _biographies(current, fields.notes)
    return out


def memberships(groups: Iterable[str]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for group in dict.fromkeys(groups):
        result.append({"contactGroupMembership": {"contactGroupResourceName": group}})
    return result


def create_body(
    hub_id: str, fields: ContactFields, label: str | None, region: str
) -> dict[str, Any]:
    """A new person: the hub's fields, our hub id in ``clientData``, and its memberships
    (myContacts, plus the sync label when ``label`` is given)."""
    body: dict[str, Any] = {k: v for k, v in person_fields(None, fields, region).items() if v}
    body["clientData"] = [{"key": HUB_ID_KEY, "value": hub_id}]
    body["memberships"] = memberships([MY_CONTACTS, *([label] if label else [])])
    return body


def _current_field(current: RawPerson, name: str) -> list[dict[str, Any]]:
    if name == "memberships":
        return memberships(current.groups())
    items: list[_Raw] = getattr(current, _ATTRIBUTES[name])
    return [item.writable() for item in items]


_ATTRIBUTES = {
    "names": "names",
    "emailAddresses": "email_addresses",
    "phoneNumbers": "phone_numbers",
    "organizations": "organizations",
    "addresses": "addresses",
    "biographies": "biographies",
    "memberships": "memberships",
}


@dataclass
class PersonUpdate:
    """What to write to one person: ``changes`` maps each Google field that differs from the
    stored person to its new value. ``body(mask)`` is the request's person for a batch whose
    ``updateMask`` is ``mask`` (a shared mask: fields this person does not change are written
    back as they are)."""

    current: RawPerson
    changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def body(self, mask: Iterable[str]) -> dict[str, Any]:
        person: dict[str, Any] = {"etag": self.current.etag}
        for name in mask:
            if name in self.changes:
                person[name] = self.changes[name]
            else:
                person[name] = _current_field(self.current, name)
        return person


def plan_update(
    current: RawPerson,
    fields: ContactFields,
    marked: bool | None,
    label: str | None,
    region: str,
) -> PersonUpdate:
    """The update that gives ``current`` the hub's ``fields`` and, when ``marked`` says so, the
    sync label (True: add it; False: remove it, keeping at least one membership)."""
    update = PersonUpdate(current)
    for name, value in person_fields(current, fields, region).items():
        if value != _current_field(current, name):
            update.changes[name] = value
    groups = current.groups()
    if label is not None and marked is True and label not in groups:
        update.changes["memberships"] = memberships([*groups, label])
    elif label is not None and marked is False and label in groups:
        rest = [g for g in groups if g != label]
        update.changes["memberships"] = memberships(rest or [MY_CONTACTS])
    return update
