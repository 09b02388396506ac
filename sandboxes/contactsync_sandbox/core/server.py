"""Serving sandboxes over real HTTPS on 127.0.0.1, with a throw-away CA made by trustme.

Clients trust the CA through ``session.verify = ca_bundle``; nothing is patched. Each sandbox gets
its own port (Google and Aircall both live under ``/v1``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from contactsync_sandbox.core.app import FAULT_HEADER, FAULT_TIMEOUT, SandboxApp


class _FaultAwareApp:
    """Turns the app's timeout / drop markers into what a client sees on a real socket."""

    def __init__(self, app: SandboxApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        response = self.app.handle(Request(environ))
        fault = response.headers.pop(FAULT_HEADER, None)
        if fault is not None:
            if fault == FAULT_TIMEOUT:
                threading.Event().wait(self.timeout_seconds)
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return []
        return response(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None  # request lines would carry query strings with contact data


@dataclass
class CertificateAuthority:
    ca: trustme.CA
    ca_path: Path

    @classmethod
    def create(cls, state_dir: Path) -> CertificateAuthority:
        ca = trustme.CA()
        ca_path = state_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca=ca, ca_path=ca_path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        return context


class HTTPSSandboxServer:
    """One sandbox on one port, served from a daemon thread."""

    def __init__(
        self,
        app: SandboxApp,
        authority: CertificateAuthority,
        port: int = 0,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1",
            port,
            _FaultAwareApp(app, timeout_seconds),
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=authority.server_context(),
        )
        self.port = self._server.server_port
        self.base_url = f"https://127.0.0.1:{self.port}/"
        app.base_url = self.base_url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> HTTPSSandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
