"""Activity (seed 002): the metadata of an email, meeting or call that involves contacts, and
the connection strength (seed 000's Closest Connections) each user's activity builds with a
contact."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, Model, utcnow


class ActivityKind(StrEnum):
    EMAIL = "email"
    MEETING = "meeting"
    CALL = "call"


class Activity(Entity):
    kind = "activity"
    list_buckets = 16

    activity_kind: ActivityKind
    account_id: Id
    owner_user_id: Id
    remote_id: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    occurred_at: AwareDatetime
    direction: Literal["inbound", "outbound", "internal"] = "outbound"
    subject: Annotated[str, StringConstraints(max_length=1000)] = ""
    thread_id: Annotated[str, StringConstraints(max_length=512)] | None = None
    # Email addresses (lower-cased) and E.164 numbers of everyone involved.
    participants: list[Annotated[str, StringConstraints(max_length=254)]] = Field(
        default_factory=list, max_length=500
    )
    contact_ids: list[Id] = Field(default_factory=list, max_length=500)
    duration_seconds: int | None = Field(default=None, ge=0)
    # Content is fetched only when shared; until then only metadata is stored.
    body: Annotated[str, StringConstraints(max_length=200_000)] | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)
    # The same email or meeting seen from several mailboxes (RFC 5322 Message-ID, iCalUID):
    # the Stream shows it once.
    message_key: Annotated[str, StringConstraints(max_length=998)] | None = None
    # Who sent the email, organised the meeting or placed the call (an address or number).
    sender: Annotated[str, StringConstraints(max_length=254)] | None = None
    # The content is shared (with teammates or a granted requester) but not fetched yet.
    body_due: bool = False
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    @staticmethod
    def make_id(account_id: str, remote_id: str) -> str:
        """Deterministic: a re-read page upserts the activity it wrote before."""
        digest = hashlib.sha256(f"{account_id}\x00{remote_id}".encode()).hexdigest()
        return f"a-{digest[:40]}"

    def index_entries(self) -> Iterable[tuple[str, str]]:
        for contact_id in self.contact_ids:
            yield "contact", contact_id
        yield "account", self.account_id
        yield "owner", self.owner_user_id
        if self.body_due:
            yield "body_due", self.account_id


class Contribution(Model):
    """What one connected account's activity adds to a (user, contact) connection."""

    # The kind-weighted sum of activities, each decayed to ``as_of`` (recency and frequency).
    weighted: float = Field(default=0.0, ge=0.0)
    inbound: int = Field(default=0, ge=0)
    outbound: int = Field(default=0, ge=0)
    emails: int = Field(default=0, ge=0)
    meetings: int = Field(default=0, ge=0)
    calls: int = Field(default=0, ge=0)
    last_at: AwareDatetime | None = None


class ConnectionStrength(Entity):
    """How strongly one user is connected to one contact, kept per connected account so that a
    deleted account's part disappears at once (seed 001). Scores decay with time: they are
    computed from ``as_of`` when read."""

    kind = "connection"
    list_buckets = 16

    user_id: Id
    contact_id: Id
    as_of: AwareDatetime
    by_account: dict[Id, Contribution] = Field(default_factory=dict, max_length=50)

    @staticmethod
    def make_id(user_id: str, contact_id: str) -> str:
        digest = hashlib.sha256(f"{user_id}\x00{contact_id}".encode()).hexdigest()
        return f"cs-{digest[:40]}"

    def last_at(self, accounts: Iterable[str] | None = None) -> datetime | None:
        chosen = set(accounts) if accounts is not None else set(self.by_account)
        moments = [
            c.last_at for a, c in self.by_account.items() if a in chosen and c.last_at is not None
        ]
        return max(moments, default=None)

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "contact", self.contact_id
        yield "user", self.user_id
