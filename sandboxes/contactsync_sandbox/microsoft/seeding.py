"""Realistic Outlook contacts from the shared people generator: names with diacritics, up to
three email addresses (Outlook's cap) with the case varied, phones typed in varied national
and international styles, so the same person differs in format from the other providers."""

from __future__ import annotations

from typing import Any

from contactsync_sandbox.core.people import Person, format_phone, vary_email

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
PROVIDER_STYLE_OFFSET = 2  # Microsoft's turn in the shared style rotation


def contact_from_person(person: Person) -> dict[str, Any]:
    style = person.universe_index + PROVIDER_STYLE_OFFSET
    display = f"{person.first_name} {person.last_name}"
    phones: dict[str, list[str]] = {"work": [], "mobile": [], "home": []}
    for phone in person.phones:
        phones[phone.label].append(format_phone(phone, style, person.region))
    contact: dict[str, Any] = {
        "givenName": person.first_name,
        "surname": person.last_name,
        "displayName": display,
        "emailAddresses": [
            {"name": display, "address": vary_email(email.address, style + i)}
            for i, email in enumerate(person.emails[:3])
        ],
        "businessPhones": phones["work"][:2],
        "homePhones": phones["home"][:2],
        "mobilePhone": phones["mobile"][0] if phones["mobile"] else None,
        "companyName": person.company,
        "jobTitle": person.title,
        "department": person.department or None,
        "businessAddress": {
            "street": person.street,
            "city": person.city,
            "state": "",
            "countryOrRegion": COUNTRIES.get(person.region, person.region),
            "postalCode": person.postal_code,
        },
        "personalNotes": person.notes,
    }
    return contact
