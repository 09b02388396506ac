"""`contactsync demo` (`make demo`): the whole story on one machine, no cloud account.

It starts the four provider sandboxes over HTTPS (a throw-away CA), seeds them with overlapping
people, initialises a local organisation on SQLite with every account connected two ways, runs
the initial sync, then acts as the people who use those systems (edits, deletes, a conflicting
edit on two sides, a contact marked for Salesforce in Outlook, a new caller in the phone
system, an edit in the hub), syncs again, checks that an idle round writes nothing and that
every system agrees with the hub, and prints what happened.

Each user action goes through the provider's API exactly as that provider's own app would,
with a client separate from the sync's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msal
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.connectors.base import Connector, ContactFields, Create, Delete, Update
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.contact import HubContact, PhoneNumber
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion, SuggestionStatus
from contactsync.domain.org import User
from contactsync.local.cli import connect_sandbox_accounts
from contactsync.local.connectors import connector_factory, https_session
from contactsync.local.home import Home, LocalConfig
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService

# Wide enough for the tables when the output is not a terminal (make demo | less, CI logs).
console = Console(width=None if sys.stdout.isatty() else 120)

STREAMS = {
    Provider.SALESFORCE: ("Contact", "Lead"),
    Provider.GOOGLE: ("person",),
    Provider.MICROSOFT: ("contact",),
    Provider.AIRCALL: ("contact",),
}


@dataclass
class Story:
    home: Home
    sandbox: dict[str, Any]
    advance: Callable[[float], None]
    store: SQLiteStore
    service: SyncService
    org_id: str
    admin: User
    rep: User
    accounts: dict[Provider, ConnectedAccount]
    runs: list[tuple[str, RunReport]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def user_client(self, provider: Provider) -> Connector:
        """A person's own client on the account: separate from the sync's connector."""
        account = self.accounts[provider]
        module = importlib.import_module(f"contactsync.connectors.{provider.value}")
        credentials = self.home.secrets().get(account.secret_ref or "")
        client: Connector = module.from_account(
            account, credentials, session=https_session(self.sandbox["ca_bundle"])
        )
        return client

    def link_of(self, provider: Provider, contact_id: str) -> Link | None:
        account = self.accounts[provider].id
        for link in self.store.lookup(Link, self.org_id, "contact", contact_id):
            if link.account_id == account and not link.restore and not link.pending_create:
                return link
        return None

    def sync(self, title: str) -> RunReport:
        self.advance(30)  # providers show fresh writes to incremental reads after seconds
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed} records"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(title, total=None)

            def tick(phase: str, account: str, n: int) -> None:
                progress.update(task, advance=n, description=f"{title}: {phase} {account}")

            report = self.service.run_once(progress=tick)
        self.runs.append((title, report))
        for spoke in report.spokes.values():
            for error in spoke.errors:
                self.failures.append(f"{title}: {spoke.account_id}: {error}")
        return report

    def check(self, ok: bool, what: str) -> None:
        mark = "[green]ok[/green]" if ok else "[red]FAILED[/red]"
        console.print(f"  {mark}  {what}")
        if not ok:
            self.failures.append(what)


def run_demo(args: argparse.Namespace) -> int:
    from contactsync_sandbox.up import start  # the sandboxes ship with the project, not the layer

    root = (
        Path(args.home).expanduser().resolve()
        if args.home
        else Path(tempfile.mkdtemp(prefix="contactsync-demo-"))
    )
    home = Home(root)
    if home.config_path.exists():
        console.print(f"[red]{root} already holds an organisation; use another --home[/red]")
        return 1
    console.rule("[bold]contactsync demo")
    console.print(f"home: {root}")
    sandboxes = start(root / "sandbox", seed=args.seed)
    try:
        story = _setup(home, sandboxes, args)
        _initial_sync(story)
        actions = _act(story)
        _second_sync(story, actions)
        _report(story)
        _sharing(story)
    finally:
        sandboxes.stop(save=True)
    if story.failures:
        console.print(f"\n[red]{len(story.failures)} problem(s):[/red]")
        for failure in story.failures:
            console.print(f"  - {failure}")
        return 1
    console.print(f"\nInspect it: contactsync --home {root} status | contacts list | reconcile")
    return 0


# ---- 1. systems, people, accounts ----------------------------------------------------------------


def _setup(home: Home, sandboxes: Any, args: argparse.Namespace) -> Story:
    sandbox = sandboxes.config()
    http = https_session(sandbox["ca_bundle"])
    clock = next(iter(sandboxes.apps.values())).clock
    console.print("\n[bold]1. Four systems, with people in common[/bold] (sandboxes over HTTPS)")
    counts = {
        Provider.SALESFORCE: args.count,
        Provider.GOOGLE: args.count // 2,
        Provider.MICROSOFT: args.count // 2,
        Provider.AIRCALL: args.count // 2,
    }
    for provider, count in counts.items():
        entry = sandbox[provider.value]
        response = http.post(
            entry["admin"] + "seed",
            json={"count": count, "seed": args.seed, "overlap": 0.3},
            timeout=120,
        )
        response.raise_for_status()
        where = entry["admin"].rsplit("/_sandbox", 1)[0]
        console.print(f"  {provider.value:<10} {count:>4} contacts at {where}")
    store = home.store()
    setup = Setup(store, home.secrets(), now=clock.now)
    org, admin = setup.create_organisation(
        "Dunder Mifflin Paper Company", sandbox["salesforce"]["username"]
    )
    rep = setup.add_user(org.id, sandbox["google"]["user"], "Pam Beesly (sales rep)")
    connected = connect_sandbox_accounts(setup, org.id, admin, rep, sandbox)
    home.save_config(
        LocalConfig(org_id=org.id, admin_user_id=admin.id, sandbox_file=str(sandboxes.config_path))
    )
    console.print(f"  organisation {org.name!r}: {len(connected)} accounts connected, two-way")
    service = SyncService(store, org.id, connector_factory(home.secrets()), now=clock.now)
    return Story(
        home=home,
        sandbox=sandbox,
        advance=clock.advance,
        store=store,
        service=service,
        org_id=org.id,
        admin=admin,
        rep=rep,
        accounts={a.provider: a for a in connected},
    )


def _initial_sync(story: Story) -> None:
    console.print("\n[bold]2. The initial sync[/bold]")
    report = story.sync("initial sync")
    _run_table("initial sync", report, story)
    story.sync("settling")  # records created in one system come back from it once


# ---- 3. people at work ---------------------------------------------------------------------------


@dataclass
class Actions:
    sf_title: tuple[str, str] = ("", "")  # (contact id, title set in Salesforce)
    conflict: tuple[str, str] = ("", "")  # (contact id, the title that must win)
    caller: str = ""  # a phone number first entered in Aircall
    marked: str = ""  # contact id of the Outlook contact marked for Salesforce
    restored: str = ""  # contact id deleted in Outlook's synced folder (auto-removal off)
    deleted: str = ""  # contact id deleted in Salesforce (propagates)
    hub_title: tuple[str, str] = ("", "")
    namesake: str = ""  # a contact saved again in Aircall under the same name, another number


def _business(story: Story) -> list[HubContact]:
    """Organisation contacts linked to Salesforce, Outlook's folder and Aircall."""
    found = []
    for contact in story.store.scan(HubContact, story.org_id):
        if contact.archived or contact.personal:
            continue
        if all(
            story.link_of(p, contact.id)
            for p in (Provider.SALESFORCE, Provider.MICROSOFT, Provider.AIRCALL)
        ):
            found.append(contact)
    return sorted(found, key=lambda c: c.id)


def _act(story: Story) -> Actions:
    console.print("\n[bold]3. People at work in their own tools[/bold]")
    actions = Actions()
    business = _business(story)
    if len(business) < 5:
        story.failures.append(f"only {len(business)} contacts reached every shared system")
        return actions
    sf = story.user_client(Provider.SALESFORCE)
    outlook = story.user_client(Provider.MICROSOFT)

    # a. A title changed in Salesforce.
    target = business[0]
    link = story.link_of(Provider.SALESFORCE, target.id)
    assert link is not None
    _apply(
        sf,
        link.object_type,
        Update(link.remote_id, ContactFields(title="VP, Paper Sales"), link.object_type),
    )
    actions.sf_title = (target.id, "VP, Paper Sales")
    console.print(f"  Salesforce: {target.display_name}'s title -> 'VP, Paper Sales'")

    # b. The same contact's title edited in Salesforce, then a moment later in Outlook.
    other = business[1]
    sf_link = story.link_of(Provider.SALESFORCE, other.id)
    ms_link = story.link_of(Provider.MICROSOFT, other.id)
    assert sf_link is not None
    assert ms_link is not None
    _apply(
        sf,
        sf_link.object_type,
        Update(sf_link.remote_id, ContactFields(title="Head of Procurement"), sf_link.object_type),
    )
    story.advance(5)
    _apply(
        outlook, "contact", Update(ms_link.remote_id, ContactFields(title="Chief Buyer"), "contact")
    )
    actions.conflict = (other.id, "Chief Buyer")
    console.print(f"  Salesforce then Outlook: {other.display_name}'s title, two different values")

    # c. A new caller saved in the phone system.
    aircall = story.user_client(Provider.AIRCALL)
    number = "+1 212 555 0199"
    _apply(aircall, "contact", Create(
        hub_id="entered-in-aircall",
        fields=ContactFields(given_name="Holly", family_name="Flax", company="Dunder Mifflin",
                             phones=(PhoneNumber.parse(number, "US", "work"),)),
        object_type="contact",
    ))  # fmt: skip
    actions.caller = PhoneNumber.parse(number).e164 or ""
    console.print("  Aircall: a new contact, Holly Flax, saved after a call")
    namesake = business[5] if len(business) > 5 else business[0]
    _apply(aircall, "contact", Create(
        hub_id="entered-in-aircall-2",
        fields=ContactFields(given_name=namesake.given_name, family_name=namesake.family_name,
                             company=namesake.company,
                             phones=(PhoneNumber.parse("+1 646 555 0123", "US", "mobile"),)),
        object_type="contact",
    ))  # fmt: skip
    actions.namesake = namesake.id
    console.print(f"  Aircall: {namesake.display_name} saved again, with another number")

    # d. An Outlook contact marked for Salesforce with the "Salesforce" category (seed 003):
    # someone the organisation does not know yet (the sandboxes' people overlap, and a copy of
    # a known person would tell another story, one this chapter does not check).
    personal = [
        c
        for c in story.store.scan(HubContact, story.org_id)
        if c.personal
        and story.link_of(Provider.MICROSOFT, c.id)
        and not _known_to_the_organisation(story, c)
    ]
    if personal:
        chosen = sorted(personal, key=lambda c: c.id)[0]
        link = story.link_of(Provider.MICROSOFT, chosen.id)
        assert link is not None
        _graph_patch(story, link.remote_id, {"categories": ["Salesforce"]})
        actions.marked = chosen.id
        console.print(f"  Outlook: {chosen.display_name} given the 'Salesforce' category")

    # e. A contact deleted in Salesforce: the deletion propagates (seed 003).
    doomed = business[3]
    link = story.link_of(Provider.SALESFORCE, doomed.id)
    assert link is not None
    _apply(sf, link.object_type, Delete(link.remote_id, link.object_type))
    actions.deleted = doomed.id
    console.print(f"  Salesforce: {doomed.display_name} deleted")

    # f. An edit in the hub itself, through the gallery.
    gallery = Gallery(story.store)
    edited = business[4]
    updated = gallery.update(
        Actor.of(story.admin), edited.id, {"department": "Accounting"}, edited.version
    )
    actions.hub_title = (updated.id, "Accounting")
    console.print(f"  contactsync gallery: {edited.display_name}'s department -> 'Accounting'")
    return actions


def _known_to_the_organisation(story: Story, contact: HubContact) -> bool:
    """Whether an organisation contact shares an email address or a phone number with it."""
    keys = [("email", k) for k in contact.email_keys()] + [
        ("phone", k) for k in contact.phone_keys()
    ]
    for index, key in keys:
        for other in story.store.lookup(HubContact, story.org_id, index, key, limit=50):
            if other.id != contact.id and not other.personal and not other.archived:
                return True
    return False


def _act_later(story: Story, actions: Actions) -> None:
    """A second batch, after a round: Graph cannot tell a contact the user moved out of the
    folder from one the user categorised in the same few minutes (both are a categorised
    contact with a new id outside the folder), so the delete waits for the marking to sync."""
    business = [c for c in _business(story) if c.id not in _touched(actions)]
    if not business:
        story.failures.append("no untouched business contact left to delete in Outlook")
        return
    gone = business[0]
    link = story.link_of(Provider.MICROSOFT, gone.id)
    assert link is not None
    _apply(story.user_client(Provider.MICROSOFT), "contact", Delete(link.remote_id, "contact"))
    actions.restored = gone.id
    console.print(f"  Outlook: {gone.display_name} deleted from the Salesforce Contacts folder")


def _touched(actions: Actions) -> set[str]:
    return {
        actions.sf_title[0], actions.conflict[0], actions.marked, actions.deleted,
        actions.hub_title[0], actions.namesake,
    }  # fmt: skip


def _apply(client: Connector, stream: str, mutation: Create | Update | Delete) -> None:
    [result] = client.apply(stream, [mutation])
    if not result.ok:
        raise RuntimeError(f"the provider refused a user's change: {result.error}")


def _graph_patch(story: Story, contact_id: str, body: dict[str, Any]) -> None:
    """A user editing a contact in Outlook (assigning a category), through Graph."""
    entry = story.sandbox["microsoft"]
    credentials = story.home.secrets().get(story.accounts[Provider.MICROSOFT].secret_ref or "")
    http = https_session(story.sandbox["ca_bundle"])
    app = msal.ConfidentialClientApplication(
        credentials["client_id"],
        client_credential=credentials["client_secret"],
        authority=entry["authority"],
        instance_discovery=False,
        http_client=http,
    )
    token = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    response = http.patch(
        f"{entry['graph_base']}/users/{entry['user_id']}/contacts/{contact_id}",
        json=body,
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    )
    response.raise_for_status()


# ---- 4. the second sync and its checks -----------------------------------------------------------


def _second_sync(story: Story, actions: Actions) -> None:
    console.print("\n[bold]4. Syncing again[/bold]")
    report = story.sync("after the edits")
    _run_table("after the edits", report, story)
    _act_later(story, actions)
    report = story.sync("after the Outlook delete")
    _run_table("after the Outlook delete", report, story)
    for _ in range(3):
        settle = story.sync("settling")
        if settle.remote_writes == 0 and settle.hub_writes == 0:
            break
    idle = story.sync("idle round")
    console.print("\n[bold]5. What the systems agree on[/bold]")

    def get(contact_id: str) -> HubContact:
        """The contact, following a merge to the one it joined."""
        contact = story.store.get(HubContact, story.org_id, contact_id)
        while contact.merged_into is not None:
            contact = story.store.get(HubContact, story.org_id, contact.merged_into)
        return contact

    if actions.sf_title[0]:
        contact = get(actions.sf_title[0])
        story.check(
            contact.title == actions.sf_title[1],
            f"Salesforce's title reached the hub ({contact.title!r})",
        )
        story.check(
            _remote_title(story, Provider.MICROSOFT, contact.id) == actions.sf_title[1],
            "... and Outlook",
        )
    if actions.conflict[0]:
        contact = get(actions.conflict[0])
        story.check(
            contact.title == actions.conflict[1],
            f"the later edit won the conflict ({contact.title!r})",
        )
        story.check(
            _remote_title(story, Provider.SALESFORCE, contact.id) == actions.conflict[1],
            "... and Salesforce took it",
        )
    if actions.caller:
        callers = story.store.lookup(HubContact, story.org_id, "phone", actions.caller)
        story.check(len(callers) == 1, "the new caller is one contact in the hub")
        if callers:
            story.check(
                story.link_of(Provider.SALESFORCE, callers[0].id) is not None,
                "... created in Salesforce as the default object",
            )
    if actions.marked:
        contact = get(actions.marked)
        story.check(
            not contact.personal,
            "the Outlook contact marked for Salesforce joined the organisation",
        )
        story.check(
            story.link_of(Provider.SALESFORCE, contact.id) is not None,
            "... and is in Salesforce",
        )
    if actions.restored:
        contact = get(actions.restored)
        back = not contact.archived and story.link_of(Provider.MICROSOFT, contact.id) is not None
        story.check(
            back, "the contact deleted in Outlook's folder is back there (auto-removal off)"
        )
    if actions.deleted:
        contact = get(actions.deleted)
        story.check(
            contact.archived,
            "the contact deleted in Salesforce is archived in the hub (never deleted)",
        )
        story.check(
            story.link_of(Provider.MICROSOFT, contact.id) is None,
            "... and removed from Outlook's folder",
        )
    if actions.hub_title[0]:
        contact = get(actions.hub_title[0])
        there = _remote_field(story, Provider.SALESFORCE, contact.id, "department")
        story.check(there == actions.hub_title[1], "the hub's edit reached Salesforce")
    if actions.namesake:
        open_ = story.store.lookup(MergeSuggestion, story.org_id, "contact", actions.namesake)
        story.check(
            any(s.status is SuggestionStatus.OPEN for s in open_),
            "the namesake with another number is a merge suggestion, not merged automatically",
        )
    quiet = idle.remote_writes == 0 and idle.hub_writes == 0
    writes = f"{idle.remote_writes} remote, {idle.hub_writes} hub writes"
    story.check(quiet, f"an idle round writes nothing ({writes})")


def _remote_record_fields(
    story: Story, provider: Provider, contact_id: str
) -> ContactFields | None:
    link = story.link_of(provider, contact_id)
    if link is None:
        return None
    client = story.user_client(provider)
    for stream in STREAMS[provider]:
        if stream != link.object_type:
            continue
        for page in client.read(stream, None):
            for record in page.records:
                if record.remote_id == link.remote_id:
                    return record.fields
            if page.last:
                break
    return None


def _remote_title(story: Story, provider: Provider, contact_id: str) -> str | None:
    return _remote_field(story, provider, contact_id, "title")


def _remote_field(story: Story, provider: Provider, contact_id: str, name: str) -> str | None:
    fields = _remote_record_fields(story, provider, contact_id)
    value = None if fields is None else getattr(fields, name)
    return value if isinstance(value, str) else None


# ---- 5. the report -------------------------------------------------------------------------------


def _sharing(story: Story) -> None:
    """Seed 002's chapter: activity captured from the mailboxes and the phone system, two
    users, sharing off by default, then turned on step by step, and a user removed."""
    from contactsync.local.demo_sharing import sharing_story

    console.print("\n[bold]7. Two people sharing what they know[/bold] (activity, content)")
    chapter = sharing_story(
        story.home,
        story.sandbox,
        story.store,
        story.org_id,
        owner=story.rep,
        teammate=story.admin,
        now=story.service.now,
        advance=story.advance,
        console=console,
    )
    story.failures.extend(f"sharing: {failure}" for failure in chapter.failures)


def _run_table(title: str, report: RunReport, story: Story) -> None:
    names = {a.id: p.value for p, a in story.accounts.items()}
    table = Table(title=title)
    for column in ("system", "read", "new in hub", "hub updates", "echoes", "conflicts",
                   "created", "updated", "deleted", "restored", "archived"):  # fmt: skip
        table.add_column(column, justify="left" if column == "system" else "right")
    for spoke in report.spokes.values():
        table.add_row(
            names.get(spoke.account_id, spoke.account_id),
            *(str(v) for v in (spoke.pulled, spoke.hub_created, spoke.hub_updated, spoke.echoes,
                                spoke.conflicts, spoke.created, spoke.updated, spoke.deleted,
                                spoke.restored, spoke.archived)),
        )  # fmt: skip
    console.print(table)


def _report(story: Story) -> None:
    console.print("\n[bold]6. Where things stand[/bold]")
    table = Table("system", "records", "linked to the hub", "reconciliation")
    reconciliation = story.service.reconcile()
    for provider, account in story.accounts.items():
        client = story.user_client(provider)
        total = 0
        for stream in STREAMS[provider]:
            if stream not in client.streams():
                continue
            for page in client.read(stream, None):
                total += sum(1 for r in page.records if not r.deleted)
                if page.last:
                    break
        counts = reconciliation.get(account.id, {})
        linked = counts.get("in_step", 0) + counts.get("diverged", 0)
        verdict = (
            "in step"
            if not (counts.get("diverged") or counts.get("missing") or counts.get("unpushed"))
            else json.dumps(counts)
        )
        story.check(verdict == "in step", f"{provider.value} agrees with the hub")
        table.add_row(provider.value, str(total), str(linked), verdict)
    console.print(table)
    contacts = [c for c in story.store.scan(HubContact, story.org_id)]
    active = [c for c in contacts if not c.archived]
    suggestions = story.store.lookup(
        MergeSuggestion, story.org_id, "status", SuggestionStatus.OPEN.value, limit=1000
    )
    conflicts = sum(s.conflicts for _, r in story.runs for s in r.spokes.values())
    personal = sum(1 for c in active if c.personal)
    console.print(
        f"  hub: {len(active)} contacts ({len(active) - personal} organisation, {personal} "
        f"personal), {len(contacts) - len(active)} archived; {conflicts} field conflicts "
        f"resolved; {len(suggestions)} merge suggestions (never merged automatically)"
    )
    sample = next((c for c in active if c.emails and c.phones and not c.personal), None)
    if sample is not None:
        gallery = Gallery(story.store)
        actor = Actor.of(story.rep)
        by_email = gallery.search(actor, sample.emails[0].address.upper())
        by_phone = gallery.search(actor, sample.phones[0].e164 or sample.phones[0].raw)
        story.check(sample.id in {c.id for c in by_email} and sample.id in {c.id for c in by_phone},
                    f"the gallery finds {sample.display_name} by email and by phone")  # fmt: skip
        sources = sorted({p.source for p in sample.provenance.values()})
        console.print(f"  {sample.display_name}'s fields came from: {', '.join(sources)}")
