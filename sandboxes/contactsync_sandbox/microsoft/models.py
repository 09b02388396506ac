"""State and rules of the emulated tenant: the directory (tenant, app registration, users) and
each user's mailbox (contact folders, contacts, master categories), with Outlook's rules:

- ids are long URL-safe base64 strings that embed the folder, so a contact moved to another
  folder gets a new id (Graph itself cannot move a contact; Outlook can);
- ``changeKey`` changes with every write, ``@odata.etag`` is ``W/"<changeKey>"``;
- PATCH merges, but a write that changes a name part without sending ``displayName``
  regenerates it (the contact resource page warns about this);
- ``emailAddresses`` holds at most 3 entries, ``businessPhones`` and ``homePhones`` 2 each;
- every folder keeps a change log ordered by modification sequence, so a delta round costs
  O(changes), and a query cache, so paging costs O(page size).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.odata import Filter
from contactsync_sandbox.microsoft.settings import Limits

ChangeType = Literal["created", "updated", "deleted"]

ID_PREFIX = b"\x00\x03\x24\x00"  # what Exchange REST ids start with ("AAMkA...")

# Every property of a contact, in the order Graph renders them, with the value of an unset one.
CONTACT_DEFAULTS: dict[str, Any] = {
    "birthday": None,
    "fileAs": "",
    "displayName": "",
    "givenName": None,
    "initials": None,
    "middleName": None,
    "nickName": None,
    "surname": None,
    "title": None,
    "yomiGivenName": None,
    "yomiSurname": None,
    "yomiCompanyName": None,
    "generation": None,
    "imAddresses": [],
    "jobTitle": None,
    "companyName": None,
    "department": None,
    "officeLocation": None,
    "profession": None,
    "businessHomePage": None,
    "assistantName": None,
    "manager": None,
    "homePhones": [],
    "mobilePhone": None,
    "businessPhones": [],
    "spouseName": None,
    "personalNotes": "",
    "children": [],
    "emailAddresses": [],
    "homeAddress": {},
    "businessAddress": {},
    "otherAddress": {},
}
READ_ONLY = ("id", "createdDateTime", "lastModifiedDateTime", "changeKey", "parentFolderId")
STRING_COLLECTIONS = frozenset(
    {"imAddresses", "homePhones", "businessPhones", "children", "categories"}
)
ADDRESSES = frozenset({"homeAddress", "businessAddress", "otherAddress"})
ADDRESS_FIELDS = ("street", "city", "state", "countryOrRegion", "postalCode")
NAME_PARTS = ("givenName", "middleName", "surname")
CONTACT_DEFAULTS["categories"] = []
CONTACT_PROPERTIES = frozenset({*READ_ONLY, *CONTACT_DEFAULTS})
RENDER_ORDER = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    *(k for k in CONTACT_DEFAULTS if k != "categories"),
)
FOLDER_PROPERTIES = frozenset({"id", "displayName", "parentFolderId"})
CATEGORY_COLORS = frozenset({"none", *(f"preset{i}" for i in range(25))})
DEFAULT_CATEGORIES = (
    ("Red category", "preset0"),
    ("Orange category", "preset1"),
    ("Yellow category", "preset3"),
    ("Green category", "preset4"),
    ("Blue category", "preset7"),
    ("Purple category", "preset8"),
)


@functools.lru_cache(maxsize=16)
def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def derive(seed: int, *parts: object, size: int = 16) -> bytes:
    text = ":".join(str(p) for p in (seed, *parts))
    return hashlib.shake_256(text.encode()).digest(size)


def derive_uuid(seed: int, *parts: object) -> str:
    return str(uuid.UUID(bytes=derive(seed, *parts)))


def _outlook_id(mailbox_id: str, kind: bytes, folder_key: bytes, item_key: bytes) -> str:
    raw = ID_PREFIX + mailbox_id.encode() + kind + folder_key + b"\x07\x00" + item_key + b"\x00\x00"
    return base64.urlsafe_b64encode(raw).decode()


def check_id(value: str) -> None:
    """Raises Graph's 400 for a string that is not an Exchange REST id at all."""
    try:
        raw = base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise err.id_malformed() from exc
    if not raw.startswith(ID_PREFIX) or len(raw) < 60:
        raise err.id_malformed()


# ---- the directory --------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    user_principal_name: str
    display_name: str

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "mail": self.user_principal_name,
            "userPrincipalName": self.user_principal_name,
        }


SANDBOX_USERS = (
    ("rep@example.com", "Jim Halpert"),
    ("manager@example.com", "Michael Scott"),
    ("assistant@example.com", "Pam Beesly"),
)


@dataclass(frozen=True)
class Directory:
    """The tenant and the one app registration; credentials derive from the seed."""

    seed: int
    tenant_id: str
    client_id: str
    client_secret: str
    app_name: str
    users: tuple[User, ...]

    @classmethod
    def create(cls, seed: int) -> Directory:
        secret_raw = base64.urlsafe_b64encode(derive(seed, "client-secret", size=30)).decode()
        users = tuple(
            User(derive_uuid(seed, "user", upn), upn, name) for upn, name in SANDBOX_USERS
        )
        return cls(
            seed=seed,
            tenant_id=derive_uuid(seed, "tenant"),
            client_id=derive_uuid(seed, "client"),
            client_secret=f"{secret_raw[:3]}8Q~{secret_raw[3:37]}",
            app_name="contactsync sandbox",
            users=users,
        )

    def find_user(self, ref: str) -> User | None:
        lowered = ref.lower()
        for user in self.users:
            if user.id == lowered or user.user_principal_name == lowered:
                return user
        return None

    def is_tenant(self, ref: str) -> bool:
        return ref.lower() in (self.tenant_id, "example.com", "example.onmicrosoft.com")


# ---- a mailbox ------------------------------------------------------------------------------


@dataclass(slots=True)
class Contact:
    id: str
    folder_id: str
    props: dict[str, Any]  # Graph's shape, read-only properties included
    version: int = 1

    @property
    def etag(self) -> str:
        return f'W/"{self.props["changeKey"]}"'

    def value(self, name: str) -> Any:
        return self.props[name] if name in self.props else CONTACT_DEFAULTS[name]

    def render(self, select: list[str] | None = None) -> dict[str, Any]:
        """Graph's shape: every property, unset ones with their empty value (stored contacts
        keep only what is set, which halves the memory of a 100,000-contact mailbox)."""
        out: dict[str, Any] = {"@odata.etag": self.etag}
        props = self.props
        if select is None:
            for name in RENDER_ORDER:
                out[name] = props[name] if name in props else CONTACT_DEFAULTS[name]
            return out
        out["id"] = self.id
        for name in select:
            out[name] = props[name] if name in props else CONTACT_DEFAULTS[name]
        return out


@dataclass(slots=True)
class ContactFolder:
    id: str
    display_name: str
    parent_id: str
    well_known: str | None = None
    members: dict[str, None] = field(default_factory=dict)  # insertion-ordered set of ids
    log_seqs: list[int] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    version: int = 0

    def to_graph(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "parentFolderId": self.parent_id}

    def record(self, seq: int, contact_id: str) -> None:
        self.log_seqs.append(seq)
        self.log_ids.append(contact_id)
        self.version += 1

    def changed_since(self, seq: int) -> list[str]:
        """Ids changed after ``seq``, each once, in the order of their last change."""
        start = bisect_right(self.log_seqs, seq)
        latest = dict.fromkeys(reversed(self.log_ids[start:]))
        return list(reversed(latest))


@dataclass(frozen=True)
class Category:
    id: str
    display_name: str
    color: str

    def to_graph(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "color": self.color}


@dataclass(frozen=True)
class Change:
    """One change a subscription may be told about."""

    change_type: ChangeType
    contact_id: str
    folder_id: str
    etag: str | None


class Mailbox:
    ROOT_SUFFIX = "msgfolderroot"

    def __init__(self, seed: int, user: User, limits: Limits) -> None:
        self.seed = seed
        self.user = user
        self.limits = limits
        self.seq = 0
        self.counter = 0
        self.folders: dict[str, ContactFolder] = {}
        self.contacts: dict[str, Contact] = {}
        self.categories: dict[str, Category] = {}
        self.email_index: dict[str, set[str]] = {}
        self._queries: OrderedDict[tuple[Any, ...], tuple[int, list[str]]] = OrderedDict()
        self._folder_keys: dict[str, bytes] = {}
        self.root_id = self._folder_id(self.ROOT_SUFFIX)
        default = ContactFolder(self._folder_id("contacts"), "Contacts", self.root_id, "contacts")
        self.default_folder_id = default.id
        self.folders[default.id] = default
        for name, color in DEFAULT_CATEGORIES:
            category = Category(derive_uuid(seed, user.id, "category", name), name, color)
            self.categories[category.id] = category

    # ---- ids ---------------------------------------------------------------------------------

    def _folder_id(self, key: str) -> str:
        folder_key = derive(self.seed, self.user.id, "folder", key)
        item_key = derive(self.seed, self.user.id, key, size=22)
        return _outlook_id(self.user.id, b"\x00\x2e\x00\x00\x00\x00\x00", folder_key, item_key)

    def _new_contact_id(self, folder_id: str) -> str:
        self.counter += 1
        folder_key = self._folder_keys.get(folder_id)
        if folder_key is None:
            folder_key = self._folder_keys[folder_id] = derive(
                self.seed, self.user.id, "folder-key", folder_id
            )
        item_key = derive(self.seed, self.user.id, "contact", self.counter, size=22)
        return _outlook_id(self.user.id, b"\x00\x46\x00\x00\x00\x00\x00", folder_key, item_key)

    def _change_key(self, contact_id: str, version: int) -> str:
        return (
            "EQAAABYAAAA"
            + base64.b64encode(derive(self.seed, contact_id, version, size=18)).decode()
        )

    # ---- folders -----------------------------------------------------------------------------

    def folder(self, ref: str) -> ContactFolder:
        if ref.lower() == "contacts":
            return self.folders[self.default_folder_id]
        folder = self.folders.get(ref)
        if folder is None:
            check_id(ref)
            raise err.item_not_found()
        return folder

    def child_folders(self, parent_id: str) -> list[ContactFolder]:
        return [f for f in self.folders.values() if f.parent_id == parent_id]

    def create_folder(self, parent: ContactFolder, display_name: str) -> ContactFolder:
        self._check_folder_name(parent.id, display_name, None)
        self.counter += 1
        folder = ContactFolder(self._folder_id(f"folder-{self.counter}"), display_name, parent.id)
        self.folders[folder.id] = folder
        return folder

    def _check_folder_name(self, parent_id: str, name: str, exclude: str | None) -> None:
        if not name.strip():
            raise err.GraphError(
                400, "ErrorInvalidRequest", "The folder display name cannot be empty."
            )
        for sibling in self.child_folders(parent_id):
            if sibling.id != exclude and sibling.display_name.lower() == name.lower():
                raise err.folder_exists()

    def rename_folder(self, folder: ContactFolder, display_name: str) -> None:
        if folder.well_known is not None:
            raise err.access_denied()
        self._check_folder_name(folder.parent_id, display_name, folder.id)
        folder.display_name = display_name

    def delete_folder(self, folder: ContactFolder) -> list[Change]:
        if folder.well_known is not None:
            raise err.distinguished_folder()
        changes: list[Change] = []
        for child in self.child_folders(folder.id):
            changes.extend(self.delete_folder(child))
        for contact_id in list(folder.members):
            changes.append(self.delete_contact(contact_id, None))
        del self.folders[folder.id]
        return changes

    # ---- contacts ----------------------------------------------------------------------------

    def contact(self, contact_id: str, folder: ContactFolder | None = None) -> Contact:
        found = self.contacts.get(contact_id)
        if found is None or (folder is not None and found.folder_id != folder.id):
            check_id(contact_id)
            raise err.item_not_found()
        return found

    def _touch(self, contact: Contact, folder: ContactFolder, now: datetime) -> None:
        self.seq += 1
        contact.props["lastModifiedDateTime"] = instant(now)
        contact.props["changeKey"] = self._change_key(contact.id, contact.version)
        folder.record(self.seq, contact.id)

    def create_contact(
        self,
        folder: ContactFolder,
        body: Mapping[str, Any],
        now: datetime,
        *,
        trusted: bool = False,
    ) -> Contact:
        """``trusted``: generated seed data, already in shape (skips validation)."""
        values = dict(body) if trusted else validate_contact(body, self.limits, creating=True)
        contact_id = self._new_contact_id(folder.id)
        stamp = instant(now)
        props: dict[str, Any] = {
            "id": contact_id,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": "",
            "categories": [],
            "parentFolderId": folder.id,
            "emailAddresses": [],
        }
        props.update(values)
        if not values.get("displayName"):
            props["displayName"] = compose_display_name(props)
        contact = Contact(contact_id, folder.id, props)
        self.contacts[contact_id] = contact
        folder.members[contact_id] = None
        self._index(contact, add=True)
        self._touch(contact, folder, now)
        return contact

    def update_contact(
        self, contact: Contact, body: Mapping[str, Any], if_match: str | None, now: datetime
    ) -> Contact:
        check_etag(contact, if_match)
        values = validate_contact(body, self.limits, creating=False)
        self._index(contact, add=False)
        contact.props.update(values)
        if "displayName" not in values and any(part in values for part in NAME_PARTS):
            contact.props["displayName"] = compose_display_name(contact.props)
        self._index(contact, add=True)
        contact.version += 1
        self._touch(contact, self.folders[contact.folder_id], now)
        return contact

    def delete_contact(self, contact_id: str, if_match: str | None) -> Change:
        contact = self.contacts[contact_id]
        check_etag(contact, if_match)
        folder = self.folders[contact.folder_id]
        self._index(contact, add=False)
        del self.contacts[contact_id]
        del folder.members[contact_id]
        self.seq += 1
        folder.record(self.seq, contact_id)
        return Change("deleted", contact_id, folder.id, None)

    def move_contact(self, contact: Contact, destination: ContactFolder, now: datetime) -> Contact:
        """What Outlook does when a user drags a contact to another folder: the item is copied
        to the destination with a new id and removed from the source."""
        if destination.id == contact.folder_id:
            return contact
        self.delete_contact(contact.id, None)
        new_id = self._new_contact_id(destination.id)
        props = dict(contact.props, id=new_id, parentFolderId=destination.id)
        moved = Contact(new_id, destination.id, props, contact.version + 1)
        self.contacts[new_id] = moved
        destination.members[new_id] = None
        self._index(moved, add=True)
        self._touch(moved, destination, now)
        return moved

    def _index(self, contact: Contact, *, add: bool) -> None:
        for entry in contact.props["emailAddresses"]:
            address = (entry.get("address") or "").lower()
            if not address:
                continue
            ids = self.email_index.setdefault(address, set())
            if add:
                ids.add(contact.id)
            else:
                ids.discard(contact.id)
                if not ids:
                    del self.email_index[address]

    def query(
        self, folder: ContactFolder, where: Filter | None, order: tuple[str, bool] | None
    ) -> list[str]:
        """The ids a list request pages through; evaluated once per folder version, so the next
        pages of the same query cost O(page size)."""
        key = (folder.id, where.text if where else None, order)
        cached = self._queries.get(key)
        if cached is not None and cached[0] == folder.version:
            self._queries.move_to_end(key)
            return cached[1]
        if where is None:
            ids = list(folder.members)
        else:
            candidates: Iterable[str] = (
                [c for c in self.email_index.get(where.email, ()) if c in folder.members]
                if where.email is not None
                else folder.members
            )
            ids = [c for c in candidates if where.predicate(self.contacts[c].props)]
            if where.email is not None:
                ids.sort(key=lambda c: self.contacts[c].props["createdDateTime"])
        if order is not None:
            prop, descending = order
            ids.sort(
                key=lambda c: (self.contacts[c].props.get(prop) or "").lower(), reverse=descending
            )
        self._queries[key] = (folder.version, ids)
        if len(self._queries) > 32:
            self._queries.popitem(last=False)
        return ids

    # ---- categories --------------------------------------------------------------------------

    def create_category(self, display_name: str, color: str) -> Category:
        if any(c.display_name.lower() == display_name.lower() for c in self.categories.values()):
            raise err.category_exists(display_name)
        self.counter += 1
        category = Category(
            derive_uuid(self.seed, self.user.id, "category", self.counter), display_name, color
        )
        self.categories[category.id] = category
        return category

    def category(self, category_id: str) -> Category:
        found = self.categories.get(category_id)
        if found is None:
            raise err.item_not_found()
        return found

    # ---- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user.id,
            "seq": self.seq,
            "counter": self.counter,
            "folders": [
                {
                    **f.to_graph(),
                    "wellKnownName": f.well_known,
                    "members": list(f.members),
                    "log": [list(x) for x in zip(f.log_seqs, f.log_ids, strict=True)],
                }
                for f in self.folders.values()
            ],
            "contacts": [{"version": c.version, **c.props} for c in self.contacts.values()],
            "categories": [c.to_graph() for c in self.categories.values()],
        }

    def load_json(self, raw: Mapping[str, Any]) -> None:
        self.seq = int(raw["seq"])
        self.counter = int(raw["counter"])
        self.folders = {}
        for f in raw["folders"]:
            folder = ContactFolder(
                f["id"], f["displayName"], f["parentFolderId"], f["wellKnownName"]
            )
            folder.members = dict.fromkeys(f["members"])
            folder.log_seqs = [int(seq) for seq, _ in f["log"]]
            folder.log_ids = [cid for _, cid in f["log"]]
            self.folders[folder.id] = folder
            if folder.well_known == "contacts":
                self.default_folder_id = folder.id
        self.contacts = {}
        self.email_index = {}
        self._queries.clear()
        for c in raw["contacts"]:
            props = {k: v for k, v in c.items() if k != "version"}
            contact = Contact(props["id"], props["parentFolderId"], props, int(c["version"]))
            self.contacts[contact.id] = contact
            self._index(contact, add=True)
        self.categories = {
            c["id"]: Category(c["id"], c["displayName"], c["color"]) for c in raw["categories"]
        }


def check_etag(contact: Contact, if_match: str | None) -> None:
    if if_match is None or if_match.strip() == "*":
        return
    wanted = if_match.strip()
    if wanted.startswith("W/"):
        wanted = wanted[2:]
    if wanted.strip('"') != contact.props["changeKey"]:
        raise err.etag_conflict()


def compose_display_name(props: Mapping[str, Any]) -> str:
    names = " ".join(p for p in (props.get(n) for n in NAME_PARTS) if p)
    if names:
        return names
    if props.get("companyName"):
        return str(props["companyName"])
    for entry in props.get("emailAddresses") or ():
        if entry.get("address"):
            return str(entry["address"])
    return ""


def validate_contact(body: Mapping[str, Any], limits: Limits, *, creating: bool) -> dict[str, Any]:
    """Checks a POST or PATCH body as Graph does and returns the values to store."""
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@odata."):
            continue
        if name not in CONTACT_PROPERTIES:
            raise err.unknown_property(name, "contact")
        if name in READ_ONLY:
            if creating and name == "parentFolderId":
                continue  # POST ignores it: the URL names the folder
            raise err.read_only_property()
        values[name] = _validate_value(name, value)
    caps = (
        ("emailAddresses", "EmailAddresses", limits.max_email_addresses),
        ("businessPhones", "BusinessPhones", limits.max_business_phones),
        ("homePhones", "HomePhones", limits.max_home_phones),
    )
    for prop, label, cap in caps:
        if prop in values and len(values[prop]) > cap:
            raise err.too_many_values(label, len(values[prop]), cap)
    return values


def _validate_value(name: str, value: Any) -> Any:
    if name in STRING_COLLECTIONS:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err.wrong_type(name, "Collection(Edm.String)")
        return list(value)
    if name == "emailAddresses":
        return _validate_emails(value)
    if name in ADDRESSES:
        return _validate_address(name, value)
    if name == "birthday":
        return _validate_instant(name, value)
    if value is not None and not isinstance(value, str):
        raise err.wrong_type(name, "Edm.String")
    return value


def _validate_emails(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise err.wrong_type("emailAddresses", "Collection(microsoft.graph.emailAddress)")
    out = []
    for entry in value:
        unknown = set(entry) - {"name", "address", "@odata.type"}
        if unknown:
            raise err.unknown_property(sorted(unknown)[0], "emailAddress")
        if not all(isinstance(entry.get(k), str | None) for k in ("name", "address")):
            raise err.wrong_type("emailAddresses", "microsoft.graph.emailAddress")
        out.append({k: entry[k] for k in ("name", "address") if k in entry})
    return out


def _validate_address(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err.wrong_type(name, "microsoft.graph.physicalAddress")
    unknown = set(value) - {*ADDRESS_FIELDS, "@odata.type"}
    if unknown:
        raise err.unknown_property(sorted(unknown)[0], "physicalAddress")
    if not all(isinstance(value.get(k), str | None) for k in ADDRESS_FIELDS):
        raise err.wrong_type(name, "microsoft.graph.physicalAddress")
    return {k: value[k] for k in ADDRESS_FIELDS if k in value}


def _validate_instant(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise err.wrong_type(name, "Edm.DateTimeOffset")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise err.wrong_type(name, "Edm.DateTimeOffset") from exc
    return instant(parsed)
