"""Sync settings of one connected account (seeds 003 and 004): direction, objects, scope, field
mapping, conflict and delete policies, schedule, and the status shown while it runs."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from contactsync.domain.base import AwareDatetime, Entity, Id, Model, utcnow
from contactsync.domain.contact import ContactField


class Direction(StrEnum):
    BOTH = "both"
    TO_HUB = "to_hub"  # the provider feeds the hub only
    FROM_HUB = "from_hub"  # the hub feeds the provider only

    @property
    def pulls(self) -> bool:
        return self is not Direction.FROM_HUB

    @property
    def pushes(self) -> bool:
        return self is not Direction.TO_HUB


class ObjectChoice(StrEnum):
    CONTACTS = "contacts"
    LEADS = "leads"
    BOTH = "both"


class DefaultObject(StrEnum):
    """Seed 004: what a contact becomes in Salesforce when nothing says Contact or Lead."""

    CONTACT = "contact"
    LEAD = "lead"


class ScopeKind(StrEnum):
    ALL = "all"  # all available records
    MINE = "mine"  # only records the connected user owns (Salesforce OwnerId)
    LIST_VIEW = "list_view"  # the records of a Salesforce list view (its describe SOQL)
    MARKED = "marked"  # address books: only the marked contacts (folder, category, label)


class Scope(Model):
    kind: ScopeKind = ScopeKind.ALL
    list_view_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _list_view(self) -> Self:
        if (self.kind is ScopeKind.LIST_VIEW) != (self.list_view_id is not None):
            raise ValueError("list_view_id is required with kind list_view, and only with it")
        return self


class FieldDirection(StrEnum):
    BOTH = "both"
    TO_PROVIDER = "to_provider"
    TO_HUB = "to_hub"
    OFF = "off"

    @property
    def pulls(self) -> bool:
        return self in (FieldDirection.BOTH, FieldDirection.TO_HUB)

    @property
    def pushes(self) -> bool:
        return self in (FieldDirection.BOTH, FieldDirection.TO_PROVIDER)


class FieldRule(Model):
    hub_field: ContactField
    # The provider's field name (a Salesforce API name, a Graph property, ...).
    remote_field: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    direction: FieldDirection = FieldDirection.BOTH


class ConflictRule(StrEnum):
    LAST_WRITER = "last_writer"  # newest source timestamp wins, ties broken deterministically
    SOURCE_PRIORITY = "source_priority"  # the first account in ``priority`` wins


class ConflictPolicy(Model):
    rule: ConflictRule = ConflictRule.LAST_WRITER
    # Connected-account ids, most trusted first. Seed 004's "keep Salesforce record" is the
    # Salesforce account first; "keep phone-system record" the phone system first.
    priority: list[Id] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _priority(self) -> Self:
        if self.rule is ConflictRule.SOURCE_PRIORITY and not self.priority:
            raise ValueError("source_priority needs at least one account in priority")
        if len(set(self.priority)) != len(self.priority):
            raise ValueError("priority lists an account twice")
        return self


class AutoRemoval(Model):
    """Seed 003: whether a delete on one side removes the record on the other. Off by default:
    a remote delete archives nothing and the record is restored from the hub."""

    # A delete in the provider archives the hub contact (and so reaches other spokes that allow it).
    from_provider: bool = False
    # Archiving in the hub deletes the record in this provider.
    to_provider: bool = False


class Schedule(Model):
    interval_minutes: int = Field(default=15, ge=1, le=1440)


class SyncState(StrEnum):
    IN_PROGRESS = "in_progress"  # initial sync running (seed 004: orange)
    ACTIVE = "active"  # green
    PAUSED = "paused"  # grey
    ERROR = "error"  # red


class SyncCounts(Model):
    in_sync: int = Field(default=0, ge=0)
    excluded: int = Field(default=0, ge=0)
    failing: int = Field(default=0, ge=0)


class RecordError(Model):
    """The last error of one record that failed to sync (no contact data, only ids and codes)."""

    remote_id: Annotated[str, StringConstraints(max_length=512)] | None = None
    contact_id: Id | None = None
    code: Annotated[str, StringConstraints(max_length=100)]
    message: Annotated[str, StringConstraints(max_length=500)] = ""
    at: AwareDatetime = Field(default_factory=utcnow)


class SyncStatus(Model):
    state: SyncState = SyncState.IN_PROGRESS
    counts: SyncCounts = Field(default_factory=SyncCounts)
    last_error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    last_run_at: AwareDatetime | None = None
    progress_done: int = Field(default=0, ge=0)
    progress_total: int | None = Field(default=None, ge=0)
    record_errors: list[RecordError] = Field(default_factory=list, max_length=100)


class SyncSettings(Entity):
    kind = "sync"

    account_id: Id
    direction: Direction = Direction.BOTH
    objects: ObjectChoice = ObjectChoice.CONTACTS
    default_object: DefaultObject = DefaultObject.CONTACT
    scope: Scope = Field(default_factory=Scope)
    field_mapping: list[FieldRule] = Field(default_factory=list, max_length=200)
    conflict: ConflictPolicy = Field(default_factory=ConflictPolicy)
    auto_removal: AutoRemoval = Field(default_factory=AutoRemoval)
    schedule: Schedule = Field(default_factory=Schedule)
    # Mass-delete circuit breaker: when more than this share of the spoke's linked records
    # vanish in one run, the sync pauses with an error instead of propagating the deletes.
    mass_delete_threshold: float = Field(default=0.2, gt=0.0, le=1.0)
    # Set by a person resuming a sync the breaker paused: the next run applies the deletes.
    mass_delete_confirmed: bool = False
    # The scope changed: the next run reads everything again; records no longer in scope are
    # unlinked (not deleted, not restored) and new ones synced.
    rescope_pending: bool = False
    status: SyncStatus = Field(default_factory=SyncStatus)
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _mapping(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for rule in self.field_mapping:
            key = (rule.hub_field, rule.remote_field)
            if key in seen:
                raise ValueError(
                    f"field_mapping maps {rule.hub_field} to {rule.remote_field} more than once"
                )
            seen.add(key)
        return self

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "account", self.account_id
