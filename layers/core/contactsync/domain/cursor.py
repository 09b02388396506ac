"""Sync cursors and the leases that make one worker the only writer of each."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, Model, utcnow


class Cursor(Entity):
    """Where an (account, stream) pull stands: a sync token, a delta link, a SystemModstamp
    watermark... Opaque to everything but its connector. The id is the lease name."""

    kind = "cursor"

    account_id: Id
    stream: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    value: Annotated[str, StringConstraints(max_length=16_384)] | None = None
    # The signpost: when the full sync that this cursor continues started.
    started_at: AwareDatetime | None = None
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    @staticmethod
    def make_id(account_id: str, stream: str) -> str:
        return f"{account_id}.{stream}"


class Lease(Model):
    name: Id
    owner: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    expires_at: AwareDatetime
    # Increases with every acquisition: a fencing token for writes made under the lease.
    token: int = Field(ge=1)
