"""Serving the API outside Lambda: a WSGI application that turns each request into the API
Gateway HTTP API (payload 2.0) event the resolver expects, so `contactsync serve` runs exactly
the routes the cloud runs. Stdlib only (the Lambda layer does not ship a web framework).

Powertools keeps the current event on a class attribute (``BaseRouter.current_event``), shared
by every resolver of the process: resolving is therefore serialised by one process-wide lock.
Reading the request body and writing the response happen outside it; the store serialises its
writes anyway."""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.response import HTTPResponse

from contactsync.api.problems import PROBLEM_JSON, Problem

LOCAL_CONTEXT: Any = None  # no Lambda context outside Lambda
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
# Bodies above this are refused before they are read (webhooks cap lower, per route).
MAX_BODY = 6 * 1024 * 1024
_TEXT = (
    "application/json",
    "application/problem+json",
    "text/",
    "application/xml",
    "application/x-www-form-urlencoded",
)


def event_from_environ(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    raw_query = environ.get("QUERY_STRING", "")
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    path = environ.get("PATH_INFO", "/") or "/"
    content_type = headers.get("content-type", "")
    textual = not body or any(content_type.startswith(t) for t in _TEXT)
    try:
        text = body.decode("utf-8") if textual else None
    except UnicodeDecodeError:
        text = None
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "cookies": [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()],
        "headers": headers,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": environ.get("REQUEST_METHOD", "GET"),
                "path": path,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "pathParameters": None,
        "isBase64Encoded": text is None,
        "stageVariables": None,
    }


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Status"


# Powertools' resolvers share the current event through a class attribute: one at a time.
RESOLVE_LOCK = threading.Lock()


class ApiWsgi:
    """``ApiWsgi(lambda: build_app(ctx))``: a WSGI callable."""

    def __init__(self, factory: Callable[[], APIGatewayHttpResolver]) -> None:
        self.factory = factory
        self._app: APIGatewayHttpResolver | None = None

    def resolver(self) -> APIGatewayHttpResolver:
        with RESOLVE_LOCK:
            if self._app is None:
                self._app = self.factory()
            return self._app

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        app = self.resolver()
        with RESOLVE_LOCK:
            return app.resolve(event, LOCAL_CONTEXT)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            body = Problem(title="Content Too Large", status=413, code="too_large")
            payload = body.model_dump_json(exclude_none=True).encode()
            start_response(
                _status(413),
                [("Content-Type", PROBLEM_JSON), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        data = environ["wsgi.input"].read(length) if length else b""
        result = self.resolve(event_from_environ(environ, data))
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        headers.extend(("Set-Cookie", c) for c in result.get("cookies") or [])
        headers.append(("Content-Length", str(len(payload))))
        start_response(_status(int(result["statusCode"])), headers)
        return [payload]


class WsgiTransport(BaseAdapter):
    """A ``requests`` transport adapter that hands requests to a WSGI app in-process: the
    sandboxes' webhook dispatchers, tests and benchmarks reach the API without a socket."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        super().__init__()
        self.app = app

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method or "GET",
            "PATH_INFO": unquote(parts.path or "/"),
            "QUERY_STRING": parts.query,
            "SERVER_NAME": parts.hostname or "localhost",
            "SERVER_PORT": str(parts.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(bytes(body)),
            "wsgi.url_scheme": parts.scheme or "http",
        }
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                environ[f"HTTP_{key}"] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            captured["status"], captured["headers"] = status, headers

        content = b"".join(self.app(environ, start_response))
        response = requests.Response()
        response.status_code = int(captured["status"].split(" ", 1)[0])
        response.headers = CaseInsensitiveDict(dict(captured["headers"]))
        # A real urllib3 response, for clients that read response.raw (headers, streaming).
        response.raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=dict(captured["headers"]),
            status=response.status_code,
            preload_content=False,
            decode_content=False,
        )
        response._content = content
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        return None
