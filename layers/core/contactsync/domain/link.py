"""A link: one hub contact <-> one record in one connected account."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow

RemoteId = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$")
]


def link_id(account_id: str, object_type: str, remote_id: str) -> str:
    """Deterministic, key-safe id: a retried pull finds the link it wrote before."""
    digest = hashlib.sha256(f"{account_id}\x00{object_type}\x00{remote_id}".encode()).hexdigest()
    return f"l-{digest[:40]}"


def stream_key(account_id: str, object_type: str) -> str:
    return f"{account_id}|{object_type}"


class Link(Entity):
    kind = "link"
    list_buckets = 16

    contact_id: Id
    account_id: Id
    # The provider's object: "person" (Google), "contact" (Graph, Aircall), "Contact", "Lead",
    # "Account" (Salesforce Person Account).
    object_type: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    remote_id: RemoteId
    # The provider's version of the record we last saw (etag, changeKey, SystemModstamp).
    remote_version: Annotated[str, StringConstraints(max_length=512)] | None = None
    # Fingerprint of the remote state we last read or wrote: a pull with the same fingerprint is
    # an echo of our own write; a push whose projection has it is skipped.
    fingerprint: Annotated[str, StringConstraints(max_length=128)] = ""
    # The canonical field values of that remote state (engine/canonical.py): a push sends only
    # the fields that differ from it.
    snapshot: dict[str, Any] = Field(default_factory=dict)
    # Provider references as last read: the record's owner (Salesforce OwnerId's user email)
    # and its company record (Salesforce AccountId), for scope rules and account linking.
    owner_ref: Annotated[str, StringConstraints(max_length=254)] | None = None
    company_ref: Annotated[str, StringConstraints(max_length=64)] | None = None
    tags: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    # The sync that created the remote record (delete-and-revert deletes only those).
    created_by_sync: Id | None = None
    # Address-book marker state (Outlook folder/category, Google label) as last seen.
    marked: bool = False
    # A create whose response was lost: the remote record may exist; never create it again
    # until the provider has been searched (Connector.find_created).
    pending_create: bool = False
    # The record lost one of its two markers (seed 003's category): the next push restores it.
    repair_marker: bool = False
    # The record was deleted in the provider and auto-removal is off: the next push re-creates
    # it there (seed 003). The link keeps what made the contact belong (marked, the sync that
    # created it) until the new record replaces it.
    restore: bool = False
    last_synced_at: AwareDatetime = Field(default_factory=utcnow)

    @classmethod
    def key(cls, account_id: str, object_type: str, remote_id: str) -> str:
        return link_id(account_id, object_type, remote_id)

    def to_restore(self) -> Link:
        """The placeholder that asks for the record to be re-created (see ``restore``)."""
        return self.model_copy(
            update={
                "id": link_id(self.account_id, "restore", self.contact_id),
                "remote_id": self.contact_id,
                "remote_version": None,
                "fingerprint": "",
                "snapshot": {},
                "restore": True,
                "repair_marker": False,
                "pending_create": False,
                "version": 0,
            }
        )

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "contact", self.contact_id
        yield "account", self.account_id
        if not self.restore:  # no remote record: nothing a full scan could miss
            yield "stream", stream_key(self.account_id, self.object_type)
        if self.pending_create:
            yield "pending", self.account_id
        if self.created_by_sync:
            yield "created_by", self.created_by_sync
