"""The People API ``Person`` resource: which fields exist, which a contact can write, how the
server normalises what a client sends and what it adds on the way out (``formattedType``,
``canonicalForm``, ``displayName``, per-field ``metadata``).

Field lists are those of the People API discovery document (revision 20240609).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import phonenumbers

from contactsync_sandbox.google import exceptions as err

# personFields / readMask paths (discovery: people.connections.list personFields).
READ_FIELDS = frozenset(
    {
        "addresses",
        "ageRanges",
        "biographies",
        "birthdays",
        "calendarUrls",
        "clientData",
        "coverPhotos",
        "emailAddresses",
        "events",
        "externalIds",
        "genders",
        "imClients",
        "interests",
        "locales",
        "locations",
        "memberships",
        "metadata",
        "miscKeywords",
        "names",
        "nicknames",
        "occupations",
        "organizations",
        "phoneNumbers",
        "photos",
        "relations",
        "sipAddresses",
        "skills",
        "urls",
        "userDefined",
    }
)
# updatePersonFields / updateMask paths (discovery: people.updateContact updatePersonFields).
UPDATE_FIELDS = frozenset(
    {
        "addresses",
        "biographies",
        "birthdays",
        "calendarUrls",
        "clientData",
        "emailAddresses",
        "events",
        "externalIds",
        "genders",
        "imClients",
        "interests",
        "locales",
        "locations",
        "memberships",
        "miscKeywords",
        "names",
        "nicknames",
        "occupations",
        "organizations",
        "phoneNumbers",
        "relations",
        "sipAddresses",
        "urls",
        "userDefined",
    }
)
# "The request returns a 400 error if more than one field is specified on a field that is a
# singleton for contact sources" (createContact, updateContact).
SINGLETONS = frozenset({"biographies", "birthdays", "genders", "names"})
# Every property of the Person schema: anything else in a request body is an unknown name.
PERSON_PROPERTIES = frozenset(
    READ_FIELDS
    | {
        "ageRange",
        "braggingRights",
        "etag",
        "fileAses",
        "relationshipInterests",
        "relationshipStatuses",
        "residences",
        "resourceName",
        "taglines",
    }
)
# Fields a contact stores (written by clients); memberships are kept apart as group ids.
STORED_FIELDS = UPDATE_FIELDS - {"memberships"}
# Lists cut to this length in people.connections.list (full set via people.get).
LIST_CAP = {"emailAddresses": 100, "phoneNumbers": 100}

FORMATTED_TYPES = {
    "home": "Home",
    "work": "Work",
    "other": "Other",
    "mobile": "Mobile",
    "homeFax": "Home Fax",
    "workFax": "Work Fax",
    "otherFax": "Other Fax",
    "pager": "Pager",
    "workMobile": "Work Mobile",
    "workPager": "Work Pager",
    "main": "Main",
    "googleVoice": "Google Voice",
    "school": "School",
    "blog": "Blog",
    "profile": "Profile",
    "homePage": "Home Page",
    "ftp": "FTP",
    "anniversary": "Anniversary",
}
COUNTRY_NAMES = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "JP": "Japan",
    "BR": "Brazil",
    "IN": "India",
    "ES": "Spain",
}
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
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


def parse_mask(
    raw: str | None, valid: frozenset[str], param: str, docs: str = err.MASK_DOCS
) -> tuple[str, ...]:
    """A field mask (``names,emailAddresses`` or ``person.names``) as a sorted tuple of paths."""
    if raw is None or not raw.strip():
        raise err.invalid_argument(
            f"{param} mask is required. Please specify one or more valid paths. "
            f"Valid paths are documented at {docs}."
        )
    paths: set[str] = set()
    for part in raw.split(","):
        path = part.strip().removeprefix("person.")
        if path not in valid:
            raise err.invalid_argument(
                f'Invalid {param} mask path: "{part.strip()}". '
                f"Valid paths are documented at {docs}."
            )
        paths.add(path)
    return tuple(sorted(paths))


# ---- normalisation of what a client writes -------------------------------------------------------


def _items(person: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    value = person.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise err.invalid_value(f"{where}.{snake(name)}", "TYPE_MESSAGE", value)
    return value


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _OUTPUT_ONLY and v not in (None, "")}


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    out = _copy(item)
    kind = out.get("type")
    if isinstance(kind, str) and kind:
        out["formattedType"] = FORMATTED_TYPES.get(kind, kind)
    return out


def _name(item: dict[str, Any]) -> dict[str, Any]:
    out = _copy(item)
    parts = ("honorificPrefix", "givenName", "middleName", "familyName", "honorificSuffix")
    if not any(out.get(p) for p in parts) and isinstance(out.get("unstructuredName"), str):
        words = out["unstructuredName"].split()
        if words:
            out["givenName"] = words[0]
        if len(words) > 1:
            out["familyName"] = " ".join(words[1:])
    display = " ".join(str(out[p]) for p in parts if out.get(p))
    if display:
        out["displayName"] = display
        family, given = out.get("familyName"), out.get("givenName")
        out["displayNameLastFirst"] = f"{family}, {given}" if family and given else display
        out.setdefault("unstructuredName", display)
    return out


def canonical_phone(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone(item: dict[str, Any], region: str) -> dict[str, Any]:
    out = _typed(item)
    value = out.get("value")
    if isinstance(value, str):
        canonical = canonical_phone(value, region)
        if canonical:
            out["canonicalForm"] = canonical
    return out


def _address(item: dict[str, Any]) -> dict[str, Any]:
    out = _typed(item)
    if "countryCode" in out and "country" not in out:
        out["country"] = COUNTRY_NAMES.get(str(out["countryCode"]).upper(), out["countryCode"])
    if "formattedValue" not in out:
        locality = " ".join(str(out[k]) for k in ("city", "region", "postalCode") if out.get(k))
        lines = [out.get("poBox"), out.get("streetAddress"), out.get("extendedAddress"), locality]
        lines.append(out.get("country"))
        text = "\n".join(str(line) for line in lines if line)
        if text:
            out["formattedValue"] = text
    return out


def _biography(item: dict[str, Any]) -> dict[str, Any]:
    out = _copy(item)
    out.setdefault("contentType", "TEXT_PLAIN")
    return out


def normalise_fields(
    person: dict[str, Any], names: Iterable[str], where: str, region: str
) -> dict[str, list[dict[str, Any]]]:
    """The stored form of the listed fields of ``person`` (a request body). Raises the API's
    400 for a wrong type or a singleton given twice."""
    fields: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if name == "memberships":
            continue
        items = _items(person, name, where)
        if name in SINGLETONS and len(items) > 1:
            raise err.invalid_argument(
                f"Only one {name[:-1] if name != 'biographies' else 'biography'} is allowed "
                f"per contact ({snake(name)} is a singleton for contact sources).",
                f"{where}.{snake(name)}",
            )
        if name == "names":
            normal = [_name(i) for i in items]
        elif name == "phoneNumbers":
            normal = [_phone(i, region) for i in items]
        elif name == "addresses":
            normal = [_address(i) for i in items]
        elif name == "biographies":
            normal = [_biography(i) for i in items]
        else:
            normal = [_typed(i) for i in items]
        normal = [i for i in normal if i]
        if normal:
            fields[name] = normal
    return fields


def check_person_keys(person: Any, where: str) -> dict[str, Any]:
    if not isinstance(person, dict):
        raise err.invalid_value(where, "type.googleapis.com/google.apps.people.v1.Person", person)
    for key in person:
        if key not in PERSON_PROPERTIES:
            raise err.unknown_name(key, where)
    return person


def requested_groups(person: dict[str, Any], where: str) -> list[str] | None:
    """The contact group ids named in ``person.memberships`` (None when the field is absent)."""
    if "memberships" not in person:
        return None
    groups: list[str] = []
    for item in _items(person, "memberships", where):
        membership = item.get("contactGroupMembership")
        if not isinstance(membership, dict):
            continue  # domain memberships are output only
        name = membership.get("contactGroupResourceName")
        if not isinstance(name, str) or not name.startswith("contactGroups/"):
            raise err.invalid_argument(
                "Only contact_group_resource_name can be used for modifying memberships.",
                f"{where}.memberships.contact_group_membership.contact_group_resource_name",
            )
        group_id = name.removeprefix("contactGroups/")
        if group_id not in groups:
            groups.append(group_id)
    return groups


def request_etags(person: dict[str, Any]) -> tuple[str | None, str | None]:
    """(person.etag, the CONTACT source's etag) as given in an update request."""
    etag = person.get("etag") if isinstance(person.get("etag"), str) else None
    source_etag = None
    metadata = person.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("sources"), list):
        for source in metadata["sources"]:
            if isinstance(source, dict) and source.get("type") in (None, "CONTACT"):
                value = source.get("etag")
                if isinstance(value, str):
                    source_etag = value
                    break
    return etag, source_etag
