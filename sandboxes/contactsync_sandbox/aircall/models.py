"""Aircall's contacts and calls: the state and its rules.

Every read stays proportional to the page asked for, whatever the number of contacts: contacts
are indexed by ``(created_at, id)`` and ``(updated_at, id)`` in sorted lists (a page is a slice
found by bisection), and by E.164 phone number and lower-cased email for search. Pages are
computed live at every request, as Aircall's offset pagination is: a contact updated while a
client pages through ``order_by=updated_at`` moves, and the client sees it twice or not at all.
Writes pay one ``list.insert``/``del`` (a memmove) per index.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import phonenumbers

from contactsync_sandbox.aircall.exceptions import BadRequest, NotFound, Unprocessable

OrderBy = Literal["created_at", "updated_at"]
Order = Literal["asc", "desc"]

MAX_DETAILS = 20  # emails, and phone numbers, per contact
MAX_NAME_LENGTH = 255
QUERY_CAP = 10_000  # no list or search query reaches past its 10,000th record
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME_FIELDS = ("first_name", "last_name", "company_name")
_TEXT_FIELDS = (*_NAME_FIELDS, "information")


def utc_iso(timestamp: int) -> str:
    """``2020-03-24T19:51:24Z``: how contact webhook payloads spell their timestamps."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def e164(value: str) -> str | None:
    """The number in E.164, or None when it is not a valid number in international form."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class Detail:
    """One phone number or email of a contact (``phone_details`` / ``email_details``).
    ``key`` is what search compares: the E.164 form of a phone, the lower-cased email."""

    id: int
    label: str | None
    value: str
    key: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "value": self.value}

    def to_state(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "value": self.value, "key": self.key}


@dataclass
class Contact:
    id: int
    first_name: str | None
    last_name: str | None
    company_name: str | None
    information: str | None
    created_at: int
    updated_at: int
    emails: list[Detail] = field(default_factory=list)
    phone_numbers: list[Detail] = field(default_factory=list)
    is_shared: bool = True

    def to_json(self, api_base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "direct_link": f"{api_base}/contacts/{self.id}",
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company_name": self.company_name,
            "information": self.information,
            "is_shared": self.is_shared,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "emails": [d.to_json() for d in self.emails],
            "phone_numbers": [d.to_json() for d in self.phone_numbers],
        }

    def to_event_json(self, api_base: str, *, deleted: bool = False) -> dict[str, Any]:
        """The contact as webhook events carry it: timestamps as UTC strings, and after a
        delete, emails and phone numbers emptied."""
        data = self.to_json(api_base)
        data["created_at"] = utc_iso(self.created_at)
        data["updated_at"] = utc_iso(self.updated_at)
        if deleted:
            data["emails"] = []
            data["phone_numbers"] = []
        return data

    def to_state(self) -> dict[str, Any]:
        state = self.to_json("")
        del state["direct_link"]
        state["emails"] = [d.to_state() for d in self.emails]
        state["phone_numbers"] = [d.to_state() for d in self.phone_numbers]
        return state

    @classmethod
    def from_state(cls, raw: dict[str, Any]) -> Contact:
        return cls(
            id=raw["id"],
            first_name=raw["first_name"],
            last_name=raw["last_name"],
            company_name=raw["company_name"],
            information=raw["information"],
            created_at=raw["created_at"],
            updated_at=raw["updated_at"],
            emails=[Detail(**d) for d in raw["emails"]],
            phone_numbers=[Detail(**d) for d in raw["phone_numbers"]],
            is_shared=raw.get("is_shared", True),
        )


# ---- validation: Aircall's rules for a contact payload ------------------------------------


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid {name}", f"{name} must be a string.")
    if name in _NAME_FIELDS and len(value) > MAX_NAME_LENGTH:
        raise BadRequest(
            f"Invalid {name}", f"{name} is too long (maximum is {MAX_NAME_LENGTH} characters)."
        )
    return value


def contact_fields(body: dict[str, Any]) -> dict[str, str | None]:
    """The text fields present in ``body``, validated (absent ones are left out)."""
    return {name: _text(body, name) for name in _TEXT_FIELDS if name in body}


def detail_payload(raw: object, kind: Literal["phone", "email"]) -> tuple[str | None, str]:
    if not isinstance(raw, dict):
        raise BadRequest(f"Invalid {kind}", f"Each {kind} must be an object with label and value.")
    label, value = raw.get("label"), raw.get("value")
    if label is not None and not isinstance(label, str):
        raise BadRequest(f"Invalid {kind} label", "label must be a string.")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"Invalid {kind}", f"Each {kind} needs a value.")
    if kind == "phone" and e164(value) is None:
        raise BadRequest(
            "Invalid phone number",
            f"{value!r} is not a valid phone number: send it in international format, with '+' "
            "and the country code (e.g. +33631000000).",
        )
    if kind == "email" and not _EMAIL.match(value):
        raise BadRequest("Invalid email", f"{value!r} is not a valid email address.")
    return label, value


def details_payload(
    body: dict[str, Any], name: Literal["phone_numbers", "emails"]
) -> list[tuple[str | None, str]]:
    raw = body.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest(f"Invalid {name}", f"{name} must be an array of {{label, value}}.")
    if len(raw) > MAX_DETAILS:
        raise BadRequest(f"Too many {name}", f"A contact has at most {MAX_DETAILS} {name}.")
    kind: Literal["phone", "email"] = "phone" if name == "phone_numbers" else "email"
    return [detail_payload(item, kind) for item in raw]


# ---- paging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageWindow:
    """Which records page ``page`` of ``per_page`` covers under the query cap."""

    offset: int
    limit: int
    has_next: bool


def page_window(page: int, per_page: int, total: int, cap: int = QUERY_CAP) -> PageWindow:
    offset = (page - 1) * per_page
    if offset >= cap:
        raise BadRequest(
            "Pagination limit reached",
            f"A query returns at most {cap} records, whatever the paging. Narrow it with the "
            "from and to parameters (UNIX timestamps bounding the creation date) to read the "
            "rest.",
        )
    reachable = min(total, cap)
    limit = max(0, min(per_page, reachable - offset))
    return PageWindow(offset, limit, offset + per_page < reachable)


# ---- contacts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """A query's result: its size and a way to read any slice of it in order."""

    total: int
    _slice: Callable[[int, int], list[int]]

    def ids(self, offset: int, limit: int) -> list[int]:
        return self._slice(offset, limit) if limit > 0 else []


def _slicer(keys: Sequence[tuple[int, int]], lo: int, hi: int, order: Order) -> Selection:
    def ids(offset: int, limit: int) -> list[int]:
        if order == "asc":
            start = lo + offset
            return [k[1] for k in keys[start : min(start + limit, hi)]]
        end = hi - offset
        return [k[1] for k in reversed(keys[max(end - limit, lo) : end])]

    return Selection(max(0, hi - lo), ids)


_LOW, _HIGH = -sys.maxsize, sys.maxsize


class ContactStore:
    """Contacts with their indexes; ids and detail ids are allocated here."""

    def __init__(self, first_id: int = 1_000_001) -> None:
        self.contacts: dict[int, Contact] = {}
        self.next_id = first_id
        self.next_detail_id = first_id * 10
        self.version = 0  # bumped by every write: keys the window cache
        self._by_created: list[tuple[int, int]] = []
        self._by_updated: list[tuple[int, int]] = []
        self._by_phone: dict[str, set[int]] = {}
        self._by_email: dict[str, set[int]] = {}
        self._window_cache: dict[tuple[int, int], tuple[int, list[tuple[int, int]]]] = {}

    def __len__(self) -> int:
        return len(self.contacts)

    def get(self, contact_id: int) -> Contact:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise NotFound("contact", contact_id)
        return contact

    # ---- writes ----------------------------------------------------------------------------

    def new_detail(
        self, kind: Literal["phone", "email"], label: str | None, value: str, key: str | None = None
    ) -> Detail:
        """A detail with a fresh id; ``key`` may be given when already known (seeding)."""
        if key is None:
            key = e164(value) if kind == "phone" else value.lower()
        detail = Detail(self.next_detail_id, label, value, key)
        self.next_detail_id += 1
        return detail

    def new_contact(
        self,
        fields: dict[str, str | None],
        phones: list[Detail],
        emails: list[Detail],
        created_at: int,
        updated_at: int | None = None,
    ) -> Contact:
        """A contact with a fresh id, not yet stored (see ``add``)."""
        contact = Contact(
            id=self.next_id,
            first_name=fields.get("first_name"),
            last_name=fields.get("last_name"),
            company_name=fields.get("company_name"),
            information=fields.get("information"),
            created_at=created_at,
            updated_at=created_at if updated_at is None else updated_at,
            phone_numbers=phones,
            emails=emails,
        )
        self.next_id += 1
        return contact

    def add(self, contact: Contact) -> None:
        self.contacts[contact.id] = contact
        insort(self._by_created, (contact.created_at, contact.id))
        insort(self._by_updated, (contact.updated_at, contact.id))
        self._index_details(contact)
        self.version += 1

    def add_many(self, contacts: list[Contact]) -> None:
        """Stores many contacts at once: the sorted indexes are rebuilt with one sort each
        instead of one insertion per contact (100,000 seeded contacts in a fraction of a
        second)."""
        for contact in contacts:
            self.contacts[contact.id] = contact
            self._index_details(contact)
            self.next_id = max(self.next_id, contact.id + 1)
            for detail in (*contact.emails, *contact.phone_numbers):
                self.next_detail_id = max(self.next_detail_id, detail.id + 1)
        self._by_created = sorted((c.created_at, c.id) for c in self.contacts.values())
        self._by_updated = sorted((c.updated_at, c.id) for c in self.contacts.values())
        self.version += 1

    def _index_details(self, contact: Contact) -> None:
        for detail in contact.phone_numbers:
            if detail.key is not None:
                self._by_phone.setdefault(detail.key, set()).add(contact.id)
        for detail in contact.emails:
            if detail.key is not None:
                self._by_email.setdefault(detail.key, set()).add(contact.id)

    def _unindex_details(self, contact: Contact) -> None:
        for detail in contact.phone_numbers:
            self._by_phone.get(detail.key or "", set()).discard(contact.id)
        for detail in contact.emails:
            self._by_email.get(detail.key or "", set()).discard(contact.id)

    def delete(self, contact_id: int) -> Contact:
        contact = self.get(contact_id)
        del self.contacts[contact_id]
        self._remove_key(self._by_created, (contact.created_at, contact_id))
        self._remove_key(self._by_updated, (contact.updated_at, contact_id))
        self._unindex_details(contact)
        self.version += 1
        return contact

    @staticmethod
    def _remove_key(keys: list[tuple[int, int]], key: tuple[int, int]) -> None:
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]

    def touch(self, contact: Contact, now: int) -> None:
        """Records a change: ``updated_at`` moves to ``now`` (UNIX seconds, not unique)."""
        self._remove_key(self._by_updated, (contact.updated_at, contact.id))
        contact.updated_at = now
        insort(self._by_updated, (now, contact.id))
        self.version += 1

    def update(self, contact_id: int, fields: dict[str, str | None], now: int) -> Contact:
        contact = self.get(contact_id)
        for name, value in fields.items():
            setattr(contact, name, value)
        self.touch(contact, now)
        return contact

    def add_detail(
        self, contact_id: int, kind: Literal["phone", "email"], label: str | None, value: str
    ) -> Contact:
        contact = self.get(contact_id)
        details = contact.phone_numbers if kind == "phone" else contact.emails
        if len(details) >= MAX_DETAILS:
            name = "phone numbers" if kind == "phone" else "emails"
            raise BadRequest(f"Too many {name}", f"A contact has at most {MAX_DETAILS} {name}.")
        self._unindex_details(contact)
        details.append(self.new_detail(kind, label, value))
        self._index_details(contact)
        return contact

    def change_detail(
        self,
        contact_id: int,
        kind: Literal["phone", "email"],
        detail_id: int,
        label: str | None,
        value: str | None,
    ) -> Contact:
        contact = self.get(contact_id)
        detail = self._find_detail(contact, kind, detail_id)
        self._unindex_details(contact)
        if label is not None:
            detail.label = label
        if value is not None:
            detail.value = value
            detail.key = e164(value) if kind == "phone" else value.lower()
        self._index_details(contact)
        return contact

    def remove_detail(
        self, contact_id: int, kind: Literal["phone", "email"], detail_id: int
    ) -> Contact:
        contact = self.get(contact_id)
        detail = self._find_detail(contact, kind, detail_id)
        details = contact.phone_numbers if kind == "phone" else contact.emails
        if kind == "phone" and len(details) == 1:
            raise Unprocessable(
                "Cannot delete the last phone number",
                "A contact needs at least one phone number: add another one first, or delete "
                "the contact.",
            )
        self._unindex_details(contact)
        details.remove(detail)
        self._index_details(contact)
        return contact

    @staticmethod
    def _find_detail(contact: Contact, kind: Literal["phone", "email"], detail_id: int) -> Detail:
        details = contact.phone_numbers if kind == "phone" else contact.emails
        for detail in details:
            if detail.id == detail_id:
                return detail
        raise NotFound("phone detail" if kind == "phone" else "email detail", detail_id)

    # ---- reads -----------------------------------------------------------------------------

    def query(
        self, order_by: OrderBy, order: Order, created_from: int | None, created_to: int | None
    ) -> Selection:
        """All contacts created in ``[created_from, created_to]`` (inclusive), sorted."""
        lo_key = (_LOW if created_from is None else created_from, _LOW)
        hi_key = (_HIGH if created_to is None else created_to, _HIGH)
        lo = bisect_left(self._by_created, lo_key)
        hi = bisect_right(self._by_created, hi_key)
        if order_by == "created_at":
            return _slicer(self._by_created, lo, hi, order)
        if created_from is None and created_to is None:
            return _slicer(self._by_updated, 0, len(self._by_updated), order)
        keys = self._window_by_updated(lo, hi)
        return _slicer(keys, 0, len(keys), order)

    def _window_by_updated(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The contacts of a creation window in updated order: sorted once per window and
        reused until the next write."""
        cached = self._window_cache.get((lo, hi))
        if cached is not None and cached[0] == self.version:
            return cached[1]
        keys = sorted((self.contacts[cid].updated_at, cid) for _, cid in self._by_created[lo:hi])
        if len(self._window_cache) >= 32:
            self._window_cache.clear()
        self._window_cache[(lo, hi)] = (self.version, keys)
        return keys

    def search(
        self,
        phone_number: str | None,
        email: str | None,
        order_by: OrderBy,
        order: Order,
        created_from: int | None,
        created_to: int | None,
    ) -> Selection:
        """Contacts having this phone number (compared in E.164) and/or this email
        (case-insensitive); all contacts when neither is given."""
        if phone_number is None and email is None:
            return self.query(order_by, order, created_from, created_to)
        matches: set[int] | None = None
        if phone_number is not None:
            number = e164(phone_number)
            matches = set(self._by_phone.get(number, set())) if number else set()
        if email is not None:
            by_email = self._by_email.get(email.lower(), set())
            matches = set(by_email) if matches is None else matches & by_email
        low = _LOW if created_from is None else created_from
        high = _HIGH if created_to is None else created_to
        keys = sorted(
            (getattr(self.contacts[cid], order_by), cid)
            for cid in matches or ()
            if low <= self.contacts[cid].created_at <= high
        )
        return _slicer(keys, 0, len(keys), order)

    def find_by_phone(self, number: str) -> Contact | None:
        """The oldest contact having this number (how Aircall links a call to a contact)."""
        ids = self._by_phone.get(number)
        return self.contacts[min(ids)] if ids else None

    def dump(self) -> dict[str, Any]:
        return {
            "next_id": self.next_id,
            "next_detail_id": self.next_detail_id,
            "contacts": [self.contacts[cid].to_state() for _, cid in self._by_created],
        }

    def load(self, state: dict[str, Any]) -> None:
        self.add_many([Contact.from_state(raw) for raw in state["contacts"]])
        self.next_id = max(self.next_id, state["next_id"])
        self.next_detail_id = max(self.next_detail_id, state["next_detail_id"])


# ---- calls -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str

    def to_json(self, api_base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "direct_link": f"{api_base}/users/{self.id}",
            "name": self.name,
            "email": self.email,
            "available": True,
            "availability_status": "available",
        }


USERS = (
    User(401001, "Pam Beesly", "pam.beesly@dundermifflin.com"),
    User(401002, "Jim Halpert", "jim.halpert@dundermifflin.com"),
    User(401003, "Dwight Schrute", "dwight.schrute@dundermifflin.com"),
)


@dataclass
class Call:
    id: int
    direction: Literal["inbound", "outbound"]
    started_at: int
    answered_at: int | None
    ended_at: int
    raw_digits: str
    user_id: int | None
    contact_id: int | None
    missed_call_reason: str | None = None

    @property
    def duration(self) -> int:
        return self.ended_at - self.started_at

    def to_json(self, api_base: str, contact: dict[str, Any] | None) -> dict[str, Any]:
        user = next((u for u in USERS if u.id == self.user_id), None)
        return {
            "id": self.id,
            "direct_link": f"{api_base}/calls/{self.id}",
            "direction": self.direction,
            "status": "done",
            "missed_call_reason": self.missed_call_reason,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "raw_digits": self.raw_digits,
            "voicemail": None,
            "recording": None,
            "archived": False,
            "user": user.to_json(api_base) if user else None,
            "contact": contact,
            "tags": [],
            "comments": [],
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "raw_digits": self.raw_digits,
            "user_id": self.user_id,
            "contact_id": self.contact_id,
            "missed_call_reason": self.missed_call_reason,
        }


class CallStore:
    """Calls indexed by ``(started_at, id)``, Aircall's creation date for a call."""

    def __init__(self, first_id: int = 7_000_001) -> None:
        self.calls: dict[int, Call] = {}
        self.next_id = first_id
        self._by_started: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, call: Call) -> None:
        self.calls[call.id] = call
        insort(self._by_started, (call.started_at, call.id))
        self.next_id = max(self.next_id, call.id + 1)

    def get(self, call_id: int) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise NotFound("call", call_id)
        return call

    def query(self, order: Order, started_from: int | None, started_to: int | None) -> Selection:
        lo = bisect_left(self._by_started, (_LOW if started_from is None else started_from, _LOW))
        hi = bisect_right(self._by_started, (_HIGH if started_to is None else started_to, _HIGH))
        return _slicer(self._by_started, lo, hi, order)

    def dump(self) -> list[dict[str, Any]]:
        return [self.calls[cid].to_state() for _, cid in self._by_started]

    def load(self, raw_calls: list[dict[str, Any]]) -> None:
        for raw in raw_calls:
            self.add(Call(**raw))
