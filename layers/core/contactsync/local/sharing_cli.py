"""`contactsync sharing|stream|connections|activity` (issue 7) on the local runtime:

    contactsync sharing settings [--share-activity on|off] [--auto-share on|off]
                                 [--email-contact-sync on|off]
    contactsync sharing queue                       contacts awaiting a content decision
    contactsync sharing decide CONTACT (--share|--unshare) [--address ADDR=on|off ...]
    contactsync sharing all | none                  share / unshare every contact in the queue
    contactsync sharing event ACTIVITY (--share|--unshare|--clear)
    contactsync sharing request ACTIVITY [--note TEXT]
    contactsync sharing requests [--mine]           to answer (or the ones I asked)
    contactsync sharing answer REQUEST (--grant|--decline)
    contactsync sharing remove-user EMAIL           (an admin, or the user themself)
    contactsync stream contact ID | company ID-OR-NAME | mine
    contactsync connections contact ID | company ID-OR-NAME
    contactsync activity sync                       capture email, meeting and call activity

Every command acts as ``--as EMAIL`` (default: the home's admin) and takes ``--json``.
Visibility is the query layer's: the CLI shows what that user may see, no more.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from contactsync.activity import ActivityCapture, reader_factory
from contactsync.app.gallery import Actor
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.org import User
from contactsync.local.home import Home
from contactsync.sharing.companies import resolve_company
from contactsync.sharing.connections import ClosestConnections
from contactsync.sharing.lifecycle import Lifecycle
from contactsync.sharing.service import Decision, SharingService
from contactsync.sharing.stream import StreamItem, StreamQuery
from contactsync.store.base import Store

console = Console()
SWITCHES = {
    "share_activity": "--share-activity",
    "auto_share_content": "--auto-share",
    "email_contact_sync": "--email-contact-sync",
}


def register(sub: Any) -> None:
    """Adds the commands to the CLI's subparsers (called from ``cli._parser``)."""
    _sharing(sub)
    _stream(sub)
    _connections(sub)
    activity = sub.add_parser("activity", help="email, meeting and call activity")
    asub = activity.add_subparsers(dest="activity_command", required=True)
    sync = asub.add_parser("sync", help="capture activity from every connected account")
    _common(sync, acting=False)
    sync.set_defaults(func=cmd_activity_sync)


def _common(parser: argparse.ArgumentParser, *, acting: bool = True) -> None:
    if acting:
        parser.add_argument("--as", dest="as_user", help="the user's email (default: the admin)")
    parser.add_argument("--json", action="store_true")


def _switch(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off")
    return value == "on"


def _sharing(sub: Any) -> None:
    sharing = sub.add_parser("sharing", help="sharing settings and decisions (seed 002)")
    ssub = sharing.add_subparsers(dest="sharing_command", required=True)
    settings = ssub.add_parser("settings", help="show or change my sharing switches")
    for name, flag in SWITCHES.items():
        settings.add_argument(flag, dest=name, type=_switch, metavar="on|off")
    _common(settings)
    settings.set_defaults(func=cmd_settings)
    queue = ssub.add_parser("queue", help="new contacts awaiting my content decision")
    _common(queue)
    queue.set_defaults(func=cmd_queue)
    decide = ssub.add_parser("decide", help="share or unshare a contact's content")
    decide.add_argument("contact_id")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--share", action="store_true")
    choice.add_argument("--unshare", action="store_true")
    decide.add_argument("--address", action="append", default=[], metavar="ADDRESS=on|off")
    _common(decide)
    decide.set_defaults(func=cmd_decide)
    for name, shared in (("all", True), ("none", False)):
        bulk = ssub.add_parser(name, help=f"{'share' if shared else 'unshare'} the whole queue")
        _common(bulk)
        bulk.set_defaults(func=cmd_bulk, shared=shared)
    event = ssub.add_parser("event", help="share or unshare one of my emails or meetings")
    event.add_argument("activity_id")
    how = event.add_mutually_exclusive_group(required=True)
    how.add_argument("--share", dest="event", action="store_const", const=True)
    how.add_argument("--unshare", dest="event", action="store_const", const=False)
    how.add_argument("--clear", dest="event", action="store_const", const="clear")
    _common(event)
    event.set_defaults(func=cmd_event)
    request = ssub.add_parser("request", help="ask for the content of a teammate's activity")
    request.add_argument("activity_id")
    request.add_argument("--note", default="")
    _common(request)
    request.set_defaults(func=cmd_request)
    requests = ssub.add_parser("requests", help="access requests to answer (or --mine)")
    requests.add_argument("--mine", action="store_true", help="the ones I asked")
    _common(requests)
    requests.set_defaults(func=cmd_requests)
    answer = ssub.add_parser("answer", help="grant or decline an access request")
    answer.add_argument("request_id")
    verdict = answer.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--grant", dest="grant", action="store_true")
    verdict.add_argument("--decline", dest="grant", action="store_false")
    _common(answer)
    answer.set_defaults(func=cmd_answer)
    remove = ssub.add_parser("remove-user", help="remove a user from the organisation")
    remove.add_argument("email")
    _common(remove)
    remove.set_defaults(func=cmd_remove_user)


def _stream(sub: Any) -> None:
    stream = sub.add_parser("stream", help="the Stream: activity I may see")
    ssub = stream.add_subparsers(dest="stream_command", required=True)
    for name, helptext in (("contact", "of a contact"), ("company", "of a company (id or name)")):
        parser = ssub.add_parser(name, help=helptext)
        parser.add_argument("ref")
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--page-token")
        _common(parser)
        parser.set_defaults(func=cmd_stream, scope=name)
    mine = ssub.add_parser("mine", help="my own captured activity, with its sharing")
    mine.add_argument("--limit", type=int, default=50)
    mine.add_argument("--page-token")
    _common(mine)
    mine.set_defaults(func=cmd_stream, scope="mine", ref="")


def _connections(sub: Any) -> None:
    connections = sub.add_parser("connections", help="Closest Connections (seed 000)")
    csub = connections.add_subparsers(dest="connections_command", required=True)
    for name in ("contact", "company"):
        parser = csub.add_parser(name, help=f"the closest connections of a {name}")
        parser.add_argument("ref")
        parser.add_argument("--limit", type=int, default=10)
        _common(parser)
        parser.set_defaults(func=cmd_connections, scope=name)


# ---- helpers ---------------------------------------------------------------------------------


def _context(args: argparse.Namespace) -> tuple[Home, Store, Actor]:
    home = Home.locate(args.home)
    config = home.config()
    store = home.store()
    email = getattr(args, "as_user", None)
    if email:
        users = store.lookup(User, config.org_id, "email", email.strip().lower(), limit=1)
        if not users or not users[0].active:
            raise NotFound("user", email)
        user = users[0]
    else:
        user = store.get(User, config.org_id, config.admin_user_id)
    return home, store, Actor.of(user)


def _emit(args: argparse.Namespace, document: Any) -> bool:
    """Prints the JSON document when --json was asked; returns whether it did."""
    if not args.json:
        return False
    if isinstance(document, BaseModel):
        print(document.model_dump_json())
    else:
        print(json.dumps(document, default=str))
    return True


# ---- sharing ---------------------------------------------------------------------------------


def cmd_settings(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    service = SharingService(store)
    changes = {n: getattr(args, n) for n in SWITCHES if getattr(args, n) is not None}
    user = service.update_settings(actor, changes) if changes else service.user(actor)
    if not _emit(args, user.sharing):
        for name, flag in SWITCHES.items():
            value = getattr(user.sharing, name)
            console.print(f"  {flag[2:]:<20} {'[green]on[/]' if value else '[grey50]off[/]'}")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    queue = SharingService(store).queue(actor)
    if _emit(args, [e.model_dump(mode="json") for e in queue]):
        return 0
    table = Table(title=f"New contacts to approve ({len(queue)})")
    for column in ("contact", "name", "company", "addresses"):
        table.add_column(column)
    for entry in queue:
        table.add_row(entry.contact_id, entry.display_name, entry.company,
                      ", ".join(a.address for a in entry.addresses))  # fmt: skip
    console.print(table)
    return 0


def _addresses(raw: list[str]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for i, item in enumerate(raw):
        address, sep, value = item.rpartition("=")
        if not sep or value not in ("on", "off") or not address:
            raise InvalidInput.one(f"address.{i}", "must be ADDRESS=on or ADDRESS=off")
        found[address] = value == "on"
    return found


def cmd_decide(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    decision = Decision(
        contact_id=args.contact_id, shared=args.share, addresses=_addresses(args.address)
    )
    count = SharingService(store).decide(actor, [decision])
    if not _emit(args, {"decided": count}):
        console.print(f"{'shared' if args.share else 'unshared'} {args.contact_id}")
    return 0


def cmd_bulk(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    count = SharingService(store).decide_all(actor, args.shared)
    if not _emit(args, {"decided": count, "shared": args.shared}):
        console.print(f"{'shared' if args.shared else 'unshared'} {count} contacts")
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    value = None if args.event == "clear" else bool(args.event)
    SharingService(store).set_event(actor, args.activity_id, value)
    if not _emit(args, {"activity_id": args.activity_id, "shared": value}):
        said = {None: "back to the contact settings", True: "shared", False: "unshared"}[value]
        console.print(f"{args.activity_id}: {said}")
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    request = SharingService(store).request_access(actor, args.activity_id, args.note)
    if not _emit(args, request):
        console.print(f"request {request.id}: {request.status.value}")
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    found = SharingService(store).requests(actor, "requester" if args.mine else "owner")
    if _emit(args, [r.model_dump(mode="json") for r in found]):
        return 0
    table = Table(title="Access requests" + (" I asked" if args.mine else " to answer"))
    for column in ("request", "activity", "from", "status", "note"):
        table.add_column(column)
    for request in found:
        table.add_row(request.id, request.activity_id, request.requester_user_id,
                      request.status.value, request.note)  # fmt: skip
    console.print(table)
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    request = SharingService(store).answer(actor, args.request_id, args.grant)
    if not _emit(args, request):
        console.print(f"request {request.id}: {request.status.value}")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    users = store.lookup(User, actor.org_id, "email", args.email.strip().lower(), limit=1)
    if not users:
        raise NotFound("user", args.email)
    removal = Lifecycle(store).remove_user(actor, users[0].id)
    if not _emit(args, removal):
        console.print(f"removed {args.email}: {removal.model_dump()}")
    return 0


# ---- the Stream and Closest Connections ------------------------------------------------------


def cmd_stream(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    query = StreamQuery(store)
    if args.scope == "contact":
        page = query.contact_stream(actor, args.ref, limit=args.limit, page_token=args.page_token)
    elif args.scope == "company":
        company = resolve_company(store, actor, args.ref)
        page = query.company_stream(actor, company.id, limit=args.limit, page_token=args.page_token)
    else:
        page = query.own_activities(actor, limit=args.limit, page_token=args.page_token)
    if _emit(args, page):
        return 0
    _stream_table(page.items)
    if page.next_page_token:
        console.print(f"  more: --page-token {page.next_page_token}")
    return 0


def _stream_table(items: list[StreamItem]) -> None:
    table = Table(title="Stream")
    for column in ("when", "kind", "owner", "direction", "seen", "subject", "content"):
        table.add_column(column)
    for item in items:
        content = (
            (item.body or "")[:40]
            if item.body
            else ("requestable" if item.can_request_access else "")
        )
        table.add_row(
            f"{item.occurred_at:%Y-%m-%d %H:%M}",
            item.kind.value,
            item.owner_user_id + (" (me)" if item.own else ""),
            item.direction,
            item.level,
            item.subject if item.subject is not None else "[grey50](not shared)[/]",
            content,
        )
    console.print(table)


def cmd_connections(args: argparse.Namespace) -> int:
    _, store, actor = _context(args)
    closest = ClosestConnections(store)
    if args.scope == "contact":
        result = closest.for_contact(actor, args.ref, limit=args.limit)
        if _emit(args, result):
            return 0
        if not result.available:
            console.print("Personal contacts have no Closest Connections.")
            return 0
        table = Table(title=f"Closest connections of {args.ref}")
        for column in ("teammate", "score", "last", "emails", "meetings", "calls", "two-way"):
            table.add_column(column)
        for c in result.items:
            last = f"{c.last_at:%Y-%m-%d}" if c.last_at else ""
            counts = (str(c.emails), str(c.meetings), str(c.calls))
            two_way = "yes" if c.reciprocal else "no"
            table.add_row(c.name or c.email, f"{c.score:.1f}", last, *counts, two_way)
        console.print(table)
        return 0
    company = resolve_company(store, actor, args.ref)
    found = closest.for_company(actor, company.id, limit=args.limit)
    if _emit(args, found):
        return 0
    table = Table(title=f"Closest connections of {company.name}")
    for column in ("contact", "name", "score", "closest teammate"):
        table.add_column(column)
    for item in found.items:
        table.add_row(
            item.contact_id, item.display_name, f"{item.score:.1f}", item.closest_user_id or ""
        )
    console.print(table)
    return 0


# ---- capture -----------------------------------------------------------------------------------


def cmd_activity_sync(args: argparse.Namespace) -> int:
    home = Home.locate(args.home)
    config = home.config()
    store = home.store()
    report = ActivityCapture(store, config.org_id, reader_factory(home.secrets())).run()
    if _emit(args, report.model_dump(mode="json") | {"stored": report.stored}):
        return 0
    table = Table(title=f"Activity capture {report.run_id}")
    for column in ("account", "stream", "pages", "read", "stored", "no contact", "error"):
        table.add_column(column)
    for s in report.streams:
        table.add_row(s.account_id, s.stream, str(s.pages), str(s.read), str(s.stored),
                      str(s.unmatched), s.error or "")  # fmt: skip
    console.print(table)
    console.print(f"bodies fetched: {report.bodies_fetched}")
    return 0


__all__ = ["register"]
