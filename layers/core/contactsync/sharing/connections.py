"""Closest Connections (seed 000): how strongly each user is connected to each contact, from the
recency, frequency and reciprocity of their activity together.

- Strength per (user, contact), kept per connected account: a kind-weighted sum of the
  activities (a meeting weighs 3, a call 2, an email 1), each decayed by its age (half-life 60
  days), turned into 0-100 with a saturating curve and scaled by reciprocity (two-way
  communication counts fully, one-way half). Stored decayed to ``as_of`` and decayed further
  when read, so scores age without rewrites.
- On a contact: the teammates with the strongest connection. On a company: its contacts with
  the strongest connection to the organisation (everyone's strengths combined).
- Only for organisation contacts, never for personal ones; a user's strengths are shared only
  while that user shares activity (the caller always sees their own); removed users and
  deleted accounts drop out at once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from contactsync.app.gallery import Actor, visible
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.activity import Activity, ActivityKind, ConnectionStrength, Contribution
from contactsync.domain.base import utcnow
from contactsync.domain.company import Account
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import NotFound
from contactsync.domain.org import User
from contactsync.sharing.stream import StreamQuery, company_contacts
from contactsync.store.base import Store

HALF_LIFE_DAYS = 60.0
KIND_WEIGHT = {ActivityKind.EMAIL: 1.0, ActivityKind.CALL: 2.0, ActivityKind.MEETING: 3.0}
# The weighted, decayed sum at which a connection is at 1 - 1/e (63/100) fully reciprocal.
SCALE = 6.0
READ_CHUNK = 500


# ---- pure scoring ----------------------------------------------------------------------------


def decayed(weighted: float, as_of: datetime, now: datetime) -> float:
    age_days = max((now - as_of).total_seconds(), 0.0) / 86_400
    return float(weighted * math.pow(0.5, age_days / HALF_LIFE_DAYS))


def contribution(activities: Iterable[Activity], as_of: datetime) -> Contribution:
    """What these activities (one user's, with one contact, from one account) add up to. A
    meeting on the calendar counts as recent from the day it is planned (it is a connection
    already, and nothing would recompute it the day it takes place)."""
    result = Contribution()
    for activity in activities:
        weight = KIND_WEIGHT[activity.activity_kind]
        result.weighted += decayed(weight, activity.occurred_at, as_of)
        if activity.activity_kind is ActivityKind.MEETING or activity.direction == "internal":
            result.inbound += 1
            result.outbound += 1
        elif activity.direction == "inbound":
            result.inbound += 1
        else:
            result.outbound += 1
        if activity.activity_kind is ActivityKind.EMAIL:
            result.emails += 1
        elif activity.activity_kind is ActivityKind.MEETING:
            result.meetings += 1
        else:
            result.calls += 1
        if result.last_at is None or activity.occurred_at > result.last_at:
            result.last_at = activity.occurred_at
    return result


def reciprocity(inbound: int, outbound: int) -> float:
    """0 for one-way communication, 1 for balanced two-way."""
    high = max(inbound, outbound)
    return min(inbound, outbound) / high if high else 0.0


def score(parts: Iterable[Contribution], as_of: datetime, now: datetime) -> float:
    """0-100: recency and frequency (the decayed weighted sum) times reciprocity."""
    chosen = list(parts)
    total = sum(decayed(p.weighted, as_of, now) for p in chosen)
    inbound = sum(p.inbound for p in chosen)
    outbound = sum(p.outbound for p in chosen)
    factor = 0.5 + 0.5 * reciprocity(inbound, outbound)
    return round(100 * (1 - math.exp(-total * factor / SCALE)), 1)


def combined(scores: Iterable[float]) -> float:
    """The organisation's strength with a contact: the chance-like union of its users'."""
    remaining = 1.0
    for value in scores:
        remaining *= 1 - min(max(value, 0.0), 100.0) / 100
    return round(100 * (1 - remaining), 1)


# ---- keeping the strengths -------------------------------------------------------------------


def recompute(
    store: Store, org_id: str, pairs: Iterable[tuple[str, str]], now: datetime | None = None
) -> int:
    """Rebuilds the strength of each (user, contact) pair from its stored activities
    (idempotent; a pair without activity loses its row). Returns the rows written."""
    moment = now or utcnow()
    by_contact: dict[str, set[str]] = defaultdict(set)
    for user_id, contact_id in pairs:
        by_contact[contact_id].add(user_id)
    written = 0
    for contact_id, users in sorted(by_contact.items()):
        ids = sorted(store.lookup_ids(Activity, org_id, "contact", contact_id))
        grouped: dict[str, dict[str, list[Activity]]] = defaultdict(lambda: defaultdict(list))
        for start in range(0, len(ids), READ_CHUNK):
            for activity in store.get_many(
                Activity, org_id, ids[start : start + READ_CHUNK]
            ).values():
                if activity.owner_user_id in users and contact_id in activity.contact_ids:
                    grouped[activity.owner_user_id][activity.account_id].append(activity)
        for user_id in sorted(users):
            row_id = ConnectionStrength.make_id(user_id, contact_id)
            accounts = grouped.get(user_id)
            if not accounts:
                store.delete(ConnectionStrength, org_id, row_id)
                continue
            row = ConnectionStrength(
                org_id=org_id,
                id=row_id,
                user_id=user_id,
                contact_id=contact_id,
                as_of=moment,
                by_account={a: contribution(acts, moment) for a, acts in sorted(accounts.items())},
            )
            store.bulk_put([row])
            written += 1
    return written


# ---- reading them ----------------------------------------------------------------------------


class Connection(BaseModel):
    """A teammate's connection with a contact."""

    user_id: str
    name: str
    email: str
    score: float = Field(ge=0, le=100)
    last_at: datetime | None
    emails: int
    meetings: int
    calls: int
    reciprocal: bool = Field(description="Communication went both ways")


class ContactConnections(BaseModel):
    contact_id: str
    available: bool = Field(description="False for personal contacts: they have none")
    items: list[Connection]


class CompanyContact(BaseModel):
    contact_id: str
    display_name: str
    score: float = Field(ge=0, le=100, description="Its strength with the whole organisation")
    closest_user_id: str | None
    last_at: datetime | None


class CompanyConnections(BaseModel):
    company_id: str
    items: list[CompanyContact]


@dataclass
class ClosestConnections:
    store: Store
    now: Callable[[], datetime] = utcnow

    def for_contact(self, actor: Actor, contact_id: str, limit: int = 5) -> ContactConnections:
        StreamQuery(self.store, self.now).viewer(actor)
        contact = self.store.find(HubContact, actor.org_id, contact_id)
        if contact is None or not visible(contact, actor):
            raise NotFound("contact", contact_id)
        if contact.personal:
            return ContactConnections(contact_id=contact_id, available=False, items=[])
        live = self._live_accounts(actor.org_id)
        rows = self.store.lookup(
            ConnectionStrength, actor.org_id, "contact", contact_id, limit=1000
        )
        users = self.store.get_many(User, actor.org_id, [r.user_id for r in rows])
        items = []
        for row in rows:
            user = users.get(row.user_id)
            if not _shared(user, actor):
                continue
            assert user is not None
            parts = [c for a, c in row.by_account.items() if a in live]
            if not parts:
                continue
            items.append(
                Connection(
                    user_id=user.id,
                    name=user.name,
                    email=user.email.address,
                    score=score(parts, row.as_of, self.now()),
                    last_at=row.last_at(live),
                    emails=sum(p.emails for p in parts),
                    meetings=sum(p.meetings for p in parts),
                    calls=sum(p.calls for p in parts),
                    reciprocal=reciprocity(
                        sum(p.inbound for p in parts), sum(p.outbound for p in parts)
                    )
                    > 0,
                )
            )
        items.sort(key=lambda c: (-c.score, c.user_id))
        return ContactConnections(contact_id=contact_id, available=True, items=items[:limit])

    def for_company(self, actor: Actor, company_id: str, limit: int = 10) -> CompanyConnections:
        StreamQuery(self.store, self.now).viewer(actor)
        company = self.store.find(Account, actor.org_id, company_id)
        if company is None:
            raise NotFound("company", company_id)
        live = self._live_accounts(actor.org_id)
        contacts = [c for c in company_contacts(self.store, actor, company) if not c.personal]
        users: dict[str, User | None] = {}
        items = []
        for contact in contacts:
            rows = self.store.lookup(
                ConnectionStrength, actor.org_id, "contact", contact.id, limit=1000
            )
            missing = [r.user_id for r in rows if r.user_id not in users]
            found = self.store.get_many(User, actor.org_id, missing)
            users.update({u: found.get(u) for u in missing})
            scored: list[tuple[float, str, datetime | None]] = []
            for row in rows:
                if not _shared(users.get(row.user_id), actor):
                    continue
                parts = [c for a, c in row.by_account.items() if a in live]
                if parts:
                    scored.append(
                        (score(parts, row.as_of, self.now()), row.user_id, row.last_at(live))
                    )
            if not scored:
                continue
            best = max(scored, key=lambda s: (s[0], s[1]))
            moments = [s[2] for s in scored if s[2] is not None]
            items.append(
                CompanyContact(
                    contact_id=contact.id,
                    display_name=contact.display_name,
                    score=combined(s[0] for s in scored),
                    closest_user_id=best[1],
                    last_at=max(moments, default=None),
                )
            )
        items.sort(key=lambda c: (-c.score, c.contact_id))
        return CompanyConnections(company_id=company_id, items=items[:limit])

    def _live_accounts(self, org_id: str) -> set[str]:
        return {
            a.id
            for a in self.store.scan(ConnectedAccount, org_id)
            if a.status is not AccountStatus.DELETED
        }


def _shared(user: User | None, actor: Actor) -> bool:
    """A user's strengths are shown while they are in the organisation and share activity (or
    to themselves)."""
    if user is None or not user.active:
        return False
    return user.id == actor.user_id or user.sharing.share_activity


def pairs_of(activities: Iterable[Activity]) -> set[tuple[str, str]]:
    return {(a.owner_user_id, cid) for a in activities for cid in a.contact_ids}
