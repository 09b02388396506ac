"""The API's request and response bodies. Domain models are answered as they are where they
carry nothing secret (HubContact, SyncSettings, ChangeLogEntry, MergeSuggestion); accounts are
answered without their secret reference. Requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.changelog import ChangeLogEntry
from contactsync.domain.contact import ContactField, HubContact, PostalAddress, Visibility
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion
from contactsync.domain.org import Role, SharingSettings
from contactsync.domain.sync import (
    AutoRemoval,
    ConflictPolicy,
    DefaultObject,
    Direction,
    FieldRule,
    ObjectChoice,
    RecordError,
    Schedule,
    Scope,
    SyncCounts,
    SyncSettings,
    SyncState,
)

Text = Annotated[str, StringConstraints(max_length=255)]
IdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- me ---------------------------------------------------------------------------------------


class MeOut(BaseModel):
    org_id: str
    user_id: str
    email: str
    name: str
    role: Role
    sharing: SharingSettings
    organisation_users: int


class SharingPatch(In):
    email_contact_sync: bool | None = None
    share_activity: bool | None = None
    auto_share_content: bool | None = None


# ---- accounts ---------------------------------------------------------------------------------


class AccountOut(BaseModel):
    id: str
    provider: Provider
    owner_user_id: str
    address: str
    status: AccountStatus
    status_reason: str | None = None
    mail_history_days: int
    config: dict[str, str]
    created_at: datetime
    version: int
    webhook_url: str | None = Field(
        default=None, description="Where to point the provider's notifications (Salesforce)"
    )

    @classmethod
    def of(cls, account: ConnectedAccount, webhook_url: str | None = None) -> AccountOut:
        data = account.model_dump(exclude={"secret_ref", "org_id"})
        return cls(**data, webhook_url=webhook_url)


class AccountList(BaseModel):
    items: list[AccountOut]


class ConnectStart(In):
    login_hint: Annotated[str, StringConstraints(max_length=254)] | None = None
    label: Annotated[str, StringConstraints(min_length=1, max_length=254)] | None = Field(
        default=None, description="The account's name where the provider gives none (Aircall)"
    )


class ConnectStarted(BaseModel):
    authorization_url: str
    state: str
    expires_at: datetime


# Aircall's API ids and tokens are printable ASCII (they travel in a Basic auth header).
ApiKeyPart = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[!-~]+$")]


class AircallKeyConnect(In):
    api_id: ApiKeyPart
    api_token: ApiKeyPart
    address: Annotated[str, StringConstraints(min_length=1, max_length=254)] = Field(
        default="Aircall", description="The phone-system company's name"
    )


class Connected(BaseModel):
    account: AccountOut
    sync: SyncSettings | None = None


class Reconnect(In):
    api_id: ApiKeyPart | None = None
    api_token: ApiKeyPart | None = None


class Reconnected(BaseModel):
    account: AccountOut
    authorization_url: str | None = Field(
        default=None, description="Present when the provider must be asked again (OAuth)"
    )


class Deleted(BaseModel):
    id: str
    deleted: Literal[True] = True
    removed: dict[str, int] = Field(default_factory=dict)


# ---- syncs ------------------------------------------------------------------------------------


class SyncFields(In):
    direction: Direction | None = None
    objects: ObjectChoice | None = None
    default_object: DefaultObject | None = None
    scope: Scope | None = None
    field_mapping: Annotated[list[FieldRule], Field(max_length=200)] | None = None
    conflict: ConflictPolicy | None = None
    auto_removal: AutoRemoval | None = None
    schedule: Schedule | None = None
    mass_delete_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = None


class SyncCreate(SyncFields):
    account_id: IdStr


class SyncPatch(SyncFields):
    version: Annotated[int, Field(ge=0, description="The version you read (lost-update guard)")]


class SyncList(BaseModel):
    items: list[SyncSettings]


class Resume(In):
    confirm_mass_delete: bool = Field(
        default=False, description="Apply the deletes the mass-delete breaker held back"
    )


class SyncStatusOut(BaseModel):
    sync_id: str
    account_id: str
    provider: Provider
    account_status: AccountStatus
    account_status_reason: str | None
    state: SyncState
    counts: SyncCounts
    last_error: str | None
    last_run_at: datetime | None
    progress_done: int
    progress_total: int | None
    record_errors: list[RecordError]


class Planned(BaseModel):
    account_id: str
    kind: str
    contact_id: str | None
    remote_id: str | None
    fields: list[str]
    reason: str


class Preview(BaseModel):
    run_id: str
    spokes: dict[str, dict[str, Any]]
    planned: list[Planned]
    truncated: bool
    remote_writes: int
    hub_writes: int


class ProviderField(BaseModel):
    name: str
    label: str = ""
    type: str = ""
    updateable: bool = True


class StreamFields(BaseModel):
    stream: str
    source: Literal["describe", "default_mapping"]
    provider_fields: list[ProviderField]
    default_mapping: list[FieldRule]


class MappingStudio(BaseModel):
    sync_id: str
    hub_fields: list[ContactField]
    mapping: list[FieldRule]
    streams: list[StreamFields]


class MappingPut(In):
    version: Annotated[int, Field(ge=0)]
    field_mapping: Annotated[list[FieldRule], Field(max_length=200)]


class Queued(BaseModel):
    outcome: Literal["queued", "coalesced", "duplicate"]
    action: str


# ---- contacts ---------------------------------------------------------------------------------


class EmailIn(In):
    address: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    label: Annotated[str, StringConstraints(max_length=40)] = ""


class PhoneIn(In):
    raw: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: Annotated[str, StringConstraints(max_length=40)] = ""


class ContactFieldsIn(In):
    given_name: Text | None = None
    middle_name: Text | None = None
    family_name: Text | None = None
    emails: Annotated[list[EmailIn], Field(max_length=20)] | None = None
    phones: Annotated[list[PhoneIn], Field(max_length=20)] | None = Field(
        default=None,
        description="Any format; numbers without a country code use the organisation's region",
    )
    company: Text | None = None
    title: Text | None = None
    department: Text | None = None
    addresses: Annotated[list[PostalAddress], Field(max_length=5)] | None = None
    notes: Annotated[str, StringConstraints(max_length=32_000)] | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class ContactCreate(ContactFieldsIn):
    visibility: Visibility = Visibility.ORGANISATION


class ContactPatch(ContactFieldsIn):
    version: Annotated[int, Field(ge=0, description="The version you read (lost-update guard)")]


class ContactPage(BaseModel):
    items: list[HubContact]
    next_page_token: str | None = None


class LinkOut(BaseModel):
    account_id: str
    object_type: str
    remote_id: str
    remote_version: str | None
    last_synced_at: datetime
    pending_create: bool

    @classmethod
    def of(cls, link: Link) -> LinkOut:
        return cls(**link.model_dump(include=set(cls.model_fields)))


class ContactDetail(BaseModel):
    contact: HubContact
    links: list[LinkOut]


class History(BaseModel):
    items: list[ChangeLogEntry]


class MergeIn(In):
    other_id: IdStr


class SuggestionList(BaseModel):
    items: list[MergeSuggestion]
