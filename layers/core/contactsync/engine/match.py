"""Matching an incoming record to a hub contact.

In order: the link (remote id), the hub id we stamped on records we created, then email, then
E.164 phone. Fuzzy name + company similarity is only ever a merge suggestion.

Privacy decides the candidate pool: a record that may enter the organisation's contacts
(``SpokeView.shares``) matches organisation contacts only; any other address-book record matches
only its owner's personal contacts, so one user's private address book never flows into a
contact another user can see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from contactsync.connectors.base import RemoteRecord
from contactsync.domain.company import company_key_loose
from contactsync.domain.contact import HubContact, Visibility, name_key, to_e164
from contactsync.engine.merge import SpokeView

How = Literal["link", "hub_id", "email", "phone", "new"]


@dataclass(frozen=True)
class MatchResult:
    contact: HubContact | None
    how: How
    # Other eligible contacts that matched on a different key: candidates for a merge suggestion.
    others: tuple[str, ...] = field(default_factory=tuple)


def record_email_keys(record: RemoteRecord) -> list[str]:
    return [e.key for e in record.fields.emails or ()]


def record_phone_keys(record: RemoteRecord, default_region: str = "US") -> list[str]:
    keys = []
    for phone in record.fields.phones or ():
        e164 = phone.e164 or to_e164(phone.raw, default_region)
        if e164:
            keys.append(e164)
    return keys


def eligible(candidate: HubContact, spoke: SpokeView, shared: bool) -> bool:
    if candidate.archived or candidate.merged_into is not None:
        return False
    mine = candidate.personal and candidate.owner_user_id == spoke.owner_user_id
    if shared:
        # A record its owner marked (or shares) may also be the owner's own personal contact:
        # dragging a contact into Outlook's "Salesforce Contacts" folder gives it a new id, and
        # it must stay one person (the engine then promotes it to the organisation).
        return candidate.visibility is Visibility.ORGANISATION or (spoke.address_book and mine)
    return mine


def choose(
    record: RemoteRecord,
    spoke: SpokeView,
    candidates: Iterable[HubContact],
    default_region: str = "US",
) -> MatchResult:
    """The best eligible candidate found by email or phone, or none. Pure and deterministic:
    most matching keys first (an email counts twice a phone), then the oldest contact."""
    shared = spoke.shares(record)
    emails = set(record_email_keys(record))
    phones = set(record_phone_keys(record, default_region))
    scored: list[tuple[int, int, HubContact]] = []
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.id in seen or not eligible(candidate, spoke, shared):
            continue
        seen.add(candidate.id)
        by_email = len(emails & set(candidate.email_keys()))
        by_phone = len(phones & set(candidate.phone_keys()))
        if by_email or by_phone:
            scored.append((2 * by_email + by_phone, by_email, candidate))
    if not scored:
        return MatchResult(None, "new")
    # Organisation contacts first among equals: a marked record joins the shared person.
    scored.sort(key=lambda s: (-s[0], s[2].personal, s[2].created_at, s[2].id))
    _, best_by_email, best = scored[0]
    others = tuple(c.id for _, _, c in scored[1:])
    return MatchResult(best, "email" if best_by_email else "phone", others)


def fuzzy_candidates(
    contact: HubContact, same_name: Sequence[HubContact]
) -> list[tuple[str, float, list[str]]]:
    """Contacts that look like the same person (same name, compatible company) but share no
    email or phone: (id, score, reasons) for merge suggestions. Never merged automatically."""
    if not (contact.given_name and contact.family_name):
        return []
    key = name_key(contact.given_name, contact.family_name)
    company = company_key_loose(contact.company) if contact.company else ""
    found = []
    for other in same_name:
        if other.id == contact.id or other.archived or other.merged_into is not None:
            continue
        if other.visibility != contact.visibility or (
            contact.personal and other.owner_user_id != contact.owner_user_id
        ):
            continue
        if name_key(other.given_name, other.family_name) != key:
            continue
        other_company = company_key_loose(other.company) if other.company else ""
        if company and other_company and company != other_company:
            continue
        reasons = ["same name"]
        score = 0.6
        if company and company == other_company:
            reasons.append("same company")
            score = 0.85
        found.append((other.id, score, reasons))
    return found
