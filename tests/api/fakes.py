"""A small in-memory connector for the routes that reach a provider (preview, mapping studio,
delete-and-revert), so those routes are tested without a sandbox's shape in the way."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ConnectorStats,
    ContactFields,
    Delete,
    Mutation,
    MutationResult,
    RemoteRecord,
)
from contactsync.domain.accounts import Provider
from contactsync.domain.contact import EmailAddress
from contactsync.domain.sync import FieldRule

STREAM = "Contact"


class FakeConnector(Connector):
    provider = Provider.SALESFORCE

    def __init__(self, describe: bool = True) -> None:
        self.stats = ConnectorStats()
        self.records: dict[str, RemoteRecord] = {}
        self.deleted: list[str] = []
        self.prepared = 0
        self._describe = describe

    def add(self, remote_id: str, given: str, email: str) -> None:
        self.records[remote_id] = RemoteRecord(
            remote_id=remote_id,
            object_type=STREAM,
            modified_at=datetime(2026, 1, 1, tzinfo=UTC),
            fields=ContactFields(given_name=given, emails=(EmailAddress(address=email),)),
        )

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def default_mapping(self, stream: str) -> list[FieldRule]:
        return [
            FieldRule(hub_field="given_name", remote_field="FirstName"),
            FieldRule(hub_field="emails", remote_field="Email"),
        ]

    def describe_fields(self, stream: str) -> list[dict[str, object]]:
        if not self._describe:
            raise AttributeError("no describe")
        return [
            {"name": "FirstName", "label": "First Name", "type": "string"},
            {"name": "Email", "label": "Email", "type": "email"},
            {"name": "Title", "label": "Title", "type": "string"},
        ]

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        yield ChangePage(list(self.records.values()), "c1", last=True, full_scan=cursor is None)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        results = []
        for mutation in mutations:
            if isinstance(mutation, Delete):
                self.deleted.append(mutation.remote_id)
                self.records.pop(mutation.remote_id, None)
            results.append(MutationResult(mutation, ok=True))
        return results

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        return None

    def prepare(self) -> None:
        self.prepared += 1
