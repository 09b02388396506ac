"""The activity capture's world: the Google, Microsoft and Aircall sandboxes mounted in-process
on one session (the real clients go through it), a SQLite hub with an organisation, its users
and gallery contacts, and accounts connected with the sandboxes' credentials."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from contactsync.activity import ActivityCapture, reader_factory
from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.contact import HubContact
from contactsync.domain.org import Organisation, User
from contactsync.local.secrets import LocalSecretStore
from contactsync.store.sqlite import SQLiteStore
from contactsync_sandbox.aircall import App as AircallApp
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.google import App as GoogleApp
from contactsync_sandbox.microsoft import App as MicrosoftApp

GOOGLE = "https://google.sandbox.test/"
MICROSOFT = "https://microsoft.sandbox.test/"
AIRCALL = "https://aircall.sandbox.test/"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class Env:
    clock: VirtualClock
    session: requests.Session
    google: GoogleApp
    microsoft: MicrosoftApp
    aircall: AircallApp
    store: SQLiteStore
    secrets: LocalSecretStore
    org: Organisation
    admin: User  # Michael: the Aircall account, a Microsoft mailbox
    pam: User  # a Gmail mailbox (rep@example.com in the Google sandbox)

    def capture(self) -> ActivityCapture:
        sessions = {"google": self.session, "microsoft": self.session, "aircall": self.session}
        readers = reader_factory(self.secrets, clock=self.clock, sessions=sessions)
        return ActivityCapture(self.store, self.org.id, readers, now=self.clock.now)

    def contact(self, owner: User, **data: Any) -> HubContact:
        return Gallery(self.store, self.clock.now).create(Actor.of(owner), data)

    def connect(self, owner: User, provider: Provider, address: str, config: dict[str, str],
                credentials: dict[str, str]) -> ConnectedAccount:  # fmt: skip
        account, _ = Setup(self.store, self.secrets, self.clock.now).connect(
            self.org.id, owner, provider, address, config, credentials
        )
        return account

    def gmail_account(self, owner: User, user: str = "rep@example.com") -> ConnectedAccount:
        config = self.google.client_config()
        return self.connect(
            owner,
            Provider.GOOGLE,
            user,
            {k: config[k] for k in ("token_uri", "gmail_api_base", "calendar_api_base")},
            {"client_id": config["client_id"], "client_secret": config["client_secret"],
             "refresh_token": config["users"][user]},
        )  # fmt: skip

    def outlook_account(self, owner: User, user: str = "manager@example.com") -> ConnectedAccount:
        config = self.microsoft.client_config()
        return self.connect(
            owner,
            Provider.MICROSOFT,
            user,
            {"authority": config["authority"], "graph_base": config["graph_base"], "user_id": user},
            {"client_id": config["client_id"], "client_secret": config["client_secret"]},
        )

    def aircall_account(self, owner: User) -> ConnectedAccount:
        config = self.aircall.client_config()
        return self.connect(
            owner,
            Provider.AIRCALL,
            "Dunder Mifflin",
            {"api_base": config["api_base"]},
            {"api_id": config["api_id"], "api_token": config["api_token"]},
        )

    def google_admin(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(GOOGLE + "_sandbox/workspace", json=body)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def outlook_admin(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(MICROSOFT + "_sandbox/mail", json=body)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = VirtualClock(START)
    google = GoogleApp(clock, seed=3)
    microsoft = MicrosoftApp(clock, seed=3)
    aircall = AircallApp(clock, seed=3)
    google.workspace.settings.enabled = False
    microsoft.configure_quotas(
        {"enabled": False, "delta_empty_page_rate": 0, "delta_repeat_rate": 0}
    )
    session = requests.Session()
    mount_sandbox(session, GOOGLE, google)
    mount_sandbox(session, MICROSOFT, microsoft)
    mount_sandbox(session, AIRCALL, aircall)
    store = SQLiteStore(tmp_path / "hub.db")
    secrets = LocalSecretStore(tmp_path / "secrets.json")
    setup = Setup(store, secrets, clock.now)
    org, admin = setup.create_organisation("Dunder Mifflin", "manager@example.com")
    pam = setup.add_user(org.id, "rep@example.com", "Pam Beesly")
    yield Env(clock, session, google, microsoft, aircall, store, secrets, org, admin, pam)
    store.close()
