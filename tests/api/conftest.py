"""Fixtures of the API tests: the real app on a SQLite store, served in-process through its WSGI
adapter (the same code `contactsync serve` runs), two organisations, local bearer tokens, and
the Google, Microsoft, Salesforce and Aircall sandboxes mounted in-process for the connect flows
(their real authorize and token endpoints) and webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from contactsync.api import ApiContext, ApiSettings, build_app
from contactsync.api.auth import issue_local_token
from contactsync.api.queue import LocalPullQueue, PullInbox
from contactsync.api.settings import ProviderOAuth
from contactsync.api.wsgi import ApiWsgi, WsgiTransport
from contactsync.app.setup import Setup
from contactsync.domain.accounts import Provider
from contactsync.domain.org import Organisation, Role, User
from contactsync.local.secrets import LocalSecretStore
from contactsync.store.sqlite import SQLiteStore
from contactsync_sandbox.aircall import App as AircallApp
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.google import App as GoogleApp
from contactsync_sandbox.microsoft import App as MicrosoftApp
from contactsync_sandbox.salesforce import App as SalesforceApp

API = "https://api.test"
MS = "https://microsoft.sandbox.test/"
AIRCALL = "https://aircall.sandbox.test/"
GOOGLE = "https://google.sandbox.test/"
SALESFORCE = "https://salesforce.sandbox.test/"
TOKEN_KEY = "t" * 43
WEBHOOK_KEY = "w" * 43


@dataclass
class Client:
    """Calls the API as one user (or anonymously)."""

    session: requests.Session
    token: str | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(method, API + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=json if json is not None else {}, **kwargs)

    def patch(self, path: str, json: Any, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, json=json, **kwargs)

    def put(self, path: str, json: Any, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)


@dataclass
class Env:
    ctx: ApiContext
    store: SQLiteStore
    secrets: LocalSecretStore
    queue: LocalPullQueue
    session: requests.Session
    microsoft: MicrosoftApp
    aircall: AircallApp
    google: GoogleApp
    salesforce: SalesforceApp
    org: Organisation
    admin: User
    rep: User
    other_org: Organisation
    other_admin: User
    wsgi: ApiWsgi
    clients: dict[str, Client] = field(default_factory=dict)

    def token(self, user: User, role: Role | None = None, ttl: int = 3600) -> str:
        return issue_local_token(
            TOKEN_KEY, user.org_id, user.id, role or user.role, datetime.now(UTC), ttl
        )

    def client(self, user: User | None, role: Role | None = None) -> Client:
        return Client(self.session, self.token(user, role) if user else None)

    @property
    def as_admin(self) -> Client:
        return self.client(self.admin)

    @property
    def as_rep(self) -> Client:
        return self.client(self.rep)

    @property
    def as_other(self) -> Client:
        return self.client(self.other_admin)

    @property
    def anonymous(self) -> Client:
        return Client(self.session)


def settings_for(
    microsoft: MicrosoftApp,
    aircall: AircallApp,
    google: GoogleApp | None = None,
    salesforce: SalesforceApp | None = None,
) -> ApiSettings:
    ms = microsoft.client_config()
    ac = aircall.client_config()
    oauth: dict[Provider, ProviderOAuth] = {}
    if google is not None:
        g = google.client_config()
        oauth[Provider.GOOGLE] = ProviderOAuth(
            client_id=g["client_id"],
            client_secret=g["client_secret"],
            authorize_url=g["auth_uri"],
            token_url=g["token_uri"],
            scopes=["openid", "email", "https://www.googleapis.com/auth/contacts"],
            authorize_params={"access_type": "offline", "prompt": "consent"},
            account_config={"api_base": g["api_base"], "token_uri": g["token_uri"]},
        )
    if salesforce is not None:
        sf = salesforce.client_config()
        oauth[Provider.SALESFORCE] = ProviderOAuth(
            client_id=sf["client_id"],
            client_secret=sf["client_secret"],
            authorize_url=sf["authorize_url"],
            token_url=sf["token_url"],
            scopes=["api", "refresh_token"],
            account_config={"login_url": sf["login_url"], "token_url": sf["token_url"]},
        )
    return ApiSettings(
        public_base_url=API,
        token_key=TOKEN_KEY,
        webhook_key=WEBHOOK_KEY,
        aircall_api_base=ac["api_base"],
        oauth={
            Provider.MICROSOFT: ProviderOAuth(
                client_id=ms["client_id"],
                client_secret=ms["client_secret"],
                authorize_url=ms["authority"] + "/oauth2/v2.0/authorize",
                token_url=ms["authority"] + "/oauth2/v2.0/token",
                scopes=["openid", "offline_access", "Contacts.ReadWrite"],
                account_config={"authority": ms["authority"], "graph_base": ms["graph_base"]},
            ),
            Provider.AIRCALL: ProviderOAuth(
                client_id=ac["oauth"]["client_id"],
                client_secret=ac["oauth"]["client_secret"],
                authorize_url=ac["oauth"]["authorize_url"],
                token_url=ac["oauth"]["token_url"],
                scopes=["public_api"],
                account_config={"api_base": ac["api_base"]},
            ),
            **oauth,
        },
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = VirtualClock(frozen=False)
    microsoft = MicrosoftApp(clock, seed=7)
    aircall = AircallApp(clock, seed=7)
    google = GoogleApp(clock, seed=7)
    salesforce = SalesforceApp(clock, seed=7)
    session = requests.Session()
    mount_sandbox(session, MS, microsoft)
    mount_sandbox(session, AIRCALL, aircall)
    mount_sandbox(session, GOOGLE, google)
    mount_sandbox(session, SALESFORCE, salesforce)
    store = SQLiteStore(tmp_path / "api.db")
    secrets = LocalSecretStore(tmp_path / "secrets.json")
    queue = LocalPullQueue()
    ctx = ApiContext(
        settings=settings_for(microsoft, aircall, google, salesforce),
        store=store,
        secrets=secrets,
        inbox=PullInbox(store, queue),
        http=session,
    )
    wsgi = ApiWsgi(lambda: build_app(ctx))
    session.mount(API + "/", WsgiTransport(wsgi))
    # The sandboxes deliver their webhooks to the API in-process too.
    microsoft.webhooks.session.mount(API + "/", WsgiTransport(wsgi))
    aircall.webhooks.session.mount(API + "/", WsgiTransport(wsgi))
    setup = Setup(store, secrets)
    org, admin = setup.create_organisation("Dunder Mifflin", "michael@dundermifflin.com")
    rep = setup.add_user(org.id, "rep@example.com", "Pam Beesly")
    other, other_admin = setup.create_organisation("Vance Refrigeration", "bob@vance.example")
    yield Env(ctx, store, secrets, queue, session, microsoft, aircall, google, salesforce, org,
              admin, rep, other, other_admin, wsgi)  # fmt: skip
    store.close()
