"""Rendering People API resources as the API returns them: only the requested fields, each item
with its ``metadata`` (primary flags and source), the person's ``etag`` and ``resourceName``.

Each field of a contact is rendered to JSON when the contact is written (``prime``) and kept on
the contact until its next write, so a page of 1,000 people is assembled by joining bytes.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from contactsync_sandbox.google.fields import LIST_CAP, STORED_FIELDS
from contactsync_sandbox.google.models import (
    SYSTEM_GROUPS,
    AddressBook,
    Contact,
    ContactGroup,
    UserAccount,
    rfc3339,
)

DEFAULT_GROUP_FIELDS = ("groupType", "memberCount", "metadata", "name")
GROUP_FIELDS = frozenset({"clientData", "groupType", "memberCount", "metadata", "name"})


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _field(contact: Contact, name: str, source: dict[str, str]) -> Any:
    if name in STORED_FIELDS:
        items = contact.fields.get(name)
        if not items:
            return None
        first = {"metadata": {"primary": True, "sourcePrimary": True, "source": source}, **items[0]}
        if len(items) == 1:
            return [first]
        rest = {"source": source}
        return [first, *({"metadata": rest, **item} for item in items[1:])]
    if name == "metadata":
        return {
            "sources": [
                {
                    "type": "CONTACT",
                    "id": source["id"],
                    "etag": contact.source_etag,
                    "updateTime": rfc3339(contact.updated),
                }
            ],
            "objectType": "PERSON",
        }
    if name == "memberships" and contact.groups:
        return [
            {
                "metadata": {"source": source},
                "contactGroupMembership": {
                    "contactGroupId": group_id,
                    "contactGroupResourceName": f"contactGroups/{group_id}",
                },
            }
            for group_id in contact.groups
        ]
    if name == "photos":
        return [
            {
                "metadata": {"primary": True, "source": source},
                "url": f"https://lh3.googleusercontent.com/cm/{source['id']}=s100",
                "default": True,
            }
        ]
    return None  # output-only fields a contact does not have (ageRanges, coverPhotos, skills)


def person(contact: Contact, mask: tuple[str, ...]) -> dict[str, Any]:
    """The contact as a Person with the fields of ``mask`` (people.get, writes, batches)."""
    result: dict[str, Any] = json.loads(person_json(contact, mask))
    return result


def _fragment(contact: Contact, name: str) -> bytes:
    value = _field(contact, name, {"type": "CONTACT", "id": contact.source_id})
    return b"" if value is None else f'"{name}":{_encode(value)}'.encode()


def prime(contact: Contact) -> None:
    """Renders a contact's fields as JSON when it is written (the models call this after every
    write), so that listings only join bytes: serving a page costs the same whether or not a
    client has read these people before. Fields nobody stored are rendered on first request.

    The cache is a dict of str to bytes, which the garbage collector does not track."""
    if contact.deleted:
        return
    cache = contact.cache
    cache["#head"] = f'{{"resourceName":"{contact.resource_name}","etag":"{contact.etag}"'.encode()
    for name in (*contact.fields, "metadata", "memberships"):
        cache[name] = _fragment(contact, name)


def person_json(contact: Contact, mask: tuple[str, ...], *, capped: bool = False) -> bytes:
    """``person`` as UTF-8 JSON, assembled from the contact's rendered fields."""
    cache = contact.cache
    head = cache.get("#head")
    if head is None:
        prime(contact)
        head = cache["#head"]
    parts = [head]
    for name in mask:
        fragment = cache.get(name)
        if fragment is None:
            fragment = cache[name] = _fragment(contact, name)
        if not fragment:
            continue
        cap = LIST_CAP.get(name) if capped else None
        if cap is not None and len(contact.fields.get(name, ())) > cap:
            source = {"type": "CONTACT", "id": contact.source_id}
            fragment = f'"{name}":{_encode(_field(contact, name, source)[:cap])}'.encode()
        parts.append(fragment)
    return b",".join(parts) + b"}"


def tombstone(contact: Contact) -> dict[str, Any]:
    """A contact deleted since the sync token, as incremental syncs report it."""
    return {
        "resourceName": contact.resource_name,
        "etag": contact.etag,
        "metadata": {
            "sources": [
                {"type": "CONTACT", "id": contact.source_id, "updateTime": rfc3339(contact.updated)}
            ],
            "deleted": True,
        },
    }


def profile(user: UserAccount, mask: tuple[str, ...], etag: str) -> dict[str, Any]:
    """``people/me``: the authenticated user's own profile."""
    source = {"type": "PROFILE", "id": user.profile_id}
    out: dict[str, Any] = {"resourceName": f"people/{user.profile_id}", "etag": etag}
    primary = {"primary": True, "source": source}
    fields: dict[str, Any] = {
        "metadata": {
            "sources": [{**source, "etag": etag.replace("%", "#", 1)}],
            "objectType": "PERSON",
        },
        "names": [
            {
                "metadata": primary,
                "displayName": f"{user.given_name} {user.family_name}",
                "givenName": user.given_name,
                "familyName": user.family_name,
                "displayNameLastFirst": f"{user.family_name}, {user.given_name}",
                "unstructuredName": f"{user.given_name} {user.family_name}",
            }
        ],
        "emailAddresses": [
            {
                "metadata": {
                    "primary": True,
                    "verified": True,
                    "source": {"type": "ACCOUNT", "id": user.profile_id},
                },
                "value": user.email,
            }
        ],
    }
    for name in mask:
        if name in fields:
            out[name] = fields[name]
    return out


def group(
    book: AddressBook, g: ContactGroup, fields: tuple[str, ...], max_members: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceName": g.resource_name, "etag": book.group_etag(g)}
    if "metadata" in fields or g.deleted:
        metadata: dict[str, Any] = {"updateTime": rfc3339(g.updated)}
        if g.deleted:
            metadata["deleted"] = True
        out["metadata"] = metadata
    if g.deleted:
        return out
    if "groupType" in fields:
        out["groupType"] = "SYSTEM_CONTACT_GROUP" if g.system else "USER_CONTACT_GROUP"
    if "name" in fields:
        out["name"] = g.name
        out["formattedName"] = SYSTEM_GROUPS[g.id] if g.system else g.name
    if "clientData" in fields and g.client_data:
        out["clientData"] = g.client_data
    count = book.member_count(g)
    if "memberCount" in fields and count:
        out["memberCount"] = count
    if max_members > 0 and g.id != "all":
        names = [f"people/c{n}" for n in islice(g.members, max_members)]
        if names:
            out["memberResourceNames"] = names
    return out
