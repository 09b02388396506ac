"""The Aircall Public API v1 sandbox: parses each HTTP request and renders Aircall's answer.

Base path ``/v1`` (``https://api.aircall.io/v1`` in production). What a request goes through,
in Aircall's order: route matching and credentials at the gateway (404/401/403 in the
gateway's ``{"message": ...}`` shape, no rate-limit headers), then the company's leaky-bucket
rate limit (429), then the endpoint's own validation (400/404/422 as
``{"error", "troubleshoot"}``). Every answer past the gateway carries ``X-AircallApi-Limit``,
``X-AircallApi-Remaining`` and ``X-AircallApi-Reset``.

Sandbox-only surface, besides the shared ``/_sandbox/`` admin calls:

- ``GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope=public_api&state``:
  the dashboard consent page, answered as if an admin clicked "Install" (302 to
  ``redirect_uri?code=...&state=...``); ``POST /_sandbox/oauth/authorize {"redirect_uri"}``
  hands out a code directly;
- ``POST /_sandbox/webhooks/deliver``: releases due webhook events and sends due deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlencode

from werkzeug.routing import Rule

from contactsync_sandbox.aircall.auth import AuthState, Principal
from contactsync_sandbox.aircall.exceptions import (
    AircallError,
    BadRequest,
    OAuthError,
    ServerError,
    TooManyRequests,
    gateway_forbidden,
    gateway_not_found,
    gateway_unauthorized,
)
from contactsync_sandbox.aircall.models import (
    QUERY_CAP,
    USERS,
    Call,
    CallStore,
    Contact,
    ContactStore,
    Order,
    OrderBy,
    contact_fields,
    detail_payload,
    details_payload,
    page_window,
)
from contactsync_sandbox.aircall.ratelimit import LeakyBucket
from contactsync_sandbox.aircall.seeding import generate_calls, generate_contacts, summary
from contactsync_sandbox.aircall.webhooks import CALL_ENDED_DELAY_SECONDS, WebhookRegistry
from contactsync_sandbox.core.app import Request, Response, SandboxApp, json_response
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.faults import FaultRule

T = TypeVar("T")
DetailKind = Literal["phone", "email"]
ValidContact = tuple[
    dict[str, str | None], list[tuple[str | None, str]], list[tuple[str | None, str]]
]

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 50
DEFAULT_CALL_HISTORY_DAYS = 180
_DAY = 86_400
_PRINCIPAL = "aircall.principal"
_RATE_HEADERS = "aircall.rate_headers"
_PUBLIC_PATHS = frozenset({"/v1/oauth/token", "/oauth/authorize"})


def _no_content() -> Response:
    return Response(b"", status=204)


class App(SandboxApp):
    name = "aircall"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        self.seed_value = seed
        self.contacts = ContactStore()
        self.calls = CallStore()
        self.auth = AuthState(seed)
        self.limiter = LeakyBucket()
        self.per_page_over_max: Literal["clamp", "error"] = "clamp"
        self.query_cap = QUERY_CAP
        self.call_history_days = DEFAULT_CALL_HISTORY_DAYS
        super().__init__(clock, seed=seed)
        self.webhooks = WebhookRegistry(self.clock, seed, self.lock)

    @property
    def api_base(self) -> str:
        return self.base_url.rstrip("/") + "/v1"

    def _now(self) -> int:
        return int(self.clock.timestamp())

    # ---- routes ------------------------------------------------------------------------------

    def routes(self) -> Iterable[Rule]:
        contact = "/v1/contacts/<int:contact_id>"
        rules = [
            Rule("/v1/ping", methods=["GET"], endpoint="ping"),
            Rule("/v1/oauth/token", methods=["POST"], endpoint="oauth_token"),
            Rule("/oauth/authorize", methods=["GET"], endpoint="oauth_authorize"),
            Rule("/v1/contacts", methods=["GET"], endpoint="list_contacts"),
            Rule("/v1/contacts", methods=["POST"], endpoint="create_contact"),
            Rule("/v1/contacts/search", methods=["GET"], endpoint="search_contacts"),
            Rule(contact, methods=["GET"], endpoint="get_contact"),
            Rule(contact, methods=["POST"], endpoint="update_contact"),
            Rule(contact, methods=["DELETE"], endpoint="delete_contact"),
            Rule("/v1/calls", methods=["GET"], endpoint="list_calls"),
            Rule("/v1/calls/<int:call_id>", methods=["GET"], endpoint="get_call"),
            Rule("/v1/webhooks", methods=["GET"], endpoint="list_webhooks"),
            Rule("/v1/webhooks", methods=["POST"], endpoint="create_webhook"),
            Rule("/v1/webhooks/<webhook_id>", methods=["GET"], endpoint="get_webhook"),
            Rule("/v1/webhooks/<webhook_id>", methods=["PUT"], endpoint="update_webhook"),
            Rule("/v1/webhooks/<webhook_id>", methods=["DELETE"], endpoint="delete_webhook"),
            Rule("/_sandbox/webhooks/deliver", methods=["POST"], endpoint="_admin_deliver"),
            Rule("/_sandbox/oauth/authorize", methods=["POST"], endpoint="_admin_authorize"),
        ]
        for kind in ("phone", "email"):
            collection = f"{contact}/{kind}_details"
            rules += [
                Rule(collection, methods=["POST"], endpoint="add_detail", defaults={"kind": kind}),
                Rule(
                    f"{collection}/<int:detail_id>",
                    methods=["PUT"],
                    endpoint="change_detail",
                    defaults={"kind": kind},
                ),
                Rule(
                    f"{collection}/<int:detail_id>",
                    methods=["DELETE"],
                    endpoint="remove_detail",
                    defaults={"kind": kind},
                ),
            ]
        return rules

    # ---- the gateway and the rate limit ------------------------------------------------------

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        headers = request.environ.get(_RATE_HEADERS)
        if headers:
            for name, value in headers.items():
                response.headers[name] = value
        return response

    def on_request(self, request: Request) -> Response | None:
        if request.path in _PUBLIC_PATHS:
            return None
        principal = self.auth.authenticate(request.headers.get("Authorization"))
        if principal is None:
            return gateway_unauthorized()
        if principal is False:
            return gateway_forbidden()
        request.environ[_PRINCIPAL] = principal
        decision = self.limiter.hit(self.clock.timestamp())
        request.environ[_RATE_HEADERS] = decision.headers
        if not decision.allowed:
            return TooManyRequests(decision.headers).response
        return None

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind == "throttle":
            now = self.clock.timestamp()
            return TooManyRequests(self.limiter.exhausted_headers(now, rule.retry_after)).response
        return ServerError(rule.status).response

    def render_not_found(self, request: Request) -> Response:
        return gateway_not_found()

    def render_method_not_allowed(self, request: Request) -> Response:
        return gateway_not_found()  # the gateway knows routes as method + path

    # ---- request parsing -------------------------------------------------------------------

    @staticmethod
    def _principal(request: Request) -> Principal:
        return cast(Principal, request.environ[_PRINCIPAL])

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        if not request.get_data():
            return {}
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise BadRequest("Invalid payload", "The request body must be a JSON object.")
        return body

    @staticmethod
    def _int_arg(request: Request, name: str, default: int | None, minimum: int) -> int | None:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise BadRequest(f"Invalid {name}", f"{name} must be an integer >= {minimum}.")
        return value

    @staticmethod
    def _choice(request: Request, name: str, allowed: Sequence[str], default: str) -> str:
        value = request.args.get(name) or default
        if value not in allowed:
            raise BadRequest(f"Invalid {name}", f"{name} must be one of: {', '.join(allowed)}.")
        return value

    def _bounds(self, request: Request) -> tuple[int | None, int | None]:
        return self._int_arg(request, "from", None, 0), self._int_arg(request, "to", None, 0)

    def _per_page(self, request: Request) -> int:
        per_page = self._int_arg(request, "per_page", DEFAULT_PER_PAGE, 1) or DEFAULT_PER_PAGE
        if per_page > MAX_PER_PAGE:
            if self.per_page_over_max == "error":
                raise BadRequest(
                    "Invalid per_page", f"per_page must be between 1 and {MAX_PER_PAGE}."
                )
            per_page = MAX_PER_PAGE
        return per_page

    def _paged(
        self,
        request: Request,
        key: str,
        total: int,
        fetch: Callable[[int, int], list[T]],
        render: Callable[[T], dict[str, Any]],
        keep: Sequence[str],
    ) -> Response:
        """Aircall's envelope: ``{key: [...], "meta": {count, total, current_page, per_page,
        next_page_link, previous_page_link}}``. ``total`` counts every match, also past the
        query cap; ``next_page_link`` is null at the cap. Links keep the parameters in ``keep``
        (not ``fetch_contact``, as Aircall's do not)."""
        page = self._int_arg(request, "page", 1, 1) or 1
        per_page = self._per_page(request)
        window = page_window(page, per_page, total, self.query_cap)
        items = [render(item) for item in fetch(window.offset, window.limit)]
        kept = [(name, request.args[name]) for name in keep if request.args.get(name)]

        def link(to_page: int) -> str:
            query = urlencode([*kept, ("page", str(to_page)), ("per_page", str(per_page))])
            return f"{self.base_url.rstrip('/')}{request.path}?{query}"

        meta = {
            "count": len(items),
            "total": total,
            "current_page": page,
            "per_page": per_page,
            "next_page_link": link(page + 1) if window.has_next else None,
            "previous_page_link": link(page - 1) if page > 1 else None,
        }
        return json_response({key: items, "meta": meta})

    # ---- ping and OAuth ----------------------------------------------------------------------

    def ping(self, request: Request) -> Response:
        return json_response({"ping": "pong"})

    def oauth_authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("response_type") != "code" or args.get("scope") != "public_api":
            raise OAuthError("invalid_request", "Use response_type=code and scope=public_api.")
        redirect_uri = args.get("redirect_uri", "")
        code = self.auth.authorize(args.get("client_id", ""), redirect_uri, self._now())
        params = {"code": code, **({"state": args["state"]} if "state" in args else {})}
        separator = "&" if "?" in redirect_uri else "?"
        return Response(
            b"", status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"}
        )

    def oauth_token(self, request: Request) -> Response:
        """Form-encoded or JSON, both as Aircall's own example app sends them."""
        raw = request.form.to_dict() if request.form else request.get_json(force=True, silent=True)
        params = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        return json_response(self.auth.exchange(params, self._now()))

    # ---- contacts ----------------------------------------------------------------------------

    def _contact_json(self, contact_id: int) -> dict[str, Any]:
        return self.contacts.contacts[contact_id].to_json(self.api_base)

    def _contact_query(self, request: Request) -> tuple[OrderBy, Order, int | None, int | None]:
        by = self._choice(request, "order_by", ("created_at", "updated_at"), "created_at")
        order_by = cast(OrderBy, by)
        order = cast(Order, self._choice(request, "order", ("asc", "desc"), "asc"))
        created_from, created_to = self._bounds(request)
        return order_by, order, created_from, created_to

    def list_contacts(self, request: Request) -> Response:
        selection = self.contacts.query(*self._contact_query(request))
        return self._paged(
            request,
            "contacts",
            selection.total,
            selection.ids,
            self._contact_json,
            keep=("order", "order_by", "from", "to"),
        )

    def search_contacts(self, request: Request) -> Response:
        order_by, order, created_from, created_to = self._contact_query(request)
        selection = self.contacts.search(
            request.args.get("phone_number") or None,
            request.args.get("email") or None,
            order_by,
            order,
            created_from,
            created_to,
        )
        return self._paged(
            request,
            "contacts",
            selection.total,
            selection.ids,
            self._contact_json,
            keep=("phone_number", "email", "order", "order_by", "from", "to"),
        )

    def get_contact(self, request: Request, contact_id: int) -> Response:
        return json_response({"contact": self.contacts.get(contact_id).to_json(self.api_base)})

    def create_contact(self, request: Request) -> Response:
        contact = self._create(self._valid_contact(self._body(request)), self._now())
        self.webhooks.emit("contact", "contact.created", contact.to_event_json(self.api_base))
        return json_response({"contact": contact.to_json(self.api_base)}, 201)

    @staticmethod
    def _valid_contact(body: dict[str, Any]) -> ValidContact:
        fields = contact_fields(body)
        phones = details_payload(body, "phone_numbers")
        if not phones:
            raise BadRequest(
                "Missing phone_numbers",
                "A contact needs at least one phone number: phone_numbers is an array of "
                "{label, value}, the value in international format.",
            )
        return fields, phones, details_payload(body, "emails")

    def _create(
        self, valid: ValidContact, created_at: int, updated_at: int | None = None
    ) -> Contact:
        fields, phones, emails = valid
        contact = self.contacts.new_contact(
            fields,
            [self.contacts.new_detail("phone", label, value) for label, value in phones],
            [self.contacts.new_detail("email", label, value) for label, value in emails],
            created_at,
            updated_at,
        )
        self.contacts.add(contact)
        return contact

    def update_contact(self, request: Request, contact_id: int) -> Response:
        """``POST /v1/contacts/{id}``: names, company and information only; phone numbers and
        emails in the body are ignored (they change through ``*_details``)."""
        fields = contact_fields(self._body(request))
        contact = self.contacts.update(contact_id, fields, self._now())
        self.webhooks.emit("contact", "contact.updated", contact.to_event_json(self.api_base))
        return json_response({"contact": contact.to_json(self.api_base)})

    def delete_contact(self, request: Request, contact_id: int) -> Response:
        contact = self.contacts.delete(contact_id)
        snapshot = contact.to_event_json(self.api_base, deleted=True)
        self.webhooks.emit("contact", "contact.deleted", snapshot)
        return _no_content()

    def _detail_changed(self, contact_id: int, status: int = 200) -> Response:
        contact = self.contacts.get(contact_id)
        self.contacts.touch(contact, self._now())
        self.webhooks.emit("contact", "contact.updated", contact.to_event_json(self.api_base))
        if status == 204:
            return _no_content()
        return json_response({"contact": contact.to_json(self.api_base)}, status)

    def add_detail(self, request: Request, contact_id: int, kind: DetailKind) -> Response:
        self.contacts.get(contact_id)
        label, value = detail_payload(self._body(request), kind)
        self.contacts.add_detail(contact_id, kind, label, value)
        return self._detail_changed(contact_id, 201)

    def change_detail(
        self, request: Request, contact_id: int, detail_id: int, kind: DetailKind
    ) -> Response:
        self.contacts.get(contact_id)
        body = self._body(request)
        label, value = body.get("label"), body.get("value")
        if value is not None:
            label, value = detail_payload({"label": label, "value": value}, kind)
        elif label is not None and not isinstance(label, str):
            raise BadRequest(f"Invalid {kind} label", "label must be a string.")
        self.contacts.change_detail(contact_id, kind, detail_id, label, value)
        return self._detail_changed(contact_id)

    def remove_detail(
        self, request: Request, contact_id: int, detail_id: int, kind: DetailKind
    ) -> Response:
        self.contacts.remove_detail(contact_id, kind, detail_id)
        return self._detail_changed(contact_id, 204)

    # ---- calls -------------------------------------------------------------------------------

    def _call_json(self, call: Call, fetch_contact: bool) -> dict[str, Any]:
        contact = None
        if fetch_contact and call.contact_id in self.contacts.contacts:
            contact = self._contact_json(call.contact_id)
        return call.to_json(self.api_base, contact)

    def list_calls(self, request: Request) -> Response:
        order = cast(Order, self._choice(request, "order", ("asc", "desc"), "asc"))
        started_from, started_to = self._bounds(request)
        oldest = self._now() - self.call_history_days * _DAY
        selection = self.calls.query(order, max(started_from or 0, oldest), started_to)
        fetch_contact = request.args.get("fetch_contact") == "true"
        return self._paged(
            request,
            "calls",
            selection.total,
            selection.ids,
            lambda call_id: self._call_json(self.calls.calls[call_id], fetch_contact),
            keep=("order", "from", "to"),
        )

    def get_call(self, request: Request, call_id: int) -> Response:
        fetch_contact = request.args.get("fetch_contact") == "true"
        return json_response({"call": self._call_json(self.calls.get(call_id), fetch_contact)})

    # ---- webhooks ----------------------------------------------------------------------------

    def list_webhooks(self, request: Request) -> Response:
        order = self._choice(request, "order", ("asc", "desc"), "asc")
        webhooks = self.webhooks.owned_by(self._principal(request).owner)
        if order == "desc":
            webhooks.reverse()
        return self._paged(
            request,
            "webhooks",
            len(webhooks),
            lambda offset, limit: webhooks[offset : offset + limit],
            lambda webhook: webhook.to_json(self.api_base),
            keep=("order",),
        )

    def create_webhook(self, request: Request) -> Response:
        webhook = self.webhooks.create(self._principal(request).owner, self._body(request))
        return json_response({"webhook": webhook.to_json(self.api_base)}, 201)

    def get_webhook(self, request: Request, webhook_id: str) -> Response:
        webhook = self.webhooks.get(self._principal(request).owner, webhook_id)
        return json_response({"webhook": webhook.to_json(self.api_base)})

    def update_webhook(self, request: Request, webhook_id: str) -> Response:
        action = request.args.get("events_action")
        if action not in (None, "add", "remove"):
            raise BadRequest("Invalid events_action", "events_action must be add or remove.")
        webhook = self.webhooks.update(
            self._principal(request).owner,
            webhook_id,
            self._body(request),
            cast(Literal["add", "remove"] | None, action),
        )
        return json_response({"webhook": webhook.to_json(self.api_base)})

    def delete_webhook(self, request: Request, webhook_id: str) -> Response:
        self.webhooks.delete(self._principal(request).owner, webhook_id)
        return _no_content()

    def deliver_webhooks(self) -> int:
        """Releases due events and sends due deliveries; returns how many were acknowledged.
        Receivers must not call back into this sandbox synchronously over HTTPS."""
        return self.webhooks.deliver()

    # ---- admin -------------------------------------------------------------------------------

    def _admin_deliver(self, body: dict[str, Any]) -> Response:
        acknowledged = self.deliver_webhooks()
        return json_response({"acknowledged": acknowledged, "pending": self.webhooks.pending()})

    def _admin_authorize(self, body: dict[str, Any]) -> Response:
        redirect_uri = body.get("redirect_uri")
        if not isinstance(redirect_uri, str):
            raise ValueError('authorize needs "redirect_uri"')
        code = self.auth.authorize(self.auth.client_id, redirect_uri, self._now())
        return json_response({"code": code, "redirect_uri": redirect_uri})

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"count", "seed", "overlap", "spread_days", "calls", "call_spread_days",
        "emit_events"}`` generates; ``{"records": [...]}`` adds contacts in Aircall's own JSON
        shape (``created_at`` / ``updated_at`` may be given). Seeding skips the rate limit
        and sends no webhook unless ``emit_events`` is true."""
        now = self._now()
        seed = _int(body, "seed", self.seed_value)
        records = body.get("records", [])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("records must be a list of contact objects")
        valid = []  # every record is checked before anything is added
        for i, record in enumerate(records):
            created = _int(record, "created_at", now)
            try:
                valid.append(
                    (self._valid_contact(record), created, _int(record, "updated_at", created))
                )
            except AircallError as exc:
                raise ValueError(f"records[{i}]: {exc.error}: {exc.troubleshoot}") from exc
        contacts = generate_contacts(
            self.contacts,
            _int(body, "count", 0),
            seed,
            _float(body, "overlap", 0.3),
            now,
            _float(body, "spread_days", 365.0),
        )
        self.contacts.add_many(contacts)
        contacts += [self._create(*item) for item in valid]
        calls = generate_calls(
            self.contacts,
            self.calls.next_id,
            _int(body, "calls", 0),
            seed,
            now,
            _float(body, "call_spread_days", 30.0),
            USERS,
        )
        for call in calls:
            self.calls.add(call)
        if body.get("emit_events"):
            self._emit_seeded(contacts, calls)
        return summary(contacts, calls)

    def _emit_seeded(self, contacts: Iterable[Contact], calls: Iterable[Call]) -> None:
        for contact in contacts:
            self.webhooks.emit("contact", "contact.created", contact.to_event_json(self.api_base))
        for call in calls:
            data = self._call_json(call, fetch_contact=False)
            self.webhooks.emit("call", "call.created", data)
            self.webhooks.emit("call", "call.ended", data, delay=CALL_ENDED_DELAY_SECONDS)

    # ---- state -------------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts.dump(),
            "calls": self.calls.dump(),
            "webhooks": self.webhooks.state(),
            "auth": self.auth.state(),
            "rate_limit": self.limiter.state(),
            "settings": self._settings(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.reset()
        self.contacts.load(state["contacts"])
        self.calls.load(state["calls"])
        self.webhooks.load(state["webhooks"])
        self.auth.load(state["auth"])
        self.limiter = LeakyBucket(**state["rate_limit"])
        self.configure_quotas(state["settings"])

    def reset(self) -> None:
        self.contacts = ContactStore()
        self.calls = CallStore()
        self.webhooks.clear()
        self.webhooks.settings = type(self.webhooks.settings)()
        self.auth.clear()
        self.limiter = LeakyBucket()
        self.per_page_over_max = "clamp"
        self.query_cap = QUERY_CAP
        self.call_history_days = DEFAULT_CALL_HISTORY_DAYS

    def client_config(self) -> dict[str, Any]:
        base = self.base_url.rstrip("/") + "/"
        primary = self.auth.api_keys[0]
        return {
            "api_base": self.api_base,
            "api_id": primary.api_id,
            "api_token": primary.api_token,
            "api_keys": [key.to_json() for key in self.auth.api_keys],
            "oauth": {
                "client_id": self.auth.client_id,
                "client_secret": self.auth.client_secret,
                "authorize_url": base + "oauth/authorize",
                "token_url": self.api_base + "/oauth/token",
                "scope": "public_api",
            },
            "admin": base + "_sandbox/",
        }

    # ---- quotas ------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {
            "enabled": self.limiter.enabled,
            "requests_per_minute": self.limiter.limit,
            "background_requests_per_minute": self.limiter.background_per_minute,
            "per_page_over_max": self.per_page_over_max,
            "query_cap": self.query_cap,
            "call_history_days": self.call_history_days,
            **self.webhooks.settings.to_json(),
        }

    def quotas(self) -> dict[str, Any]:
        return {**self._settings(), "rate_limit": self.limiter.to_json(self.clock.timestamp())}

    def configure_quotas(self, quotas: dict[str, Any]) -> None:
        """Keys (all optional): ``enabled`` (rate limiting on/off), ``requests_per_minute``,
        ``background_requests_per_minute`` (the company's other integrations),
        ``per_page_over_max`` ("clamp" or "error"), ``query_cap``, ``call_history_days``,
        ``webhook_require_https``, ``webhook_failures_before_deactivation``,
        ``webhook_duplicate_rate``, ``webhook_reorder_window_seconds``. All are checked
        before any is applied."""
        unknown = set(quotas) - set(self._settings())
        if unknown:
            raise ValueError(f"unknown aircall quota keys: {', '.join(sorted(unknown))}")
        current = self._settings()
        merged = {**current, **quotas}
        over_max = merged["per_page_over_max"]
        if over_max not in ("clamp", "error"):
            raise ValueError('per_page_over_max must be "clamp" or "error"')
        enabled = _flag(merged, "enabled")
        limit = _int(merged, "requests_per_minute", 0)
        background = _float(merged, "background_requests_per_minute", 0.0)
        cap = _int(merged, "query_cap", 0)
        history = _int(merged, "call_history_days", 0)
        require_https = _flag(merged, "webhook_require_https")
        failures = _int(merged, "webhook_failures_before_deactivation", 0)
        duplicates = _float(merged, "webhook_duplicate_rate", 0.0)
        window = _float(merged, "webhook_reorder_window_seconds", 0.0)
        if limit < 1 or cap < 1 or history < 1 or failures < 1:
            raise ValueError("limits, caps, history and failure counts must be positive")
        if not 0.0 <= duplicates <= 1.0 or background < 0 or window < 0:
            raise ValueError("rates and windows must be non-negative (duplicate rate <= 1)")
        self.limiter.reconfigure(self.clock.timestamp(), enabled, limit, background)
        self.per_page_over_max = over_max
        self.query_cap, self.call_history_days = cap, history
        settings = self.webhooks.settings
        settings.require_https, settings.failures_before_deactivation = require_https, failures
        settings.duplicate_rate, settings.reorder_window_seconds = duplicates, window


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _float(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value
