"""Seed 004's conflict setting: when different Salesforce and phone-system records share a phone
number, "keep Salesforce record" preserves Salesforce's and updates the phone system from it;
"keep phone-system record" does the opposite."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactsync.app.syncs import Syncs
from contactsync.domain import Provider, SyncSettings
from tests.support.world import World


@pytest.mark.parametrize("keep", [Provider.SALESFORCE, Provider.AIRCALL])
def test_keep_one_systems_record_when_two_share_a_number(tmp_path: Path, keep: Provider) -> None:
    # Given both syncs set to keep one system's record
    world = World.build(tmp_path, [Provider.SALESFORCE, Provider.AIRCALL])
    syncs = Syncs(world.store, world.org_id, world.service.connectors, now=world.clock.now)
    policy = {"rule": "source_priority", "priority": [world.accounts[keep].id]}
    for settings in list(world.store.scan(SyncSettings, world.org_id)):
        syncs.update(settings.id, {"conflict": policy}, settings.version)
    # and two different records with one number, the phone system's the older
    world.admin_call(
        Provider.AIRCALL,
        "seed",
        {
            "records": [
                {
                    "first_name": "Bob",
                    "last_name": "Vance",
                    "company_name": "Vance Refrigeration",
                    "phone_numbers": [{"label": "work", "value": "+1 570 555 0111"}],
                }
            ]
        },
    )
    world.clock.advance(60)
    world.admin_call(Provider.SALESFORCE, "seed", {"records": [
        {"FirstName": "Robert", "LastName": "Vance", "Phone": "(570) 555-0111"}]})  # fmt: skip
    # When they sync
    world.converge(6)
    # Then they are one person, named as the kept system has it, in both systems
    [bob] = [c for c in world.contacts() if c.family_name == "Vance"]
    expected = "Robert" if keep is Provider.SALESFORCE else "Bob"
    assert bob.given_name == expected
    aircall = [r.fields.given_name for r in world.remote_records(Provider.AIRCALL, "contact")]
    salesforce = [r.fields.given_name for r in world.remote_records(Provider.SALESFORCE, "Contact")]
    assert (aircall, salesforce) == ([expected], [expected])
