"""The contact gallery (seed 000): one place for the organisation's contacts and each user's
personal ones. Archive instead of delete; merge with suggestions; every edit logged with its
provenance and queued for the spokes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactsync.domain.base import utcnow
from contactsync.domain.changelog import ChangeLogEntry, FieldChange
from contactsync.domain.contact import (
    CONTACT_FIELDS,
    MIN_PHONE_DIGITS,
    ContactField,
    FieldProvenance,
    HubContact,
    PhoneNumber,
    Visibility,
    fold,
    to_e164,
)
from contactsync.domain.errors import InvalidInput, NotFound, VersionConflict
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion, SuggestionStatus
from contactsync.domain.org import Role, User
from contactsync.domain.outbox import OutboxEntry
from contactsync.store.base import Page, Store, Write

# What a typed phone number looks like, in any country's format.
_PHONE_LIKE = re.compile(r"[+\d\s().\-/]+")


@dataclass(frozen=True)
class Actor:
    """Who is asking: every gallery call is scoped to the actor's organisation and visibility."""

    org_id: str
    user_id: str
    role: Role = Role.USER

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.org_id, user.id, user.role)

    @property
    def source(self) -> str:
        return f"user:{self.user_id}"


def visible(contact: HubContact, actor: Actor) -> bool:
    """Organisation contacts to everyone in it; personal contacts to their owner only (not even
    to admins: seed 002's privacy)."""
    if contact.org_id != actor.org_id:
        return False
    return contact.visibility is Visibility.ORGANISATION or contact.owner_user_id == actor.user_id


@dataclass
class Gallery:
    store: Store
    now: Callable[[], datetime] = utcnow

    # ---- reading -------------------------------------------------------------------------------

    def get(self, actor: Actor, contact_id: str) -> HubContact:
        contact = self.store.find(HubContact, actor.org_id, contact_id)
        if contact is None or not visible(contact, actor):
            raise NotFound("contact", contact_id)  # not visible is indistinguishable from absent
        return contact

    def links(self, actor: Actor, contact_id: str) -> list[Link]:
        self.get(actor, contact_id)
        return self.store.lookup(Link, actor.org_id, "contact", contact_id, limit=100)

    def history(self, actor: Actor, contact_id: str) -> list[ChangeLogEntry]:
        self.get(actor, contact_id)
        entries = self.store.lookup(ChangeLogEntry, actor.org_id, "contact", contact_id, limit=1000)
        return sorted(entries, key=lambda e: (e.at, e.id))

    def page(
        self,
        actor: Actor,
        *,
        limit: int = 50,
        page_token: str | None = None,
        include_archived: bool = False,
        personal: bool | None = None,
    ) -> Page[HubContact]:
        """A page of the contacts the actor may see. Filters apply within the store's pages, so
        a page may hold fewer than ``limit`` items while more follow (use the token)."""
        page = self.store.page(HubContact, actor.org_id, limit=limit, page_token=page_token)
        items = [
            c
            for c in page.items
            if visible(c, actor)
            and (include_archived or not c.archived)
            and (personal is None or c.personal == personal)
        ]
        return Page(items, page.next_token)

    def search(
        self, actor: Actor, query: str, *, limit: int = 50, region: str = "US"
    ) -> list[HubContact]:
        """By email, by phone (any format), or by words of the name and company."""
        query = query.strip()
        if not query:
            raise InvalidInput.one("q", "must not be empty")
        if len(query) > 200:
            raise InvalidInput.one("q", "must have at most 200 characters")
        digits = "".join(ch for ch in query if ch.isdigit())
        if "@" in query:
            found = self.store.lookup(HubContact, actor.org_id, "email", query.lower(), limit=limit)
        elif len(digits) >= MIN_PHONE_DIGITS and _PHONE_LIKE.fullmatch(query):
            # Any format the region parses, and numbers stored raw, typed as stored.
            e164 = to_e164(query, region)
            found = (
                self.store.lookup(HubContact, actor.org_id, "phone", e164, limit=limit)
                if e164 is not None
                else []
            )
            seen = {c.id for c in found}
            raw = self.store.lookup(HubContact, actor.org_id, "phone_digits", digits, limit=limit)
            found += [c for c in raw if c.id not in seen]
        elif (e164 := to_e164(query, region)) is not None and len(digits) >= MIN_PHONE_DIGITS:
            found = self.store.lookup(HubContact, actor.org_id, "phone", e164, limit=limit)
        else:
            words = [w for w in fold(query).split() if len(w) >= 2]
            if not words:
                raise InvalidInput.one("q", "needs a word of at least two letters")
            first = self.store.lookup(HubContact, actor.org_id, "word", words[0], limit=1000)
            found = [c for c in first if set(words) <= c.search_words()]
        return [c for c in found if visible(c, actor) and not c.archived][:limit]

    def suggestions(self, actor: Actor) -> list[MergeSuggestion]:
        open_ = self.store.lookup(
            MergeSuggestion, actor.org_id, "status", SuggestionStatus.OPEN.value, limit=1000
        )
        result = []
        for suggestion in open_:
            contacts = self.store.get_many(HubContact, actor.org_id, suggestion.contact_ids)
            if len(contacts) == 2 and all(visible(c, actor) for c in contacts.values()):
                result.append(suggestion)
        return result

    # ---- writing -------------------------------------------------------------------------------

    def create(self, actor: Actor, data: dict[str, Any], region: str = "US") -> HubContact:
        """Creates a contact from API input (validated; phones parsed strictly)."""
        payload = _with_parsed_phones(data, region)
        payload.update({"org_id": actor.org_id, "id": f"c-{uuid.uuid4().hex}"})
        payload.setdefault("visibility", Visibility.ORGANISATION.value)
        if payload["visibility"] == Visibility.PERSONAL.value:
            payload["owner_user_id"] = actor.user_id
        else:
            payload.setdefault("owner_user_id", actor.user_id)
        if payload.get("owner_user_id") != actor.user_id and actor.role is not Role.ADMIN:
            raise InvalidInput.one("owner_user_id", "only an admin may create for another user")
        for forbidden in (
            "provenance",
            "archived",
            "merged_into",
            "version",
            "created_at",
            "updated_at",
        ):
            if forbidden in data:
                raise InvalidInput.one(forbidden, "is set by the hub, not by callers")
        contact = HubContact.parse(payload)
        now = self.now()
        provenance = {
            name: FieldProvenance(
                source=actor.source, source_ts=now, hub_version=1, reason="entered"
            )
            for name in CONTACT_FIELDS
            if getattr(contact, name)
        }
        contact = contact.model_copy(
            update={"provenance": provenance, "created_at": now, "updated_at": now}
        )
        changes = [FieldChange(field=n, new=_plain(getattr(contact, n))) for n in provenance]
        self.store.transact(
            [
                Write(contact, expected_version=0),
                Write(self._log(actor, contact.id, "create", changes), expected_version=0),
                Write(OutboxEntry.entry(actor.org_id, contact.id, 1, actor.source, now)),
            ]
        )
        return self.get(actor, contact.id)

    def update(
        self,
        actor: Actor,
        contact_id: str,
        changes: dict[str, Any],
        expected_version: int,
        region: str = "US",
    ) -> HubContact:
        """Changes fields of a contact the actor can see. ``expected_version`` guards against
        lost updates (a conflict is reported, nothing is written)."""
        contact = self.get(actor, contact_id)
        unknown = set(changes) - set(CONTACT_FIELDS)
        if unknown:
            raise InvalidInput.one(sorted(unknown)[0], "is not an editable contact field")
        if contact.version != expected_version:
            raise VersionConflict("contact", contact_id, expected_version, contact.version)
        payload = contact.model_dump()
        payload.update(_with_parsed_phones(changes, region))
        updated = HubContact.parse(payload)
        now = self.now()
        field_changes: list[FieldChange] = []
        provenance = dict(contact.provenance)
        for name in changes:
            field: ContactField = name  # type: ignore[assignment]
            old, new = getattr(contact, field), getattr(updated, field)
            if old != new:
                field_changes.append(FieldChange(field=field, old=_plain(old), new=_plain(new)))
                provenance[field] = FieldProvenance(
                    source=actor.source,
                    source_ts=now,
                    hub_version=contact.version + 1,
                    reason="edited",
                )
        if not field_changes:
            return contact
        updated = updated.model_copy(update={"provenance": provenance, "updated_at": now})
        updated.__dict__["version"] = contact.version
        self._write(actor, contact, updated, "update", field_changes)
        return self.get(actor, contact_id)

    def set_archived(self, actor: Actor, contact_id: str, archived: bool) -> HubContact:
        """Archive (never a hard delete, seed 000) or bring back."""
        contact = self.get(actor, contact_id)
        if contact.archived == archived:
            return contact
        updated = contact.model_copy(update={"archived": archived, "updated_at": self.now()})
        self._write(actor, contact, updated, "archive" if archived else "unarchive", [])
        return self.get(actor, contact_id)

    def merge(self, actor: Actor, keep_id: str, other_id: str) -> HubContact:
        """Merges ``other`` into ``keep``: emails and phones are united, empty fields filled,
        links moved; ``other`` is archived and points at ``keep``."""
        if keep_id == other_id:
            raise InvalidInput.one("other_id", "cannot merge a contact with itself")
        keep = self.get(actor, keep_id)
        other = self.get(actor, other_id)
        if keep.visibility is not other.visibility or (
            keep.personal and keep.owner_user_id != other.owner_user_id
        ):
            raise InvalidInput.one("other_id", "personal contacts merge only with their owner's")
        now = self.now()
        updates = _merged_fields(keep, other)
        merged = keep.model_copy(update={**updates, "updated_at": now})
        merged = HubContact.model_validate(merged.model_dump())
        merged.__dict__["version"] = keep.version
        retired = other.model_copy(
            update={"archived": True, "merged_into": keep.id, "updated_at": now}
        )
        changes = [
            FieldChange.model_validate(
                {"field": name, "old": _plain(getattr(keep, name)), "new": _plain(value)}
            )
            for name, value in updates.items()
        ]
        writes = [
            Write(merged, expected_version=keep.version),
            Write(retired, expected_version=other.version),
            Write(self._log(actor, keep.id, "merge", changes, f"merged {other.id}"), 0),
            Write(OutboxEntry.entry(actor.org_id, keep.id, keep.version + 1, actor.source, now)),
            Write(OutboxEntry.entry(actor.org_id, other.id, other.version + 1, actor.source, now)),
        ]
        for link in self.store.lookup(Link, actor.org_id, "contact", other.id, limit=100):
            moved = link.model_copy(update={"contact_id": keep.id})
            writes.append(Write(moved, expected_version=link.version))
        suggestion_id = MergeSuggestion.make_id(keep.id, other.id)
        suggestion = self.store.find(MergeSuggestion, actor.org_id, suggestion_id)
        if suggestion is not None:
            accepted = suggestion.model_copy(update={"status": SuggestionStatus.ACCEPTED})
            writes.append(Write(accepted, expected_version=suggestion.version))
        self.store.transact(writes)
        return self.get(actor, keep.id)

    def dismiss(self, actor: Actor, suggestion_id: str) -> MergeSuggestion:
        suggestion = self.store.find(MergeSuggestion, actor.org_id, suggestion_id)
        if suggestion is None or not all(
            visible(c, actor)
            for c in self.store.get_many(HubContact, actor.org_id, suggestion.contact_ids).values()
        ):
            raise NotFound("merge_suggestion", suggestion_id)
        return self.store.update(
            suggestion.model_copy(update={"status": SuggestionStatus.DISMISSED})
        )

    # ---- helpers -------------------------------------------------------------------------------

    def _write(
        self,
        actor: Actor,
        before: HubContact,
        after: HubContact,
        action: str,
        changes: list[FieldChange],
    ) -> None:
        now = self.now()
        self.store.transact(
            [
                Write(after, expected_version=before.version),
                Write(self._log(actor, before.id, action, changes), expected_version=0),
                Write(
                    OutboxEntry.entry(
                        actor.org_id, before.id, before.version + 1, actor.source, now
                    )
                ),
            ]
        )

    def _log(
        self,
        actor: Actor,
        contact_id: str,
        action: str,
        changes: list[FieldChange],
        reason: str = "",
    ) -> ChangeLogEntry:
        return ChangeLogEntry(
            org_id=actor.org_id,
            id=f"ch-{uuid.uuid4().hex}",
            contact_id=contact_id,
            at=self.now(),
            source=actor.source,
            action=action,
            reason=reason or f"{action} by a user",
            changes=changes[:50],
        )

    def iter_visible(self, actor: Actor) -> Iterator[HubContact]:
        for contact in self.store.scan(HubContact, actor.org_id):
            if visible(contact, actor):
                yield contact


def _merged_fields(keep: HubContact, other: HubContact) -> dict[str, Any]:
    """What ``keep`` gains from ``other``: its extra emails and phones, and any field ``keep``
    leaves empty."""
    updates: dict[str, Any] = {}
    emails = keep.emails + [e for e in other.emails if e.key not in keep.email_keys()]
    if len(emails) != len(keep.emails):
        updates["emails"] = emails[:20]
    known = {p.e164 or p.raw for p in keep.phones}
    phones = keep.phones + [p for p in other.phones if (p.e164 or p.raw) not in known]
    if len(phones) != len(keep.phones):
        updates["phones"] = phones[:20]
    for name in (
        "given_name",
        "middle_name",
        "family_name",
        "company",
        "title",
        "department",
        "notes",
    ):
        if not getattr(keep, name) and getattr(other, name):
            updates[name] = getattr(other, name)
    return updates


def _with_parsed_phones(data: dict[str, Any], region: str) -> dict[str, Any]:
    """API input gives phones as strings or {raw, label}; they must be valid numbers."""
    if "phones" not in data:
        return dict(data)
    phones = data["phones"]
    if not isinstance(phones, list):
        raise InvalidInput.one("phones", "must be a list")
    parsed = []
    for i, item in enumerate(phones):
        raw, label = (
            (item, "")
            if isinstance(item, str)
            else (item.get("raw", ""), item.get("label", ""))
            if isinstance(item, dict)
            else (None, "")
        )
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidInput.one(f"phones.{i}", "must be a phone number")
        try:
            parsed.append(PhoneNumber.parse(raw, region, str(label)).model_dump())
        except ValueError as exc:
            raise InvalidInput.one(f"phones.{i}", str(exc)) from None
    return {**data, "phones": parsed}


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
    return value
