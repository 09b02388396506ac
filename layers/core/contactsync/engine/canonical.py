"""Canonical forms: what "the same value" means when comparing a hub field with a provider's
copy, and the fingerprints that make echo suppression work.

Emails compare case-insensitively; phones by E.164 when they have one (a provider that reformats
"+14155552671" as "(415) 555-2671" has not changed it); text by its stripped value; list order
is kept (the first email is the primary one)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from contactsync.connectors.base import ContactFields
from contactsync.domain.contact import (
    ContactField,
    EmailAddress,
    HubContact,
    PhoneNumber,
    PostalAddress,
)

Snapshot = dict[str, Any]


def canon(field: ContactField, value: Any) -> Any:
    if value is None:
        return None
    if field == "emails":
        return [e.key for e in value if isinstance(e, EmailAddress)]
    if field == "phones":
        return [p.e164 or p.raw for p in value if isinstance(p, PhoneNumber)]
    if field == "addresses":
        return [
            [a.street, a.city, a.region, a.postal_code, a.country]
            for a in value
            if isinstance(a, PostalAddress)
        ]
    return " ".join(str(value).split())


def snapshot(fields: ContactFields) -> Snapshot:
    """The canonical values of every field a source provides."""
    return {name: canon(name, value) for name, value in fields.provided().items()}


# One encoder, built once: json.dumps with options builds a new one per call, and a sync
# fingerprints every record it reads and writes. The same text as json.dumps with these options.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def fingerprint(snap: Snapshot) -> str:
    raw = _CANONICAL_JSON.encode(snap)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def hub_fields(contact: HubContact, fields: frozenset[ContactField]) -> ContactFields:
    """The hub's values of ``fields``, as a source would provide them."""
    values: dict[str, Any] = {}
    for name in fields:
        value = getattr(contact, name)
        values[name] = tuple(value) if isinstance(value, list) else value
    return ContactFields(**values)


def same(field: ContactField, a: Any, b: Any) -> bool:
    return bool(canon(field, a) == canon(field, b))
