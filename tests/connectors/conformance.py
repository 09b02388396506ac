"""The conformance suite every connector passes against its sandbox (meltano's tap tests, for
us): connect, page through, incremental, delete, expired cursor, throttling, per-item results,
lost create responses.

A connector's test module subclasses ``ConnectorConformance`` and provides a ``harness``
fixture that builds the real connector on the real client library, pointed at the sandbox
in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    RemoteRecord,
    Update,
)
from contactsync.domain.contact import EmailAddress, PhoneNumber
from contactsync_sandbox.core import SandboxApp, VirtualClock


@dataclass
class Harness:
    connector: Connector
    stream: str
    app: SandboxApp
    clock: VirtualClock
    # A session with the sandbox mounted, for admin calls.
    admin_session: requests.Session
    admin: str
    # Adds ``n`` records as a user of the provider would; returns their remote ids.
    seed: Callable[[int], list[str]]
    # Changes ``edit_field`` of a record to a value, as a user of the provider would.
    edit: Callable[[str, str], None]
    # Deletes a record as a user of the provider would.
    delete: Callable[[str], None]
    # The fault rule that makes the provider throttle the read endpoint once.
    throttle_rule: dict[str, Any]
    # The fault rule that drops the response of a create after committing it.
    drop_create_rule: dict[str, Any]
    # Seconds of virtual time after which the provider refuses a cursor (None: never).
    cursor_expiry_seconds: float | None = None
    # Whether incremental reads report deletes (False: only full scans reveal them).
    tombstones: bool = True
    # A text field this provider has (Aircall has no job title).
    edit_field: str = "title"
    extra: dict[str, Any] = field(default_factory=dict)

    def faults(self, *rules: dict[str, Any]) -> None:
        response = self.admin_session.post(self.admin + "faults", json={"rules": list(rules)})
        assert response.status_code == 200, response.text


def read_all(
    connector: Connector, stream: str, cursor: str | None
) -> tuple[list[RemoteRecord], str | None, list[ChangePage]]:
    records: list[RemoteRecord] = []
    pages: list[ChangePage] = []
    last_cursor = cursor
    for page in connector.read(stream, cursor):
        pages.append(page)
        records.extend(page.records)
        if page.cursor is not None:
            last_cursor = page.cursor
        if page.last:
            break
    return records, last_cursor, pages


def new_fields(i: int) -> ContactFields:
    return ContactFields(
        given_name=f"Zoë{i}",
        family_name="Müller",
        emails=(EmailAddress(address=f"zoe.mueller.{i}@example.com"),),
        phones=(PhoneNumber.parse(f"+1 415 555 {1000 + i:04d}", "US", "work"),),
        company="Dunder Mifflin",
        title="Buyer",
    )


class ConnectorConformance:
    """Inherit and provide the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> Harness:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def test_full_read_sees_every_record_once(self, harness: Harness) -> None:
        ids = harness.seed(7)
        records, cursor, pages = read_all(harness.connector, harness.stream, None)
        seen = [r.remote_id for r in records if not r.deleted]
        assert len(seen) == len(set(seen))  # no duplicate within one read
        assert set(ids) <= set(seen)
        assert pages[-1].last
        assert all(p.full_scan for p in pages)
        assert cursor is not None
        assert all(r.modified_at.tzinfo is not None for r in records)

    def test_incremental_read_returns_the_change(self, harness: Harness) -> None:
        ids = harness.seed(3)
        _, cursor, _ = read_all(harness.connector, harness.stream, None)
        harness.clock.advance(5)
        harness.edit(ids[1], "Regional Manager")
        harness.clock.advance(5)
        records, _, pages = read_all(harness.connector, harness.stream, cursor)
        changed = {r.remote_id: r for r in records if not r.deleted}
        assert ids[1] in changed
        assert getattr(changed[ids[1]].fields, harness.edit_field) == "Regional Manager"
        assert not any(p.full_scan for p in pages)

    def test_delete_is_reported(self, harness: Harness) -> None:
        ids = harness.seed(3)
        _, cursor, _ = read_all(harness.connector, harness.stream, None)
        harness.clock.advance(5)
        harness.delete(ids[0])
        harness.clock.advance(5)
        if harness.tombstones:
            records, _, _ = read_all(harness.connector, harness.stream, cursor)
            assert any(r.remote_id == ids[0] and r.deleted for r in records)
        else:
            records, _, _ = read_all(harness.connector, harness.stream, None)
            assert ids[0] not in {r.remote_id for r in records}

    def test_expired_cursor_raises_cursor_expired(self, harness: Harness) -> None:
        if harness.cursor_expiry_seconds is None:
            pytest.skip("this provider's cursors do not expire")
        harness.seed(2)
        _, cursor, _ = read_all(harness.connector, harness.stream, None)
        harness.clock.advance(harness.cursor_expiry_seconds + 60)
        with pytest.raises(CursorExpired):
            read_all(harness.connector, harness.stream, cursor)

    def test_throttling_is_honoured(self, harness: Harness) -> None:
        harness.seed(2)
        harness.faults(harness.throttle_rule)
        before = harness.clock.now()
        records, _, _ = read_all(harness.connector, harness.stream, None)
        assert records
        assert harness.connector.stats.throttled >= 1
        # No request before Retry-After expired: the (virtual) clock moved at least that far.
        waited = (harness.clock.now() - before).total_seconds()
        assert waited >= float(harness.throttle_rule.get("retry_after", 1))

    def test_apply_reports_a_result_per_item(self, harness: Harness) -> None:
        created = harness.connector.apply(
            harness.stream,
            [
                Create(hub_id=f"c-conf-{i}", fields=new_fields(i), object_type=harness.stream)
                for i in range(3)
            ],
        )
        assert [r.ok for r in created] == [True, True, True]
        ids = [r.remote_id for r in created]
        assert all(ids)
        assert len(set(ids)) == 3
        harness.clock.advance(5)
        updated = harness.connector.apply(
            harness.stream,
            [
                Update(
                    remote_id=str(ids[0]),
                    fields=ContactFields(**{harness.edit_field: "CFO"}),
                    object_type=harness.stream,
                    version=created[0].version,
                ),
                Delete(remote_id=str(ids[1]), object_type=harness.stream),
                Update(
                    remote_id=harness.extra.get("missing_id", "does-not-exist-404"),
                    fields=ContactFields(**{harness.edit_field: "x"}),
                    object_type=harness.stream,
                ),
            ],
        )
        assert [r.ok for r in updated] == [True, True, False]
        assert updated[2].error is not None
        assert updated[2].error.kind == "not_found"
        records, _, _ = read_all(harness.connector, harness.stream, None)
        by_id = {r.remote_id: r for r in records if not r.deleted}
        assert getattr(by_id[ids[0]].fields, harness.edit_field) == "CFO"
        assert by_id[ids[0]].fields.given_name == "Zoë0"  # untouched fields kept
        assert ids[1] not in by_id
        assert by_id[ids[2]].hub_id in (None, "c-conf-2")

    def test_lost_create_response_is_found_not_repeated(self, harness: Harness) -> None:
        harness.faults(harness.drop_create_rule)
        fields = new_fields(9)
        results = harness.connector.apply(
            harness.stream, [Create(hub_id="c-lost-1", fields=fields, object_type=harness.stream)]
        )
        harness.faults()
        assert not results[0].ok
        assert results[0].error is not None
        assert results[0].error.kind == "uncertain"
        harness.clock.advance(5)
        found = harness.connector.find_created(harness.stream, "c-lost-1", fields)
        assert found is not None
        records, _, _ = read_all(harness.connector, harness.stream, None)
        matches = [r for r in records if not r.deleted and r.fields.given_name == "Zoë9"]
        assert len(matches) == 1  # exactly one record was created
        assert found.remote_id == matches[0].remote_id
