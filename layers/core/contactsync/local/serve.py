"""`contactsync serve`: the API, the webhooks and the scheduler in one process on 127.0.0.1.

A threaded WSGI server (stdlib) runs the same resolver the Lambda functions run; webhook routes
queue pulls on an in-process queue; a scheduler thread takes them, runs each sync when its
schedule says it is due, and keeps webhook registrations fresh (``Connector.prepare``); a
capture thread reads the mailboxes' and the phone system's activity every few minutes (a
backfill can take a while, so it does not hold up the syncs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from contactsync.activity import ActivityCapture, ReaderFactory, reader_factory
from contactsync.api import ApiContext, ApiSettings, build_app
from contactsync.api.jobs import Consumer
from contactsync.api.queue import LocalPullQueue, PullInbox
from contactsync.api.routes.accounts import ensure_webhook_config
from contactsync.api.settings import ProviderOAuth
from contactsync.api.wsgi import ApiWsgi
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.base import utcnow
from contactsync.domain.sync import SyncSettings, SyncState
from contactsync.local.connectors import connector_factory, https_session
from contactsync.local.home import Home, LocalConfig
from contactsync.local.process import sync_gc
from contactsync.store.base import Store
from contactsync.sync.service import SyncService
from contactsync.sync.spokes import ConnectorFactory

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def webhook_key(config: LocalConfig) -> str:
    """The local deployment's webhook key, derived from the home's token key."""
    return hmac.new(config.token_key.encode(), b"contactsync webhooks", hashlib.sha256).hexdigest()


def sandbox_oauth(sandbox: dict[str, Any]) -> dict[Provider, ProviderOAuth]:
    """OAuth clients for the providers sandbox.json describes (the connect flows)."""
    clients: dict[Provider, ProviderOAuth] = {}
    ca = {"ca_bundle": sandbox["ca_bundle"]} if sandbox.get("ca_bundle") else {}
    ms = sandbox.get("microsoft")
    if ms:
        clients[Provider.MICROSOFT] = ProviderOAuth(
            client_id=ms["client_id"],
            client_secret=ms.get("client_secret", ""),
            authorize_url=ms["authority"] + "/oauth2/v2.0/authorize",
            token_url=ms["authority"] + "/oauth2/v2.0/token",
            scopes=["openid", "email", "offline_access", "Contacts.ReadWrite"],
            account_config={k: ms[k] for k in ("authority", "graph_base", "tenant_id") if k in ms}
            | ca,
        )
    google = sandbox.get("google")
    if google:
        clients[Provider.GOOGLE] = ProviderOAuth(
            client_id=google["client_id"],
            client_secret=google.get("client_secret", ""),
            authorize_url=google.get("authorize_uri") or google["api_base"] + "o/oauth2/v2/auth",
            token_url=google["token_uri"],
            scopes=["openid", "email", "https://www.googleapis.com/auth/contacts"],
            authorize_params={"access_type": "offline", "prompt": "consent"},
            account_config={k: google[k] for k in ("api_base", "token_uri") if k in google} | ca,
        )
    sf = sandbox.get("salesforce")
    if sf:
        login = sf.get("login_url") or sf["instance_url"]
        clients[Provider.SALESFORCE] = ProviderOAuth(
            client_id=sf["client_id"],
            client_secret=sf.get("client_secret", ""),
            authorize_url=login + "/services/oauth2/authorize",
            token_url=sf["token_url"],
            scopes=["api", "refresh_token"],
            account_config={k: sf[k] for k in ("api_version", "token_url") if k in sf} | ca,
        )
    aircall = (sandbox.get("aircall") or {}).get("oauth")
    if aircall:
        clients[Provider.AIRCALL] = ProviderOAuth(
            client_id=aircall["client_id"],
            client_secret=aircall.get("client_secret", ""),
            authorize_url=aircall["authorize_url"],
            token_url=aircall["token_url"],
            scopes=[aircall.get("scope", "public_api")],
            account_config={"api_base": sandbox["aircall"]["api_base"]} | ca,
        )
    return clients


@dataclass
class Scheduler:
    """Runs queued webhook pulls at once and scheduled syncs when due, one round at a time."""

    store: Store
    org_id: str
    connectors: ConnectorFactory
    queue: LocalPullQueue
    inbox: PullInbox
    now: Callable[[], datetime] = utcnow
    poll_seconds: float = 0.5
    prepare_every: timedelta = timedelta(hours=6)
    prepare_retry: timedelta = timedelta(minutes=5)
    _prepare_due: dict[str, datetime] = field(default_factory=dict)
    _failures: int = 0
    _retry_at: datetime | None = None
    rounds: int = 0

    def __post_init__(self) -> None:
        self.service = SyncService(self.store, self.org_id, self.connectors, now=self.now)
        self.consumer = Consumer(self.store, self.inbox, self.connectors, self.service)

    def due_accounts(self) -> set[str]:
        now = self.now()
        accounts = {a.id: a for a in self.store.scan(ConnectedAccount, self.org_id)}
        due = set()
        for settings in self.store.scan(SyncSettings, self.org_id):
            account = accounts.get(settings.account_id)
            if account is None or account.status is not AccountStatus.CONNECTED:
                continue
            if settings.status.state not in (SyncState.IN_PROGRESS, SyncState.ACTIVE):
                continue
            last = settings.status.last_run_at
            if last is None or last + timedelta(minutes=settings.schedule.interval_minutes) <= now:
                due.add(account.id)
        return due

    def maintain_webhooks(self) -> None:
        """Registers and renews webhooks (Graph subscriptions expire within days)."""
        now = self.now()
        for account in self.store.scan(ConnectedAccount, self.org_id):
            if account.status is not AccountStatus.CONNECTED:
                continue
            due = self._prepare_due.get(account.id)
            if due is not None and now < due:
                continue
            try:
                self.connectors(account).prepare()
                self._prepare_due[account.id] = now + self.prepare_every
            except Exception as exc:  # noqa: BLE001 - one account's trouble must not stop others
                # Tried again soon, not in six hours: a webhook missing that long is a sync
                # running on its schedule alone. The code says why (never the message: it may
                # quote the provider's answer).
                self._prepare_due[account.id] = now + self.prepare_retry
                log.warning(
                    "webhook upkeep failed for account %s: %s %s",
                    account.id,
                    type(exc).__name__,
                    getattr(exc, "code", ""),
                )

    def tick(self, wait: float = 0.0) -> bool:
        """One step: handle queued requests, then due schedules. True when a round ran."""
        requests = [r for r in self.queue.take_all(wait) if r.org_id == self.org_id]
        if self._retry_at is not None and self.now() < self._retry_at:
            for request in requests:  # back off after a failed round; keep the work
                self.queue.send(request)
            return False
        due = self.due_accounts()
        try:
            with sync_gc():  # rounds run one at a time, here, as `contactsync sync` runs them
                report = self.consumer.handle(requests)
                ran = report is not None
                due -= set(report.spokes) if report is not None else set()
                if due:
                    self.service.run_once(accounts=due)
                    ran = True
        except Exception as exc:  # noqa: BLE001 - the loop must survive; retried with backoff
            self._failures += 1
            delay = min(300.0, 2.0**self._failures)
            self._retry_at = self.now() + timedelta(seconds=delay)
            log.warning("sync round failed", extra={"error": type(exc).__name__, "retry_in": delay})
            for request in requests:
                self.inbox.request(
                    request.org_id,
                    request.account_id,
                    request.action,
                    "retry",
                    sync_id=request.sync_id,
                )
            return False
        self._failures, self._retry_at = 0, None
        self.rounds += int(ran)
        return ran

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.maintain_webhooks()
            self.tick(self.poll_seconds)


@dataclass
class CaptureLoop:
    """Activity capture on a timer: each run reads every connected mailbox and phone system
    from its cursor (the first run backfills the provider's window)."""

    store: Store
    org_id: str
    readers: ReaderFactory
    now: Callable[[], datetime] = utcnow
    every: timedelta = timedelta(minutes=5)
    last_run: datetime | None = None
    runs: int = 0

    def __post_init__(self) -> None:
        self.capture = ActivityCapture(self.store, self.org_id, self.readers, now=self.now)

    def tick(self) -> bool:
        """Runs a capture when one is due. True when it ran."""
        now = self.now()
        if self.last_run is not None and now - self.last_run < self.every:
            return False
        self.last_run = now
        try:
            report = self.capture.run()
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next run retries
            log.warning("activity capture failed", extra={"error": type(exc).__name__})
            return False
        self.runs += 1
        failed = [s.error for s in report.streams if s.error]
        log.info(
            "activity captured",
            extra={"stored": report.stored, "streams": len(report.streams), "failed": failed},
        )
        return True

    def run(self, stop: threading.Event, poll_seconds: float = 5.0) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(poll_seconds)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # A burst of webhooks must not overflow the listen backlog (a dropped SYN costs 1 s).
    request_queue_size = 256


class _QuietHandler(WSGIRequestHandler):
    """No access log: query strings carry validation tokens and endpoint keys."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class LocalRuntime:
    ctx: ApiContext
    wsgi: ApiWsgi
    scheduler: Scheduler
    server: WSGIServer
    capture: CaptureLoop | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_port}"

    def start(self, scheduler: bool = True) -> LocalRuntime:
        serving = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)
        serving.start()
        self.threads.append(serving)
        if scheduler:
            loop = threading.Thread(
                target=self.scheduler.run, args=(self.stop_event,), name="scheduler", daemon=True
            )
            loop.start()
            self.threads.append(loop)
            if self.capture is not None:
                capturing = threading.Thread(
                    target=self.capture.run, args=(self.stop_event,), name="capture", daemon=True
                )
                capturing.start()
                self.threads.append(capturing)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads:
            thread.join(timeout=10)


def build_runtime(home: Home, port: int = DEFAULT_PORT, *, swagger: bool = True) -> LocalRuntime:
    config = home.config()
    store = home.store()
    secrets = home.secrets()
    sandbox: dict[str, Any] = {}
    if config.sandbox_file and Path(config.sandbox_file).exists():
        sandbox = json.loads(Path(config.sandbox_file).read_text(encoding="utf-8"))
    queue = LocalPullQueue()
    inbox = PullInbox(store, queue)
    server = make_server(
        HOST, port, lambda e, s: [], server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    aircall = sandbox.get("aircall") or {}
    settings = ApiSettings(
        public_base_url=f"http://{HOST}:{server.server_port}",
        token_key=config.token_key,
        webhook_key=webhook_key(config),
        oauth=sandbox_oauth(sandbox),
        aircall_api_base=aircall.get("api_base", "https://api.aircall.io/v1"),
        aircall_account_config={"ca_bundle": sandbox["ca_bundle"]}
        if sandbox.get("ca_bundle")
        else {},
        swagger=swagger,
    )
    ctx = ApiContext(
        settings=settings,
        store=store,
        secrets=secrets,
        inbox=inbox,
        http=https_session(sandbox.get("ca_bundle")),
        connectors=connector_factory(secrets),
    )
    for account in list(store.scan(ConnectedAccount, config.org_id)):
        if account.status is not AccountStatus.DELETED:
            ensure_webhook_config(ctx, account)
    wsgi = ApiWsgi(lambda: build_app(ctx))
    server.set_app(wsgi)
    scheduler = Scheduler(store, config.org_id, connector_factory(secrets), queue, inbox)
    capture = CaptureLoop(store, config.org_id, reader_factory(secrets))
    return LocalRuntime(ctx, wsgi, scheduler, server, capture=capture)
