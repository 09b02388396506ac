"""The contract between connectors and the engine.

A connector has two verbs: read changes since a cursor, page by page; and apply a batch of
mutations, reporting a result per item. Everything the engine needs to know about a remote
record is in ``RemoteRecord``; everything it asks a provider to do is a ``Mutation``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from contactsync.domain.accounts import Provider
from contactsync.domain.base import AwareDatetime, Model
from contactsync.domain.contact import (
    ContactField,
    EmailAddress,
    PhoneNumber,
    PostalAddress,
)
from contactsync.domain.sync import FieldRule, SyncSettings


class ContactFields(Model):
    """Hub-shaped values of the fields one source provides. ``None``: the source does not
    provide (or map) the field; an empty value: it provides it and it is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    emails: tuple[EmailAddress, ...] | None = None
    phones: tuple[PhoneNumber, ...] | None = None
    company: str | None = None
    title: str | None = None
    department: str | None = None
    addresses: tuple[PostalAddress, ...] | None = None
    notes: str | None = None

    def provided(self) -> dict[ContactField, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}  # type: ignore[misc]

    def only(self, fields: set[ContactField] | frozenset[ContactField]) -> ContactFields:
        # A subset of values this model already validated: nothing to check again.
        return ContactFields.model_construct(
            **{k: v for k, v in self.provided().items() if k in fields}  # type: ignore[arg-type]
        )


class RemoteRecord(Model):
    """A remote contact as the engine sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote_id: Annotated[str, Field(min_length=1, max_length=512)]
    object_type: str
    version: str | None = None
    # The source's own modification time: the timestamp last-writer-wins compares.
    modified_at: AwareDatetime
    fields: ContactFields = Field(default_factory=ContactFields)
    deleted: bool = False
    # Address books: whether the record carries the sync marker (Outlook folder or category,
    # Google label). None where the provider has no such notion.
    marked: bool | None = None
    # The hub contact id stamped on the record when we created it (external id, clientData,
    # extended property): a record that comes back after a lost create response links to it.
    hub_id: str | None = None
    # Provider references the engine may use: the owner (Salesforce OwnerId) and the company
    # record (Salesforce AccountId).
    owner_ref: str | None = None
    company_ref: str | None = None
    # Provider-evaluated scope tags (e.g. "listview:00B..." for the list views it belongs to).
    tags: frozenset[str] = frozenset()
    # The record is marked by one of two markers and the other is missing (seed 003: a contact
    # in the "Salesforce Contacts" folder whose category was removed): the engine asks for an
    # update that restores it.
    marker_repair: bool = False


@dataclass
class ChangePage:
    """One page of changes. ``cursor`` is what to store once the page is committed (None while
    the provider gives no resumable position mid-way). ``full_scan`` marks pages of a complete
    read: when its last page (``last``) is committed, linked records never seen are gone."""

    records: list[RemoteRecord]
    cursor: str | None
    last: bool
    full_scan: bool = False


@dataclass(frozen=True)
class Create:
    hub_id: str
    fields: ContactFields
    object_type: str
    marked: bool | None = None
    company_ref: str | None = None
    kind: Literal["create"] = "create"


@dataclass(frozen=True)
class Update:
    remote_id: str
    fields: ContactFields
    object_type: str
    version: str | None = (
        None  # etag / changeKey for a conditional write, when the provider has one
    )
    marked: bool | None = None
    company_ref: str | None = None
    kind: Literal["update"] = "update"


@dataclass(frozen=True)
class Delete:
    remote_id: str
    object_type: str
    kind: Literal["delete"] = "delete"


Mutation = Create | Update | Delete

ErrorKind = Literal[
    "throttled",  # retry after ``retry_after`` seconds
    "transient",  # 5xx, timeouts: retry later
    "uncertain",  # the request may have been applied (response lost): never blindly repeat a create
    "conflict",  # stale etag / version: re-read and merge
    "not_found",  # the record is gone
    "invalid",  # the provider refused the data (validation): a per-record error
    "auth",  # credentials expired or revoked: the account needs reconnecting
    "quota",  # a daily or hard quota is exhausted: stop this spoke for now
]


@dataclass(frozen=True)
class MutationError:
    kind: ErrorKind
    code: str
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class MutationResult:
    mutation: Mutation
    ok: bool
    remote_id: str | None = None
    version: str | None = None
    # The record as the provider stored it, when the response carries it (for the fingerprint).
    record: RemoteRecord | None = None
    error: MutationError | None = None


class ConnectorError(Exception):
    """A failure of a whole call (not of one record)."""

    kind: ErrorKind = "transient"

    def __init__(self, code: str, message: str = "", retry_after: float | None = None) -> None:
        self.code = code
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}" if message else code)


class Throttled(ConnectorError):
    kind: ErrorKind = "throttled"


class TransientError(ConnectorError):
    kind: ErrorKind = "transient"


class Uncertain(ConnectorError):
    """A non-idempotent request (a create) failed in a way that may have applied it: a timeout,
    a dropped connection, a 5xx. Never repeat it blindly; search first."""

    kind: ErrorKind = "uncertain"


class AuthError(ConnectorError):
    kind: ErrorKind = "auth"


class QuotaExhausted(ConnectorError):
    kind: ErrorKind = "quota"


class CursorExpired(ConnectorError):
    """The provider no longer accepts the cursor (EXPIRED_SYNC_TOKEN, 410 SyncStateNotFound,
    getDeleted's window passed): the engine restarts with a full scan and reconciles."""

    kind: ErrorKind = "transient"


class InvalidRequest(ConnectorError):
    kind: ErrorKind = "invalid"


@dataclass
class ConnectorStats:
    """Requests made, by purpose: benchmarks check incremental work does not grow with N."""

    requests: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    slept_seconds: float = 0.0

    def count(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1


class Connector(ABC):
    """One connected account's provider API."""

    provider: Provider
    stats: ConnectorStats

    @abstractmethod
    def streams(self) -> Sequence[str]:
        """The object streams this account syncs (e.g. ["Contact", "Lead"], ["contacts"])."""

    @abstractmethod
    def default_mapping(self, stream: str) -> list[FieldRule]:
        """The field mapping used when the sync settings define none."""

    @abstractmethod
    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        """Changes since ``cursor`` (None: a full scan), page by page, lazily. Raises
        CursorExpired when the provider refuses the cursor."""

    @abstractmethod
    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        """Applies the mutations in provider-sized batches; one result per mutation, in order."""

    @abstractmethod
    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        """After an uncertain create: the record it may have created (by the stamped hub id, or
        a search), so that the create is never repeated blindly."""

    def representable(self, fields: ContactFields) -> ContactFields:
        """What this provider can hold of ``fields``, as it would store them: Outlook keeps 3
        emails, a Salesforce Contact one email and a phone per label, Aircall only numbers in
        international form. Pure (no I/O): the engine plans and compares pushes through it, so
        a value the provider cannot hold is neither re-sent every round nor lost from the hub
        when the provider's copy comes back without it."""
        return fields

    def representable_as(self, object_type: str, fields: ContactFields) -> ContactFields:
        """``representable`` for a record of ``object_type``, for providers whose objects hold
        different fields (a Salesforce Lead has two phone slots and no department, a Contact
        four slots). Defaults to ``representable``."""
        return self.representable(fields)

    def configure(self, settings: SyncSettings) -> None:  # noqa: B027 - optional hook
        """Applies the sync settings that change what the provider is asked for (Salesforce's
        objects and scope become its streams and its query condition). Called by the service
        each time it builds its view of the spoke."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """One-time setup for a connected account (create the Outlook folder and category, the
        Google label, register webhooks). Idempotent."""


def newest(a: datetime, b: datetime) -> datetime:
    return a if a >= b else b
