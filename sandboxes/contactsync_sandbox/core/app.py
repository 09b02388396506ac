"""The WSGI base every provider sandbox extends.

A provider subclass declares its routes (werkzeug rules whose endpoint names are methods of the
subclass), renders its own error shapes, and owns its state. This base adds what all of them
share: one lock around the state (the HTTPS server is threaded), fault injection before and after
dispatch, and the admin surface under ``/_sandbox/`` (INTERFACES.md):

    GET  /_sandbox/state    the whole state as JSON
    POST /_sandbox/clock    {"advance_seconds": N}
    POST /_sandbox/seed     {"count": N, "seed": S} or {"records": [...]}
    POST /_sandbox/faults   {"rules": [...], "seed": S, "quotas": {...}}
    POST /_sandbox/reset
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

try:
    import orjson
except ImportError:  # the `local` extra brings it; the stdlib serves without
    orjson = None  # type: ignore[assignment]

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.faults import FaultInjector, FaultRule

__all__ = ["ProviderError", "Request", "Response", "SandboxApp", "dumps", "json_response", "loads"]

# A header the app sets for the transport (in-process) or the server (HTTPS) to act on and strip:
# the client must see a timeout or a dropped connection, not this response.
FAULT_HEADER = "X-Contactsync-Sandbox-Fault"
FAULT_TIMEOUT = "timeout"
FAULT_DROP = "drop"


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON, as the providers send it. orjson where installed (a 2,000-row
    Salesforce page encodes in a fraction of the stdlib's time, so benchmarks measure the
    engine, not the emulator); the stdlib for what orjson refuses (non-string keys)."""
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except TypeError:
            pass
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """Parses JSON (orjson where installed); malformed input raises ValueError either way."""
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps(body),
        status=status,
        headers=headers,
        content_type="application/json; charset=utf-8",
    )


class ProviderError(Exception):
    """Raised by handlers; carries a ready response in the provider's own error shape."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class AdminError(ValueError):
    pass


class SandboxApp:
    """Base WSGI application. Subclasses set ``name`` and implement the abstract hooks."""

    name: ClassVar[str] = "sandbox"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        self.clock = clock or VirtualClock()
        self.faults = FaultInjector(seed)
        self.lock = threading.RLock()
        self.base_url = "https://127.0.0.1/"  # replaced by whoever serves the app
        self.requests_served = 0
        self._url_map = Map([*self.routes(), *self._admin_routes()], strict_slashes=False)

    # ---- hooks for providers -------------------------------------------------------------

    def routes(self) -> Iterable[Rule]:
        raise NotImplementedError

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        """The provider's answer to an injected ``error`` or ``throttle`` fault."""
        raise NotImplementedError

    def render_not_found(self, request: Request) -> Response:
        return json_response({"error": "not found"}, 404)

    def render_method_not_allowed(self, request: Request) -> Response:
        return json_response({"error": "method not allowed"}, 405)

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Adds generated (``count``/``seed``) or explicit (``records``) data; returns a summary."""
        raise NotImplementedError

    def dump_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def client_config(self) -> dict[str, Any]:
        """This sandbox's entry in sandbox.json (INTERFACES.md): URLs derived from
        ``self.base_url`` and the credentials a client needs."""
        raise NotImplementedError

    def configure_quotas(self, quotas: dict[str, Any]) -> None:
        """Sets the provider's quotas and limits (rate limits, daily allocations, caps) from the
        ``quotas`` object of ``POST /_sandbox/faults``; ``{"enabled": false}`` turns them off."""
        raise NotImplementedError

    def quotas(self) -> dict[str, Any]:
        """The current quota settings and usage, for ``GET /_sandbox/faults`` and the state."""
        return {}

    def deliver_webhooks(self) -> int:
        """Sends the webhooks (notifications, outbound messages) that are due; returns how many
        were acknowledged. ``contactsync sandbox up`` calls it from a background thread."""
        return 0

    def on_request(self, request: Request) -> Response | None:
        """Called for every non-admin request before dispatch (quotas, rate limits)."""
        return None

    # ---- persistence -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        with self.lock:
            data = json.dumps(self.dump_state(), ensure_ascii=False, default=str)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(data, encoding="utf-8")
        tmp.replace(path)

    def restore(self, path: Path) -> None:
        with self.lock:
            self.load_state(json.loads(path.read_text(encoding="utf-8")))

    # ---- WSGI ------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self._handle_admin(request)
        fired = self.faults.pick(request.method, request.path)
        for rule in fired:
            if rule.kind == "latency":
                time.sleep(rule.latency_ms / 1000.0)
        for rule in fired:
            if rule.kind == "timeout":
                return Response(b"", status=504, headers={FAULT_HEADER: FAULT_TIMEOUT})
            if rule.kind in ("error", "throttle"):
                return self.render_fault(rule, request)
        response = self._dispatch(request)
        if any(rule.kind == "drop_after_commit" for rule in fired):
            response.headers[FAULT_HEADER] = FAULT_DROP
        return response

    def _dispatch(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return self.render_not_found(request)
        except MethodNotAllowed:
            return self.render_method_not_allowed(request)
        except HTTPException as exc:  # e.g. a redirect werkzeug would suggest
            return json_response({"error": exc.description}, exc.code or 400)
        with self.lock:
            self.requests_served += 1
            try:
                early = self.on_request(request)
                if early is not None:
                    return early
                handler = getattr(self, endpoint)
                result: Response = handler(request, **args)
                return result
            except ProviderError as exc:
                return exc.response

    # ---- admin surface ------------------------------------------------------------------------

    def _admin_routes(self) -> list[Rule]:
        return [
            Rule("/_sandbox/state", methods=["GET"], endpoint="_admin_state"),
            Rule("/_sandbox/clock", methods=["POST"], endpoint="_admin_clock"),
            Rule("/_sandbox/seed", methods=["POST"], endpoint="_admin_seed"),
            Rule("/_sandbox/faults", methods=["POST", "GET"], endpoint="_admin_faults"),
            Rule("/_sandbox/reset", methods=["POST"], endpoint="_admin_reset"),
        ]

    def _handle_admin(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, _ = adapter.match()
        except HTTPException as exc:
            return json_response({"error": exc.description}, exc.code or 404)
        try:
            body = self._admin_body(request)
            with self.lock:
                return getattr(self, endpoint)(body)  # type: ignore[no-any-return]
        except (AdminError, ValueError, TypeError, KeyError) as exc:
            return json_response({"error": str(exc)}, 400)

    @staticmethod
    def _admin_body(request: Request) -> dict[str, Any]:
        if request.method != "POST" or not request.data:
            return {}
        try:
            body = json.loads(request.data)
        except ValueError as exc:
            raise AdminError(f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise AdminError("body must be a JSON object")
        return body

    def _admin_state(self, _: dict[str, Any]) -> Response:
        return json_response(
            {
                "provider": self.name,
                "clock": self.clock.to_json(),
                "faults": self.faults.to_json(),
                "quotas": self.quotas(),
                "requests_served": self.requests_served,
                "state": self.dump_state(),
            }
        )

    def _admin_clock(self, body: dict[str, Any]) -> Response:
        seconds = body.get("advance_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise AdminError("advance_seconds must be a non-negative number")
        now = self.clock.advance(float(seconds))
        return json_response({"now": now.isoformat()})

    def _admin_seed(self, body: dict[str, Any]) -> Response:
        if "records" not in body and "count" not in body:
            raise AdminError('seed needs "count" (with an optional "seed") or "records"')
        if "count" in body and (not isinstance(body["count"], int) or body["count"] < 0):
            raise AdminError("count must be a non-negative integer")
        return json_response(self.seed(body))

    def _admin_faults(self, body: dict[str, Any]) -> Response:
        if body:
            raw_rules = body.get("rules")
            if not isinstance(raw_rules, list):
                raise AdminError('faults need "rules": a list (empty to clear)')
            seed = body.get("seed")
            if seed is not None and not isinstance(seed, int):
                raise AdminError("seed must be an integer")
            rules = [FaultRule.from_json(r) for r in raw_rules]  # all valid, or nothing changes
            quotas = body.get("quotas")
            if quotas is not None:
                if not isinstance(quotas, dict):
                    raise AdminError("quotas must be a JSON object")
                self.configure_quotas(quotas)
            self.faults.configure(rules, seed)
        return json_response({"rules": self.faults.to_json(), "quotas": self.quotas()})

    def _admin_reset(self, _: dict[str, Any]) -> Response:
        self.reset()
        self.faults.configure([])
        return json_response({"reset": True})
