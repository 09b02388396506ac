"""Generated address books: the shared realistic people, written as a Google user would have
them (phones in the style the person was typed in, emails in the case another system may hold
them, labels, starred contacts)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from contactsync_sandbox.core.people import Person, format_phone, people_for, vary_email
from contactsync_sandbox.google.fields import COUNTRY_NAMES, FORMATTED_TYPES

# Labels a sales rep keeps, with the share of contacts in each.
LABELS = (("Customers", 0.35), ("Prospects", 0.2), ("Partners", 0.1))
STARRED_SHARE = 0.05
EMAIL_TYPES = {"work": "work", "personal": "home"}
HOME_REGION = "US"  # the sandbox users' account region: national formats are American


def _typed(value: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "type": kind, "formattedType": FORMATTED_TYPES[kind], **extra}


def google_fields(p: Person) -> dict[str, list[dict[str, Any]]]:
    """The stored fields of a generated person (already normalised: no re-parsing)."""
    style = p.universe_index + 1  # Google's styles differ from the other providers' for a person
    display = f"{p.first_name} {p.last_name}"
    country = COUNTRY_NAMES[p.region]
    fields: dict[str, list[dict[str, Any]]] = {
        "names": [
            {
                "displayName": display,
                "familyName": p.last_name,
                "givenName": p.first_name,
                "displayNameLastFirst": f"{p.last_name}, {p.first_name}",
                "unstructuredName": display,
            }
        ],
        "emailAddresses": [
            _typed(vary_email(e.address, style + i), EMAIL_TYPES.get(e.label, "other"))
            for i, e in enumerate(p.emails)
        ],
        "phoneNumbers": [
            _typed(format_phone(ph, style + i, HOME_REGION), ph.label, canonicalForm=ph.e164)
            for i, ph in enumerate(p.phones)
        ],
        "organizations": [
            {
                "name": p.company,
                "title": p.title,
                **({"department": p.department} if p.department else {}),
                "type": "work",
                "formattedType": "Work",
            }
        ],
        "addresses": [
            {
                "formattedValue": f"{p.street}\n{p.city} {p.postal_code}\n{country}",
                "type": "work",
                "formattedType": "Work",
                "streetAddress": p.street,
                "city": p.city,
                "postalCode": p.postal_code,
                "country": country,
                "countryCode": p.region,
            }
        ],
    }
    if p.notes:
        fields["biographies"] = [{"value": p.notes, "contentType": "TEXT_PLAIN"}]
    return fields


def generated(
    count: int, seed: int, overlap: float, start: int
) -> Iterator[tuple[dict[str, list[dict[str, Any]]], list[str]]]:
    """(fields, label names) for ``count`` people of this provider's share of the universe."""
    for p in people_for("google", count, seed=seed, overlap=overlap, start=start):
        rng = random.Random(f"{seed}:google-labels:{p.universe_index}")
        labels = [name for name, share in LABELS if rng.random() < share]
        if rng.random() < STARRED_SHARE:
            labels.append("starred")
        yield google_fields(p), labels
