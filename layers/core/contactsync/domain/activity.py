"""Activity (seed 002): the metadata of an email, meeting or call that involves contacts."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow


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

    def index_entries(self) -> Iterable[tuple[str, str]]:
        for contact_id in self.contact_ids:
            yield "contact", contact_id
        yield "account", self.account_id
        yield "owner", self.owner_user_id
