"""State and rules of the Google People sandbox: OAuth clients and users, one address book per
user (contacts, tombstones, contact groups, a change sequence), server-side cursors behind page
tokens, and self-describing sync tokens.

Efficiency: a contact's place in ``AddressBook.contacts`` (an insertion-ordered dict) is its
place in modification order; every write moves it to the end. A sync since sequence ``S`` walks
the dict backwards until it meets a contact modified at or before ``S``: O(changes). A full listing
snapshots the ids once and pages through the snapshot: O(page) after the first page.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.tokens import TokenStore
from contactsync_sandbox.google import exceptions as err
from contactsync_sandbox.google.quotas import QuotaLimiter
from contactsync_sandbox.google.scopes import WORKSPACE_SCOPES

CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts"
READONLY_SCOPE = "https://www.googleapis.com/auth/contacts.readonly"
# The Gmail and Calendar scopes serve activity capture (gmail.py, calendar.py).
GRANTED_SCOPES = (CONTACTS_SCOPE, READONLY_SCOPE, *WORKSPACE_SCOPES)
# System contact groups and their formatted names; members can be added only to the first two.
SYSTEM_GROUPS = {
    "myContacts": "My Contacts",
    "starred": "Starred",
    "friends": "Friends",
    "family": "Family",
    "coworkers": "Coworkers",
    "chatBuddies": "Chat contacts",
    "all": "All Contacts",
    "blocked": "Blocked",
}
ADDABLE_SYSTEM_GROUPS = frozenset({"myContacts", "starred"})
SORT_ORDERS = (
    "LAST_MODIFIED_ASCENDING",
    "LAST_MODIFIED_DESCENDING",
    "FIRST_NAME_ASCENDING",
    "LAST_NAME_ASCENDING",
)
DEFAULT_USERS = (
    ("rep@example.com", "Riley", "Reyes"),
    ("manager@example.com", "Morgan", "Mäkinen"),
    ("sdr@example.com", "Sasha", "Okafor"),
)


def _digest(*parts: object, size: int = 32) -> bytes:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=size).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAccount:
    index: int
    email: str
    given_name: str
    family_name: str
    profile_id: str
    refresh_token: str


@dataclass(frozen=True)
class OAuthClient:
    project_number: str
    client_id: str
    client_secret: str


def make_credentials(seed: int) -> tuple[OAuthClient, tuple[UserAccount, ...]]:
    """Stable client id, secret and refresh tokens for a sandbox seed."""
    project = str(
        100_000_000_000 + int.from_bytes(_digest("project", seed, size=8)) % 900_000_000_000
    )
    client = OAuthClient(
        project_number=project,
        client_id=f"{project}-{_digest('client', seed, size=16).hex()}.apps.googleusercontent.com",
        client_secret="GOCSPX-" + _b64(_digest("secret", seed, size=21)),
    )
    users = tuple(
        UserAccount(
            index=i,
            email=email,
            given_name=given,
            family_name=family,
            profile_id=str(10**20 + int.from_bytes(_digest("profile", seed, email, size=8))),
            refresh_token="1//0" + _b64(_digest("refresh", seed, email, size=64)),
        )
        for i, (email, given, family) in enumerate(DEFAULT_USERS)
    )
    return client, users


# ---- settings ----------------------------------------------------------------------------------


@dataclass
class Settings:
    """Behaviour that is a policy of the real service rather than data (all configurable)."""

    max_contacts_per_user: int | None = 25_000
    sync_visibility_delay_seconds: float = 5.0
    sync_token_ttl_seconds: int = 7 * 86_400
    sync_token_expiry_anchor: Literal["full_sync", "issued"] = "full_sync"
    expired_sync_token_status: str = "FAILED_PRECONDITION"
    page_token_ttl_seconds: int = 3_600
    access_token_ttl_seconds: int = 3_600
    max_open_cursors_per_user: int = 32

    def update(self, raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            if key == "max_contacts_per_user":
                if value is not None and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 0
                ):
                    raise ValueError("max_contacts_per_user must be a non-negative integer or null")
            elif key == "sync_token_expiry_anchor":
                if value not in ("full_sync", "issued"):
                    raise ValueError('sync_token_expiry_anchor must be "full_sync" or "issued"')
            elif key == "expired_sync_token_status":
                if value not in ("FAILED_PRECONDITION", "INVALID_ARGUMENT"):
                    raise ValueError(
                        "expired_sync_token_status must be FAILED_PRECONDITION or INVALID_ARGUMENT"
                    )
            elif key in (
                "sync_visibility_delay_seconds",
                "sync_token_ttl_seconds",
                "page_token_ttl_seconds",
                "access_token_ttl_seconds",
                "max_open_cursors_per_user",
            ):
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative number")
                if key != "sync_visibility_delay_seconds":
                    value = int(value)
            else:
                raise ValueError(f"unknown setting {key!r}")
            setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---- contacts and groups -------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Contact:
    number: int
    fields: dict[str, list[dict[str, Any]]]
    groups: list[str]
    updated: datetime
    seq: int = 0
    version: int = 0
    deleted: bool = False
    etag: str = ""
    source_etag: str = ""
    cache: dict[str, bytes] = field(default_factory=dict)

    @property
    def resource_name(self) -> str:
        return f"people/c{self.number}"

    @property
    def source_id(self) -> str:
        return format(self.number, "x")

    def sort_key(self, order: str) -> tuple[int, str, str, int]:
        names = self.fields.get("names")
        name = names[0] if names else {}
        given = str(name.get("givenName", "")).casefold()
        family = str(name.get("familyName", "")).casefold()
        first, second = (family, given) if order == "LAST_NAME_ASCENDING" else (given, family)
        return (0 if first or second else 1, first, second, self.number)


@dataclass(eq=False)
class ContactGroup:
    id: str
    name: str
    system: bool
    updated: datetime
    members: dict[int, None] = field(default_factory=dict)  # an ordered set of contact numbers
    client_data: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    seq: int = 0
    deleted: bool = False

    @property
    def resource_name(self) -> str:
        return f"contactGroups/{self.id}"


@dataclass
class Cursor:
    """The server side of a page token: the query's result, evaluated once."""

    id: str
    params_key: str
    numbers: list[int]
    created: float
    incremental: bool
    sync_key: str  # the parameters a sync token from this listing must be used with
    sync_seq: int
    anchor: float
    total: int


@dataclass(frozen=True)
class SyncToken:
    epoch: int  # the sandbox's reset generation: a token from before a reset is expired
    user_index: int
    params_key: str
    seq: int
    anchor: float  # when its expiry is counted from (the full sync, or the issue)


class TokenCodec:
    """Opaque tokens that carry their own meaning, sealed with the sandbox's secret so that a
    client cannot forge or edit one."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def seal(self, kind: str, *parts: object) -> str:
        body = "|".join([kind, *map(str, parts)]).encode()
        mac = hmac.new(self._secret, body, "sha256").digest()[:12]
        return _b64(body + b"|" + mac)

    def open(self, kind: str, token: str, count: int) -> list[str] | None:
        try:
            raw = _unb64(token)
        except (ValueError, TypeError):
            return None
        body, sep, mac = raw[:-13], raw[-13:-12], raw[-12:]  # the MAC is binary: fixed width
        expected = hmac.new(self._secret, body, "sha256").digest()[:12]
        if sep != b"|" or not hmac.compare_digest(mac, expected):
            return None
        parts = body.decode(errors="replace").split("|")
        return parts[1:] if parts[0] == kind and len(parts) == count + 1 else None

    def sync_token(self, token: SyncToken) -> str:
        return self.seal(
            "s", token.epoch, token.user_index, token.params_key, token.seq, repr(token.anchor)
        )

    def read_sync_token(self, text: str) -> SyncToken | None:
        parts = self.open("s", text, 5)
        if parts is None:
            return None
        return SyncToken(int(parts[0]), int(parts[1]), parts[2], int(parts[3]), float(parts[4]))

    def page_token(self, cursor_id: str, offset: int) -> str:
        return self.seal("p", cursor_id, offset)

    def read_page_token(self, text: str) -> tuple[str, int] | None:
        parts = self.open("p", text, 2)
        return None if parts is None else (parts[0], int(parts[1]))


def params_key(params: dict[str, Any]) -> str:
    return _digest(json.dumps(params, sort_keys=True), size=9).hex()


class AddressBook:
    """One user's contacts and contact groups."""

    def __init__(
        self,
        user: UserAccount,
        clock: VirtualClock,
        settings: Settings,
        secret: bytes,
        epoch: int,
        on_write: Callable[[Contact], None] | None = None,
    ) -> None:
        self.user = user
        self.epoch = epoch
        self.on_write = on_write  # told of every written contact (the renderer primes its JSON)
        self.clock = clock
        self.settings = settings
        self._secret = secret
        self.contacts: dict[int, Contact] = {}  # modification order, tombstones included
        self.live = 0
        self.seq = 0
        self.group_seq = 0
        self.generated = 0  # people already drawn from the shared generator (admin seed)
        self._minted = 0
        self._run_ts: list[float] = []  # (timestamp, first sequence at that time) runs
        self._run_seq: list[int] = []
        self._tombstones: deque[tuple[float, int, int]] = deque()
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._cursor_count = 0
        self.groups: dict[str, ContactGroup] = {}
        now = clock.now()
        for group_id, _ in SYSTEM_GROUPS.items():
            self.groups[group_id] = ContactGroup(group_id, group_id, True, now)
            self._touch_group(self.groups[group_id])

    # ---- identity --------------------------------------------------------------------------

    def _new_number(self) -> int:
        while True:
            self._minted += 1
            raw = int.from_bytes(
                _digest(
                    "contact", self._secret.hex(), self.epoch, self.user.email, self._minted, size=8
                )
            )
            number = 10**18 + raw % (8 * 10**18)
            if number not in self.contacts:
                return number

    def _etags(self, contact: Contact) -> None:
        raw = _digest("etag", self._secret.hex(), contact.number, contact.version, size=24)
        contact.etag = "%Eg" + base64.b64encode(raw[:18]).decode()
        contact.source_etag = "#" + base64.b64encode(raw[18:]).decode()

    def _touch(self, contact: Contact) -> None:
        """Records a change: new sequence, time, version and etag; moves it to the end."""
        self.seq += 1
        now = self.clock.now()
        ts = now.timestamp()
        if not self._run_ts or self._run_ts[-1] != ts:
            self._run_ts.append(ts)
            self._run_seq.append(self.seq)
        contact.seq = self.seq
        contact.updated = now
        contact.version += 1
        contact.cache.clear()
        self._etags(contact)
        self.contacts.pop(contact.number, None)
        self.contacts[contact.number] = contact
        if self.on_write is not None:
            self.on_write(contact)

    def _touch_group(self, group: ContactGroup) -> None:
        self.group_seq += 1
        group.seq = self.group_seq
        group.version += 1
        group.updated = self.clock.now()

    def group_etag(self, group: ContactGroup) -> str:
        return (
            "#"
            + base64.b64encode(
                _digest("group", self._secret.hex(), group.id, group.version, size=9)
            ).decode()
        )

    # ---- reads -------------------------------------------------------------------------------

    def get(self, number: int) -> Contact | None:
        contact = self.contacts.get(number)
        return None if contact is None or contact.deleted else contact

    def find(self, resource_name: str) -> Contact | None:
        if not resource_name.startswith("people/c"):
            return None
        digits = resource_name[len("people/c") :]
        if not digits.isdigit() or len(digits) > 20:
            return None
        return self.get(int(digits))

    def snapshot(self, sort_order: str) -> list[int]:
        live = [n for n, c in self.contacts.items() if not c.deleted]
        if sort_order == "LAST_MODIFIED_DESCENDING":
            live.reverse()
        elif sort_order in ("FIRST_NAME_ASCENDING", "LAST_NAME_ASCENDING"):
            live.sort(key=lambda n: self.contacts[n].sort_key(sort_order))
        return live

    def horizon(self, cutoff: float) -> int:
        """The highest sequence whose change happened at or before ``cutoff``."""
        i = bisect.bisect_right(self._run_ts, cutoff) - 1
        if i < 0:
            return 0
        return self._run_seq[i + 1] - 1 if i + 1 < len(self._run_seq) else self.seq

    def changes_since(self, seq: int) -> tuple[list[int], int]:
        """Contacts (and tombstones) changed after ``seq`` and already visible to sync requests
        (older than the propagation delay), in modification order, and the new sync position."""
        self.purge_tombstones()
        visible = self.horizon(self.clock.timestamp() - self.settings.sync_visibility_delay_seconds)
        changed: list[int] = []
        for number in reversed(self.contacts):
            contact = self.contacts[number]
            if contact.seq <= seq:
                break
            if contact.seq <= visible:
                changed.append(number)
        changed.reverse()
        return changed, max(seq, visible)

    def purge_tombstones(self) -> None:
        """Tombstones older than a sync token's life can never be asked for again."""
        oldest = self.clock.timestamp() - self.settings.sync_token_ttl_seconds
        while self._tombstones and self._tombstones[0][0] < oldest:
            _, number, seq = self._tombstones.popleft()
            contact = self.contacts.get(number)
            if contact is not None and contact.deleted and contact.seq == seq:
                del self.contacts[number]

    # ---- writes -------------------------------------------------------------------------------

    def ensure_capacity(self, count: int) -> None:
        cap = self.settings.max_contacts_per_user
        if cap is not None and self.live + count > cap:
            raise err.failed_precondition(
                f"Contact limit exceeded: a user can have at most {cap} contacts "
                f"(this user has {self.live}).",
                "CONTACT_LIMIT_EXCEEDED",
            )

    def check_groups(self, groups: list[str], where: str) -> None:
        for group_id in groups:
            group = self.groups.get(group_id)
            if group is None or group.deleted:
                raise err.invalid_argument(
                    f"Contact group not found: contactGroups/{group_id}", where
                )
            if group.system and group_id not in ADDABLE_SYSTEM_GROUPS:
                raise err.invalid_argument(
                    f"Cannot add contacts to system contact group contactGroups/{group_id}: only "
                    "user contact groups, contactGroups/myContacts and contactGroups/starred "
                    "accept new members.",
                    where,
                )

    def create(self, fields: dict[str, list[dict[str, Any]]], groups: list[str]) -> Contact:
        """A new contact, in myContacts and the given groups (checked by ``check_groups``)."""
        self.ensure_capacity(1)
        contact = Contact(self._new_number(), fields, [], self.clock.now())
        for group_id in ["myContacts", *groups]:
            if group_id not in contact.groups:
                contact.groups.append(group_id)
                self.groups[group_id].members[contact.number] = None
        self.live += 1
        self._touch(contact)
        return contact

    def update(
        self,
        contact: Contact,
        fields: dict[str, list[dict[str, Any]]],
        mask: tuple[str, ...],
        groups: list[str] | None,
    ) -> None:
        """Replaces the masked fields wholesale (absent ones are cleared)."""
        for name in mask:
            if name == "memberships":
                continue
            if name in fields:
                contact.fields[name] = fields[name]
            else:
                contact.fields.pop(name, None)
        if groups is not None:
            self._set_groups(contact, groups)
        self._touch(contact)

    def _set_groups(self, contact: Contact, groups: list[str]) -> None:
        for group_id in contact.groups:
            if group_id not in groups:
                self.groups[group_id].members.pop(contact.number, None)
                self._touch_group(self.groups[group_id])
        for group_id in groups:
            if contact.number not in self.groups[group_id].members:
                self.groups[group_id].members[contact.number] = None
                self._touch_group(self.groups[group_id])
        contact.groups = list(groups)

    def delete(self, contact: Contact) -> None:
        for group_id in contact.groups:
            self.groups[group_id].members.pop(contact.number, None)
        contact.deleted = True
        contact.fields = {}
        contact.groups = []
        self.live -= 1
        self._touch(contact)
        self._tombstones.append((self.clock.timestamp(), contact.number, contact.seq))

    def modify_members(
        self, group: ContactGroup, add: list[str], remove: list[str]
    ) -> tuple[list[str], list[str]]:
        """Adds then removes; returns (not found, cannot remove last group) resource names."""
        not_found: list[str] = []
        last_group: list[str] = []
        changed: dict[int, Contact] = {}
        for name in add:
            contact = self.find(name)
            if contact is None:
                not_found.append(name)
            elif group.id not in contact.groups:
                contact.groups.append(group.id)
                group.members[contact.number] = None
                changed[contact.number] = contact
        for name in remove:
            contact = self.find(name)
            if contact is None:
                if name not in not_found:
                    not_found.append(name)
            elif group.id in contact.groups:
                if len(contact.groups) == 1:
                    last_group.append(name)
                    continue
                contact.groups.remove(group.id)
                group.members.pop(contact.number, None)
                changed[contact.number] = contact
        for contact in changed.values():
            self._touch(contact)  # a membership change is a contact change
        if changed:
            self._touch_group(group)
        return not_found, last_group

    def create_group(self, name: str, client_data: list[dict[str, Any]]) -> ContactGroup:
        self._check_group_name(name, None)
        group_id = _digest(
            "group", self._secret.hex(), self.user.email, self.group_seq, name, size=8
        ).hex()
        group = ContactGroup(group_id, name, False, self.clock.now(), client_data=client_data)
        self.groups[group_id] = group
        self._touch_group(group)
        return group

    def _check_group_name(self, name: str, group: ContactGroup | None) -> None:
        for other in self.groups.values():
            if other is not group and not other.deleted and not other.system and other.name == name:
                raise err.already_exists("Contact group name already exists.")

    def rename_group(
        self, group: ContactGroup, name: str | None, client_data: list[dict[str, Any]] | None
    ) -> None:
        if name is not None:
            self._check_group_name(name, group)
            group.name = name
        if client_data is not None:
            group.client_data = client_data
        self._touch_group(group)

    def delete_group(self, group: ContactGroup, delete_contacts: bool) -> None:
        members = [self.contacts[n] for n in group.members]
        for contact in members:
            if delete_contacts:
                self.delete(contact)
            else:
                contact.groups.remove(group.id)
                self._touch(contact)
        group.members.clear()
        group.deleted = True
        self._touch_group(group)

    def member_count(self, group: ContactGroup) -> int:
        return self.live if group.id == "all" else len(group.members)

    # ---- cursors ---------------------------------------------------------------------------------

    def open_cursor(
        self,
        key: str,
        numbers: list[int],
        *,
        incremental: bool,
        sync_key: str,
        sync_seq: int,
        anchor: float,
    ) -> Cursor:
        self._cursor_count += 1
        cursor_id = _digest(
            "cursor", self._secret.hex(), self.epoch, self.user.email, self._cursor_count, size=9
        ).hex()
        now = self.clock.timestamp()
        return Cursor(
            cursor_id, key, numbers, now, incremental, sync_key, sync_seq, anchor, len(numbers)
        )

    def keep_cursor(self, cursor: Cursor) -> None:
        """Remembers a cursor that has more pages (oldest forgotten beyond the cap)."""
        self.cursors[cursor.id] = cursor
        self.cursors.move_to_end(cursor.id)
        while len(self.cursors) > self.settings.max_open_cursors_per_user:
            self.cursors.popitem(last=False)

    def cursor(self, cursor_id: str) -> Cursor | None:
        cursor = self.cursors.get(cursor_id)
        if cursor is None:
            return None
        if self.clock.timestamp() - cursor.created > self.settings.page_token_ttl_seconds:
            del self.cursors[cursor_id]
            return None
        self.cursors.move_to_end(cursor_id)
        return cursor

    # ---- persistence -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "group_seq": self.group_seq,
            "live": self.live,
            "generated": self.generated,
            "minted": self._minted,
            "cursor_count": self._cursor_count,
            "runs": [list(pair) for pair in zip(self._run_ts, self._run_seq, strict=True)],
            "tombstone_queue": [list(t) for t in self._tombstones],
            "contacts": [
                {
                    "number": c.number,
                    "resourceName": c.resource_name,
                    "fields": c.fields,
                    "groups": c.groups,
                    "updated": c.updated.isoformat(),
                    "seq": c.seq,
                    "version": c.version,
                    "deleted": c.deleted,
                }
                for c in self.contacts.values()
            ],
            "groups": [
                {
                    "id": g.id,
                    "name": g.name,
                    "system": g.system,
                    "updated": g.updated.isoformat(),
                    "members": list(g.members),
                    "client_data": g.client_data,
                    "version": g.version,
                    "seq": g.seq,
                    "deleted": g.deleted,
                }
                for g in self.groups.values()
            ],
            "cursors": [c.__dict__ for c in self.cursors.values()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.seq = int(data["seq"])
        self.group_seq = int(data["group_seq"])
        self.live = int(data["live"])
        self.generated = int(data.get("generated", 0))
        self._minted = int(data.get("minted", 0))
        self._cursor_count = int(data.get("cursor_count", 0))
        self._run_ts = [float(ts) for ts, _ in data["runs"]]
        self._run_seq = [int(seq) for _, seq in data["runs"]]
        self._tombstones = deque((float(a), int(b), int(c)) for a, b, c in data["tombstone_queue"])
        self.contacts = {}
        for raw in data["contacts"]:
            contact = Contact(
                number=int(raw["number"]),
                fields=raw["fields"],
                groups=list(raw["groups"]),
                updated=datetime.fromisoformat(raw["updated"]),
                seq=int(raw["seq"]),
                version=int(raw["version"]),
                deleted=bool(raw["deleted"]),
            )
            self._etags(contact)
            self.contacts[contact.number] = contact
        self.groups = {}
        for raw in data["groups"]:
            group = ContactGroup(
                id=raw["id"],
                name=raw["name"],
                system=bool(raw["system"]),
                updated=datetime.fromisoformat(raw["updated"]),
                members=dict.fromkeys(int(n) for n in raw["members"]),
                client_data=raw.get("client_data", []),
                version=int(raw["version"]),
                seq=int(raw["seq"]),
                deleted=bool(raw["deleted"]),
            )
            self.groups[group.id] = group
        self.cursors = OrderedDict((c["id"], Cursor(**c)) for c in data.get("cursors", []))


# ---- the whole sandbox -------------------------------------------------------------------------


class GoogleBackend:
    """Everything the Google sandbox knows: the OAuth client, the users and their address books,
    issued access tokens, quotas and settings."""

    def __init__(
        self, clock: VirtualClock, seed: int, on_write: Callable[[Contact], None] | None = None
    ) -> None:
        self.clock = clock
        self.on_write = on_write
        self.seed = seed
        self.secret = _digest("google-sandbox", seed)
        self.client, self.users = make_credentials(seed)
        self.by_email = {u.email: u for u in self.users}
        self.by_refresh_token = {u.refresh_token: u for u in self.users}
        self.settings = Settings()
        self.quota = QuotaLimiter(clock)
        self.tokens = TokenStore(
            clock, ttl_seconds=self.settings.access_token_ttl_seconds, prefix="ya29.a0"
        )
        self.codec = TokenCodec(self.secret)
        self.revoked: set[str] = set()
        self.books: dict[str, AddressBook] = {}
        self.epoch = 0
        self.reset()

    def reset(self) -> None:
        self.epoch += 1
        self.settings = Settings()
        self.quota.reset()
        self.tokens.clear()
        self.tokens.ttl_seconds = self.settings.access_token_ttl_seconds
        self.revoked.clear()
        self.books = {
            u.email: AddressBook(
                u, self.clock, self.settings, self.secret, self.epoch, self.on_write
            )
            for u in self.users
        }

    @property
    def default_user(self) -> UserAccount:
        return self.users[0]

    def book(self, email: str) -> AddressBook:
        return self.books[email]

    # ---- OAuth 2.0 -------------------------------------------------------------------------------

    def grant(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """The refresh_token grant of https://oauth2.googleapis.com/token, with Google's errors."""
        grant_type = form.get("grant_type", "")
        if grant_type != "refresh_token":
            raise err.oauth_error(
                400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}"
            )
        client_id, client_secret = basic or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        if not client_id:
            raise err.oauth_error(
                400, "invalid_request", "Could not determine client ID from request."
            )
        if client_id != self.client.client_id:
            raise err.oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if not hmac.compare_digest(client_secret or "", self.client.client_secret):
            raise err.oauth_error(401, "invalid_client", "Unauthorized")
        refresh_token = form.get("refresh_token", "")
        if not refresh_token:
            raise err.oauth_error(
                400, "invalid_request", "Missing required parameter: refresh_token"
            )
        user = self.by_refresh_token.get(refresh_token)
        if user is None:
            raise err.oauth_error(400, "invalid_grant", "Bad Request")
        if refresh_token in self.revoked:
            raise err.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        requested = form.get("scope", "").split()
        if any(scope not in GRANTED_SCOPES for scope in requested):
            raise err.oauth_error(400, "invalid_scope", "Bad Request")
        scope = " ".join(requested or [CONTACTS_SCOPE])
        ttl = self.settings.access_token_ttl_seconds
        issued = self.tokens.issue(user.email, scope=scope, ttl_seconds=ttl)
        return {
            "access_token": issued.token,
            "expires_in": max(ttl - 1, 0),
            "scope": scope,
            "token_type": "Bearer",
        }

    def revoke(self, token: str) -> bool:
        """https://oauth2.googleapis.com/revoke: a refresh token, or an access token (which also
        revokes the grant behind it)."""
        user = self.by_refresh_token.get(token)
        if user is None:
            state, issued = self.tokens.check(token)
            if issued is None or state != "valid":
                return False
            user = self.by_email[issued.subject]
        self.revoked.add(user.refresh_token)
        self.tokens.revoke_subject(user.email)
        return True

    # ---- persistence -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.clock.now().isoformat(),
            "epoch": self.epoch,
            "settings": self.settings.to_json(),
            "quotas": self.quota.to_json(),
            "revoked_users": sorted(u.email for u in self.users if u.refresh_token in self.revoked),
            "users": {email: book.to_json() for email, book in self.books.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        if "now" in data:  # never let restored data lie in this clock's future
            behind = (datetime.fromisoformat(data["now"]) - self.clock.now()).total_seconds()
            if behind > 0:
                self.clock.advance(behind)
        self.reset()
        self.epoch = int(data.get("epoch", self.epoch))
        for book in self.books.values():
            book.epoch = self.epoch
        self.settings.update(data.get("settings", {}))
        self.tokens.ttl_seconds = self.settings.access_token_ttl_seconds
        self.quota.load(data.get("quotas", {}))
        self.revoked = {self.by_email[e].refresh_token for e in data.get("revoked_users", [])}
        for email, raw in data.get("users", {}).items():
            if email in self.books:
                self.books[email].load(raw)
