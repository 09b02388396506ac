"""The HTTP edge of the Microsoft sandbox: the identity platform's v2.0 endpoints and Graph
v1.0's contacts, contact folders, master categories, delta, subscriptions and ``$batch``; mail
and calendar delta for activity capture live in ``mail.py``.

Handlers parse the request, call the models and render Graph's JSON; every Graph error is a
typed exception rendered in one place (``_graph_error``), every identity error likewise
(``_aad_error``). Outlook's throttling is applied per app and mailbox after authentication,
concurrency being counted in ``handle`` before the app lock is taken.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.routing import Rule

from contactsync_sandbox.core.app import (
    Request,
    Response,
    SandboxApp,
    dumps,
    json_response,
    loads,
)
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.environ import build_environ
from contactsync_sandbox.core.faults import FaultRule
from contactsync_sandbox.core.people import people_for
from contactsync_sandbox.core.webhooks import WebhookDispatcher
from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft import mail
from contactsync_sandbox.microsoft.auth import Identity, Principal
from contactsync_sandbox.microsoft.delta import DeltaStore
from contactsync_sandbox.microsoft.exceptions import AADError, GraphError
from contactsync_sandbox.microsoft.models import (
    CATEGORY_COLORS,
    CONTACT_PROPERTIES,
    FOLDER_PROPERTIES,
    Change,
    Contact,
    ContactFolder,
    Directory,
    Mailbox,
    derive_uuid,
)
from contactsync_sandbox.microsoft.odata import (
    parse_filter,
    parse_int,
    parse_orderby,
    parse_select,
)
from contactsync_sandbox.microsoft.seeding import contact_from_person
from contactsync_sandbox.microsoft.settings import Limits
from contactsync_sandbox.microsoft.subscriptions import (
    Subscriptions,
    parse_change_types,
    parse_resource,
)
from contactsync_sandbox.microsoft.throttling import Throttle, ThrottleKey

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
BATCH_SLOT = "contactsync.batch_slot"
CANONICAL_SEGMENTS = {
    s.lower(): s
    for s in (
        "users",
        "me",
        "contacts",
        "contactFolders",
        "childFolders",
        "outlook",
        "masterCategories",
        "delta",
        "subscriptions",
        "reauthorize",
        "$batch",
        "mailFolders",
        "messages",
        "calendarView",
        "events",
    )
}
_KEY_SEGMENT = re.compile(r"\('([^']*)'\)")
_MAILBOX_PATH = re.compile(
    r"^/v1\.0/(?:users/([^/]+)|me)/"
    r"(?:contacts|contactFolders|outlook|mailFolders|messages|calendarView|events)(?:/|$)"
)
_MAX_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
LIST_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$skip", "$count"})


@dataclass
class Call:
    """One authenticated Graph request."""

    request: Request
    principal: Principal
    args: dict[str, str]
    mailbox: Mailbox | None = None

    @property
    def box(self) -> Mailbox:
        assert self.mailbox is not None
        return self.mailbox

    @property
    def user_path(self) -> str:
        """The user as @odata.context names it: ``users('rep%40example.com')`` or ``me``."""
        user = self.args.get("user", "me")
        return "me" if user == "me" else f"users('{quote(user, safe='')}')"

    def query(self, name: str) -> str | None:
        value: str | None = self.request.args.get(name)
        return value


def graph_op(
    *, mailbox: bool = False, outlook: bool = False
) -> Callable[[Callable[[Any, Call], Response]], Callable[..., Response]]:
    """Marks a Graph handler: authenticates, resolves the mailbox, applies Outlook's limits
    (``outlook=True``), and renders Graph errors."""

    def wrap(fn: Callable[[Any, Call], Response]) -> Callable[..., Response]:
        @functools.wraps(fn)
        def endpoint(self: App, request: Request, **args: str) -> Response:
            return self._run_graph(request, args, fn, mailbox, outlook)

        return endpoint

    return wrap


def identity_op(fn: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(fn)
    def endpoint(self: App, request: Request, **args: str) -> Response:
        try:
            return fn(self, request, **args)
        except AADError as exc:
            return self._aad_error(exc)

    return endpoint


def _user_rules(suffix: str, methods: list[str], endpoint: str) -> list[Rule]:
    return [
        Rule(f"/v1.0/users/<user>{suffix}", methods=methods, endpoint=endpoint),
        Rule(f"/v1.0/me{suffix}", methods=methods, endpoint=endpoint, defaults={"user": "me"}),
    ]


def normalize_path(path: str) -> str:
    """Graph accepts ``contactFolders('id')`` key syntax, ``microsoft.graph.delta()`` and
    segment names in any case (its own nextLinks sometimes say ``contactfolders``)."""
    if not path.startswith("/v1.0/"):
        return path
    path = path.replace("/microsoft.graph.delta()", "/delta").replace("/delta()", "/delta")
    path = _KEY_SEGMENT.sub(lambda m: "/" + m.group(1), path)
    return "/".join(CANONICAL_SEGMENTS.get(s.lower(), s) for s in path.split("/"))


class App(SandboxApp):
    """Microsoft Graph v1.0 (Outlook contacts) and the Entra ID v2.0 token endpoints."""

    name = "microsoft"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        super().__init__(clock, seed=seed)
        self.seed_value = seed
        self.limits = Limits()
        self.directory = Directory.create(seed)
        self.identity = Identity(self.directory, self.clock, self.limits)
        self.throttle = Throttle(self.clock, self.limits)
        self.delta = DeltaStore(seed, self.limits)
        self.mail_delta = DeltaStore(seed + 1, self.limits)
        self.mail: dict[str, mail.MailState] = {}
        self.webhooks = WebhookDispatcher(self.clock)
        self.subscriptions = Subscriptions(
            seed, self.clock, self.limits, self.webhooks, self.directory.tenant_id
        )
        self.webhooks.on_give_up = self._on_give_up
        self.mailboxes: dict[str, Mailbox] = {}
        self._batches = 0
        self._fresh_mailboxes()

    def _fresh_mailboxes(self) -> None:
        self.mailboxes = {
            u.id: Mailbox(self.seed_value, u, self.limits) for u in self.directory.users
        }
        self.mail = {u.id: mail.MailState(self.seed_value, u) for u in self.directory.users}

    # ---- routes ------------------------------------------------------------------------------

    def routes(self) -> list[Rule]:
        rules = [
            Rule(
                "/<tenant>/v2.0/.well-known/openid-configuration",
                methods=["GET"],
                endpoint="discovery",
            ),
            Rule("/<tenant>/oauth2/v2.0/token", methods=["POST"], endpoint="token"),
            Rule("/<tenant>/oauth2/v2.0/authorize", methods=["GET"], endpoint="authorize"),
            Rule("/<tenant>/discovery/v2.0/keys", methods=["GET"], endpoint="keys"),
            Rule("/v1.0/users", methods=["GET"], endpoint="users_list"),
            Rule("/v1.0/subscriptions", methods=["GET"], endpoint="subscriptions_list"),
            Rule("/v1.0/subscriptions", methods=["POST"], endpoint="subscription_create"),
            Rule("/v1.0/subscriptions/<sid>", methods=["GET"], endpoint="subscription_get"),
            Rule("/v1.0/subscriptions/<sid>", methods=["PATCH"], endpoint="subscription_update"),
            Rule("/v1.0/subscriptions/<sid>", methods=["DELETE"], endpoint="subscription_delete"),
            Rule(
                "/v1.0/subscriptions/<sid>/reauthorize",
                methods=["POST"],
                endpoint="subscription_reauthorize",
            ),
            Rule("/v1.0/$batch", methods=["POST"], endpoint="batch"),
            Rule("/_sandbox/move", methods=["POST"], endpoint="_admin_move"),
            Rule("/_sandbox/lifecycle", methods=["POST"], endpoint="_admin_lifecycle"),
            Rule("/_sandbox/revoke", methods=["POST"], endpoint="_admin_revoke"),
            Rule("/_sandbox/mail", methods=["POST"], endpoint="_admin_mail"),
        ]
        table = [
            ("", ["GET"], "user_get"),
            ("/contacts", ["GET"], "contact_list"),
            ("/contacts", ["POST"], "contact_create"),
            ("/contacts/delta", ["GET"], "contact_delta"),
            ("/contacts/<cid>", ["GET"], "contact_get"),
            ("/contacts/<cid>", ["PATCH"], "contact_update"),
            ("/contacts/<cid>", ["DELETE"], "contact_delete"),
            ("/contactFolders", ["GET"], "folder_list"),
            ("/contactFolders", ["POST"], "folder_create"),
            ("/contactFolders/<fid>", ["GET"], "folder_get"),
            ("/contactFolders/<fid>", ["PATCH"], "folder_update"),
            ("/contactFolders/<fid>", ["DELETE"], "folder_delete"),
            ("/contactFolders/<fid>/childFolders", ["GET"], "folder_list"),
            ("/contactFolders/<fid>/childFolders", ["POST"], "folder_create"),
            ("/contactFolders/<fid>/contacts", ["GET"], "contact_list"),
            ("/contactFolders/<fid>/contacts", ["POST"], "contact_create"),
            ("/contactFolders/<fid>/contacts/delta", ["GET"], "contact_delta"),
            ("/contactFolders/<fid>/contacts/<cid>", ["GET"], "contact_get"),
            ("/contactFolders/<fid>/contacts/<cid>", ["PATCH"], "contact_update"),
            ("/contactFolders/<fid>/contacts/<cid>", ["DELETE"], "contact_delete"),
            ("/outlook/masterCategories", ["GET"], "category_list"),
            ("/outlook/masterCategories", ["POST"], "category_create"),
            ("/outlook/masterCategories/<cat>", ["GET"], "category_get"),
            ("/outlook/masterCategories/<cat>", ["PATCH"], "category_update"),
            ("/outlook/masterCategories/<cat>", ["DELETE"], "category_delete"),
        ]
        for suffix, methods, endpoint in [*table, *mail.MAIL_ROUTES]:
            rules.extend(_user_rules(suffix, methods, endpoint))
        return rules

    # ---- the WSGI entry: path normalisation, concurrency, webhook delivery -------------------

    def handle(self, request: Request) -> Response:
        environ = request.environ
        path = environ.get("PATH_INFO", "")
        if path == "/_sandbox/deliver" and request.method == "POST":
            return self._deliver_endpoint()
        normalized = normalize_path(path)
        if normalized != path:
            environ["PATH_INFO"] = normalized
            request = Request(environ)
        key = self._throttle_key(request)
        if key is None:
            return super().handle(request)
        self.throttle.enter(key)
        try:
            return super().handle(request)
        finally:
            self.throttle.leave(key)

    def _throttle_key(self, request: Request) -> ThrottleKey | None:
        """The (app, mailbox) a request will count against, read from the token's claims
        before anything is verified (verification comes later, under the lock)."""
        match = _MAILBOX_PATH.match(request.path)
        if match is None:
            return None
        _, _, token = (request.headers.get("Authorization") or "").partition(" ")
        claims = Identity.claims(token.strip())
        if claims is None or "appid" not in claims:
            return None
        if match.group(1) is None:
            mailbox = claims.get("oid") if claims.get("idtyp") == "user" else None
        else:
            user = self.directory.find_user(match.group(1))
            mailbox = user.id if user else None
        return (str(claims["appid"]), str(mailbox)) if mailbox else None

    def deliver_due(self) -> int:
        """Sends due webhook deliveries (outside the app lock: receivers may call back)."""
        with self.lock:
            self.subscriptions.tick()
        return self.webhooks.deliver_due()

    def deliver_webhooks(self) -> int:
        return self.deliver_due()

    def _deliver_endpoint(self) -> Response:
        delivered = self.deliver_due()
        return json_response({"delivered": delivered, "pending": self.webhooks.pending()})

    def _on_give_up(self, subscription_id: str) -> None:
        with self.lock:
            self.subscriptions.on_give_up(subscription_id)

    def on_request(self, request: Request) -> Response | None:
        self.subscriptions.tick()
        return None

    # ---- rendering ---------------------------------------------------------------------------

    def _request_id(self) -> str:
        return derive_uuid(self.seed_value, "request", self.requests_served)

    def _graph_headers(self, request: Request) -> dict[str, str]:
        request_id = self._request_id()
        return {
            "request-id": request_id,
            "client-request-id": request.headers.get("client-request-id", request_id),
            "Cache-Control": "private",
        }

    def _json(
        self, call: Call, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        response = Response(
            dumps(body),
            status=status,
            content_type=GRAPH_CONTENT_TYPE,
            headers={
                **self._graph_headers(call.request),
                "OData-Version": "4.0",
                **(headers or {}),
            },
        )
        return response

    def _empty(self, call: Call) -> Response:
        return Response(b"", status=204, headers=self._graph_headers(call.request))

    def _graph_error(self, request: Request, exc: GraphError) -> Response:
        headers = self._graph_headers(request)
        body = exc.body(
            headers["request-id"],
            headers["client-request-id"],
            self.clock.now().strftime("%Y-%m-%dT%H:%M:%S"),
        )
        return Response(
            json.dumps(body, ensure_ascii=False),
            status=exc.status,
            content_type="application/json",
            headers={**headers, **exc.headers},
        )

    def _aad_error(self, exc: AADError) -> Response:
        trace = derive_uuid(self.seed_value, "trace", self.requests_served)
        stamp = self.clock.now().strftime("%Y-%m-%d %H:%M:%S")
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        if exc.status == 429:
            headers["Retry-After"] = "5"
        return json_response(exc.body(trace, trace, stamp), exc.status, headers)

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        identity = not request.path.startswith("/v1.0/")
        if identity:
            error = (
                err.aad_throttled() if rule.kind == "throttle" else err.aad_unavailable(rule.status)
            )
            response = self._aad_error(error)
            response.headers["Retry-After"] = str(rule.retry_after)
            return response
        if rule.kind == "throttle":
            return self._graph_error(
                request,
                err.throttled(
                    "Application is over its MailboxConcurrency limit.", rule.retry_after
                ),
            )
        failure = err.server_error(rule.status)
        if rule.status == 503:
            failure.headers["Retry-After"] = str(rule.retry_after)
        return self._graph_error(request, failure)

    def render_not_found(self, request: Request) -> Response:
        if request.path.startswith("/v1.0/"):
            segment = request.path.rstrip("/").rsplit("/", 1)[-1]
            return self._graph_error(request, err.segment_not_found(segment))
        return json_response({"error": "not_found", "error_description": "Not Found"}, 404)

    def render_method_not_allowed(self, request: Request) -> Response:
        return self._graph_error(request, err.method_not_allowed())

    # ---- the Graph pipeline ------------------------------------------------------------------

    def _run_graph(
        self,
        request: Request,
        args: dict[str, str],
        fn: Callable[[Any, Call], Response],
        needs_mailbox: bool,
        outlook: bool,
    ) -> Response:
        try:
            principal = self.identity.verify(request.headers.get("Authorization"))
            call = Call(request, principal, dict(args))
            if needs_mailbox:
                call.mailbox = self._mailbox(principal, args["user"])
                if outlook:
                    key = (principal.app_id, call.mailbox.user.id)
                    slot = request.environ.get(BATCH_SLOT)
                    concurrent = self.throttle.inflight(key) + (slot + 1 if slot is not None else 0)
                    self.throttle.admit(key, max(concurrent, 1))
            return fn(self, call)
        except GraphError as exc:
            return self._graph_error(request, exc)

    def _mailbox(self, principal: Principal, ref: str) -> Mailbox:
        if ref == "me":
            if principal.user_id is None:
                raise err.me_needs_delegated()
            return self.mailboxes[principal.user_id]
        user = self.directory.find_user(ref)
        if user is None:
            raise err.invalid_user(ref)
        if principal.user_id is not None and principal.user_id != user.id:
            raise err.access_denied()
        return self.mailboxes[user.id]

    @staticmethod
    def _body(call: Call) -> dict[str, Any]:
        try:
            body = loads(call.request.get_data() or b"")
        except ValueError as exc:
            raise err.bad_json() from exc
        if not isinstance(body, dict):
            raise err.bad_json()
        return body

    def _context(self, suffix: str) -> str:
        return f"{self.base_url}v1.0/$metadata#{suffix}"

    def _next_link(self, call: Call, top: int, skip: int) -> str:
        """The same query with ``$skip`` moved on, as Outlook pages lists."""
        params = {k: v for k, v in call.request.args.items() if k not in ("$top", "$skip")}
        params.update({"$top": str(top), "$skip": str(skip)})
        return f"{self.base_url.rstrip('/')}{call.request.path}?{urlencode(params)}"

    def _notify(self, mailbox: Mailbox, changes: list[Change]) -> None:
        for change in changes:
            self.subscriptions.notify(mailbox.user.id, change)

    # ---- mail and calendar (activity capture), in mail.py -----------------------------------

    message_delta = graph_op(mailbox=True, outlook=True)(mail.message_delta)
    message_get = graph_op(mailbox=True, outlook=True)(mail.message_get)
    event_delta = graph_op(mailbox=True, outlook=True)(mail.event_delta)
    event_get = graph_op(mailbox=True, outlook=True)(mail.event_get)
    _admin_mail = mail.admin_mail

    # ---- identity endpoints ------------------------------------------------------------------

    @identity_op
    def discovery(self, request: Request, tenant: str) -> Response:
        return json_response(self.identity.openid_configuration(self.base_url, tenant))

    @identity_op
    def keys(self, request: Request, tenant: str) -> Response:
        self.identity.check_tenant(tenant, "invalid_tenant")
        return json_response({"keys": []})

    @identity_op
    def authorize(self, request: Request, tenant: str) -> Response:
        location = self.identity.authorize(tenant, request.args.to_dict())
        return Response(b"", status=302, headers={"Location": location})

    @identity_op
    def token(self, request: Request, tenant: str) -> Response:
        basic = None
        if request.authorization is not None and request.authorization.type == "basic":
            basic = (request.authorization.username or "", request.authorization.password or "")
        body = self.identity.token(tenant, request.form.to_dict(), basic, self.base_url)
        return json_response(
            body, 200, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        )

    # ---- users -------------------------------------------------------------------------------

    @graph_op(mailbox=True)
    def user_get(self, call: Call) -> Response:
        body = {"@odata.context": self._context("users/$entity"), **call.box.user.to_graph()}
        return self._json(call, body)

    @graph_op()
    def users_list(self, call: Call) -> Response:
        users = [u.to_graph() for u in self.directory.users]
        return self._json(call, {"@odata.context": self._context("users"), "value": users})

    # ---- contacts ----------------------------------------------------------------------------

    def _folder(self, call: Call) -> ContactFolder:
        fid = call.args.get("fid")
        return (
            call.box.folder(fid)
            if fid is not None
            else call.box.folders[call.box.default_folder_id]
        )

    def _contact(self, call: Call) -> Contact:
        folder = self._folder(call) if "fid" in call.args else None
        return call.box.contact(call.args["cid"], folder)

    def _select(self, call: Call) -> list[str] | None:
        return parse_select(call.query("$select"), CONTACT_PROPERTIES, "contact")

    @graph_op(mailbox=True, outlook=True)
    def contact_list(self, call: Call) -> Response:
        unknown = sorted(
            k for k in call.request.args if k.startswith("$") and k not in LIST_OPTIONS
        )
        if unknown:
            raise err.invalid_query(f"Query option '{unknown[0]}' is not supported for contacts.")
        folder = self._folder(call)
        select = self._select(call)
        raw_filter = call.query("$filter")
        where = parse_filter(raw_filter) if raw_filter else None
        order = parse_orderby(call.query("$orderby"))
        top = parse_int(
            call.query("$top"), "$top", self.limits.list_default_top, self.limits.list_max_top
        )
        skip = parse_int(call.query("$skip"), "$skip", 0)
        ids = call.box.query(folder, where, order)
        page = ids[skip : skip + top]
        suffix = "contacts" if "fid" not in call.args else f"contactFolders('{folder.id}')/contacts"
        body: dict[str, Any] = {"@odata.context": self._context(f"{call.user_path}/{suffix}")}
        if (call.query("$count") or "").lower() == "true":
            body["@odata.count"] = len(ids)
        body["value"] = [call.box.contacts[c].render(select) for c in page]
        if skip + top < len(ids):
            body["@odata.nextLink"] = self._next_link(call, top, skip + top)
        return self._json(call, body)

    @graph_op(mailbox=True, outlook=True)
    def contact_get(self, call: Call) -> Response:
        contact = self._contact(call)
        body = {"@odata.context": self._context(f"{call.user_path}/contacts/$entity")}
        return self._json(call, {**body, **contact.render(self._select(call))})

    @graph_op(mailbox=True, outlook=True)
    def contact_create(self, call: Call) -> Response:
        folder = self._folder(call)
        contact = call.box.create_contact(folder, self._body(call), self.clock.now())
        self._notify(call.box, [Change("created", contact.id, folder.id, contact.etag)])
        body = {"@odata.context": self._context(f"{call.user_path}/contacts/$entity")}
        return self._json(call, {**body, **contact.render()}, 201)

    @graph_op(mailbox=True, outlook=True)
    def contact_update(self, call: Call) -> Response:
        contact = self._contact(call)
        body = self._body(call)
        call.box.update_contact(
            contact, body, call.request.headers.get("If-Match"), self.clock.now()
        )
        self._notify(call.box, [Change("updated", contact.id, contact.folder_id, contact.etag)])
        context = {"@odata.context": self._context(f"{call.user_path}/contacts/$entity")}
        return self._json(call, {**context, **contact.render()})

    @graph_op(mailbox=True, outlook=True)
    def contact_delete(self, call: Call) -> Response:
        contact = self._contact(call)
        change = call.box.delete_contact(contact.id, call.request.headers.get("If-Match"))
        self._notify(call.box, [change])
        return self._empty(call)

    @graph_op(mailbox=True, outlook=True)
    def contact_delta(self, call: Call) -> Response:
        folder = self._folder(call)
        skip, delta = call.query("$skiptoken"), call.query("$deltatoken")
        token = ("skip", skip) if skip else ("delta", delta) if delta else None
        if token is None:
            unsupported = sorted(
                k for k in call.request.args if k.startswith("$") and k != "$select"
            )
            if unsupported:
                raise err.invalid_query(
                    "The following parameters are not supported with change tracking over the "
                    f"'Contacts' resource: '{', '.join(unsupported)}'."
                )
        select = self._select(call) if token is None else None
        prefer = _MAX_PAGE.search(call.request.headers.get("Prefer", ""))
        size = int(prefer.group(1)) if prefer else self.limits.delta_default_page_size
        size = max(1, min(size, self.limits.delta_max_page_size))
        page = self.delta.page(call.box, folder, token, select, size, self.clock.timestamp())
        if token is not None:
            select = self.delta.select_of(page.token)
        value = []
        for cid in page.ids:
            contact = call.box.contacts.get(cid)
            if contact is not None and contact.folder_id == folder.id:
                value.append({"@odata.type": "#microsoft.graph.contact", **contact.render(select)})
            else:  # deleted, or moved out of the folder
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.contact",
                        "id": cid,
                        "@removed": {"reason": "deleted"},
                    }
                )
        path = f"{self.base_url.rstrip('/')}{call.request.path}"
        if page.final:
            link = {"@odata.deltaLink": f"{path}?$deltatoken={page.token}"}
        else:
            link = {"@odata.nextLink": f"{path}?$skiptoken={page.token}"}
        body = {"@odata.context": self._context("Collection(contact)"), **link, "value": value}
        applied = (
            f"odata.track-changes, odata.maxpagesize={size}" if prefer else "odata.track-changes"
        )
        return self._json(call, body, headers={"Preference-Applied": applied})

    # ---- contact folders ---------------------------------------------------------------------

    @graph_op(mailbox=True, outlook=True)
    def folder_list(self, call: Call) -> Response:
        folders = call.box.child_folders(self._folder(call).id)
        raw_filter = call.query("$filter")
        if raw_filter:
            match = re.fullmatch(
                r"\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*", raw_filter, re.IGNORECASE
            )
            if match is None:
                raise err.invalid_filter()
            wanted = match.group(1).replace("''", "'").lower()
            folders = [f for f in folders if f.display_name.lower() == wanted]
        select = parse_select(call.query("$select"), FOLDER_PROPERTIES, "contactFolder")
        top = parse_int(
            call.query("$top"), "$top", self.limits.list_default_top, self.limits.list_max_top
        )
        skip = parse_int(call.query("$skip"), "$skip", 0)
        page = folders[skip : skip + top]
        body: dict[str, Any] = {
            "@odata.context": self._context(f"{call.user_path}/contactFolders"),
            "value": [_pick(f.to_graph(), select) for f in page],
        }
        if skip + top < len(folders):
            body["@odata.nextLink"] = self._next_link(call, top, skip + top)
        return self._json(call, body)

    @graph_op(mailbox=True, outlook=True)
    def folder_get(self, call: Call) -> Response:
        folder = call.box.folder(call.args["fid"])
        select = parse_select(call.query("$select"), FOLDER_PROPERTIES, "contactFolder")
        context = {"@odata.context": self._context(f"{call.user_path}/contactFolders/$entity")}
        return self._json(call, {**context, **_pick(folder.to_graph(), select)})

    @graph_op(mailbox=True, outlook=True)
    def folder_create(self, call: Call) -> Response:
        parent = self._folder(call)
        body = self._body(call)
        _check_folder_body(body, creating=True)
        name = body.get("displayName")
        if not isinstance(name, str):
            raise err.GraphError(400, "ErrorInvalidRequest", "The folder display name is required.")
        folder = call.box.create_folder(parent, name)
        context = {"@odata.context": self._context(f"{call.user_path}/contactFolders/$entity")}
        return self._json(call, {**context, **folder.to_graph()}, 201)

    @graph_op(mailbox=True, outlook=True)
    def folder_update(self, call: Call) -> Response:
        folder = call.box.folder(call.args["fid"])
        body = self._body(call)
        _check_folder_body(body, creating=False)
        if "displayName" in body:
            if not isinstance(body["displayName"], str):
                raise err.wrong_type("displayName", "Edm.String")
            call.box.rename_folder(folder, body["displayName"])
        context = {"@odata.context": self._context(f"{call.user_path}/contactFolders/$entity")}
        return self._json(call, {**context, **folder.to_graph()})

    @graph_op(mailbox=True, outlook=True)
    def folder_delete(self, call: Call) -> Response:
        folder = call.box.folder(call.args["fid"])
        self._notify(call.box, call.box.delete_folder(folder))
        return self._empty(call)

    # ---- master categories -------------------------------------------------------------------

    @graph_op(mailbox=True, outlook=True)
    def category_list(self, call: Call) -> Response:
        value = [c.to_graph() for c in call.box.categories.values()]
        context = self._context(f"{call.user_path}/outlook/masterCategories")
        return self._json(call, {"@odata.context": context, "value": value})

    @graph_op(mailbox=True, outlook=True)
    def category_get(self, call: Call) -> Response:
        category = call.box.category(call.args["cat"])
        context = self._context(f"{call.user_path}/outlook/masterCategories/$entity")
        return self._json(call, {"@odata.context": context, **category.to_graph()})

    @graph_op(mailbox=True, outlook=True)
    def category_create(self, call: Call) -> Response:
        body = self._body(call)
        for name in body:
            if name not in ("displayName", "color") and not name.startswith("@odata."):
                raise err.unknown_property(name, "outlookCategory")
        display_name = body.get("displayName")
        if not isinstance(display_name, str) or not display_name.strip():
            raise err.GraphError(
                400, "ErrorInvalidArgument", "The displayName of a category is required."
            )
        color = _color(body.get("color", "none"))
        category = call.box.create_category(display_name, color)
        context = self._context(f"{call.user_path}/outlook/masterCategories/$entity")
        return self._json(call, {"@odata.context": context, **category.to_graph()}, 201)

    @graph_op(mailbox=True, outlook=True)
    def category_update(self, call: Call) -> Response:
        category = call.box.category(call.args["cat"])
        body = self._body(call)
        for name in body:
            if name == "displayName":
                raise err.read_only_property()
            if name != "color" and not name.startswith("@odata."):
                raise err.unknown_property(name, "outlookCategory")
        if "color" in body:
            category = type(category)(category.id, category.display_name, _color(body["color"]))
            call.box.categories[category.id] = category
        context = self._context(f"{call.user_path}/outlook/masterCategories/$entity")
        return self._json(call, {"@odata.context": context, **category.to_graph()})

    @graph_op(mailbox=True, outlook=True)
    def category_delete(self, call: Call) -> Response:
        category = call.box.category(call.args["cat"])
        del call.box.categories[category.id]
        return self._empty(call)

    # ---- subscriptions -----------------------------------------------------------------------

    @graph_op()
    def subscription_create(self, call: Call) -> Response:
        body = self._body(call)
        for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if required not in body:
                raise err.subscription_error(f"The {required} property is required.")
        self.subscriptions.check_url(body["notificationUrl"], "notificationUrl")
        if body.get("lifecycleNotificationUrl") is not None:
            self.subscriptions.check_url(
                body["lifecycleNotificationUrl"], "lifecycleNotificationUrl"
            )
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > 128
        ):
            raise err.subscription_error(
                "The clientState must be a string of at most 128 characters."
            )
        if body.get("includeResourceData"):
            raise err.subscription_error("includeResourceData requires an encryptionCertificate.")
        if not isinstance(body["resource"], str):
            raise err.subscription_error("The resource property is required.")
        user_ref, folder_ref = parse_resource(body["resource"])
        mailbox = self._mailbox(call.principal, user_ref)
        folder = (
            mailbox.folder(folder_ref) if folder_ref else mailbox.folders[mailbox.default_folder_id]
        )
        expiration = self.subscriptions.check_expiration(body["expirationDateTime"])
        parse_change_types(body["changeType"])
        self.subscriptions.validate_endpoint(body["notificationUrl"])
        if body.get("lifecycleNotificationUrl") is not None:
            self.subscriptions.validate_endpoint(body["lifecycleNotificationUrl"])
        creator = call.principal.user_id or self.identity.service_principal_id
        subscription = self.subscriptions.create(
            body,
            app_id=call.principal.app_id,
            creator_id=creator,
            mailbox_id=mailbox.user.id,
            folder_id=folder.id,
            expiration=expiration,
        )
        context = {"@odata.context": self._context("subscriptions/$entity")}
        return self._json(call, {**context, **subscription.to_graph()}, 201)

    @graph_op()
    def subscriptions_list(self, call: Call) -> Response:
        self.subscriptions.tick()
        mine = [
            s.to_graph()
            for s in self.subscriptions.items.values()
            if s.app_id == call.principal.app_id
        ]
        return self._json(call, {"@odata.context": self._context("subscriptions"), "value": mine})

    @graph_op()
    def subscription_get(self, call: Call) -> Response:
        subscription = self.subscriptions.get(call.args["sid"], call.principal.app_id)
        context = {"@odata.context": self._context("subscriptions/$entity")}
        return self._json(call, {**context, **subscription.to_graph()})

    @graph_op()
    def subscription_update(self, call: Call) -> Response:
        subscription = self.subscriptions.get(call.args["sid"], call.principal.app_id)
        body = self._body(call)
        for name in body:
            if name not in ("expirationDateTime", "notificationUrl") and not name.startswith(
                "@odata."
            ):
                raise err.subscription_error(f"The property '{name}' cannot be updated.")
        expiration = subscription.expiration
        if "expirationDateTime" in body:
            expiration = self.subscriptions.check_expiration(body["expirationDateTime"])
        if "notificationUrl" in body:
            url = self.subscriptions.check_url(body["notificationUrl"], "notificationUrl")
            self.subscriptions.validate_endpoint(url)
            subscription.notification_url = url
        self.subscriptions.renew(subscription, expiration)
        context = {"@odata.context": self._context("subscriptions/$entity")}
        return self._json(call, {**context, **subscription.to_graph()})

    @graph_op()
    def subscription_delete(self, call: Call) -> Response:
        subscription = self.subscriptions.get(call.args["sid"], call.principal.app_id)
        self.subscriptions.delete(subscription)
        return self._empty(call)

    @graph_op()
    def subscription_reauthorize(self, call: Call) -> Response:
        subscription = self.subscriptions.get(call.args["sid"], call.principal.app_id)
        subscription.reauthorization_sent = False
        self.subscriptions.next_check = 0.0
        return self._empty(call)

    # ---- JSON batching -----------------------------------------------------------------------

    @graph_op()
    def batch(self, call: Call) -> Response:
        body = self._body(call)
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            raise err.batch_error("Invalid batch payload format.")
        if len(items) > self.limits.batch_max_requests:
            raise err.batch_error(
                f"The number of batch requests exceeds the maximum allowed limit of "
                f"{self.limits.batch_max_requests}."
            )
        order = _batch_order(items)
        sequential = any(item.get("dependsOn") for item in items)
        status: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        slots: dict[str, int] = {}
        for item in order:
            item_id = str(item["id"])
            if any(status.get(str(dep).lower(), 424) >= 400 for dep in item.get("dependsOn") or ()):
                failure = self._graph_error(call.request, err.failed_dependency())
                responses.append(_sub_response(item_id, failure))
                status[item_id.lower()] = 424
                continue
            mailbox = _MAILBOX_PATH.match("/v1.0/" + str(item["url"]).lstrip("/"))
            target = (mailbox.group(1) or "me") if mailbox else ""
            slot = 0 if sequential else slots.get(target, 0) % max(1, self.limits.batch_parallelism)
            slots[target] = slots.get(target, 0) + 1
            answer = self._run_item(call, item, slot)
            responses.append(_sub_response(item_id, answer))
            status[item_id.lower()] = answer.status_code
        self._batches += 1
        random.Random(f"{self.seed_value}:batch:{self._batches}").shuffle(responses)
        return self._json(call, {"responses": responses})

    def _run_item(self, call: Call, item: dict[str, Any], slot: int) -> Response:
        url = str(item["url"])
        if url.lower().startswith(("http://", "https://")):
            return self._graph_error(
                call.request, err.batch_error("The url of a batch request must be relative.")
            )
        path, _, query = url.partition("?")
        path = normalize_path("/v1.0/" + path.lstrip("/"))
        if path == "/v1.0/$batch":
            return self._graph_error(
                call.request, err.batch_error("Nested batch requests are not supported.")
            )
        headers = {k: str(v) for k, v in (item.get("headers") or {}).items()}
        authorization = call.request.headers.get("Authorization")
        if authorization:
            headers["Authorization"] = authorization
        data = b""
        if "body" in item:
            data = (
                dumps(item["body"]) if not isinstance(item["body"], str) else item["body"].encode()
            )
        environ = build_environ(
            str(item["method"]), self.base_url, path, query, headers.items(), data
        )
        environ[BATCH_SLOT] = slot
        sub = Request(environ)
        for rule in self.faults.pick(sub.method, sub.path):
            if rule.kind in ("error", "throttle"):
                return self.render_fault(rule, sub)
        return self._dispatch(sub)

    # ---- admin surface -----------------------------------------------------------------------

    def _admin_user(self, body: dict[str, Any]) -> Mailbox:
        ref = body.get("user", self.directory.users[0].user_principal_name)
        user = self.directory.find_user(str(ref))
        if user is None:
            raise ValueError(f"unknown user {ref!r}")
        return self.mailboxes[user.id]

    def _admin_move(self, body: dict[str, Any]) -> Response:
        """A user moving a contact to another folder in Outlook (the contact gets a new id)."""
        mailbox = self._admin_user(body)
        try:
            contact = mailbox.contact(str(body["contact_id"]))
            destination = _find_folder(mailbox, str(body["folder"]))
            source = contact.folder_id
            moved = mailbox.move_contact(contact, destination, self.clock.now())
        except GraphError as exc:
            raise ValueError(exc.message) from exc
        self._notify(
            mailbox,
            [
                Change("deleted", contact.id, source, None),
                Change("created", moved.id, moved.folder_id, moved.etag),
            ],
        )
        return json_response(
            {"id": moved.id, "previous_id": contact.id, "parentFolderId": moved.folder_id}
        )

    def _admin_lifecycle(self, body: dict[str, Any]) -> Response:
        subscription = self.subscriptions.items.get(str(body.get("subscription_id")))
        if subscription is None:
            raise ValueError("unknown subscription_id")
        queued = self.subscriptions.lifecycle(subscription, str(body.get("event")))
        return json_response({"queued": queued})

    def _admin_revoke(self, body: dict[str, Any]) -> Response:
        mailbox = self._admin_user(body)
        return json_response({"revoked": self.identity.revoke(mailbox.user.id)})

    # ---- SandboxApp hooks --------------------------------------------------------------------

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        mailbox = self._admin_user(body)
        folder_ref = body.get("folder")
        if folder_ref is None:
            folder = mailbox.folders[mailbox.default_folder_id]
        else:
            try:
                folder = _find_folder(mailbox, str(folder_ref))
            except ValueError:
                folder = mailbox.create_folder(
                    mailbox.folders[mailbox.default_folder_id], str(folder_ref)
                )
        now = self.clock.now()
        created: list[str] = []
        if "count" in body:
            overlap = float(body.get("overlap", 0.3))
            start = int(body.get("start", 0))
            people = people_for(
                "microsoft", int(body["count"]), int(body.get("seed", 0)), overlap, start
            )
            for person in people:
                created.append(
                    mailbox.create_contact(
                        folder, contact_from_person(person), now, trusted=True
                    ).id
                )
        for record in body.get("records") or ():
            if not isinstance(record, dict):
                raise ValueError("records must be contact objects in Graph's shape")
            try:
                created.append(mailbox.create_contact(folder, record, now).id)
            except GraphError as exc:
                raise ValueError(exc.message) from exc
        return {
            "created": len(created),
            "ids": created,
            "user": mailbox.user.user_principal_name,
            "folder": folder.id,
        }

    def dump_state(self) -> dict[str, Any]:
        return {
            "tenant_id": self.directory.tenant_id,
            "limits": self.limits.to_json(),
            "mailboxes": [m.to_json() for m in self.mailboxes.values()],
            "identity": self.identity.to_json(),
            "delta": self.delta.to_json(),
            "mail": [m.to_json() for m in self.mail.values()],
            "mail_delta": self.mail_delta.to_json(),
            "subscriptions": self.subscriptions.to_json(),
            "batches": self._batches,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.limits.configure(state["limits"])
        self._fresh_mailboxes()
        for raw in state["mailboxes"]:
            self.mailboxes[raw["user"]].load_json(raw)
        self.identity.load_json(state["identity"])
        self.delta.load_json(state["delta"])
        for raw in state.get("mail", []):
            self.mail[raw["user"]].load_json(raw)
        if "mail_delta" in state:
            self.mail_delta.load_json(state["mail_delta"])
        self.subscriptions.load_json(state["subscriptions"])
        self._batches = int(state["batches"])

    def reset(self) -> None:
        self.limits.configure(Limits().to_json())
        self._fresh_mailboxes()
        self.identity.reset()
        self.delta.clear()
        self.mail_delta.clear()
        self.subscriptions.clear()
        self.throttle.clear()
        self._batches = 0

    def client_config(self) -> dict[str, Any]:
        return {
            "authority": f"{self.base_url}{self.directory.tenant_id}",
            "graph_base": f"{self.base_url}v1.0",
            "tenant_id": self.directory.tenant_id,
            "client_id": self.directory.client_id,
            "client_secret": self.directory.client_secret,
            "scope": "https://graph.microsoft.com/.default",
            "user_id": self.directory.users[0].user_principal_name,
            "users": [
                {
                    "id": u.id,
                    "userPrincipalName": u.user_principal_name,
                    "displayName": u.display_name,
                    "refresh_token": self.identity.seeded_refresh_token(u),
                }
                for u in self.directory.users
            ],
            "admin": f"{self.base_url}_sandbox/",
        }

    def configure_quotas(self, quotas: dict[str, Any]) -> None:
        self.limits.configure(quotas)
        self.subscriptions.next_check = 0.0

    def quotas(self) -> dict[str, Any]:
        return {**self.limits.to_json(), "usage": self.throttle.usage()}


# ---- helpers ------------------------------------------------------------------------------------


def _pick(body: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if select is None:
        return body
    return {"id": body["id"], **{k: body[k] for k in select}}


def _color(value: Any) -> str:
    if not isinstance(value, str) or value not in CATEGORY_COLORS:
        raise err.enum_value(str(value))
    return value


def _check_folder_body(body: dict[str, Any], *, creating: bool) -> None:
    for name in body:
        if name.startswith("@odata."):
            continue
        if name not in FOLDER_PROPERTIES:
            raise err.unknown_property(name, "contactFolder")
        if name == "id" or (name == "parentFolderId" and not creating):
            raise err.read_only_property()


def _find_folder(mailbox: Mailbox, ref: str) -> ContactFolder:
    if ref in mailbox.folders or ref.lower() == "contacts":
        return mailbox.folder(ref)
    for folder in mailbox.folders.values():
        if folder.display_name.lower() == ref.lower():
            return folder
    raise ValueError(f"unknown folder {ref!r}")


def _batch_order(items: list[Any]) -> list[dict[str, Any]]:
    """Validates the requests of a batch and orders them so dependencies run first."""
    by_id: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise err.batch_error("Invalid batch payload format.")
        for field in ("id", "method", "url"):
            if not isinstance(item.get(field), str) or not item[field]:
                raise err.batch_error(f"Each batch request must have a string '{field}'.")
        key = item["id"].lower()
        if key in by_id:
            raise err.batch_error(f"Batch request ids must be unique: '{item['id']}'.")
        if "body" in item and not any(
            k.lower() == "content-type" for k in (item.get("headers") or {})
        ):
            raise err.batch_error(
                "A Content-Type header is required for a batch request with a body."
            )
        by_id[key] = item
    ordered: list[dict[str, Any]] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done

    def visit(key: str) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            raise err.batch_error("The dependsOn graph of the batch has a cycle.")
        state[key] = 1
        depends = by_id[key].get("dependsOn") or []
        if not isinstance(depends, list):
            raise err.batch_error("dependsOn must be an array of request ids.")
        for dep in depends:
            if str(dep).lower() not in by_id:
                raise err.batch_error(f"dependsOn refers to an unknown request id '{dep}'.")
            visit(str(dep).lower())
        state[key] = 2
        ordered.append(by_id[key])

    for key in by_id:
        visit(key)
    return ordered


def _sub_response(item_id: str, response: Response) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item_id, "status": response.status_code}
    keep = ("Content-Type", "Location", "Retry-After", "ETag", "Preference-Applied")
    out["headers"] = {k: v for k, v in response.headers.items() if k in keep}
    data = response.get_data()
    if data:
        try:
            out["body"] = loads(data)
        except ValueError:
            out["body"] = data.decode("utf-8", "replace")
    return out
