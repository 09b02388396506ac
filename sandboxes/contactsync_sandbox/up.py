"""`contactsync sandbox up`: all four sandboxes over HTTPS on 127.0.0.1, in the foreground.

Writes ``DIR/sandbox.json`` (INTERFACES.md): per provider the base URLs, token endpoint,
credentials, admin URL, and the CA bundle that makes the throw-away certificates trusted. With a
state directory, each sandbox's state is restored on start and saved on exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contactsync_sandbox.core.app import SandboxApp
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.registry import PROVIDERS, create

log = logging.getLogger(__name__)
# The switches that let `contactsync serve` (http on 127.0.0.1) receive the webhooks.
LOOPBACK_WEBHOOKS: dict[str, dict[str, Any]] = {
    "microsoft": {"allow_http_localhost": True},
    "aircall": {"webhook_require_https": False},
}


@dataclass
class RunningSandboxes:
    state_dir: Path
    authority: CertificateAuthority
    apps: dict[str, SandboxApp]
    servers: dict[str, HTTPSSandboxServer]
    config_path: Path
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = {"ca_bundle": str(self.authority.ca_path.resolve())}
        for name, app in self.apps.items():
            result[name] = app.client_config()
        return result

    def start_deliveries(self, interval: float = 0.25) -> None:
        """Webhooks go out from a background thread, as the providers send them."""

        def loop() -> None:
            while not self._stop.wait(interval):
                for app in self.apps.values():
                    try:
                        app.deliver_webhooks()
                    except Exception:  # a receiver's failure must not stop delivery
                        log.exception("webhook delivery failed", extra={"sandbox": app.name})

        self._thread = threading.Thread(target=loop, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self, save: bool = True) -> None:
        self._stop.set()
        for server in self.servers.values():
            server.stop()
        if save:
            for name, app in self.apps.items():
                app.save(self.state_dir / f"{name}.state.json")


def start(
    state_dir: Path,
    port: int = 0,
    *,
    seed: int = 0,
    clock: VirtualClock | None = None,
    restore: bool = True,
    loopback_webhooks: bool = True,
) -> RunningSandboxes:
    """Starts the four sandboxes on consecutive ports from ``port`` (0: any free ports).

    ``loopback_webhooks``: Graph and Aircall accept plain-http webhook URLs on 127.0.0.1 (the
    real services want https; `contactsync serve`, which receives them locally, is http on the
    loopback address). Off, the sandboxes are as strict as the services."""
    state_dir.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority.create(state_dir)
    shared_clock = clock or VirtualClock(frozen=False)
    apps: dict[str, SandboxApp] = {}
    servers: dict[str, HTTPSSandboxServer] = {}
    for offset, name in enumerate(PROVIDERS):
        app = create(name, shared_clock, seed=seed)
        saved = state_dir / f"{name}.state.json"
        if restore and saved.exists():
            app.restore(saved)
        if loopback_webhooks and name in LOOPBACK_WEBHOOKS:
            app.configure_quotas(LOOPBACK_WEBHOOKS[name])
        server = HTTPSSandboxServer(app, authority, port + offset if port else 0).start()
        apps[name] = app
        servers[name] = server
    running = RunningSandboxes(state_dir, authority, apps, servers, state_dir / "sandbox.json")
    running.config_path.write_text(json.dumps(running.config(), indent=2) + "\n", encoding="utf-8")
    return running


@contextlib.contextmanager
def running(state_dir: Path, port: int = 0, **kw: Any) -> Iterator[RunningSandboxes]:
    sandboxes = start(state_dir, port, **kw)
    sandboxes.start_deliveries()
    try:
        yield sandboxes
    finally:
        sandboxes.stop(save=False)
