"""Sharing decisions (seed 002): per contact, per email address, per event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow


class SharingTarget(StrEnum):
    CONTACT = "contact"  # content sharing for everything with this contact
    ADDRESS = "address"  # content sharing for one of the contact's email addresses
    EVENT = "event"  # a per-event override (one email or meeting)


class SharingFlag(Entity):
    kind = "sharing_flag"
    list_buckets = 4

    user_id: Id
    target: SharingTarget
    target_id: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    # None: awaiting the user's decision (the "new contacts to approve" queue).
    content_shared: bool | None = None
    decided_at: AwareDatetime | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @staticmethod
    def make_id(user_id: str, target: SharingTarget, target_id: str) -> str:
        raw = f"{user_id}\x00{target.value}\x00{target_id.lower()}"
        return "s-" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "user", self.user_id
        if self.content_shared is None:
            yield "pending", self.user_id
