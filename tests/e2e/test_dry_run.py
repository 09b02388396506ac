"""--dry-run lists the creates, updates, deletes and merges a run would make, and makes none."""

from __future__ import annotations

from pathlib import Path

from contactsync.domain import ChangeLogEntry, Cursor, HubContact, Link, Provider
from contactsync.local.cli import main
from tests.support.world import World


def test_dry_run_plans_what_a_real_run_then_does(tmp_path: Path) -> None:
    # Given Salesforce and Aircall with people to sync and nothing synced yet
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.AIRCALL])
    world.seed(Provider.SALESFORCE, 5, overlap=0.0)
    world.seed(Provider.AIRCALL, 4, overlap=0.0)
    # When a dry run runs
    dry = world.service.run_once(dry_run=True)
    # Then it lists the hub creates and the creates in each system...
    kinds = [(p.account_id, p.kind) for p in dry.planned]
    sf, ac = world.accounts[Provider.SALESFORCE].id, world.accounts[Provider.AIRCALL].id
    assert kinds.count((sf, "hub_create")) == 5
    assert kinds.count((ac, "hub_create")) == 4
    assert kinds.count((ac, "create")) == 5
    assert kinds.count((sf, "create")) == 4
    # ...and changes nothing anywhere
    for kind in (HubContact, Link, ChangeLogEntry, Cursor):
        assert list(world.store.scan(kind, world.org_id)) == []
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == 5
    assert len(world.remote_records(Provider.AIRCALL, "contact")) == 4
    # When the real run follows, then it does what the dry run said
    real = world.sync()
    assert real.spokes[ac].created == 5
    assert real.spokes[sf].created == 4


def test_the_cli_dry_run_on_a_fresh_home(tmp_path: Path) -> None:
    from contactsync_sandbox.up import start

    sandboxes = start(tmp_path / "sandbox")
    try:
        home = str(tmp_path / "home")
        assert main(["--home", home, "init", "--sandbox", str(sandboxes.config_path)]) == 0
        assert main(["--home", home, "sandbox", "seed", "salesforce", "--count", "3",
                     "--sandbox", str(sandboxes.config_path)]) == 0  # fmt: skip
        assert main(["--home", home, "sync", "--once", "--dry-run", "--json"]) == 0
        assert main(["--home", home, "status", "--json"]) == 0
    finally:
        sandboxes.stop(save=False)
