"""The Salesforce connector against the Salesforce sandbox, in-process, on the virtual clock,
through the unpatched simple-salesforce.

The conformance suite first, then what is Salesforce's own: full reads by REST or Bulk API 2.0
result sets, SystemModstamp paging with boundary ids and the server-time signpost, getDeleted
and its window, expired query locators, sessions and grants, the daily API budget, sObject
Collections with per-item results and upserts on the hub id, account linking (seed 003),
Leads and Person Accounts, and the scopes (all, mine, a list view).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from contactsync.connectors.base import (
    AuthError,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    InvalidRequest,
    QuotaExhausted,
    RemoteRecord,
    Update,
)
from contactsync.connectors.salesforce import (
    NOT_PROVIDED,
    SalesforceConnector,
    from_account,
)
from contactsync.connectors.salesforce.errors import classify, item_error, item_kind
from contactsync.connectors.salesforce.paging import CursorState, list_view_parts
from contactsync.domain import ConnectedAccount, EmailAddress, PhoneNumber, PostalAddress, Provider
from contactsync_sandbox.core import VirtualClock, WSGITransport, mount_sandbox
from contactsync_sandbox.salesforce import SalesforceSandbox, ids
from tests.connectors.conformance import ConnectorConformance, Harness, read_all

BASE = "https://salesforce.sandbox.test/"
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
MISSING_CONTACT = ids.make_id("003", 999_999)
_numbers = itertools.count(1)


def contact_json(**overrides: Any) -> dict[str, Any]:
    """A Contact as a user types it in Salesforce; override any field."""
    n = next(_numbers)
    body: dict[str, Any] = {
        "attributes": {"type": "Contact"},
        "FirstName": f"Zoë{n}",
        "LastName": "Åkesson",
        "Email": f"zoe.akesson.{n}@example.com",
        "Phone": f"+1 415 555 {n % 10_000:04d}",
        "Title": "Einkaufsleiter",
    }
    body.update(overrides)
    return body


def hub_fields(n: int, **overrides: Any) -> ContactFields:
    values: dict[str, Any] = {
        "given_name": f"Jim{n}",
        "family_name": "Halpert",
        "emails": (EmailAddress(address=f"jim.{n}@dundermifflin.com", label="work"),),
        "phones": (PhoneNumber.parse(f"+1 570 555 {n % 10_000:04d}", "US", "work"),),
        "title": "Sales",
    }
    values.update(overrides)
    return ContactFields(**values)


def account(**config: str) -> ConnectedAccount:
    return ConnectedAccount(
        org_id="org-a",
        id="acc-sf",
        provider=Provider.SALESFORCE,
        owner_user_id="u-1",
        address="admin@example.com",
        config=config,
    )


@dataclass
class Env:
    """The sandbox, our connector on it, and a Salesforce user (the rep) acting through the
    REST API with a session of their own."""

    app: SalesforceSandbox
    clock: VirtualClock
    connector: SalesforceConnector
    user: requests.Session
    config: dict[str, Any]
    rotated: list[dict[str, str]] = field(default_factory=list)

    @property
    def admin(self) -> str:
        return str(self.config["admin"])

    @property
    def rest(self) -> str:
        return f"{self.config['instance_url']}/services/data/v59.0"

    def seed(self, records: list[dict[str, Any]]) -> list[str]:
        response = self.user.post(self.admin + "seed", json={"records": records})
        assert response.status_code == 200, response.text
        created: dict[str, list[str]] = response.json()["created"]
        return [rid for batch in created.values() for rid in batch]

    def seed_n(self, n: int, **overrides: Any) -> list[str]:
        return self.seed([contact_json(**overrides) for _ in range(n)])

    def quotas(self, **quotas: Any) -> None:
        response = self.user.post(self.admin + "faults", json={"rules": [], "quotas": quotas})
        assert response.status_code == 200, response.text

    def faults(self, *rules: dict[str, Any]) -> None:
        response = self.user.post(self.admin + "faults", json={"rules": list(rules)})
        assert response.status_code == 200, response.text

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST call as the rep, who logs in again when their session timed out."""
        response = self.user.request(method, f"{self.rest}{path}", **kwargs)
        if response.status_code == 401:
            self.user.headers["Authorization"] = (
                f"Bearer {self.app.issue_session('rep@example.com')}"
            )
            response = self.user.request(method, f"{self.rest}{path}", **kwargs)
        return response

    def edit(self, record_id: str, sobject: str = "Contact", **body: Any) -> None:
        response = self.call("PATCH", f"/sobjects/{sobject}/{record_id}", json=body)
        assert response.status_code == 204, response.text

    def delete(self, record_id: str, sobject: str = "Contact") -> None:
        response = self.call("DELETE", f"/sobjects/{sobject}/{record_id}")
        assert response.status_code == 204, response.text

    def get(self, record_id: str, sobject: str = "Contact") -> dict[str, Any]:
        response = self.call("GET", f"/sobjects/{sobject}/{record_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def query(self, soql: str) -> list[dict[str, Any]]:
        response = self.call("GET", "/query", params={"q": soql})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    def list_view(self, **body: Any) -> str:
        response = self.user.post(self.admin + "listviews", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def rebuild(self, secrets: dict[str, str] | None = None, **config: str) -> SalesforceConnector:
        """Another connector for the same org (a new run, another config)."""
        self.connector = connect(self.app, self.clock, self.rotated, config, secrets=secrets)
        return self.connector


def secrets_of(app: SalesforceSandbox) -> dict[str, str]:
    cfg = app.client_config()
    return {
        "client_id": cfg["client_id"],
        "client_secret": cfg["client_secret"],
        "refresh_token": cfg["refresh_token"],
    }


def connect(
    app: SalesforceSandbox,
    clock: VirtualClock,
    rotated: list[dict[str, str]],
    config: dict[str, str],
    *,
    secrets: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> SalesforceConnector:
    session = session or mount_sandbox(requests.Session(), BASE, app)
    cfg = app.client_config()
    settings = {"instance_url": cfg["instance_url"], "token_url": cfg["token_url"], **config}
    return from_account(
        account(**settings),
        secrets if secrets is not None else secrets_of(app),
        session=session,
        clock=clock,
        on_secret_rotated=rotated.append,
    )


def make_env(quotas: dict[str, Any] | None = None, **config: str) -> Env:
    clock = VirtualClock(START)
    app = SalesforceSandbox(clock, seed=7)
    if quotas:
        app.configure_quotas(quotas)
    user = mount_sandbox(requests.Session(), BASE, app)
    user.headers["Authorization"] = f"Bearer {app.issue_session('rep@example.com')}"
    rotated: list[dict[str, str]] = []
    connector = connect(app, clock, rotated, config)
    return Env(app, clock, connector, user, app.client_config(), rotated)


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait is on the virtual clock: a real sleep (simple-salesforce's bulk helpers
    have them) fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} real seconds")

    monkeypatch.setattr(time, "sleep", refuse)


def ids_of(records: list[RemoteRecord]) -> list[str]:
    return [r.remote_id for r in records if not r.deleted]


def by_id(records: list[RemoteRecord]) -> dict[str, RemoteRecord]:
    return {r.remote_id: r for r in records if not r.deleted}


# ---- the conformance suite ----------------------------------------------------------------------


class TestSalesforceConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        env = make_env()

        def delete(remote_id: str) -> None:
            env.delete(remote_id)
            # getDeleted covers whole minutes only (latestDateCovered trails the clock to
            # the minute, in the sandbox as in a real org): a delete is reported once the
            # minute it happened in is over.
            env.advance(60)

        return Harness(
            connector=env.connector,
            stream="Contact",
            app=env.app,
            clock=env.clock,
            admin_session=env.user,
            admin=env.admin,
            seed=env.seed_n,
            edit=lambda remote_id, value: env.edit(remote_id, Title=value),
            delete=delete,
            # REQUEST_LIMIT_EXCEEDED while the day's allocation is not used up: the
            # concurrent-request limit. No Retry-After: the connector waits its back-off.
            throttle_rule={"kind": "throttle", "path": "/query/?$", "method": "GET", "times": 1},
            drop_create_rule={
                "kind": "drop_after_commit",
                "path": "/composite/sobjects/Contact/Contactsync_Id__c$",
                "method": "PATCH",
                "times": 1,
            },
            cursor_expiry_seconds=timedelta(days=15).total_seconds(),
            tombstones=True,
            edit_field="title",
            extra={"missing_id": MISSING_CONTACT},
        )


# ---- full reads ---------------------------------------------------------------------------------


def test_a_small_full_read_is_one_rest_query_in_modstamp_order(env: Env) -> None:
    # Given 450 contacts, read 200 a page
    env = make_env(query_batch_size="200")
    created = env.seed_n(450)
    # When everything is read
    records, cursor, pages = read_all(env.connector, "Contact", None)
    # Then each comes once, in pages of a full scan, and no bulk job was made
    assert sorted(ids_of(records)) == sorted(created)
    assert all(p.full_scan for p in pages)
    assert [len(p.records) for p in pages] == [200, 200, 50, 0]
    stats = env.connector.stats.by_endpoint
    assert "bulk.job" not in stats
    assert stats["query.more"] == 2
    # and the final cursor starts at the server's clock, not ours
    assert cursor is not None
    state = CursorState.load(cursor)
    assert state.since == int(START.timestamp()) == state.deleted_from
    assert state.seen == ()


def test_a_large_full_read_streams_bulk_result_sets_one_locator_at_a_time() -> None:
    # Given more contacts than the bulk threshold, and result sets of 4 records
    env = make_env(bulk_threshold="5", bulk_max_records="4")
    created = env.seed_n(10)
    # When everything is read
    records, cursor, pages = read_all(env.connector, "Contact", None)
    # Then a Bulk API 2.0 job gave them, one page per result set, polled on the virtual
    # clock (no real sleep: the fixture forbids it)
    assert sorted(ids_of(records)) == sorted(created)
    assert [len(p.records) for p in pages] == [4, 4, 2]
    assert all(p.full_scan for p in pages)
    assert pages[-1].last
    stats = env.connector.stats.by_endpoint
    assert stats["bulk.results"] == 3
    assert "query.more" not in stats
    # and the rows came as the REST query gives them: company, owner, hub id
    first = by_id(records)[created[0]]
    assert str(first.fields.given_name).startswith("Zoë")
    assert first.owner_ref == "admin@example.com"
    assert first.modified_at.tzinfo is not None
    assert CursorState.load(str(cursor)).bulk is None


def test_a_bulk_read_stopped_midway_resumes_at_its_locator() -> None:
    env = make_env(bulk_threshold="5", bulk_max_records="4")
    created = env.seed_n(10)
    # Given a full read that stopped after its first result set was committed
    pages = env.connector.read("Contact", None)
    first = next(pages)
    assert CursorState.load(str(first.cursor)).bulk is not None
    # When the next run reads from that cursor
    rest, _, resumed = read_all(env.connector, "Contact", first.cursor)
    # Then it reads the remaining sets of the same job (not a full scan: the first set is
    # not in this run's view), and together they are everything once
    assert not any(p.full_scan for p in resumed)
    assert sorted(ids_of(first.records) + ids_of(rest)) == sorted(created)


def test_a_refused_bulk_job_falls_back_to_the_rest_query() -> None:
    # Given an org that has used up its bulk query jobs for the day
    env = make_env({"bulk_query_jobs_per_day": 0}, bulk_threshold="2")
    created = env.seed_n(5)
    # When everything is read, then the REST query gives it all
    records, _, pages = read_all(env.connector, "Contact", None)
    assert sorted(ids_of(records)) == sorted(created)
    assert all(p.full_scan for p in pages)
    assert "bulk.results" not in env.connector.stats.by_endpoint


# ---- incremental reads --------------------------------------------------------------------------


def test_records_sharing_a_second_are_read_once_across_a_checkpoint() -> None:
    # Given a synced org, then 450 contacts written in one second by a data load
    env = make_env(query_batch_size="200")
    _, cursor, _ = read_all(env.connector, "Contact", None)
    stamp = START + timedelta(minutes=30)
    loaded = stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    env.advance(3600)
    created = env.seed_n(450, SystemModstamp=loaded, LastModifiedDate=loaded)
    # When an incremental read stops after its first page (200) was committed
    pages = env.connector.read("Contact", cursor)
    first = next(pages)
    # Then its checkpoint names the ids read at the boundary second
    assert first.cursor is not None
    checkpoint = CursorState.load(first.cursor)
    assert checkpoint.since == int(stamp.timestamp())
    assert set(checkpoint.seen) == set(ids_of(first.records))
    assert len(checkpoint.seen) == 200
    # and the next read from it skips exactly those: every record once in all
    rest, _, _ = read_all(env.connector, "Contact", first.cursor)
    seen = ids_of(first.records) + ids_of(rest)
    assert len(seen) == len(set(seen)) == 450
    assert set(seen) == set(created)


def test_changes_made_while_a_read_pages_are_in_the_next_read() -> None:
    # Given 450 contacts and a full read, 200 a page, under way
    env = make_env(query_batch_size="200")
    created = env.seed_n(450, SystemModstamp="2026-02-01T08:00:00.000+0000")
    env.advance(120)
    pages = env.connector.read("Contact", None)
    first = next(pages)
    # When, while it runs, a user edits a record it read and one it has not read yet, and
    # adds a contact (not in the query's snapshot)
    read_one = first.records[0].remote_id
    unread = next(r for r in created if r not in ids_of(first.records))
    env.advance(5)
    env.edit(read_one, Title="Edited while read")
    env.edit(unread, Title="Edited too")
    [newcomer] = env.seed_n(1)
    *_, last = pages
    assert last.last
    # Then the next read, from where this one ended, has all three
    env.advance(60)
    records, _, _ = read_all(env.connector, "Contact", last.cursor)
    changed = by_id(records)
    assert changed[read_one].fields.title == "Edited while read"
    assert changed[unread].fields.title == "Edited too"
    assert newcomer in changed


def test_an_expired_query_locator_restarts_the_query_where_the_read_was() -> None:
    # Given 450 contacts spread over time and a read 200 a page
    env = make_env(query_batch_size="200")
    created = env.seed(
        [
            contact_json(SystemModstamp=f"2026-02-{1 + i // 20:02d}T08:{i % 20:02d}:00.000+0000")
            for i in range(450)
        ]
    )
    pages = env.connector.read("Contact", None)
    first = next(pages)
    # When the engine takes more than 15 minutes over a page (the query cursor expires)
    env.advance(16 * 60)
    rest = [r for page in pages for r in page.records]
    # Then the read went on from where it was, each record once
    seen = ids_of(first.records) + ids_of(rest)
    assert len(seen) == len(set(seen)) == 450
    assert set(seen) == set(created)
    assert env.connector.stats.by_endpoint["query"] >= 3  # count, query, and the restart


def test_deletes_come_after_the_changes_and_an_undeleted_record_is_not_one(env: Env) -> None:
    a, b, c = env.seed_n(3)
    _, cursor, _ = read_all(env.connector, "Contact", None)
    env.advance(30)
    # Given a user who deletes two contacts and restores one from the recycle bin
    env.delete(a)
    env.delete(b)
    env.advance(5)
    with env.app.lock:
        env.app.org.undelete("Contact", b)
    env.edit(c, Title="Still here")
    env.advance(60)
    # When the next read runs
    records, _, pages = read_all(env.connector, "Contact", cursor)
    # Then one delete is reported, on the last page, and the restored record is alive
    deleted = [r for r in records if r.deleted]
    assert [r.remote_id for r in deleted] == [a]
    assert pages[-1].records == deleted
    assert {b, c} <= set(ids_of(records))
    assert deleted[0].modified_at.tzinfo is not None


def test_a_cursor_older_than_the_recycle_bin_is_refused() -> None:
    # Given an org that empties its recycle bin after a day, and a cursor from before a
    # delete that was purged since
    env = make_env({"recycle_bin_days": 1})
    a, _ = env.seed_n(2)
    _, cursor, _ = read_all(env.connector, "Contact", None)
    env.advance(60)
    env.delete(a)
    env.advance(2 * 86_400)
    # When an incremental read starts from it, then the engine is told to read everything
    with pytest.raises(CursorExpired) as raised:
        read_all(env.connector, "Contact", cursor)
    assert raised.value.code == "deletes_purged"


def test_a_changed_scope_needs_a_full_read(env: Env) -> None:
    env.seed_n(2)
    _, cursor, _ = read_all(env.connector, "Contact", None)
    mine = env.rebuild(scope="mine")
    with pytest.raises(CursorExpired) as raised:
        read_all(mine, "Contact", cursor)
    assert raised.value.code == "scope_changed"


def test_an_unreadable_cursor_means_a_full_read(env: Env) -> None:
    with pytest.raises(CursorExpired):
        read_all(env.connector, "Contact", "not json")


def test_pages_are_fetched_as_they_are_consumed() -> None:
    env = make_env(query_batch_size="200")
    env.seed_n(450)
    pages = env.connector.read("Contact", None)
    next(pages)
    assert "query.more" not in env.connector.stats.by_endpoint
    next(pages)
    assert env.connector.stats.by_endpoint["query.more"] == 1


def test_an_idle_incremental_read_costs_two_requests(env: Env) -> None:
    # Given contacts written in the minute of the full read: stamped at or after its
    # signpost, so the next read takes them again (the engine sees echoes)
    env.seed_n(5)
    _, cursor, _ = read_all(env.connector, "Contact", None)
    env.advance(900)
    again, cursor, _ = read_all(env.connector, "Contact", cursor)
    assert len(again) == 5
    # When nothing changes, then the next read finds nothing, with getDeleted and the query
    # only (describe and owners are kept by the connector)
    env.advance(900)
    before = env.connector.stats.requests
    records, _, _ = read_all(env.connector, "Contact", cursor)
    assert records == []
    assert env.connector.stats.requests - before == 2


# ---- writes -------------------------------------------------------------------------------------


def creates(n: int, start: int = 0, **overrides: Any) -> list[Create]:
    return [
        Create(hub_id=f"c-hub-{i}", fields=hub_fields(i, **overrides), object_type="Contact")
        for i in range(start, start + n)
    ]


def test_creates_go_200_a_call_as_upserts_on_the_hub_id(env: Env) -> None:
    # When 450 contacts are created
    results = env.connector.apply("Contact", creates(450))
    # Then three collection calls made them, each stamped with its hub id
    assert all(r.ok for r in results)
    assert env.connector.stats.by_endpoint["composite.upsert"] == 3
    rows = env.query("SELECT Id, Contactsync_Id__c FROM Contact")
    assert len(rows) == 450
    stamped = {r["Id"]: r["Contactsync_Id__c"] for r in rows}
    assert stamped[str(results[7].remote_id)] == "c-hub-7"


def test_a_create_sent_twice_makes_one_record(env: Env) -> None:
    # Given a create that went through
    [first] = env.connector.apply("Contact", creates(1))
    # When the engine sends it again (its answer was lost, and the record not found yet)
    env.advance(5)
    [again] = env.connector.apply("Contact", creates(1, title="Sales, again"))
    # Then the upsert updated the record instead of making a twin
    assert first.ok
    assert again.ok
    assert again.remote_id == first.remote_id
    assert len(env.query("SELECT Id FROM Contact")) == 1
    assert env.get(str(first.remote_id))["Title"] == "Sales, again"


def test_a_lost_create_answer_is_uncertain_for_the_whole_call(env: Env) -> None:
    env.faults(
        {
            "kind": "drop_after_commit",
            "path": "/composite/sobjects/Contact/Contactsync_Id__c$",
            "method": "PATCH",
            "times": 1,
        }
    )
    results = env.connector.apply("Contact", creates(3))
    assert [r.error.kind if r.error else None for r in results] == ["uncertain"] * 3
    # and none of them is repeated blindly: only one call was made
    assert env.connector.stats.by_endpoint["composite.upsert"] == 1
    found = env.connector.find_created("Contact", "c-hub-1", hub_fields(1))
    assert found is not None
    assert found.hub_id == "c-hub-1"


def test_a_server_error_on_a_create_is_uncertain_and_on_an_update_is_retried(env: Env) -> None:
    [created] = env.connector.apply("Contact", creates(1))
    env.faults({"kind": "error", "status": 503, "path": "/composite/sobjects", "times": 1})
    [update] = env.connector.apply(
        "Contact",
        [
            Update(
                remote_id=str(created.remote_id),
                fields=ContactFields(title="VP"),
                object_type="Contact",
            )
        ],
    )
    assert update.ok
    env.faults({"kind": "error", "status": 500, "path": "/composite/sobjects", "times": 1})
    [create] = env.connector.apply("Contact", creates(1, start=5))
    assert create.error is not None
    assert create.error.kind == "uncertain"


def test_per_item_results_map_salesforce_status_codes(env: Env) -> None:
    # Given a contact that is deleted, and a duplicate rule on Email
    [gone] = env.seed_n(1)
    env.delete(gone)
    response = env.user.post(
        env.admin + "duplicate_rules", json={"sobject": "Contact", "field": "Email"}
    )
    assert response.status_code == 200
    [taken] = env.seed_n(1, Email="jim.2@dundermifflin.com")
    # When a batch has a fine record, a too long title, a duplicate and an update of the
    # deleted contact
    too_long = "Assistant to the Regional Manager " * 5
    results = env.connector.apply(
        "Contact",
        [
            *creates(1),
            Create(hub_id="c-long", fields=hub_fields(9, title=too_long), object_type="Contact"),
            *creates(1, start=2),
            Update(remote_id=gone, fields=ContactFields(title="x"), object_type="Contact"),
        ],
    )
    # Then each has its own result, in order
    assert [r.ok for r in results] == [True, False, False, False]
    errors = [r.error for r in results[1:]]
    assert [(e.kind, e.code) for e in errors if e] == [
        ("invalid", "STRING_TOO_LONG"),
        ("invalid", "DUPLICATES_DETECTED"),
        ("not_found", "ENTITY_IS_DELETED"),
    ]
    # and no contact data is in them (Salesforce's messages quote the value)
    assert all("Assistant" not in (e.message if e else "") for e in errors)
    assert next(e.message for e in errors if e) == "fields: Title"
    assert taken


def test_deleting_a_record_already_gone_succeeds(env: Env) -> None:
    a, b = env.seed_n(2)
    env.delete(a)
    results = env.connector.apply(
        "Contact",
        [
            Delete(remote_id=a, object_type="Contact"),
            Delete(remote_id=b, object_type="Contact"),
            Delete(remote_id=MISSING_CONTACT, object_type="Contact"),
        ],
    )
    assert [r.ok for r in results] == [True, True, True]
    assert env.query("SELECT Id FROM Contact") == []


def test_an_update_sends_only_the_fields_it_carries(env: Env) -> None:
    [rid] = env.seed_n(1, MobilePhone="+1 415 555 7777", Department="Sales")
    [result] = env.connector.apply(
        "Contact",
        [
            Update(
                remote_id=rid,
                fields=ContactFields(
                    title="CFO",
                    addresses=(PostalAddress(street="1725 Slough Ave", city="Scranton"),),
                ),
                object_type="Contact",
            )
        ],
    )
    assert result.ok
    stored = env.get(rid)
    assert (stored["Title"], stored["MailingCity"], stored["MailingStreet"]) == (
        "CFO",
        "Scranton",
        "1725 Slough Ave",
    )
    assert (stored["MobilePhone"], stored["Department"]) == ("+1 415 555 7777", "Sales")


def test_phones_fill_slots_by_label(env: Env) -> None:
    phones = (
        PhoneNumber.parse("+1 570 555 0101", "US", "mobile"),
        PhoneNumber.parse("+1 570 555 0102", "US", "work"),
        PhoneNumber.parse("+1 570 555 0103", "US", "work"),
        PhoneNumber.parse("+1 570 555 0104", "US", "home"),
        PhoneNumber.parse("+1 570 555 0105", "US", "fax"),
    )
    [result] = env.connector.apply("Contact", creates(1, phones=phones))
    stored = env.get(str(result.remote_id))
    # the second work number takes the free Other slot; the fifth has no slot left
    assert (stored["Phone"], stored["MobilePhone"], stored["HomePhone"], stored["OtherPhone"]) == (
        "+15705550102",
        "+15705550101",
        "+15705550104",
        "+15705550103",
    )
    # and an update of the phones clears the slots no number takes
    [updated] = env.connector.apply(
        "Contact",
        [
            Update(
                remote_id=str(result.remote_id),
                fields=ContactFields(phones=phones[:1]),
                object_type="Contact",
            )
        ],
    )
    assert updated.ok
    stored = env.get(str(result.remote_id))
    assert (stored["Phone"], stored["MobilePhone"], stored["OtherPhone"]) == (
        None,
        "+15705550101",
        None,
    )


# ---- account linking (seed 003) -----------------------------------------------------------------


def account_json(name: str, created: str) -> dict[str, Any]:
    return {"attributes": {"type": "Account"}, "Name": name, "CreatedDate": created}


def test_a_contact_is_linked_to_the_earliest_account_of_its_exact_company(env: Env) -> None:
    # Given two accounts named like the company (different case), and a third containing it
    newer, older, _ = env.seed(
        [
            account_json("DUNDER MIFFLIN", "2025-06-01T00:00:00.000+0000"),
            account_json("Dunder Mifflin", "2024-01-01T00:00:00.000+0000"),
            account_json("Dunder Mifflin Paper", "2023-01-01T00:00:00.000+0000"),
        ]
    )
    # When a contact of "Dunder Mifflin" is created
    [result] = env.connector.apply("Contact", creates(1, company="Dunder Mifflin"))
    # Then it is linked to the one created first, and reads back with its name
    assert env.get(str(result.remote_id))["AccountId"] == older
    records, _, _ = read_all(env.connector, "Contact", None)
    [record] = records
    assert (record.fields.company, record.company_ref) == ("Dunder Mifflin", older)
    assert newer != older


def test_a_unique_substring_match_links_and_an_ambiguous_one_does_not(env: Env) -> None:
    [vance] = env.seed([account_json("Vance Refrigeration Inc.", "2024-01-01T00:00:00.000+0000")])
    env.seed(
        [
            account_json("Sabre Corporation", "2024-01-01T00:00:00.000+0000"),
            account_json("Sabre Pyramid", "2024-01-02T00:00:00.000+0000"),
        ]
    )
    results = env.connector.apply(
        "Contact",
        [
            *creates(1, company="Vance Refrigeration"),
            *creates(1, start=1, company="Sabre"),
            *creates(1, start=2, company="Initech"),
            *creates(1, start=3, company="vance refrigeration"),
        ],
    )
    linked = [env.get(str(r.remote_id))["AccountId"] for r in results]
    assert linked == [vance, None, None, vance]
    # one IN query for the exact names, then one LIKE per company without an exact match
    assert env.connector.stats.by_endpoint["query"] == 1 + 3


def test_account_lookups_are_cached_for_a_while(env: Env) -> None:
    env.seed([account_json("Dunder Mifflin", "2024-01-01T00:00:00.000+0000")])
    env.connector.apply("Contact", creates(1, company="Dunder Mifflin"))
    queries = env.connector.stats.by_endpoint["query"]
    env.connector.apply("Contact", creates(1, start=1, company="dunder  mifflin"))
    assert env.connector.stats.by_endpoint["query"] == queries
    env.advance(601)
    env.connector.apply("Contact", creates(1, start=2, company="Dunder Mifflin"))
    assert env.connector.stats.by_endpoint["query"] == queries + 1


def test_a_company_matching_no_account_never_unlinks_a_contact(env: Env) -> None:
    [acme] = env.seed([account_json("Acme", "2024-01-01T00:00:00.000+0000")])
    [rid] = env.seed_n(1, AccountId=acme)
    [result] = env.connector.apply(
        "Contact",
        [Update(remote_id=rid, fields=ContactFields(company="Nowhere Ltd"), object_type="Contact")],
    )
    assert result.ok
    assert env.get(rid)["AccountId"] == acme


def test_a_contact_without_an_account_has_no_company_to_tell(env: Env) -> None:
    env.seed_n(1)
    [record], _, _ = read_all(env.connector, "Contact", None)
    assert record.fields.company is None  # the hub's company (from elsewhere) is left alone
    assert record.company_ref is None


# ---- Leads and Person Accounts ----------------------------------------------------------------


def test_a_lead_gets_salesforces_placeholders_and_reads_them_back_empty() -> None:
    env = make_env(streams="Contact,Lead")
    fields = ContactFields(
        given_name="Ryan",
        emails=(EmailAddress(address="ryan@example.com"),),
        addresses=(PostalAddress(street="1 Main St", city="Scranton", region="PA"),),
        title="Temp",
    )
    no_name = ContactFields(given_name="", phones=(PhoneNumber.parse("+1 570 555 0199", "US"),))
    [lead, bare] = env.connector.apply(
        "Lead",
        [
            Create(hub_id="c-lead", fields=fields, object_type="Lead"),
            Create(hub_id="c-bare", fields=no_name, object_type="Lead"),
        ],
    )
    assert lead.ok
    assert bare.ok
    stored = env.get(str(lead.remote_id), "Lead")
    assert (stored["LastName"], stored["Company"], stored["City"], stored["State"]) == (
        "ryan",
        NOT_PROVIDED,
        "Scranton",
        "PA",
    )
    assert env.get(str(bare.remote_id), "Lead")["LastName"] == NOT_PROVIDED
    records, _, _ = read_all(env.connector, "Lead", None)
    read = by_id(records)
    assert read[str(lead.remote_id)].fields.company == ""
    assert read[str(lead.remote_id)].fields.family_name == "ryan"
    assert read[str(bare.remote_id)].fields.family_name == ""
    assert read[str(lead.remote_id)].hub_id == "c-lead"
    assert read[str(lead.remote_id)].fields.department is None  # a Lead has none


def person_account_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "attributes": {"type": "Account"},
        "RecordTypeId": ids.make_id("012", 2),
        "FirstName": "Søren",
        "LastName": "Kierkegård",
        "PersonEmail": "soren@example.dk",
        "PersonMobilePhone": "+45 20 12 34 56",
        "PersonTitle": "Philosopher",
        "PersonMailingCity": "København",
        "BillingCity": "Aarhus",
    }
    body.update(overrides)
    return body


def test_person_accounts_are_their_own_stream_and_their_twins_are_left_out() -> None:
    # Given a person account, a business account and a contact
    env = make_env(person_accounts="true")
    [person] = env.seed([person_account_json()])
    env.seed([account_json("Initech", "2024-01-01T00:00:00.000+0000")])
    [contact] = env.seed_n(1)
    # When both streams are read
    assert env.connector.streams() == ["Contact", "Lead", "Account"]
    contacts, _, _ = read_all(env.connector, "Contact", None)
    accounts, _, _ = read_all(env.connector, "Account", None)
    # Then the person is read once, as an Account, with its person fields
    assert ids_of(contacts) == [contact]
    [record] = accounts
    assert record.remote_id == person
    assert record.fields.emails == (EmailAddress(address="soren@example.dk", label="work"),)
    assert record.fields.title == "Philosopher"
    assert [p.label for p in record.fields.phones or ()] == ["mobile"]
    assert record.fields.addresses is not None
    assert record.fields.addresses[0].city == "København"  # PersonMailing, not Billing
    assert record.fields.company is None
    # and writes go to the Account, which Salesforce mirrors onto its twin
    [result] = env.connector.apply(
        "Account",
        [Update(remote_id=person, fields=ContactFields(title="Author"), object_type="Account")],
    )
    assert result.ok
    [twin] = env.query("SELECT Title FROM Contact WHERE IsPersonAccount = true")
    assert twin["Title"] == "Author"


def test_a_person_account_is_created_with_the_person_record_type() -> None:
    env = make_env(person_accounts="true")
    [result] = env.connector.apply(
        "Account", [Create(hub_id="c-pa", fields=hub_fields(1), object_type="Account")]
    )
    assert result.ok
    stored = env.get(str(result.remote_id), "Account")
    assert (stored["IsPersonAccount"], stored["PersonEmail"], stored["PersonTitle"]) == (
        True,
        "jim.1@dundermifflin.com",
        "Sales",
    )


def test_an_org_without_the_external_id_field_inserts_and_searches(env: Env) -> None:
    plain = env.rebuild(external_id_field="")
    [result] = plain.apply("Contact", creates(1))
    assert result.ok
    assert plain.stats.by_endpoint["composite.create"] == 1
    found = plain.find_created("Contact", "c-hub-0", hub_fields(0))
    assert found is not None
    assert (found.remote_id, found.hub_id) == (result.remote_id, None)


# ---- sessions and grants ------------------------------------------------------------------------


def test_an_expired_session_is_renewed_once_and_the_request_repeated(env: Env) -> None:
    env.seed_n(2)
    _, cursor, _ = read_all(env.connector, "Contact", None)
    # Given a session idle for longer than the org's timeout
    env.advance(3 * 3600)
    # When the connector reads again, then a new session answers it
    records, _, _ = read_all(env.connector, "Contact", cursor)
    assert records
    assert env.connector.stats.by_endpoint["oauth.token"] == 2


def test_a_revoked_refresh_token_is_an_auth_error(env: Env) -> None:
    token = secrets_of(env.app)["refresh_token"]
    assert (
        env.user.post(
            f"{env.config['instance_url']}/services/oauth2/revoke", data={"token": token}
        ).status_code
        == 200
    )
    with pytest.raises(AuthError) as raised:
        read_all(env.connector, "Contact", None)
    assert raised.value.code == "invalid_grant"
    assert token not in str(raised.value)


def test_a_session_refused_twice_is_an_auth_error(env: Env) -> None:
    env.faults({"kind": "error", "status": 401, "path": "/services/data/", "times": 5})
    with pytest.raises(AuthError) as raised:
        read_all(env.connector, "Contact", None)
    assert raised.value.kind == "auth"


def test_the_jwt_bearer_grant_signs_for_the_configured_user(env: Env) -> None:
    cfg = env.config
    secrets = {"client_id": cfg["client_id"], "jwt_private_key": cfg["jwt_private_key"]}
    admin = env.rebuild(secrets, username="admin@example.com", jwt_audience=cfg["jwt_audience"])
    env.seed_n(1)
    records, _, _ = read_all(admin, "Contact", None)
    assert len(records) == 1
    rep = env.rebuild(secrets, username="rep@example.com", jwt_audience=cfg["jwt_audience"])
    with pytest.raises(AuthError):
        read_all(rep, "Contact", None)


class RotatingTokens(BaseAdapter):
    """The sandbox behind an adapter that rotates the refresh token on each grant, as an org
    with refresh token rotation does."""

    def __init__(self, app: SalesforceSandbox) -> None:
        super().__init__()
        self.inner = WSGITransport(app)
        self.app = app
        self.issued = 0

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        response = self.inner.send(request, **kwargs)
        if (request.url or "").endswith("/services/oauth2/token") and response.status_code == 200:
            self.issued += 1
            new_token = f"5Aep861rotated{self.issued}"
            with self.app.lock:
                self.app.org.refresh_tokens[new_token] = self.app.org.credentials.admin.id
            body = {**response.json(), "refresh_token": new_token}
            response._content = json.dumps(body).encode()
        return response

    def close(self) -> None:
        return None


def test_a_rotated_refresh_token_is_reported(env: Env) -> None:
    session = requests.Session()
    session.mount(BASE, RotatingTokens(env.app))
    rotated: list[dict[str, str]] = []
    connector = connect(env.app, env.clock, rotated, {}, session=session)
    read_all(connector, "Contact", None)
    assert rotated == [{"refresh_token": "5Aep861rotated1"}]


# ---- the daily API budget -------------------------------------------------------------------


def test_our_daily_budget_stops_the_connector_before_it_is_exceeded() -> None:
    env = make_env(daily_api_budget="6")
    env.seed_n(3)
    with pytest.raises(QuotaExhausted) as raised:  # noqa: PT012 - the fifth read at most
        for _ in range(5):
            read_all(env.connector, "Contact", None)
    assert raised.value.code == "api_budget"
    assert env.app.org.api_used <= 6
    # and a day later the budget is there again
    env.advance(86_400)
    read_all(env.connector, "Contact", None)


def test_the_orgs_allocation_is_shared_up_to_the_ceiling() -> None:
    # Given an org with 40 requests a day, of which we may take the org to 50%
    env = make_env({"daily_api_requests": 40}, api_usage_ceiling="0.5")
    env.seed_n(3)
    with pytest.raises(QuotaExhausted) as raised:  # noqa: PT012 - some read runs out
        for _ in range(10):
            read_all(env.connector, "Contact", None)
    assert raised.value.code == "api_usage_ceiling"
    assert env.app.org.api_used <= 20


def test_an_exhausted_org_allocation_is_not_retried() -> None:
    env = make_env({"daily_api_requests": 3})
    with pytest.raises(QuotaExhausted) as raised:
        read_all(env.connector, "Contact", None)
    assert raised.value.code in ("REQUEST_LIMIT_EXCEEDED", "api_usage_ceiling")
    assert env.connector.stats.throttled == 0


def test_a_quota_error_stops_the_rest_of_a_batch(env: Env) -> None:
    # Given an org with room for two more requests (describe and one collection call)
    connector = env.rebuild(api_usage_ceiling="1")
    env.quotas(daily_api_requests=env.app.org.api_used + 2)
    # When 450 contacts are created
    results = connector.apply("Contact", creates(450))
    # Then the first 200 went, and the rest wait with a quota error, not attempted
    assert all(r.ok for r in results[:200])
    assert {r.error.kind for r in results[200:] if r.error} == {"quota"}
    assert not any(r.ok for r in results[200:])
    assert connector.stats.by_endpoint["composite.upsert"] == 1


# ---- scope (seed 003) -----------------------------------------------------------------------


def test_only_my_records_are_the_connected_users(env: Env) -> None:
    rep = env.app.org.credentials.users[1].id
    mine = env.seed_n(2)  # seeded as the admin, the connected user
    env.seed_n(2, OwnerId=rep)
    connector = env.rebuild(scope="mine")
    records, cursor, _ = read_all(connector, "Contact", None)
    assert sorted(ids_of(records)) == sorted(mine)
    assert {r.owner_ref for r in records} == {"admin@example.com"}
    # the user id came from the token's identity URL: no userinfo call was needed
    assert "oauth.userinfo" not in connector.stats.by_endpoint
    # and a record given to someone else leaves the incremental reads
    env.advance(60)
    env.edit(mine[0], OwnerId=rep)
    env.edit(mine[1], Title="Still mine")
    env.advance(60)
    records, _, _ = read_all(connector, "Contact", cursor)
    assert ids_of(records) == [mine[1]]


def test_a_list_views_condition_is_combined_with_the_incremental_one(env: Env) -> None:
    # Given a list view of the contacts in sales (OR-ed, as views often are)
    view = env.list_view(
        sobject="Contact",
        label="Sales people",
        where="Department = 'Sales' OR Title LIKE 'Sales%'",
    )
    sales = env.seed_n(1, Department="Sales")
    titled = env.seed_n(1, Title="Sales Manager")
    env.seed_n(2, Department="Accounting")
    connector = env.rebuild(scope="list_view", list_view_id=view)
    # When read, then only the view's records come, tagged with it
    records, cursor, _ = read_all(connector, "Contact", None)
    assert sorted(ids_of(records)) == sorted(sales + titled)
    assert all(r.tags == frozenset({f"listview:{view}"}) for r in records)
    # and the incremental read keeps to it too
    env.advance(120)
    env.edit(sales[0], Title="Buyer")
    [outsider] = env.seed_n(1, Department="Accounting")
    env.advance(60)
    records, _, _ = read_all(connector, "Contact", cursor)
    assert sales[0] in ids_of(records)
    assert outsider not in ids_of(records)
    # (a Lead stream reads all its leads: the view is of Contacts)
    env.seed([{"attributes": {"type": "Lead"}, "LastName": "Vance", "Company": "VR"}])
    leads, _, _ = read_all(connector, "Lead", None)
    assert len(leads) == 1


def test_a_mine_list_view_keeps_to_the_connected_users_records(env: Env) -> None:
    rep = env.app.org.credentials.users[1].id
    view = env.list_view(
        sobject="Contact", label="My sales", where="Department = 'Sales'", scope="mine"
    )
    mine = env.seed_n(1, Department="Sales")
    env.seed_n(1, Department="Sales", OwnerId=rep)
    connector = env.rebuild(scope="list_view", list_view_id=view)
    records, _, _ = read_all(connector, "Contact", None)
    assert ids_of(records) == mine


@pytest.mark.parametrize(
    ("query", "condition", "mine"),
    [
        ("SELECT Name FROM Contact ORDER BY Name ASC NULLS FIRST, Id ASC", None, False),
        (
            "SELECT Name, Id FROM Contact USING SCOPE mine WHERE Title = 'Where ''clause''' "
            "ORDER BY Name",
            "Title = 'Where ''clause'''",
            True,
        ),
        (
            "SELECT Id FROM Lead WHERE (Status = 'Order By' OR Company LIKE '%limit%') "
            "AND IsConverted = false ORDER BY Id LIMIT 10",
            "(Status = 'Order By' OR Company LIKE '%limit%') AND IsConverted = false",
            False,
        ),
        (
            "SELECT Id FROM Contact WHERE Title = 'It\\'s ORDER BY'",
            "Title = 'It\\'s ORDER BY'",
            False,
        ),
    ],
)
def test_a_list_views_soql_gives_its_where_clause(
    query: str, condition: str | None, mine: bool
) -> None:
    assert list_view_parts(query) == (condition, mine)


# ---- describe, mapping, config ------------------------------------------------------------------


def test_describe_lists_each_objects_fields(env: Env) -> None:
    fields = {f.name: f for f in env.connector.describe_fields("Contact")}
    assert fields["Email"].type == "email"
    assert fields["Contactsync_Id__c"].external_id
    assert fields["AccountId"].reference_to == ("Account",)
    assert not fields["SystemModstamp"].updateable
    leads = {f.name for f in env.connector.describe_fields("Lead")}
    assert "Company" in leads
    with pytest.raises(InvalidRequest):
        env.connector.describe_fields("Opportunity")


def test_the_default_mapping_names_the_fields_each_object_has(env: Env) -> None:
    contact = {r.hub_field: r.remote_field for r in env.connector.default_mapping("Contact")}
    lead = {r.hub_field: r.remote_field for r in env.connector.default_mapping("Lead")}
    assert contact["company"] == "Account.Name"
    assert contact["phones"] == "Phone,MobilePhone,HomePhone,OtherPhone"
    assert lead["company"] == "Company"
    assert "department" not in lead
    assert "middle_name" not in contact


def test_prepare_checks_the_org(env: Env) -> None:
    env.connector.prepare()
    persons = env.rebuild(person_accounts="true")
    persons.prepare()


@pytest.mark.parametrize(
    "config",
    [
        {"instance_url": "http://salesforce.example"},
        {"scope": "list_view"},
        {"scope": "everything"},
        {"streams": "Contact,Opportunity"},
        {"external_id_field": "x'; DROP"},
        {"api_version": "latest"},
    ],
)
def test_an_invalid_config_is_refused(config: dict[str, str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's, with the field named
        from_account(account(**config), {"client_id": "x", "refresh_token": "y"}).streams()


def test_credentials_need_a_grant_and_are_never_shown() -> None:
    with pytest.raises(AuthError) as raised:
        from_account(account(), {"client_id": "x"})
    assert raised.value.code == "missing_credentials"
    connector = from_account(
        account(),
        {"client_id": "3MVG9abcdef", "client_secret": "s3cr3t", "refresh_token": "r3fr3sh"},
    )
    shown = repr(connector.api.tokens.credentials)
    assert "s3cr3t" not in shown
    assert "r3fr3sh" not in shown


def test_another_providers_account_is_refused() -> None:
    other = account().model_copy(update={"provider": Provider.GOOGLE})
    with pytest.raises(ValueError, match="not a Salesforce account"):
        from_account(other, {"client_id": "x", "refresh_token": "y"})


# ---- the error table ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "fields", "kind"),
    [
        ("REQUIRED_FIELD_MISSING", ["LastName"], "invalid"),
        ("INVALID_EMAIL_ADDRESS", ["Email"], "invalid"),
        ("STRING_TOO_LONG", ["Title"], "invalid"),
        ("DUPLICATES_DETECTED", [], "invalid"),
        ("ENTITY_IS_DELETED", [], "not_found"),
        ("NOT_FOUND", [], "not_found"),
        ("INVALID_CROSS_REFERENCE_KEY", [], "not_found"),
        ("INVALID_CROSS_REFERENCE_KEY", ["AccountId"], "invalid"),
        ("UNABLE_TO_LOCK_ROW", [], "transient"),
        ("REQUEST_LIMIT_EXCEEDED", [], "quota"),
        ("SOMETHING_NEW", [], "invalid"),
    ],
)
def test_collection_status_codes_map_to_kinds(code: str, fields: list[str], kind: str) -> None:
    assert item_kind(code, fields) == kind


def test_an_item_error_keeps_the_code_and_never_the_message() -> None:
    error = item_error(
        {
            "id": None,
            "success": False,
            "errors": [
                {
                    "statusCode": "INVALID_EMAIL_ADDRESS",
                    "message": "Email: invalid email address: pam@@dundermifflin",
                    "fields": ["Email"],
                }
            ],
        }
    )
    assert (error.kind, error.code, error.message) == (
        "invalid",
        "INVALID_EMAIL_ADDRESS",
        "fields: Email",
    )


# ---- volume (seed 004: initial syncs of 100,000+ contacts) --------------------------------------


@pytest.mark.slow
def test_a_20000_contact_org_is_read_in_a_few_bulk_sets_and_then_cheaply() -> None:
    # Given 20,000 contacts (quotas off: this is about our requests, not the org's limits)
    env = make_env({"enabled": False})
    response = env.user.post(env.admin + "seed", json={"count": 20_000, "seed": 3})
    assert response.status_code == 200
    # When the first read runs
    seen: set[str] = set()
    largest = 0
    cursor = None
    for page in env.connector.read("Contact", None):
        largest = max(largest, len(page.records))
        seen.update(ids_of(page.records))
        cursor = page.cursor or cursor
        if page.last:
            break
    # Then one bulk job gave every contact once, 10,000 at most in memory at a time
    assert len(seen) == 20_000
    assert largest <= 10_000
    stats = env.connector.stats.by_endpoint
    assert (stats["bulk.create"], stats["bulk.results"]) == (1, 2)
    # and an incremental read afterwards costs a handful of requests, whatever the size
    env.advance(3600)
    before = env.connector.stats.requests
    read_all(env.connector, "Contact", cursor)
    assert env.connector.stats.requests - before <= 5


def test_a_retry_after_is_honoured_when_one_comes(env: Env) -> None:
    # Given a maintenance window answering 503 with Retry-After (Salesforce itself sends
    # none; a proxy in front of it may)
    env.seed_n(1)
    env.faults({"kind": "throttle", "path": "/query/?$", "times": 1})
    before = env.clock.now()
    response = requests.Response()
    response.status_code = 503
    response.headers["Retry-After"] = "42"
    response._content = b'[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]'
    error = classify(response, None, 5.0)
    # Then it is throttling, for the time it says
    assert error is not None
    assert (error.kind, error.retry_after) == ("throttled", 42.0)
    # and a read throttled by the concurrency limit waits its back-off, on the virtual clock
    records, _, _ = read_all(env.connector, "Contact", None)
    assert records
    assert (env.clock.now() - before).total_seconds() >= 5
