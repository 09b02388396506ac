"""The hub's canonical contact: one record per person, with per-field provenance."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal, Self, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contactsync.domain.base import STORED, AwareDatetime, Entity, Id, Model, utcnow
from contactsync.domain.company import company_key_loose

Short = Annotated[str, StringConstraints(max_length=255)]
Label = Annotated[str, StringConstraints(max_length=40)]

ContactField = Literal[
    "given_name",
    "family_name",
    "middle_name",
    "emails",
    "phones",
    "company",
    "title",
    "department",
    "addresses",
    "notes",
]
CONTACT_FIELDS: tuple[ContactField, ...] = get_args(ContactField)


class Visibility(StrEnum):
    ORGANISATION = "organisation"
    PERSONAL = "personal"


# Fewer digits than this is not a phone number a person would search by.
MIN_PHONE_DIGITS = 6

# Plain ASCII addresses (the vast majority) that every RFC reading accepts; anything else goes
# through the full validator. Labels are 1-63 characters, not starting or ending with '-'.
_SIMPLE_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


@lru_cache(maxsize=16_384)
def _email(value: str) -> str:
    """Validates and normalises an address (domain lower-cased). Cached: a sync meets the same
    addresses again and again (pull, merge, store round trips)."""
    if len(value) > 254:
        raise ValueError("an email address has at most 254 characters")
    if _SIMPLE_EMAIL.match(value) and len(value.partition("@")[0]) <= 64:
        local, _, domain = value.partition("@")
        return f"{local}@{domain.lower()}"
    try:
        # No DNS: this runs on every contact of a 100,000-contact sync.
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address ({exc})") from None
    return result.normalized


class EmailAddress(Model):
    address: Annotated[str, AfterValidator(_email)]
    label: Label = ""

    @property
    def key(self) -> str:
        """The matching key: email addresses are compared case-insensitively."""
        return self.address.lower()


@lru_cache(maxsize=16_384)
def _e164(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not an E.164 number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value:
        raise ValueError("not in E.164 form (+ and digits only)")
    return value


# E.164 strings to_e164 produced recently: valid by construction, so the model's check need
# not parse them again (a record's numbers are parsed when read, then validated in the merged
# contact). Bounded; emptied when full.
_MADE_E164: set[str] = set()


def _checked_e164(value: str | None, info: ValidationInfo) -> str | None:
    if info.context is STORED or value in _MADE_E164:
        return value  # checked before it was stored, or made by to_e164
    return _e164(value)


class PhoneNumber(Model):
    """A phone number as the source had it (``raw``) and, when it is a valid number, in E.164,
    the form every matching and every push uses."""

    raw: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    e164: Annotated[str | None, AfterValidator(_checked_e164)] = None
    label: Label = ""

    @classmethod
    def parse(cls, raw: str, default_region: str = "US", label: str = "") -> Self:
        """Strict: raises ValueError when ``raw`` is not a valid number (user input)."""
        e164 = to_e164(raw, default_region)
        if e164 is None:
            raise ValueError("not a valid phone number for region " + default_region)
        return cls(raw=raw.strip(), e164=e164, label=label)

    @classmethod
    def lenient(
        cls,
        raw: str,
        default_region: str = "US",
        label: str = "",
        *,
        written: Container[str] = (),
    ) -> PhoneNumber:
        """Keeps what a provider holds even when it is no valid number (it still syncs back
        unchanged, it just cannot be matched on). ``written``: E.164 numbers the caller has
        just written to the provider; one that reads back unchanged is its own E.164 form
        (a valid number in E.164 parses to itself in any region), so it is not parsed again."""
        # Every field is made valid here (e164 comes from to_e164, which only returns valid
        # E.164; lengths are cut to the limits), so construction skips a second validation:
        # this runs for every number of every record a sync reads.
        return cls.model_construct(
            raw=raw.strip()[:64] or "?",
            e164=raw if raw in written else to_e164(raw, default_region),
            label=label.strip()[:40],
        )


@lru_cache(maxsize=16_384)
def to_e164(raw: str, default_region: str = "US") -> str | None:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    made = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(_MADE_E164) >= 65_536:
        _MADE_E164.clear()
    _MADE_E164.add(made)
    return made


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a text, punctuation turned into spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in kept).split())


def name_key(given: str, family: str) -> str:
    """Case- and accent-insensitive full name, for merge suggestions."""
    return fold(f"{given} {family}")


class PostalAddress(Model):
    street: Annotated[str, StringConstraints(max_length=500)] = ""
    city: Short = ""
    region: Short = ""
    postal_code: Annotated[str, StringConstraints(max_length=40)] = ""
    country: Short = ""
    label: Label = ""


class FieldProvenance(Model):
    """Who wrote a hub field, when the source says it changed, and why it won."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source_ts: AwareDatetime
    hub_version: int = Field(ge=1)
    run_id: str | None = None
    reason: Annotated[str, StringConstraints(max_length=200)] = ""


class HubContact(Entity):
    kind = "contact"
    list_buckets = 16

    given_name: Short = ""
    middle_name: Short = ""
    family_name: Short = ""
    emails: list[EmailAddress] = Field(default_factory=list, max_length=20)
    phones: list[PhoneNumber] = Field(default_factory=list, max_length=20)
    company: Short = ""
    company_id: Id | None = None
    title: Short = ""
    department: Short = ""
    addresses: list[PostalAddress] = Field(default_factory=list, max_length=5)
    notes: Annotated[str, StringConstraints(max_length=32_000)] = ""
    owner_user_id: Id | None = None
    visibility: Visibility = Visibility.ORGANISATION
    archived: bool = False
    merged_into: Id | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime = Field(default_factory=utcnow)
    provenance: dict[ContactField, FieldProvenance] = Field(default_factory=dict)

    @field_validator("emails")
    @classmethod
    def _unique_emails(cls, emails: list[EmailAddress]) -> list[EmailAddress]:
        seen: set[str] = set()
        unique = []
        for email in emails:
            if email.key not in seen:
                seen.add(email.key)
                unique.append(email)
        return unique

    @field_validator("phones")
    @classmethod
    def _unique_phones(cls, phones: list[PhoneNumber]) -> list[PhoneNumber]:
        seen: set[str] = set()
        unique = []
        for phone in phones:
            key = phone.e164 or phone.raw
            if key not in seen:
                seen.add(key)
                unique.append(phone)
        return unique

    @model_validator(mode="after")
    def _identifiable(self) -> Self:
        if not (self.given_name or self.family_name or self.emails or self.phones or self.company):
            raise ValueError("a contact needs at least a name, an email, a phone or a company")
        if self.personal and self.owner_user_id is None:
            raise ValueError("a personal contact needs an owner_user_id")
        return self

    @property
    def personal(self) -> bool:
        return self.visibility is Visibility.PERSONAL

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.given_name, self.family_name) if p)
        if name:
            return name
        if self.emails:
            return self.emails[0].address
        return self.company or (self.phones[0].raw if self.phones else self.id)

    def email_keys(self) -> list[str]:
        return [e.key for e in self.emails]

    def phone_keys(self) -> list[str]:
        return [p.e164 for p in self.phones if p.e164]

    def unparsed_phone_keys(self) -> list[str]:
        """The digits of numbers kept raw (no E.164: a national number of another country, say):
        the gallery still finds them when typed as stored. Never used for matching."""
        keys = ("".join(ch for ch in p.raw if ch.isdigit()) for p in self.phones if not p.e164)
        return [k for k in keys if len(k) >= MIN_PHONE_DIGITS]

    def index_entries(self) -> Iterable[tuple[str, str]]:
        for key in self.email_keys():
            yield "email", key
        for key in self.phone_keys():
            yield "phone", key
        for key in self.unparsed_phone_keys():
            yield "phone_digits", key
        if self.given_name or self.family_name:
            key = name_key(self.given_name, self.family_name)
            yield "name", key
            # Merge suggestions look up namesakes at the same company (or with none) only.
            yield "name_company", f"{key}|{company_key_loose(self.company)}"
        for word in sorted(self.search_words()):
            yield "word", word
        if self.company_id:
            yield "company", self.company_id
        if self.owner_user_id:
            yield "owner", self.owner_user_id

    def search_words(self) -> set[str]:
        """Folded words of the name and company: the gallery's text search looks these up."""
        text = f"{self.given_name} {self.family_name} {self.company}"
        return {w for w in fold(text).split() if len(w) >= 2}

    def field_value(self, field: ContactField) -> object:
        return getattr(self, field)

    def touched(self, at: datetime) -> Self:
        return self.model_copy(update={"updated_at": at})
