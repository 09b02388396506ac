"""A WSGI environ for an in-process request, built directly.

werkzeug's EnvironBuilder is made for tests: it parses its arguments into Headers, form and
file structures and copies them again to build the environ. The in-process transport and the
Graph sandbox's $batch build one environ per request or batch item, so a bulk sync paid for
that machinery hundreds of thousands of times. This builds the same environ (a test compares
the two) from what those callers have: a method, a URL's parts, header pairs and a body.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from io import BytesIO
from typing import Any
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _latin1(value: str) -> str:
    """PEP 3333: the environ holds bytes decoded as latin-1 (werkzeug's encoding dance)."""
    return value.encode("utf-8").decode("latin-1")


def build_environ(
    method: str,
    base_url: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
) -> dict[str, Any]:
    """The environ of ``method`` ``path``?``query`` on the host of ``base_url``, with
    ``headers`` (repeated names joined by ", ", as werkzeug joins them) and ``body``."""
    base = urlsplit(base_url)
    scheme, host = base.scheme or "http", base.netloc.lower()
    name, port = base.hostname or "", str(base.port or "")
    script = base.path.rstrip("/")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.upper(),
        "SCRIPT_NAME": _latin1(unquote(script)),
        "PATH_INFO": _latin1(unquote(path)),
        "QUERY_STRING": _latin1(query),
        "REQUEST_URI": _latin1(path),
        "RAW_URI": _latin1(path),
        "SERVER_NAME": name,
        "SERVER_PORT": port or _DEFAULT_PORTS.get(scheme, "80"),
        "HTTP_HOST": host,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:  # the length is the body's, whatever a header says (werkzeug's rule)
        environ["CONTENT_LENGTH"] = str(len(body))
    for key, value in headers:
        folded = key.upper().replace("-", "_")
        if folded == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif folded != "CONTENT_LENGTH":
            wsgi_key = "HTTP_" + folded
            previous = environ.get(wsgi_key)
            environ[wsgi_key] = value if previous is None else f"{previous}, {value}"
    return environ
