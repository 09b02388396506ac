"""The outbox: hub contacts whose change has not yet reached every spoke.

Written in the same transaction as the contact, so a crash between a pull and its push loses
nothing; removed once every spoke took the version it names. In the cloud, the table's stream
carries these entries to the push queues."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import Field

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow


class OutboxEntry(Entity):
    """Stored with version = hub_version + 1 (``entry``), so removing it on the condition of that
    version never removes an entry a newer change rewrote meanwhile."""

    kind = "outbox"
    list_buckets = 16

    contact_id: Id
    # The hub version to push (a newer write replaces the entry with its own version).
    hub_version: int = Field(ge=0)
    # The account whose pull caused it (informational: the source spoke is pushed too, so that
    # values it lost in a conflict are corrected there).
    source: str = ""
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @classmethod
    def entry(
        cls, org_id: str, contact_id: str, hub_version: int, source: str, at: datetime
    ) -> Self:
        return cls(
            org_id=org_id,
            id=contact_id,
            version=hub_version,
            contact_id=contact_id,
            hub_version=hub_version,
            source=source,
            created_at=at,
        )
