"""Aircall's own shapes (the raw API models) and their translation to and from the hub's
``ContactFields`` / ``RemoteRecord``. Nothing outside this package knows these shapes.

Aircall contact: ``id`` (int), ``first_name``, ``last_name``, ``company_name``,
``information``, ``created_at`` / ``updated_at`` (UNIX seconds in the API, UTC strings like
``2020-03-24T19:51:24Z`` in webhook payloads), ``emails`` and ``phone_numbers`` as
``[{id, label, value}]``. There is no job title, no middle name, no address and no place to
stamp our hub id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from contactsync.connectors.base import ContactFields, RemoteRecord
from contactsync.domain.contact import EmailAddress, PhoneNumber, to_e164
from contactsync.domain.sync import FieldRule

STREAM = "contact"  # plan.object_type_for(Aircall): the one stream, named by its object type
MAX_DETAILS = 20  # emails, and phone numbers, per contact
_LABEL_MAX = 40  # the hub's label length
DetailKind = Literal["phone", "email"]


def unix_seconds(value: object) -> int:
    """UNIX seconds from the API's integers or the webhooks' UTC strings."""
    if isinstance(value, bool):
        raise ValueError("a timestamp, not a boolean")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp())
    raise ValueError("not a timestamp")


Timestamp = Annotated[int, BeforeValidator(unix_seconds)]


class _Raw(BaseModel):
    # Aircall adds fields over time: keep what we know, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RawDetail(_Raw):
    id: int | None = None
    label: str | None = None
    value: str


class RawContact(_Raw):
    id: int
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    information: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    emails: list[RawDetail] = []
    phone_numbers: list[RawDetail] = []


class Meta(_Raw):
    count: int = 0
    total: int = 0
    current_page: int = 1
    per_page: int = 20
    next_page_link: str | None = None
    previous_page_link: str | None = None


class ContactList(_Raw):
    contacts: list[RawContact]
    meta: Meta

    @property
    def more(self) -> bool:
        """Whether the query has records past this page (``next_page_link`` is also null at
        the 10,000-record cap, hence the total)."""
        return self.meta.next_page_link is not None


class ContactEnvelope(_Raw):
    contact: RawContact


class RawWebhook(_Raw):
    webhook_id: str
    url: str
    active: bool = True
    events: list[str] = []
    token: str | None = None
    custom_name: str | None = None


class WebhookList(_Raw):
    webhooks: list[RawWebhook]
    meta: Meta


class WebhookEnvelope(_Raw):
    webhook: RawWebhook


class WebhookDelivery(_Raw):
    """``{resource, event, timestamp, token, data}``: one delivery, no signature."""

    resource: str
    event: str
    timestamp: Timestamp | None = None
    token: str
    data: dict[str, Any]


class DeletedContact(_Raw):
    """``contact.deleted`` carries the last snapshot with emails and phones emptied."""

    id: int
    updated_at: Timestamp | None = None


# ---- hub <-> Aircall --------------------------------------------------------------------------


def default_mapping() -> list[FieldRule]:
    return [
        FieldRule(hub_field="given_name", remote_field="first_name"),
        FieldRule(hub_field="family_name", remote_field="last_name"),
        FieldRule(hub_field="company", remote_field="company_name"),
        FieldRule(hub_field="notes", remote_field="information"),
        FieldRule(hub_field="emails", remote_field="emails"),
        FieldRule(hub_field="phones", remote_field="phone_numbers"),
    ]


def _email(detail: RawDetail) -> EmailAddress | None:
    try:
        return EmailAddress(address=detail.value.strip(), label=(detail.label or "")[:_LABEL_MAX])
    except ValidationError:
        return None  # Aircall's check is looser than ours: such an email is left alone


def _phone(detail: RawDetail, region: str) -> PhoneNumber:
    return PhoneNumber.lenient(detail.value, region, (detail.label or "")[:_LABEL_MAX])


def to_fields(raw: RawContact, region: str) -> ContactFields:
    emails = tuple(e for e in (_email(d) for d in raw.emails) if e is not None)
    return ContactFields(
        given_name=raw.first_name or "",
        family_name=raw.last_name or "",
        company=raw.company_name or "",
        notes=raw.information or "",
        emails=emails,
        phones=tuple(_phone(d, region) for d in raw.phone_numbers),
    )


def to_record(raw: RawContact, region: str) -> RemoteRecord:
    return RemoteRecord(
        remote_id=str(raw.id),
        object_type=STREAM,
        version=str(raw.updated_at),
        modified_at=datetime.fromtimestamp(raw.updated_at, UTC),
        fields=to_fields(raw, region),
    )


def deleted_record(contact_id: int, at: int) -> RemoteRecord:
    return RemoteRecord(
        remote_id=str(contact_id),
        object_type=STREAM,
        modified_at=datetime.fromtimestamp(at, UTC),
        deleted=True,
    )


_LABELS = {"work": "Work", "mobile": "Mobile", "home": "Home", "other": "Other", "main": "Main"}


def aircall_label(label: str) -> str:
    """Aircall shows a label on every detail; the hub's lower-case ones read as its own."""
    return _LABELS.get(label.strip().lower(), label.strip()) or "Other"


@dataclass(frozen=True)
class Wanted:
    """A detail as Aircall should hold it: ``key`` is what decides sameness (E.164 for phones,
    the lower-cased address for emails)."""

    key: str
    value: str
    label: str


def wanted_phones(fields: ContactFields) -> list[Wanted]:
    """Phones Aircall can hold: international form only. A number without a valid E.164 form
    cannot be stored there and is left out."""
    result: dict[str, Wanted] = {}
    for phone in fields.phones or ():
        if phone.e164 and phone.e164 not in result:
            result[phone.e164] = Wanted(phone.e164, phone.e164, aircall_label(phone.label))
    return list(result.values())[:MAX_DETAILS]


def wanted_emails(fields: ContactFields) -> list[Wanted]:
    result: dict[str, Wanted] = {}
    for email in fields.emails or ():
        if email.key not in result:
            result[email.key] = Wanted(email.key, email.address, aircall_label(email.label))
    return list(result.values())[:MAX_DETAILS]


_TEXT = (
    ("given_name", "first_name"),
    ("family_name", "last_name"),
    ("company", "company_name"),
    ("notes", "information"),
)


def text_payload(fields: ContactFields) -> dict[str, str]:
    """The name, company and information fields ``fields`` provides, Aircall-named."""
    provided = fields.provided()
    return {remote: str(provided[hub]) for hub, remote in _TEXT if hub in provided}


def create_payload(fields: ContactFields, phones: Sequence[Wanted]) -> dict[str, Any]:
    payload: dict[str, Any] = dict(text_payload(fields))
    payload["phone_numbers"] = [{"label": w.label, "value": w.value} for w in phones]
    emails = wanted_emails(fields)
    if emails:
        payload["emails"] = [{"label": w.label, "value": w.value} for w in emails]
    return payload


def phone_key(region: str) -> Callable[[str], str | None]:
    return lambda value: to_e164(value, region)


def email_key(value: str) -> str | None:
    try:
        return EmailAddress(address=value.strip()).key
    except ValidationError:
        return None


@dataclass
class DetailPlan:
    """How to turn a contact's current details into the wanted ones with the fewest calls:
    change a detail's value in place (PUT) where one goes and another comes, add the rest,
    remove what is left. Details we cannot read (no key) are never touched."""

    change: list[tuple[int, Wanted]] = field(default_factory=list)
    add: list[Wanted] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.change or self.add or self.remove)


def plan_details(
    current: Sequence[RawDetail], wanted: Sequence[Wanted], key: Callable[[str], str | None]
) -> DetailPlan:
    wanted_keys = {w.key for w in wanted}
    have: set[str] = set()
    spare: list[int] = []  # current details (with ids) whose value is no longer wanted
    for detail in current:
        k = key(detail.value)
        if k is None or detail.id is None:
            continue
        if k in wanted_keys and k not in have:
            have.add(k)
        else:
            spare.append(detail.id)
    missing = [w for w in wanted if w.key not in have]
    plan = DetailPlan()
    for detail_id, w in zip(spare, missing, strict=False):
        plan.change.append((detail_id, w))
    plan.add = missing[len(plan.change) :]
    plan.remove = spare[len(plan.change) :]
    return plan


def same_person(raw: RawContact, fields: ContactFields) -> bool:
    """Whether an existing Aircall contact is the one ``fields`` describes (a twin): the same
    first and last name, ignoring case and spacing. The caller found it by phone or email."""

    def norm(value: str | None) -> str:
        return " ".join((value or "").split()).casefold()

    return norm(raw.first_name) == norm(fields.given_name) and norm(raw.last_name) == norm(
        fields.family_name
    )


def representable(fields: ContactFields) -> ContactFields:
    """What Aircall can hold of ``fields``: phone numbers in international form only (a number
    without an E.164 form, such as an extension typed in a CRM, cannot be stored)."""
    if fields.phones is None:
        return fields
    return fields.model_copy(update={"phones": tuple(p for p in fields.phones if p.e164)})
