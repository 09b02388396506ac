"""End to end across systems: the real service, real connectors and sandboxes in-process."""

from __future__ import annotations

from pathlib import Path

from contactsync.domain import Provider, Visibility
from tests.support.world import World


def test_phone_system_contacts_reach_the_reps_label_and_edits_flow_back(tmp_path: Path) -> None:
    # Given Aircall and a rep's Google address book, each with its own contacts
    world = World.build(tmp_path, [Provider.GOOGLE, Provider.AIRCALL])
    world.seed(Provider.GOOGLE, 12)
    world.seed(Provider.AIRCALL, 12)
    # When they sync
    first = world.sync()
    world.converge()
    # Then the company's phone contacts are organisation contacts mirrored into the rep's
    # "Salesforce" label; the rep's own contacts stay personal and never reach the phone system
    google = first.spokes[world.accounts[Provider.GOOGLE].id]
    aircall = first.spokes[world.accounts[Provider.AIRCALL].id]
    assert (google.created, aircall.created) == (12, 0)
    personal = [c for c in world.contacts() if c.visibility is Visibility.PERSONAL]
    assert len(personal) == 12
    assert {c.owner_user_id for c in personal} == {world.rep.id}
    marked = [lk for lk in world.links(Provider.GOOGLE) if lk.marked]
    assert len(marked) == 12
    # When the rep edits one of those in Google
    link = marked[0]
    world.clock.advance(60)
    world.user_edit(Provider.GOOGLE, link.remote_id, "person", family_name="Halpert-Beesly")
    world.converge()
    # Then the hub and the phone system have it, with provenance naming Google
    contact = world.store.get(type(world.contacts()[0]), world.org_id, link.contact_id)
    assert contact.family_name == "Halpert-Beesly"
    assert contact.provenance["family_name"].source == world.accounts[Provider.GOOGLE].id
    [aircall_link] = [lk for lk in world.links(Provider.AIRCALL) if lk.contact_id == contact.id]
    remote = {r.remote_id: r for r in world.remote_records(Provider.AIRCALL, "contact")}
    assert remote[aircall_link.remote_id].fields.family_name == "Halpert-Beesly"
