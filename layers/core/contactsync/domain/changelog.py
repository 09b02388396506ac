"""The append-only change log of a contact: who changed which field, from where, when."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, Model, utcnow
from contactsync.domain.contact import ContactField

RETENTION = timedelta(days=400)


class FieldChange(Model):
    field: ContactField
    old: Any = None
    new: Any = None


class ChangeLogEntry(Entity):
    kind = "change"
    list_buckets = 16

    contact_id: Id
    at: AwareDatetime = Field(default_factory=utcnow)
    # An account id, "user:<id>", or "hub" for the engine's own decisions (merges, restores).
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    run_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    action: Annotated[str, StringConstraints(max_length=40)] = "update"
    reason: Annotated[str, StringConstraints(max_length=500)] = ""
    changes: list[FieldChange] = Field(default_factory=list, max_length=50)

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "contact", self.contact_id

    def expires_at(self) -> datetime | None:
        return self.at + RETENTION
