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


class AccessStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    DECLINED = "declined"


class AccessRequest(Entity):
    """A teammate asks to see the content of one activity they may see happened (seed 002's
    "request access"); its owner grants or declines. A grant shows the content to the requester
    only."""

    kind = "access_request"
    list_buckets = 4

    activity_id: Id
    requester_user_id: Id
    owner_user_id: Id
    status: AccessStatus = AccessStatus.PENDING
    note: Annotated[str, StringConstraints(max_length=500)] = ""
    created_at: AwareDatetime = Field(default_factory=utcnow)
    decided_at: AwareDatetime | None = None

    @staticmethod
    def make_id(requester_user_id: str, activity_id: str) -> str:
        raw = f"{requester_user_id}\x00{activity_id}"
        return "ar-" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "requester", self.requester_user_id
        yield "owner", self.owner_user_id
        yield "activity", self.activity_id
        if self.status is AccessStatus.PENDING:
            yield "pending", self.owner_user_id
