"""A whole organisation in one process: the four provider sandboxes in-process on one virtual
clock, a SQLite hub, every account connected through the real setup service, and the real
SyncService with the real connectors. End-to-end scenarios, the demo's checks and the
benchmarks build on it."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.connectors.base import Connector, ContactFields, Delete, RemoteRecord, Update
from contactsync.domain import ConnectedAccount, HubContact, Link, Provider, SyncSettings, User
from contactsync.local.cli import sandbox_account
from contactsync.local.connectors import connector_factory
from contactsync.local.secrets import LocalSecretStore
from contactsync.store.sqlite import SQLiteStore
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from contactsync_sandbox.core import SandboxApp, VirtualClock, mount_sandbox
from contactsync_sandbox.registry import create

ALL = (Provider.SALESFORCE, Provider.GOOGLE, Provider.MICROSOFT, Provider.AIRCALL)
OWNERS = {Provider.SALESFORCE: "admin", Provider.AIRCALL: "admin"}  # the rest: the rep


@dataclass
class World:
    root: Path
    clock: VirtualClock
    apps: dict[Provider, SandboxApp]
    sessions: dict[Provider, requests.Session]
    store: SQLiteStore
    service: SyncService
    org_id: str
    admin: User
    rep: User
    accounts: dict[Provider, ConnectedAccount] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        root: Path,
        providers: Iterable[Provider] = ALL,
        *,
        seed: int = 7,
        quotas_off: bool = True,
        settings: dict[Provider, dict[str, Any]] | None = None,
    ) -> World:
        clock = VirtualClock()
        apps: dict[Provider, SandboxApp] = {}
        sessions: dict[Provider, requests.Session] = {}
        for provider in providers:
            app = create(provider.value, clock, seed=seed)
            if quotas_off:
                app.configure_quotas({"enabled": False})
            sessions[provider] = mount_sandbox(
                requests.Session(), f"https://{provider.value}.sandbox.test/", app
            )
            apps[provider] = app
        store = SQLiteStore(root / "hub.db")
        secrets = LocalSecretStore(root / "secrets.json")
        setup = Setup(store, secrets, now=clock.now)
        org, admin = setup.create_organisation("Dunder Mifflin", "admin@example.com")
        rep = setup.add_user(org.id, "rep@example.com", "Sales rep")
        factory = connector_factory(
            secrets, clock=clock, sessions={p.value: s for p, s in sessions.items()}
        )
        service = SyncService(store, org.id, factory, now=clock.now)
        world = cls(root, clock, apps, sessions, store, service, org.id, admin, rep)
        for provider in providers:
            config, credentials, address = sandbox_account(provider, apps[provider].client_config())
            owner = admin if OWNERS.get(provider) == "admin" else rep
            account, sync = setup.connect(org.id, owner, provider, address, config, credentials)
            if settings and provider in settings:
                changed = SyncSettings.parse({**sync.model_dump(mode="json"), **settings[provider]})
                store.update(changed.model_copy(update={"version": sync.version}))
            world.accounts[provider] = account
        for account in world.accounts.values():
            factory(account).prepare()
        return world

    def reconfigure(self, provider: Provider, **config: str) -> None:
        """Changes an account's config and rebuilds the connectors (they are cached)."""
        account = self.store.get(ConnectedAccount, self.org_id, self.accounts[provider].id)
        updated = self.store.update(
            account.model_copy(update={"config": {**account.config, **config}})
        )
        self.accounts[provider] = updated
        secrets = LocalSecretStore(self.root / "secrets.json")
        sessions = {p.value: s for p, s in self.sessions.items()}
        self.service.connectors = connector_factory(secrets, clock=self.clock, sessions=sessions)

    # ---- running -----------------------------------------------------------------------------

    def sync(self, *, check: bool = True) -> RunReport:
        report = self.service.run_once()
        if check:
            errors = {a: s.errors for a, s in report.spokes.items() if s.errors}
            assert not errors, errors
        return report

    def converge(self, rounds: int = 4) -> list[RunReport]:
        """Rounds until one writes nothing anywhere (the clock moves between rounds, as
        providers need it to: Google shows writes to incremental syncs after seconds)."""
        reports = []
        for _ in range(rounds):
            self.clock.advance(30)
            report = self.sync()
            reports.append(report)
            if report.remote_writes == 0 and report.hub_writes == 0:
                return reports
        raise AssertionError(f"no convergence after {rounds} rounds: {reports[-1].to_json()}")

    # ---- looking at the hub --------------------------------------------------------------------

    def gallery(self) -> Gallery:
        return Gallery(self.store, now=self.clock.now)

    def actor(self, user: User | None = None) -> Actor:
        return Actor.of(user or self.admin)

    def contacts(self) -> list[HubContact]:
        return [c for c in self.store.scan(HubContact, self.org_id) if not c.archived]

    def links(self, provider: Provider) -> list[Link]:
        account = self.accounts[provider]
        return [lk for lk in self.store.scan(Link, self.org_id) if lk.account_id == account.id]

    def contact_of(self, provider: Provider, remote_id: str) -> HubContact | None:
        for link in self.links(provider):
            if link.remote_id == remote_id:
                return self.store.find(HubContact, self.org_id, link.contact_id)
        return None

    # ---- acting as a user of a provider ----------------------------------------------------------

    def user_client(self, provider: Provider) -> Connector:
        """A separate client on the same account: what a person editing in the provider's own
        app looks like to us (its requests are not the sync's)."""
        account = self.accounts[provider]
        credentials = LocalSecretStore(self.root / "secrets.json").get(account.secret_ref or "")
        module = importlib.import_module(f"contactsync.connectors.{provider.value}")
        client: Connector = module.from_account(
            account, credentials, session=self.sessions[provider], clock=self.clock
        )
        return client

    def user_edit(
        self, provider: Provider, remote_id: str, object_type: str, **fields: Any
    ) -> None:
        [result] = self.user_client(provider).apply(
            object_type,
            [Update(remote_id=remote_id, fields=ContactFields(**fields), object_type=object_type)],
        )
        assert result.ok, result.error

    def user_delete(self, provider: Provider, remote_id: str, object_type: str) -> None:
        [result] = self.user_client(provider).apply(
            object_type, [Delete(remote_id=remote_id, object_type=object_type)]
        )
        assert result.ok, result.error

    def remote_records(self, provider: Provider, stream: str) -> list[RemoteRecord]:
        records: list[RemoteRecord] = []
        for page in self.user_client(provider).read(stream, None):
            records.extend(r for r in page.records if not r.deleted)
            if page.last:
                break
        return records

    def admin_call(self, provider: Provider, path: str, body: dict[str, Any]) -> Any:
        app = self.apps[provider]
        response = self.sessions[provider].post(app.client_config()["admin"] + path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def seed(
        self, provider: Provider, count: int, seed: int = 7, overlap: float = 0.3, **extra: Any
    ) -> Any:
        body = {"count": count, "seed": seed, "overlap": overlap, **extra}
        return self.admin_call(provider, "seed", body)
