"""The demo's sharing chapter (issue 7): two users, one mailbox's email and meetings captured,
sharing off by default, then turned on step by step, as seed 002 describes.

``sharing_story`` runs after the main demo's syncs, on the same home, sandboxes and users:

    from contactsync.local.demo_sharing import sharing_story
    failures = sharing_story(story.home, story.sandbox, story.store, story.org_id,
                             owner=story.rep, teammate=story.admin,
                             now=clock.now, advance=story.advance, console=console).failures

``owner`` must own the Google mailbox (the demo connects the Gmail sandbox user to the rep);
``teammate`` is the other user. It seeds the Gmail sandbox with mail and meetings between the
owner and the contacts of their address book (through the sandbox's admin surface, as if
people wrote), captures them, and shows, as the teammate: nothing while sharing is off; that
activity happened once the owner shares activity; content after the owner approves the new
contacts (All); a confidential email staying private until the teammate asks and the owner
grants; Closest Connections; and, last, the owner leaving the organisation with their shared
activity staying. Every step checks itself; failures are returned, not raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from contactsync.activity import ActivityCapture, ReaderFactory, reader_factory
from contactsync.app.gallery import Actor
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.base import utcnow
from contactsync.domain.contact import HubContact
from contactsync.domain.org import Role, User
from contactsync.local.connectors import https_session
from contactsync.local.home import Home
from contactsync.sharing.connections import ClosestConnections
from contactsync.sharing.lifecycle import Lifecycle
from contactsync.sharing.rules import is_confidential
from contactsync.sharing.service import SharingService
from contactsync.sharing.stream import StreamItem, StreamQuery
from contactsync.store.base import Store

CONFIDENTIAL = "Confidential: our discount terms"


@dataclass
class SharingStory:
    failures: list[str] = field(default_factory=list)
    captured: int = 0
    contact_id: str | None = None
    confidential_id: str | None = None
    levels: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Run:
    store: Store
    org_id: str
    owner: User
    teammate: User
    console: Console
    capture: ActivityCapture
    now: Callable[[], datetime]
    result: SharingStory

    def check(self, ok: bool, what: str) -> None:
        self.console.print(f"  {'[green]ok[/green]' if ok else '[red]FAILED[/red]'}  {what}")
        if not ok:
            self.result.failures.append(f"sharing: {what}")

    def teammate_sees(self, contact_id: str) -> list[StreamItem]:
        actor = Actor.of(self.store.get(User, self.org_id, self.teammate.id))
        return StreamQuery(self.store, self.now).contact_stream(actor, contact_id).items


def sharing_story(
    home: Home,
    sandbox: dict[str, Any],
    store: Store,
    org_id: str,
    *,
    owner: User,
    teammate: User,
    now: Callable[[], datetime] = utcnow,
    advance: Callable[[float], None] | None = None,
    console: Console | None = None,
    readers: ReaderFactory | None = None,
    admin_session: requests.Session | None = None,
    remove_owner: bool = True,
) -> SharingStory:
    """The sharing chapter; see the module's docstring. ``readers`` and ``admin_session`` can
    carry in-process sandboxes (tests); by default HTTPS trusting ``sandbox["ca_bundle"]``."""
    out = console or Console()
    result = SharingStory()
    session = admin_session or https_session(sandbox.get("ca_bundle"))
    capture = ActivityCapture(store, org_id, readers or reader_factory(home.secrets()), now=now)
    run = _Run(store, org_id, owner, teammate, out, capture, now, result)
    account = next(
        (
            a
            for a in store.scan(ConnectedAccount, org_id)
            if a.provider is Provider.GOOGLE and a.owner_user_id == owner.id
        ),
        None,
    )
    if account is None:
        run.check(False, "the owner has a connected Gmail mailbox")
        return result
    out.print("\n[bold]Sharing: activity vs content, off by default (seed 002)[/bold]")
    zoe = _seed_activity(run, session, sandbox, account, advance)
    if zoe is None:
        return result
    result.contact_id = zoe.id
    _capture(run)
    _off_by_default(run, zoe)
    _activity_on(run, zoe)
    _approve_and_fetch(run, zoe)
    _request_access(run, zoe)
    _closest(run, zoe)
    if remove_owner:
        _owner_leaves(run, zoe)
    return result


# ---- the steps -----------------------------------------------------------------------------


def _seed_activity(
    run: _Run,
    session: requests.Session,
    sandbox: dict[str, Any],
    account: ConnectedAccount,
    advance: Callable[[float], None] | None,
) -> HubContact | None:
    """Mail and meetings between the owner's mailbox and the gallery contacts of their address
    book: one contact gets an email with a confidential subject too."""
    google = sandbox.get("google") or {}
    admin = str(google.get("admin") or "")
    partners = [
        c
        for c in run.store.scan(HubContact, run.org_id)
        if c.emails and not c.personal and not c.archived
    ][:12]
    if not admin or not partners:
        run.check(False, "the Gmail sandbox and gallery contacts with emails are there")
        return None
    addresses = [c.emails[0].address for c in partners]
    zoe = partners[0]
    base = run.now()
    confidential = {
        "from": account.address,
        "to": [addresses[0]],
        "subject": CONFIDENTIAL,
        "body": "Between us: 12% off.",
        "date": (base - timedelta(days=2)).isoformat(),
    }
    body = {
        "user": account.address,
        "generate": {"count": 40, "seed": 7, "days": 60, "partners": addresses},
        "messages": [confidential],
        "generate_events": {"count": 6, "seed": 7, "days": 30, "partners": addresses[:4]},
    }
    answer = session.post(admin + "workspace", json=body, timeout=60)
    if answer.status_code != 200:
        run.check(False, "the Gmail sandbox took the seeded mail")
        return None
    seeded = answer.json()
    run.console.print(
        f"  {len(seeded.get('messages', []))} emails and {len(seeded.get('events', []))} meetings "
        f"between {account.address} and {len(addresses)} contacts (Gmail and Calendar sandbox)"
    )
    if advance is not None:
        advance(30)
    return zoe


def _capture(run: _Run) -> None:
    report = run.capture.run()
    table = Table(title="Activity capture (metadata only)")
    for column in ("account", "stream", "read", "stored", "no contact", "error"):
        table.add_column(column)
    for stream in report.streams:
        table.add_row(stream.account_id, stream.stream, str(stream.read), str(stream.stored),
                      str(stream.unmatched), stream.error or "")  # fmt: skip
    run.console.print(table)
    captured = [a for a in run.store.scan(Activity, run.org_id) if a.owner_user_id == run.owner.id]
    run.result.captured = len(captured)
    run.check(
        bool(captured), f"{len(captured)} activities of {run.owner.name or 'the owner'} captured"
    )
    run.check(all(a.body is None for a in captured), "no body stored: nothing is shared yet")
    confidential = [a for a in captured if a.subject == CONFIDENTIAL]
    run.result.confidential_id = confidential[0].id if confidential else None


def _levels(run: _Run, zoe: HubContact, label: str) -> list[StreamItem]:
    items = run.teammate_sees(zoe.id)
    run.result.levels[label] = [i.level for i in items]
    shown = ", ".join(sorted({i.level for i in items})) or "nothing"
    who = run.teammate.name or "the teammate"
    run.console.print(f"  {who} sees in {zoe.display_name}'s Stream: {len(items)} ({shown})")
    return items


def _off_by_default(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]a. Off by default[/bold]")
    run.check(_levels(run, zoe, "off") == [], "a teammate sees none of it")


def _activity_on(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]b. The owner shares activity: teammates see that it happened[/bold]")
    SharingService(run.store, run.now).update_settings(
        Actor.of(run.owner), {"share_activity": True}
    )
    items = _levels(run, zoe, "activity")
    run.check(
        bool(items) and all(i.level == "metadata" for i in items),
        "when and with whom, not the content",
    )
    run.check(all(i.subject is None and i.body is None for i in items), "no subject, no body")


def _approve_and_fetch(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]c. New contacts to approve: All[/bold]")
    sharing = SharingService(run.store, run.now)
    actor = Actor.of(run.owner)
    queue = sharing.queue(actor)
    run.console.print(f"  {len(queue)} contacts await a decision; the owner clicks All")
    run.check(any(e.contact_id == zoe.id for e in queue), f"{zoe.display_name} is in the queue")
    sharing.decide_all(actor, True)
    report = run.capture.run()
    run.console.print(f"  bodies fetched for the newly shared content: {report.bodies_fetched}")
    items = _levels(run, zoe, "content")
    stored = run.store.get_many(Activity, run.org_id, [i.id for i in items])
    private = {i for i, a in stored.items() if a.activity_kind is not ActivityKind.CALL
               and is_confidential(a.subject)}  # fmt: skip
    shared = [i for i in items if i.id not in private]
    kept = [i for i in items if i.id in private]
    run.check(bool(shared) and all(i.level == "content" for i in shared), "the content is shared")
    run.check(
        run.result.confidential_id in private and all(i.level == "metadata" for i in kept),
        f"{len(kept)} emails whose subject says Confidential, Private or Personal stay private",
    )


def _request_access(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]d. Request access to one email[/bold]")
    if run.result.confidential_id is None:
        run.check(False, "the confidential email was captured")
        return
    sharing = SharingService(run.store, run.now)
    teammate = Actor.of(run.teammate)
    request = sharing.request_access(teammate, run.result.confidential_id, "for the renewal")
    sharing.answer(Actor.of(run.owner), request.id, True)
    run.capture.run()  # fetches the body now wanted
    item = StreamQuery(run.store, run.now).activity(teammate, run.result.confidential_id)
    run.check(item.level == "content", "granted: the teammate reads it")
    run.check(item.body is not None, "its body was fetched once someone may read it")


def _closest(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]e. Closest Connections[/bold]")
    result = ClosestConnections(run.store, run.now).for_contact(Actor.of(run.teammate), zoe.id)
    for connection in result.items:
        run.console.print(
            f"  {connection.name or connection.email}: {connection.score:.0f}/100 "
            f"({connection.emails} emails, {connection.meetings} meetings)"
        )
    run.check(
        any(c.user_id == run.owner.id for c in result.items), "the owner is the closest connection"
    )


def _owner_leaves(run: _Run, zoe: HubContact) -> None:
    run.console.print("\n[bold]f. The owner leaves the organisation[/bold]")
    before = len(run.teammate_sees(zoe.id))
    # An admin removes the owner (or the owner removes themself).
    remover = run.teammate if run.teammate.role is Role.ADMIN else run.owner
    removal = Lifecycle(run.store, run.now).remove_user(Actor.of(remover), run.owner.id)
    run.console.print(
        f"  mailboxes disabled: {len(removal.disabled_accounts)}; "
        f"personal contacts withheld: {removal.personal_contacts_withheld}"
    )
    after = run.teammate_sees(zoe.id)
    run.check(len(after) == before, "what they shared stays in the organisation")
    gone = run.store.get(User, run.org_id, run.owner.id)
    run.check(not gone.active, "their access ended at once")
