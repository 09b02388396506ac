"""Seed 004's settings lifecycle against the Salesforce sandbox through the real connector:
objects to sync, re-scoping that applies cleanly, pause and resume, delete-and-revert."""

from __future__ import annotations

from pathlib import Path

from contactsync.app.syncs import Syncs
from contactsync.domain import HubContact, Provider, SyncSettings, SyncState
from contactsync.runtime.pulls import PullService
from tests.support.world import World


def _syncs(world: World) -> Syncs:
    return Syncs(world.store, world.org_id, world.service.connectors, now=world.clock.now)


def _sync_of(world: World, provider: Provider) -> SyncSettings:
    account = world.accounts[provider].id
    [settings] = [
        s for s in world.store.scan(SyncSettings, world.org_id) if s.account_id == account
    ]
    return settings


def test_objects_and_rescoping(tmp_path: Path) -> None:
    # Given a Salesforce org with contacts and leads, synced for contacts only
    world = World.build(
        tmp_path, [Provider.SALESFORCE], settings={Provider.SALESFORCE: {"objects": "contacts"}}
    )
    world.seed(Provider.SALESFORCE, 30)
    leads = [
        {"attributes": {"type": "Lead"}, "FirstName": "Ryan", "LastName": f"Howard {i}",
         "Company": "WUPHF.com", "Email": f"ryan{i}@wuphf.example"}
        for i in range(4)
    ]  # fmt: skip
    world.admin_call(Provider.SALESFORCE, "seed", {"records": leads})
    world.converge()
    types = {lk.object_type for lk in world.links(Provider.SALESFORCE)}
    assert types == {"Contact"}
    contacts = len(world.links(Provider.SALESFORCE))
    # When the sync is edited to take leads only
    settings = _sync_of(world, Provider.SALESFORCE)
    edited = _syncs(world).update(settings.id, {"objects": "leads"}, settings.version)
    assert edited.rescope_pending
    world.converge()
    # Then leads are synced, and the contacts that left the scope are unlinked, not archived
    # (and not deleted in Salesforce)
    links = world.links(Provider.SALESFORCE)
    assert {lk.object_type for lk in links} == {"Lead"}
    assert len(links) == 4
    archived = [c for c in world.store.scan(HubContact, world.org_id) if c.archived]
    assert archived == []
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == contacts
    assert not _sync_of(world, Provider.SALESFORCE).rescope_pending


def test_pause_resume_and_delete_and_revert(tmp_path: Path) -> None:
    # Given Aircall feeding Salesforce, two ways
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.AIRCALL])
    world.seed(Provider.AIRCALL, 8, overlap=0.0)
    world.converge()
    sf = _sync_of(world, Provider.SALESFORCE)
    created = [lk for lk in world.links(Provider.SALESFORCE) if lk.created_by_sync == sf.id]
    assert len(created) == 8
    before = len(world.remote_records(Provider.SALESFORCE, "Contact"))
    # When the Salesforce sync is paused, nothing reaches Salesforce; resume catches up
    syncs = _syncs(world)
    assert syncs.pause(sf.id).status.state is SyncState.PAUSED
    world.seed(Provider.AIRCALL, 2, seed=99, overlap=0.0, spread_days=0)  # created just now
    world.converge()
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == before
    assert syncs.resume(sf.id).status.state is SyncState.ACTIVE
    world.converge()
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == before + 2
    # When it is deleted and reverted, exactly the records it created in Salesforce go
    result = syncs.delete_and_revert(sf.id)
    assert result == {"deleted": 10, "failed": 0}
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == before - 8
    assert world.store.find(SyncSettings, world.org_id, sf.id) is None
    # ... and the phone system keeps its contacts
    assert len(world.remote_records(Provider.AIRCALL, "contact")) == 10


def test_the_cloud_pull_worker_applies_a_rescoping_too(tmp_path: Path) -> None:
    # Given Salesforce synced for contacts only, then edited to take leads only
    world = World.build(
        tmp_path, [Provider.SALESFORCE], settings={Provider.SALESFORCE: {"objects": "contacts"}}
    )
    world.seed(Provider.SALESFORCE, 12)
    lead = {"attributes": {"type": "Lead"}, "FirstName": "Ryan", "LastName": "Howard",
            "Company": "WUPHF.com", "Email": "ryan@wuphf.example"}  # fmt: skip
    world.admin_call(Provider.SALESFORCE, "seed", {"records": [lead]})
    world.converge()
    settings = _sync_of(world, Provider.SALESFORCE)
    _syncs(world).update(settings.id, {"objects": "leads"}, settings.version)
    # When the cloud's pull worker (not a local round) pulls the account
    world.clock.advance(60)
    worker = PullService(world.store, world.org_id, world.service.connectors, now=world.clock.now)
    worker.run_once(accounts={world.accounts[Provider.SALESFORCE].id})
    # Then the contacts that left the scope are unlinked and the lead is linked, as locally
    assert {lk.object_type for lk in world.links(Provider.SALESFORCE)} == {"Lead"}
    assert not _sync_of(world, Provider.SALESFORCE).rescope_pending
