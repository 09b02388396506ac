"""`contactsync demo` (`make demo`): the story end to end, on the local SQLite store.

Part one, the gallery: an organisation with two users, contacts stored with their phones in
E.164 and their raw form kept, found again by email and by a differently formatted phone,
personal contacts invisible to teammates, an edit with provenance, an archive.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.contact import HubContact
from contactsync.local.home import Home, LocalConfig

console = Console()

PEOPLE = [
    {
        "given_name": "Dwight",
        "family_name": "Schrute",
        "emails": [{"address": "Dwight.Schrute@DunderMifflin.com", "label": "work"}],
        "phones": ["(570) 555-0134"],
        "company": "Dunder Mifflin",
        "title": "Assistant to the Regional Manager",
    },
    {
        "given_name": "Zoë",
        "family_name": "Müller",
        "emails": [{"address": "zoe.mueller@umbrella.de"}],
        "phones": ["+49 30 1234567"],
        "company": "Umbrella GmbH",
    },
    {
        "given_name": "José",
        "family_name": "García",
        "emails": [{"address": "jose@acme.example"}],
        "phones": ["+44 20 7946 0018"],
        "company": "Acme Corp",
    },
]


def _home(args: argparse.Namespace) -> Home:
    if args.home:
        return Home.locate(args.home)
    return Home(Path(tempfile.mkdtemp(prefix="contactsync-demo-")))


def run_demo(args: argparse.Namespace) -> int:
    home = _home(args)
    if home.config_path.exists():
        console.print(f"[red]{home.root} already holds an organisation; use another --home[/red]")
        return 1
    store = home.store()
    setup = Setup(store, home.secrets())
    org, admin = setup.create_organisation(
        "Dunder Mifflin Paper Company", "michael@dundermifflin.com"
    )
    pam = setup.add_user(org.id, "pam@dundermifflin.com", "Pam Beesly")
    home.save_config(LocalConfig(org_id=org.id, admin_user_id=admin.id))
    console.rule(f"[bold]contactsync demo[/bold]  home: {home.root}")
    gallery = Gallery(store)
    michael, pam_actor = Actor.of(admin), Actor.of(pam)

    console.print("[bold]1. Store contacts in the gallery[/bold] (SQLite, WAL, one file)")
    created = [gallery.create(michael, person) for person in PEOPLE]
    private = gallery.create(
        pam_actor,
        {"given_name": "Roy", "family_name": "Anderson", "phones": ["570 555 0199"],
         "visibility": "personal"},
    )  # fmt: skip
    _table("Organisation contacts", created)

    console.print("\n[bold]2. Find them by email and by phone, typed differently[/bold]")
    for query in ("dwight.schrute@dundermifflin.com", "570.555.0134", "+1 (570) 555 0134",
                  "030 1234567", "garcia acme"):  # fmt: skip
        found = gallery.search(pam_actor, query, region="DE" if query.startswith("030") else "US")
        names = ", ".join(c.display_name for c in found) or "nothing"
        console.print(f"  {query!r:<40} -> {names}")

    console.print("\n[bold]3. Personal contacts stay personal[/bold]")
    for who, actor in (("Pam sees her own:    ", pam_actor), ("Michael (admin) sees:", michael)):
        console.print(f"  {who} {[c.display_name for c in gallery.search(actor, 'anderson')]}")
    assert private.personal

    console.print("\n[bold]4. Edits keep provenance; archive never deletes[/bold]")
    dwight = created[0]
    edited = gallery.update(
        pam_actor, dwight.id, {"title": "Assistant Regional Manager"}, dwight.version
    )
    prov = edited.provenance["title"]
    console.print(
        f"  title = {edited.title!r}, written by {prov.source} "
        f"at {prov.source_ts:%H:%M:%S}, now version {edited.version}"
    )
    gallery.set_archived(michael, created[2].id, True)
    console.print(f"  archived {created[2].display_name}; still stored: "
                  f"{gallery.get(michael, created[2].id).archived}")  # fmt: skip
    console.print(f"\nInspect it: contactsync --home {home.root} contacts list")
    return 0


def _table(title: str, contacts: list[HubContact]) -> None:
    table = Table(title=title)
    for column in ("name", "email", "phone (raw)", "phone (E.164)", "company"):
        table.add_column(column)
    for c in contacts:
        table.add_row(
            c.display_name,
            c.emails[0].address if c.emails else "",
            c.phones[0].raw if c.phones else "",
            (c.phones[0].e164 or "") if c.phones else "",
            c.company,
        )
    console.print(table)
