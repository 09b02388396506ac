"""In-process transport: a `requests` adapter that hands each request to a sandbox's WSGI app.

The real client libraries (simple-salesforce, msal, google-auth's AuthorizedSession) run
unpatched on a `requests.Session` that has this adapter mounted for the sandbox's base URL; no
socket is opened, so tests and benchmarks measure our code, not TLS handshakes.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.response import HTTPResponse
from werkzeug.wrappers import Request

from contactsync_sandbox.core.app import FAULT_DROP, FAULT_HEADER, FAULT_TIMEOUT, SandboxApp
from contactsync_sandbox.core.environ import build_environ


class WSGITransport(BaseAdapter):
    def __init__(self, app: SandboxApp) -> None:
        super().__init__()
        self.app = app

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        url = request.url or ""
        parts = urlsplit(url)
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):  # a file-like or generator
            body = b"".join(body) if not hasattr(body, "read") else body.read()
        environ = build_environ(
            request.method or "GET",
            f"{parts.scheme}://{parts.netloc}",
            parts.path or "/",
            parts.query,
            request.headers.items(),
            body or b"",
        )
        # Straight to the app's handler: no WSGI iterator plumbing on the hot path.
        response = self.app.handle(Request(environ))
        content = response.get_data()
        headers = response.headers
        status = response.status
        fault = headers.pop(FAULT_HEADER, None)
        if fault == FAULT_TIMEOUT:
            raise requests.exceptions.ReadTimeout(f"sandbox timed out: {request.method} {url}")
        if fault == FAULT_DROP:
            raise requests.exceptions.ConnectionError(
                f"sandbox dropped the response after committing: {request.method} {url}"
            )
        return self._build_response(request, status, headers, content)

    @staticmethod
    def _build_response(
        request: requests.PreparedRequest, status: str, headers: Any, content: bytes
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(dict(headers.items()))
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        # A real urllib3 response so that code reading response.raw (msal, streaming) works.
        response.raw = HTTPResponse(
            body=BytesIO(content),
            headers=dict(headers.items()),
            status=response.status_code,
            preload_content=False,
            decode_content=False,
        )
        response._content = content
        response._content_consumed = True  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        return None


def mount_sandbox(session: requests.Session, base_url: str, app: SandboxApp) -> requests.Session:
    """Routes every request for ``base_url`` on ``session`` to ``app`` in-process."""
    parts = urlsplit(base_url)
    prefix = f"{parts.scheme}://{parts.netloc}/"
    session.mount(prefix, WSGITransport(app))
    app.base_url = prefix
    return session
