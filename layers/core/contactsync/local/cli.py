"""The `contactsync` command line: the local runtime on the SQLite store.

    contactsync init --sandbox DIR/sandbox.json    an organisation with every sandbox connected
    contactsync sync --once [--dry-run] [--json]  one round: pull every spoke, push every change
    contactsync status [--json]                   each sync's status, counts, cursors, errors
    contactsync contacts list|show                the gallery, with provenance and links
    contactsync demo                              the whole story against the bundled sandboxes
    contactsync sandbox up|seed                   the provider sandboxes over HTTPS
    contactsync serve [--port P]                  API, webhooks and scheduler on 127.0.0.1
    contactsync token --user EMAIL [--admin]      a bearer token for the local API

Every command reads and writes under $CONTACTSYNC_HOME (default ~/.contactsync); --home DIR
overrides it. Commands that report take --json and then print one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.contact import HubContact
from contactsync.domain.cursor import Cursor
from contactsync.domain.errors import ContactsyncError, InvalidInput, NotFound
from contactsync.domain.org import User
from contactsync.domain.sync import SyncSettings
from contactsync.local import sharing_cli
from contactsync.local.connectors import connector_factory
from contactsync.local.home import Home, LocalConfig
from contactsync.local.process import sync_gc
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService

console = Console()
err_console = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        return result
    except InvalidInput as exc:
        err_console.print(f"[red]invalid input[/red]: {exc}")
        return 2
    except (NotFound, FileNotFoundError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        return 1
    except ContactsyncError as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contactsync", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", help="state directory (default $CONTACTSYNC_HOME or ~/.contactsync)"
    )
    sub = parser.add_subparsers(dest="command")

    init = sub.add_parser("init", help="create an organisation and connect the sandbox accounts")
    init.add_argument("--sandbox", required=True, type=Path, help="path of sandbox.json")
    init.add_argument("--org-name", default="Dunder Mifflin Paper Company")
    init.add_argument("--region", default="US")
    init.set_defaults(func=cmd_init)

    connect = sub.add_parser("connect", help="connect one account, with two-way sync")
    connect.add_argument(
        "provider", choices=[p.value for p in Provider if p is not Provider.EXCHANGE]
    )
    connect.add_argument("--sandbox", type=Path, help="take the account from sandbox.json")
    connect.add_argument("--address", help="the mailbox, CRM user or phone-system company")
    connect.add_argument("--owner", help="the owning user's email (default: the admin)")
    connect.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                         help="non-secret setting (instance_url, api_base, ...)")  # fmt: skip
    connect.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                         help="credential (refresh_token, api_token, ...), kept in the home's "
                         "secrets file")  # fmt: skip
    connect.set_defaults(func=cmd_connect)

    sync = sub.add_parser("sync", help="synchronise: pull every spoke, push every change")
    sync.add_argument("--once", action="store_true", help="one round, then exit")
    sync.add_argument(
        "--dry-run", action="store_true", help="list what would change; change nothing"
    )
    sync.add_argument("--json", action="store_true")
    sync.add_argument("--interval", type=float, default=None, help="seconds between rounds")
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="each sync's status, counts, cursors and last errors")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    contacts = sub.add_parser("contacts", help="the contact gallery")
    csub = contacts.add_subparsers(dest="contacts_command", required=True)
    clist = csub.add_parser("list", help="list or search contacts")
    clist.add_argument("--q", help="search by email, phone or name/company words")
    clist.add_argument("--all", action="store_true", help="include archived contacts")
    clist.add_argument("--limit", type=int, default=50)
    clist.add_argument("--as", dest="as_user", help="the user's email (default: the admin)")
    clist.add_argument("--json", action="store_true")
    clist.set_defaults(func=cmd_contacts_list)
    show = csub.add_parser("show", help="one contact with provenance, links and history")
    show.add_argument("id")
    show.add_argument("--as", dest="as_user")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_contacts_show)

    reconcile = sub.add_parser("reconcile", help="compare every spoke with the hub")
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(func=cmd_reconcile)

    demo = sub.add_parser("demo", help="the whole story against the bundled sandboxes")
    demo.add_argument("--count", type=int, default=40, help="contacts seeded per system")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    sandbox = sub.add_parser("sandbox", help="the provider sandboxes")
    ssub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    up = ssub.add_parser("up", help="serve all four over HTTPS on 127.0.0.1 (foreground)")
    up.add_argument("--state-dir", type=Path, default=None, help="default: HOME/sandbox")
    up.add_argument("--port", type=int, default=0, help="first of four ports (0: any free)")
    up.add_argument("--seed", type=int, default=0)
    up.set_defaults(func=cmd_sandbox_up)
    seed = ssub.add_parser("seed", help="seed a running sandbox with generated contacts")
    seed.add_argument("provider", choices=[p.value for p in Provider if p is not Provider.EXCHANGE])
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument(
        "--sandbox", type=Path, default=None, help="sandbox.json (default: HOME/sandbox)"
    )
    seed.set_defaults(func=cmd_sandbox_seed)
    _api_commands(sub)
    sharing_cli.register(sub)  # sharing, stream, connections, activity (issue 7)
    return parser


# ---- the local API (contactsync serve, contactsync token) ---------------------------------------


def _api_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="API, webhooks and scheduler on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-scheduler", action="store_true", help="serve the API only")
    serve.set_defaults(func=cmd_serve)
    token = sub.add_parser("token", help="print a bearer token for the local API")
    token.add_argument("--user", required=True, help="the user's email")
    token.add_argument("--admin", action="store_true", help="with the admin role")
    token.add_argument("--org", help="organisation id (default: the home's)")
    token.add_argument("--ttl", type=int, default=86_400, help="seconds (default one day)")
    token.set_defaults(func=cmd_token)


def cmd_serve(args: argparse.Namespace) -> int:
    from contactsync.local.serve import build_runtime

    runtime = build_runtime(Home.locate(args.home), args.port).start(not args.no_scheduler)
    err_console.print(
        f"contactsync API on {runtime.url} (OpenAPI: {runtime.url}/openapi.json, "
        f"Swagger UI: {runtime.url}/docs); Ctrl-C stops"
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        runtime.stop()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from contactsync.api.auth import issue_local_token
    from contactsync.domain.base import utcnow
    from contactsync.domain.org import Role

    home = Home.locate(args.home)
    config = home.config()
    org_id = args.org or config.org_id
    users = home.store().lookup(User, org_id, "email", args.user.strip().lower(), limit=1)
    if not users or not users[0].active:
        raise NotFound("user", args.user)
    if args.admin and users[0].role is not Role.ADMIN:
        raise InvalidInput.one("admin", "this user is not an admin of the organisation")
    role = Role.ADMIN if args.admin else Role.USER
    print(issue_local_token(config.token_key, org_id, users[0].id, role, utcnow(), args.ttl))
    return 0


# ---- init ---------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    home = Home.locate(args.home)
    if home.config_path.exists():
        raise InvalidInput.one("home", f"{home.root} is already initialised")
    sandbox = json.loads(args.sandbox.read_text(encoding="utf-8"))
    store = home.store()
    setup = Setup(store, home.secrets())
    admin_email = sandbox.get("salesforce", {}).get("username", "admin@example.com")
    org, admin = setup.create_organisation(args.org_name, admin_email, region=args.region)
    rep_email = sandbox.get("google", {}).get("user") or sandbox.get("microsoft", {}).get("user_id")
    rep = setup.add_user(org.id, rep_email or "rep@example.com", "Sales rep")
    connected = connect_sandbox_accounts(setup, org.id, admin, rep, sandbox)
    home.save_config(
        LocalConfig(org_id=org.id, admin_user_id=admin.id, sandbox_file=str(args.sandbox.resolve()))
    )
    console.print(f"Initialised [bold]{org.name}[/bold] in {home.root}")
    for account in connected:
        console.print(f"  connected {account.provider.value:<10} {account.address}")
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise InvalidInput.one(flag, f"expects KEY=VALUE, got {key or value!r}")
        pairs[key] = rest
    return pairs


def cmd_connect(args: argparse.Namespace) -> int:
    home = Home.locate(args.home)
    config = home.config()
    store = home.store()
    provider = Provider(args.provider)
    settings: dict[str, str] = {}
    credentials: dict[str, str] = {}
    address = args.address
    if args.sandbox:
        sandbox = json.loads(args.sandbox.read_text(encoding="utf-8"))
        settings, credentials, default_address = sandbox_account(provider, sandbox[provider.value])
        if sandbox.get("ca_bundle"):
            settings["ca_bundle"] = sandbox["ca_bundle"]
        address = address or default_address
    settings.update(_pairs(args.config, "--config"))
    credentials.update(_pairs(args.secret, "--secret"))
    if not address:
        raise InvalidInput.one("--address", "is required without --sandbox")
    if not credentials:
        raise InvalidInput.one("--secret", "give the account's credentials (or --sandbox)")
    if args.owner:
        owners = store.lookup(User, config.org_id, "email", args.owner.lower(), limit=1)
        if not owners:
            raise NotFound("user", args.owner)
        owner = owners[0]
    else:
        owner = store.get(User, config.org_id, config.admin_user_id)
    setup = Setup(store, home.secrets())
    account, sync = setup.connect(config.org_id, owner, provider, address, settings, credentials)
    console.print(f"connected {provider.value} {account.address} ({account.id}), sync {sync.id}")
    return 0


def connect_sandbox_accounts(
    setup: Setup, org_id: str, admin: User, rep: User, sandbox: dict[str, Any]
) -> list[ConnectedAccount]:
    """Connects every provider sandbox.json describes, with two-way sync."""
    ca = sandbox.get("ca_bundle", "")
    accounts = []
    for provider in (Provider.SALESFORCE, Provider.GOOGLE, Provider.MICROSOFT, Provider.AIRCALL):
        entry = sandbox.get(provider.value)
        if not entry:
            continue
        owner = admin if provider in (Provider.SALESFORCE, Provider.AIRCALL) else rep
        config, credentials, address = sandbox_account(provider, entry)
        if ca:
            config["ca_bundle"] = ca
        account, _ = setup.connect(org_id, owner, provider, address, config, credentials)
        accounts.append(account)
    return accounts


_SECRET_KEYS = {"client_secret", "refresh_token", "api_token", "access_token", "private_key",
                "jwt_private_key", "password"}  # fmt: skip


def sandbox_account(
    provider: Provider, entry: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str], str]:
    """Splits a sandbox.json entry into the account's config (not secret) and credentials."""
    config: dict[str, str] = {}
    credentials: dict[str, str] = {}
    for key, value in entry.items():
        if not isinstance(value, str) or key == "admin":
            continue
        secret = key in _SECRET_KEYS or key.endswith(("_secret", "_token", "_private_key"))
        (credentials if secret else config)[key] = value
    if "client_id" in config:
        credentials["client_id"] = config["client_id"]
    if "api_id" in config:
        credentials["api_id"] = config["api_id"]
    address = (
        entry.get("username")
        or entry.get("user")
        or entry.get("user_id")
        or entry.get("company_name")
        or f"{provider.value}-company"
    )
    return config, credentials, str(address)


# ---- sync ---------------------------------------------------------------------------------------


def _service(home: Home) -> tuple[SyncService, LocalConfig]:
    config = home.config()
    store = home.store()
    return SyncService(store, config.org_id, connector_factory(home.secrets())), config


def cmd_sync(args: argparse.Namespace) -> int:
    home = Home.locate(args.home)
    service, _ = _service(home)
    while True:
        with sync_gc():
            report = _run_with_progress(service, args.dry_run, show=not args.json)
        if args.json:
            print(json.dumps(report.to_json(), default=str))
        else:
            print_report(report)
        if args.once or args.dry_run:
            return 0
        interval = args.interval or _shortest_interval(service) * 60
        time.sleep(interval)


def _run_with_progress(service: SyncService, dry_run: bool, *, show: bool) -> RunReport:
    """One round, with a progress bar of records read per account (long initial syncs)."""
    if not show:
        return service.run_once(dry_run=dry_run)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("sync", total=None)

        def tick(phase: str, account: str, n: int) -> None:
            progress.update(task, advance=n, description=f"{phase} {account}")

        return service.run_once(dry_run=dry_run, progress=tick)


def _shortest_interval(service: SyncService) -> float:
    schedules = [
        s.schedule.interval_minutes for s in service.store.scan(SyncSettings, service.org_id)
    ]
    return float(min(schedules, default=15))


def print_report(report: RunReport) -> None:
    table = Table(title=f"{'Dry run' if report.dry_run else 'Sync run'} {report.run_id}")
    for column in ("account", "pulled", "hub +", "hub ~", "echoes", "conflicts", "created",
                   "updated", "deleted", "restored", "archived", "failed"):  # fmt: skip
        table.add_column(column, justify="left" if column == "account" else "right")
    for spoke in report.spokes.values():
        table.add_row(
            f"{spoke.provider} ({spoke.account_id})",
            *(str(v) for v in (spoke.pulled, spoke.hub_created, spoke.hub_updated, spoke.echoes,
                                spoke.conflicts, spoke.created, spoke.updated, spoke.deleted,
                                spoke.restored, spoke.archived, spoke.failed)),
        )  # fmt: skip
    console.print(table)
    for spoke in report.spokes.values():
        for error in spoke.errors[:5]:
            console.print(f"  [yellow]{spoke.account_id}[/yellow]: {error}")
    if report.dry_run:
        for planned in report.planned[:50]:
            console.print(
                f"  would {planned.kind:<10} {planned.account_id:<24} "
                f"{planned.contact_id or '':<36} {','.join(planned.fields)}"
            )
        if len(report.planned) > 50:
            console.print(f"  ... and {len(report.planned) - 50} more")


# ---- status -------------------------------------------------------------------------------------


def status_document(home: Home) -> dict[str, Any]:
    config = home.config()
    store = home.store()
    accounts = {a.id: a for a in store.scan(ConnectedAccount, config.org_id)}
    syncs = []
    for settings in store.scan(SyncSettings, config.org_id):
        account = accounts.get(settings.account_id)
        cursors = [
            {"stream": c.stream, "updated_at": c.updated_at.isoformat()}
            for c in store.scan(Cursor, config.org_id)
            if c.account_id == settings.account_id
        ]
        syncs.append(
            {
                "sync_id": settings.id,
                "account_id": settings.account_id,
                "provider": account.provider.value if account else None,
                "account_status": account.status.value if account else None,
                "account_status_reason": account.status_reason if account else None,
                "direction": settings.direction.value,
                "state": settings.status.state.value,
                "counts": settings.status.counts.model_dump(),
                "last_run_at": settings.status.last_run_at.isoformat()
                if settings.status.last_run_at
                else None,
                "last_error": settings.status.last_error,
                "record_errors": [
                    e.model_dump(mode="json") for e in settings.status.record_errors[:10]
                ],
                "cursors": cursors,
            }
        )
    return {"org_id": config.org_id, "syncs": syncs}


def cmd_status(args: argparse.Namespace) -> int:
    document = status_document(Home.locate(args.home))
    if args.json:
        print(json.dumps(document))
        return 0
    colours = {"in_progress": "dark_orange", "active": "green", "paused": "grey50", "error": "red"}
    table = Table(title="Syncs")
    for column in ("account", "state", "in sync", "excluded", "failing", "last run", "last error"):
        table.add_column(column)
    for sync in document["syncs"]:
        state = sync["state"]
        table.add_row(
            f"{sync['provider']} ({sync['account_id']})",
            f"[{colours.get(state, 'white')}]{state}[/]",
            str(sync["counts"]["in_sync"]),
            str(sync["counts"]["excluded"]),
            str(sync["counts"]["failing"]),
            sync["last_run_at"] or "never",
            (sync["last_error"] or "")[:60],
        )
    console.print(table)
    return 0


# ---- contacts -----------------------------------------------------------------------------------


def _actor(home: Home, as_user: str | None) -> tuple[Gallery, Actor]:
    config = home.config()
    store = home.store()
    if as_user:
        users = store.lookup(User, config.org_id, "email", as_user.lower(), limit=1)
        if not users:
            raise NotFound("user", as_user)
        user = users[0]
    else:
        user = store.get(User, config.org_id, config.admin_user_id)
    return Gallery(store), Actor.of(user)


def contact_json(contact: HubContact) -> dict[str, Any]:
    return contact.model_dump(mode="json")


def cmd_contacts_list(args: argparse.Namespace) -> int:
    gallery, actor = _actor(Home.locate(args.home), args.as_user)
    if args.q:
        contacts = gallery.search(actor, args.q, limit=args.limit)
    else:
        contacts = []
        token = None
        while len(contacts) < args.limit:
            page = gallery.page(actor, limit=200, page_token=token, include_archived=args.all)
            contacts.extend(page.items)
            if page.next_token is None:
                break
            token = page.next_token
        contacts = contacts[: args.limit]
    if args.json:
        print(json.dumps({"contacts": [contact_json(c) for c in contacts]}))
        return 0
    table = Table(title=f"Contacts ({len(contacts)})")
    for column in ("id", "name", "email", "phone", "company", "visibility"):
        table.add_column(column)
    for c in contacts:
        table.add_row(
            c.id,
            c.display_name + (" [dim](archived)[/dim]" if c.archived else ""),
            c.emails[0].address if c.emails else "",
            (c.phones[0].e164 or c.phones[0].raw) if c.phones else "",
            c.company,
            c.visibility.value,
        )
    console.print(table)
    return 0


def cmd_contacts_show(args: argparse.Namespace) -> int:
    gallery, actor = _actor(Home.locate(args.home), args.as_user)
    contact = gallery.get(actor, args.id)
    links = gallery.links(actor, args.id)
    history = gallery.history(actor, args.id)
    document = {
        "contact": contact_json(contact),
        "links": [
            {k: v for k, v in link.model_dump(mode="json").items() if k not in ("snapshot",)}
            for link in links
        ],
        "history": [e.model_dump(mode="json") for e in history],
    }
    if args.json:
        print(json.dumps(document))
        return 0
    console.print(f"[bold]{contact.display_name}[/bold]  {contact.id}  v{contact.version}")
    table = Table("field", "value", "source", "source time", "why")
    for name, prov in sorted(contact.provenance.items()):
        table.add_row(
            name,
            _shown(getattr(contact, name))[:60],
            prov.source,
            prov.source_ts.isoformat(),
            prov.reason,
        )
    console.print(table)
    for link in links:
        console.print(f"  linked: {link.account_id} {link.object_type} {link.remote_id}")
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(
            getattr(v, "address", None) or getattr(v, "e164", None) or str(v) for v in value
        )
    return str(value)


def cmd_reconcile(args: argparse.Namespace) -> int:
    service, _ = _service(Home.locate(args.home))
    result = service.reconcile()
    if args.json:
        print(json.dumps(result))
    else:
        keys = ("in_step", "diverged", "unlinked", "missing", "unpushed")
        table = Table("account", *(k.replace("_", " ") for k in keys), title="Reconciliation")
        for account, counts in result.items():
            table.add_row(account, *(str(counts[k]) for k in keys))
        console.print(table)
        for account, counts in result.items():
            for kind, ids in counts.get("samples", {}).items():
                console.print(f"  {account} {kind}: {', '.join(ids)}")
    return 0


# ---- sandboxes ----------------------------------------------------------------------------------


def cmd_sandbox_up(args: argparse.Namespace) -> int:
    from contactsync_sandbox.up import start  # the sandboxes ship with the project, not the layer

    home = Home.locate(args.home)
    state_dir = (args.state_dir or home.root / "sandbox").resolve()
    running = start(state_dir, args.port, seed=args.seed)
    running.start_deliveries()
    console.print(f"Sandboxes up; wrote [bold]{running.config_path}[/bold]")
    for name, server in running.servers.items():
        console.print(f"  {name:<10} {server.base_url}")
    console.print("Ctrl-C to stop (state is saved to the state directory).")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        running.stop(save=True)
    return 0


def cmd_sandbox_seed(args: argparse.Namespace) -> int:
    import requests

    home = Home.locate(args.home)
    path = args.sandbox or home.root / "sandbox" / "sandbox.json"
    sandbox = json.loads(Path(path).read_text(encoding="utf-8"))
    session = requests.Session()
    session.trust_env = False
    session.verify = sandbox["ca_bundle"]
    response = session.post(
        sandbox[args.provider]["admin"] + "seed",
        json={"count": args.count, "seed": args.seed},
        timeout=600,
    )
    if response.status_code != 200:
        err_console.print(
            f"[red]seeding failed[/red]: {response.status_code} {response.text[:300]}"
        )
        return 1
    summary = response.json()
    console.print(
        f"Seeded {args.provider}: {summary.get('created', summary.get('count', args.count))}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from contactsync.local.demo import run_demo

    result: int = run_demo(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
