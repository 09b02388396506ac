"""Sync settings through the API: create, read, update (version-guarded, fields named on
error), delete, pause and resume, delete-and-revert, dry-run preview, status with per-record
errors, and the field mapping studio."""

from __future__ import annotations

from typing import Any

import pytest

from contactsync.api.jobs import Consumer
from contactsync.api.queue import PullAction
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.link import Link
from contactsync.domain.sync import RecordError, SyncSettings, SyncState
from contactsync.sync.service import SyncService
from tests.api.conftest import Env
from tests.api.fakes import STREAM, FakeConnector


@pytest.fixture
def crm(env: Env) -> tuple[ConnectedAccount, FakeConnector]:
    account, _ = Setup(env.store, env.secrets).connect(
        env.org.id,
        env.admin,
        Provider.SALESFORCE,
        "admin@example.com",
        {"organization_id": "00D000000000001"},
        {"refresh_token": "rt"},
    )
    fake = FakeConnector()
    env.ctx.connectors = lambda _account: fake
    return account, fake


def sync_path(account: ConnectedAccount, suffix: str = "") -> str:
    return f"/syncs/sync-{account.id}{suffix}"


def test_read_list_and_visibility(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, _ = crm
    got = env.as_admin.get(sync_path(account)).json()
    assert (got["account_id"], got["direction"], got["objects"]) == (account.id, "both", "both")
    assert [s["id"] for s in env.as_admin.get("/syncs").json()["items"]] == [got["id"]]
    assert env.as_rep.get("/syncs").json()["items"] == []  # not her account
    assert env.as_rep.get(sync_path(account)).status_code == 404
    assert env.as_other.get(sync_path(account)).status_code == 404
    assert env.as_other.patch(sync_path(account), json={"version": 1}).status_code == 404
    assert env.as_other.post(sync_path(account, "/pause")).status_code == 404


def test_update_is_version_guarded_and_validated(
    env: Env, crm: tuple[ConnectedAccount, FakeConnector]
) -> None:
    account, _ = crm
    path = sync_path(account)
    changed = env.as_admin.patch(
        path,
        json={
            "version": 1,
            "direction": "from_hub",
            "schedule": {"interval_minutes": 30},
            "conflict": {"rule": "source_priority", "priority": [account.id]},
        },
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["direction"], changed.json()["version"]) == ("from_hub", 2)
    assert env.as_admin.patch(path, json={"version": 1, "direction": "both"}).status_code == 409
    bad = env.as_admin.patch(path, json={"version": 2, "schedule": {"interval_minutes": 0}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.schedule.interval_minutes"
    bad = env.as_admin.patch(path, json={"version": 2, "scope": {"kind": "list_view"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.scope"
    bad = env.as_admin.patch(
        path, json={"version": 2, "conflict": {"rule": "source_priority", "priority": ["acc-nope"]}}
    )
    assert bad.json()["errors"][0]["field"] == "body.conflict.priority.0"
    assert env.as_admin.get(path).json()["version"] == 2  # nothing half-written


def test_create_and_delete(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, _ = crm
    assert env.as_admin.post("/syncs", json={"account_id": account.id}).status_code == 409
    assert env.as_admin.delete(sync_path(account)).json() == {
        "id": f"sync-{account.id}",
        "deleted": True,
        "removed": {},
    }
    assert env.store.find(ConnectedAccount, env.org.id, account.id) is not None  # records kept
    created = env.as_admin.post(
        "/syncs", json={"account_id": account.id, "objects": "leads", "default_object": "lead"}
    )
    assert created.status_code == 201
    assert (created.json()["objects"], created.json()["status"]["state"]) == (
        "leads",
        "in_progress",
    )
    assert env.as_admin.post("/syncs", json={"account_id": "acc-unknown"}).status_code == 404


def test_pause_and_resume(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, _ = crm
    assert env.as_admin.post(sync_path(account, "/pause")).json()["status"]["state"] == "paused"
    assert len(env.queue) == 0
    resumed = env.as_admin.post(sync_path(account, "/resume"), json={"confirm_mass_delete": True})
    assert resumed.json()["status"]["state"] == "in_progress"  # it never ran: initial sync
    assert resumed.json()["mass_delete_confirmed"] is True
    assert [r.action for r in env.queue.take_all()] == [PullAction.PULL]


def test_status_with_record_errors(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, _ = crm
    settings = env.store.get(SyncSettings, env.org.id, f"sync-{account.id}")
    status = settings.status.model_copy(
        update={
            "state": SyncState.ERROR,
            "last_error": "invalid",
            "record_errors": [RecordError(remote_id="003A", code="INVALID_EMAIL_ADDRESS")],
        }
    )
    env.store.update(settings.model_copy(update={"status": status}))
    got = env.as_admin.get(sync_path(account, "/status")).json()
    assert (got["state"], got["provider"], got["account_status"]) == (
        "error",
        "salesforce",
        "connected",
    )
    assert got["record_errors"][0]["code"] == "INVALID_EMAIL_ADDRESS"


def test_preview_changes_nothing(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, fake = crm
    fake.add("003A", "Jim", "jim@dundermifflin.com")
    preview = env.as_admin.post(sync_path(account, "/preview"))
    assert preview.status_code == 200, preview.text
    body: dict[str, Any] = preview.json()
    assert body["hub_writes"] == 1
    assert [p["kind"] for p in body["planned"]] == ["hub_create"]
    assert env.as_admin.get("/contacts").json()["items"] == []
    assert list(env.store.scan(Link, env.org.id)) == []


def test_without_connectors_provider_routes_are_503(
    env: Env, crm: tuple[ConnectedAccount, FakeConnector]
) -> None:
    account, _ = crm
    env.ctx.connectors = None
    assert env.as_admin.post(sync_path(account, "/preview")).status_code == 503
    assert env.as_admin.get(sync_path(account, "/fields")).status_code == 503


def test_mapping_studio(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, _ = crm
    studio = env.as_admin.get(sync_path(account, "/fields")).json()
    stream = studio["streams"][0]
    assert (stream["stream"], stream["source"]) == (STREAM, "describe")
    assert [f["name"] for f in stream["provider_fields"]] == ["FirstName", "Email", "Title"]
    assert [r["remote_field"] for r in studio["mapping"]] == ["FirstName", "Email"]
    rules = [
        {"hub_field": "given_name", "remote_field": "FirstName", "direction": "to_hub"},
        {"hub_field": "title", "remote_field": "Title", "direction": "both"},
    ]
    put = env.as_admin.put(
        sync_path(account, "/mapping"), json={"version": 1, "field_mapping": rules}
    )
    assert put.status_code == 200, put.text
    assert put.json()["field_mapping"][0]["direction"] == "to_hub"
    unknown = env.as_admin.put(
        sync_path(account, "/mapping"),
        json={"version": 2, "field_mapping": [{"hub_field": "title", "remote_field": "Nope__c"}]},
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.field_mapping.0.remote_field"
    twice = env.as_admin.put(
        sync_path(account, "/mapping"), json={"version": 2, "field_mapping": rules * 2}
    )
    assert twice.status_code == 422


def test_delete_and_revert(env: Env, crm: tuple[ConnectedAccount, FakeConnector]) -> None:
    account, fake = crm
    sync_id = f"sync-{account.id}"
    fake.add("003A", "Jim", "jim@dundermifflin.com")
    fake.add("003B", "Pam", "pam@dundermifflin.com")
    env.store.create(
        Link(
            org_id=env.org.id,
            id="l-a",
            contact_id="c-a",
            account_id=account.id,
            object_type=STREAM,
            remote_id="003A",
            created_by_sync=sync_id,
        )
    )
    env.store.create(
        Link(
            org_id=env.org.id,
            id="l-b",
            contact_id="c-b",
            account_id=account.id,
            object_type=STREAM,
            remote_id="003B",
        )
    )  # pulled from Salesforce: kept
    queued = env.as_admin.post(sync_path(account, "/delete-and-revert"))
    assert queued.status_code == 202
    assert env.store.find(SyncSettings, env.org.id, sync_id) is None
    requests = env.queue.take_all()
    assert [(r.action, r.sync_id) for r in requests] == [(PullAction.REVERT, sync_id)]
    # When the consumer handles it
    service = SyncService(env.store, env.org.id, lambda _a: fake)
    Consumer(env.store, env.ctx.inbox, lambda _a: fake, service).handle(requests)
    # Then only the records this sync created are deleted in the provider
    assert fake.deleted == ["003A"]
    assert env.store.find(Link, env.org.id, "l-a") is None
    assert env.store.find(Link, env.org.id, "l-b") is not None
