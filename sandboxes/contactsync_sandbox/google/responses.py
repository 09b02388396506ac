"""The HTTP edge of the Google People sandbox: routes, request parsing and validation as Google's
API front end does it, and rendering. State and rules live in ``models``; error shapes in
``exceptions``.

Served paths (``api_base`` is the server root, like ``https://people.googleapis.com/``):

    GET    /o/oauth2/v2/auth                         OAuth 2.0 authorization endpoint (oauth.py)
    POST   /token                                    OAuth 2.0 authorization_code and
                                                     refresh_token grants
    POST   /revoke                                   OAuth 2.0 token revocation
    GET    /v1/people/me/connections                 people.connections.list
    GET    /v1/people/{id}                           people.get (people/me: the user's profile)
    GET    /v1/people:batchGet                       people.getBatchGet
    POST   /v1/people:createContact                  people.createContact
    PATCH  /v1/people/{id}:updateContact             people.updateContact
    DELETE /v1/people/{id}:deleteContact             people.deleteContact
    POST   /v1/people:batchCreateContacts            people.batchCreateContacts
    POST   /v1/people:batchUpdateContacts            people.batchUpdateContacts
    POST   /v1/people:batchDeleteContacts            people.batchDeleteContacts
    GET    /v1/contactGroups                         contactGroups.list
    POST   /v1/contactGroups                         contactGroups.create
    GET    /v1/contactGroups:batchGet                contactGroups.batchGet
    GET    /v1/contactGroups/{id}                    contactGroups.get
    PUT    /v1/contactGroups/{id}                    contactGroups.update
    DELETE /v1/contactGroups/{id}                    contactGroups.delete
    POST   /v1/contactGroups/{id}/members:modify     contactGroups.members.modify

Gmail (``/gmail/v1/...``) and Calendar (``/calendar/v3/...``) for activity capture live in
``gmail.py`` and ``calendar.py`` (state in ``workspace.py``), with the admin call
``POST /_sandbox/workspace``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule

from contactsync_sandbox.core.app import ProviderError, Request, Response, SandboxApp, json_response
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.faults import FaultRule
from contactsync_sandbox.google import exceptions as err
from contactsync_sandbox.google import render
from contactsync_sandbox.google import workspace_errors as workspace_err
from contactsync_sandbox.google.admin import WorkspaceAdmin
from contactsync_sandbox.google.calendar import CalendarRoutes, calendar_rules
from contactsync_sandbox.google.fields import (
    READ_FIELDS,
    STORED_FIELDS,
    UPDATE_FIELDS,
    check_person_keys,
    normalise_fields,
    parse_mask,
    request_etags,
    requested_groups,
)
from contactsync_sandbox.google.gmail import GmailRoutes, gmail_rules
from contactsync_sandbox.google.models import (
    ADDABLE_SYSTEM_GROUPS,
    CONTACTS_SCOPE,
    SORT_ORDERS,
    AddressBook,
    Contact,
    ContactGroup,
    Cursor,
    GoogleBackend,
    SyncToken,
    UserAccount,
    params_key,
)
from contactsync_sandbox.google.oauth import AUTH_PATH, GoogleOAuth
from contactsync_sandbox.google.quotas import BUCKETS, COSTS
from contactsync_sandbox.google.seeding import LABELS, generated
from contactsync_sandbox.google.workspace import Workspace

USER_KEY = "contactsync.google.user"
SCOPE_KEY = "contactsync.google.scope"
# Parameters every Google API accepts (discovery: top-level "parameters").
SYSTEM_PARAMS = frozenset(
    {
        "$.xgafv",
        "access_token",
        "alt",
        "callback",
        "fields",
        "key",
        "oauth_token",
        "prettyPrint",
        "quotaUser",
        "uploadType",
        "upload_protocol",
    }
)
READ_SOURCES = (
    "READ_SOURCE_TYPE_UNSPECIFIED",
    "READ_SOURCE_TYPE_PROFILE",
    "READ_SOURCE_TYPE_CONTACT",
    "READ_SOURCE_TYPE_DOMAIN_CONTACT",
    "READ_SOURCE_TYPE_OTHER_CONTACT",
)
SORT_ORDER_TYPE = "type.googleapis.com/google.apps.people.v1.ListConnectionsRequest.SortOrder"
READ_SOURCE_TYPE = "type.googleapis.com/google.apps.people.v1.ReadSourceType"
GROUP_DOCS = "https://developers.google.com/people/api/rest/v1/contactGroups/get"
UPDATE_DOCS = "https://developers.google.com/people/api/rest/v1/people/updateContact"
CONTACT_TO_CREATE = "type.googleapis.com/google.apps.people.v1.ContactToCreate"
MAX_BATCH_GET = 200
MAX_BATCH_WRITE = 200
MAX_BATCH_DELETE = 500
MAX_MEMBER_CHANGES = 1000
ALL_READ_FIELDS = tuple(sorted(READ_FIELDS))


# ---- request parsing helpers ---------------------------------------------------------------------


def _args(request: Request, allowed: Iterable[str]) -> MultiDict[str, str]:
    known = set(allowed)
    for name in request.args:
        if name not in known and name not in SYSTEM_PARAMS:
            raise err.unknown_name(name)
    return request.args


def _int(args: MultiDict[str, str], name: str, field: str) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise err.invalid_value(field, "TYPE_INT32", raw) from None


def _bool(args: MultiDict[str, str], name: str, field: str) -> bool:
    raw = args.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise err.invalid_value(field, "TYPE_BOOL", raw)


def _page_size(args: MultiDict[str, str], default: int, maximum: int) -> int:
    size = _int(args, "pageSize", "page_size")
    if size is None or size == 0:
        return default
    if size < 0 or size > maximum:
        raise err.invalid_argument(
            f"Page size must be between 1 and {maximum}, inclusive.", "page_size"
        )
    return size


def _body(request: Request) -> dict[str, Any]:
    if not request.data:
        return {}
    try:
        body = json.loads(request.data)
    except ValueError as exc:
        raise err.invalid_argument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise err.invalid_argument("Invalid JSON payload received. Expected an object.")
    return body


def _check_keys(body: dict[str, Any], allowed: Iterable[str]) -> None:
    known = set(allowed)
    for key in body:
        if key not in known:
            raise err.invalid_argument(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.', key
            )


def _names(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise err.invalid_value(field, "TYPE_STRING", value)
    return value


def _sources(args: MultiDict[str, str]) -> list[str]:
    sources = sorted(set(args.getlist("sources")))
    for source in sources:
        if source not in READ_SOURCES:
            raise err.invalid_value("sources", READ_SOURCE_TYPE, source)
    return sources


def _person_mask(args: MultiDict[str, str], *, required: bool) -> tuple[str, ...]:
    raw = args.get("personFields")
    if not raw and args.get("requestMask.includeField"):
        raw = args.get("requestMask.includeField")
    if not raw and not required:
        return ALL_READ_FIELDS
    return parse_mask(raw, READ_FIELDS, "personFields")


def _read_mask(raw: Any, param: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, str):
        raise err.invalid_value(param, "TYPE_STRING", raw)
    return parse_mask(raw, READ_FIELDS, param)


def _group_fields(raw: str | None, param: str) -> tuple[str, ...]:
    if not raw:
        return render.DEFAULT_GROUP_FIELDS
    return parse_mask(raw, render.GROUP_FIELDS, param, GROUP_DOCS)


class GoogleApp(GmailRoutes, CalendarRoutes, WorkspaceAdmin, SandboxApp):
    """The Google People API v1, Gmail and Calendar, and Google's OAuth 2.0 token endpoint."""

    name = "google"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        clock = clock or VirtualClock()
        self.backend = GoogleBackend(clock, seed, on_write=render.prime)
        self.oauth = GoogleOAuth(self.backend)
        self.workspace = Workspace(clock, self.backend.users, self.backend.codec)
        super().__init__(clock, seed=seed)
        self.base_url = "https://google.sandbox.test/"  # in-process convention until served

    def routes(self) -> list[Rule]:
        return [
            Rule(AUTH_PATH, methods=["GET"], endpoint="authorize"),
            Rule("/token", methods=["POST"], endpoint="token"),
            Rule("/revoke", methods=["POST"], endpoint="revoke"),
            Rule("/v1/people/me/connections", methods=["GET"], endpoint="list_connections"),
            Rule("/v1/people:batchGet", methods=["GET"], endpoint="batch_get"),
            Rule("/v1/people:createContact", methods=["POST"], endpoint="create_contact"),
            Rule("/v1/people:batchCreateContacts", methods=["POST"], endpoint="batch_create"),
            Rule("/v1/people:batchUpdateContacts", methods=["POST"], endpoint="batch_update"),
            Rule("/v1/people:batchDeleteContacts", methods=["POST"], endpoint="batch_delete"),
            Rule("/v1/people/<pid>", methods=["GET"], endpoint="get_person"),
            Rule("/v1/people/<pid>:updateContact", methods=["PATCH"], endpoint="update_contact"),
            Rule("/v1/people/<pid>:deleteContact", methods=["DELETE"], endpoint="delete_contact"),
            Rule("/v1/contactGroups", methods=["GET"], endpoint="list_groups"),
            Rule("/v1/contactGroups", methods=["POST"], endpoint="create_group"),
            Rule("/v1/contactGroups:batchGet", methods=["GET"], endpoint="batch_get_groups"),
            Rule("/v1/contactGroups/<gid>", methods=["GET"], endpoint="get_group"),
            Rule("/v1/contactGroups/<gid>", methods=["PUT"], endpoint="update_group"),
            Rule("/v1/contactGroups/<gid>", methods=["DELETE"], endpoint="delete_group"),
            Rule(
                "/v1/contactGroups/<gid>/members:modify",
                methods=["POST"],
                endpoint="modify_members",
            ),
            *gmail_rules(),
            *calendar_rules(),
            Rule("/_sandbox/workspace", methods=["GET", "POST"], endpoint="_admin_workspace"),
        ]

    def _admin_routes(self) -> list[Rule]:
        return [
            *super()._admin_routes(),
            Rule(
                "/_sandbox/oauth/redirect_uris",
                methods=["GET", "POST"],
                endpoint="_admin_redirect_uris",
            ),
        ]

    # ---- authentication, quotas ---------------------------------------------------------------

    def on_request(self, request: Request) -> Response | None:
        if request.path in ("/token", "/revoke", AUTH_PATH):
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        token = token or request.args.get("access_token", "")
        if not token:
            raise err.unauthenticated(missing=True)
        state, issued = self.backend.tokens.check(token)
        if issued is None or state != "valid":
            raise err.unauthenticated(missing=False, expired=state == "expired")
        request.environ[USER_KEY] = self.backend.by_email[issued.subject]
        request.environ[SCOPE_KEY] = issued.scope
        return None

    def _begin(
        self,
        request: Request,
        method: str,
        *,
        write: bool = False,
        extra: dict[str, int] | None = None,
    ) -> tuple[UserAccount, AddressBook]:
        """The caller, once its token's scope allows ``method`` and its quota has room."""
        user: UserAccount = request.environ[USER_KEY]
        if write and CONTACTS_SCOPE not in request.environ[SCOPE_KEY].split():
            raise err.insufficient_scopes(f"google.people.v1.PeopleService.{method}")
        costs = dict(COSTS[method])
        for key, units in (extra or {}).items():
            costs[key] = costs.get(key, 0) + units
        exceeded = self.backend.quota.charge(user.email, costs)
        if exceeded is not None:
            raise ProviderError(self._quota_response(exceeded.key))
        return user, self.backend.book(user.email)

    def _quota_response(self, bucket_key: str) -> Response:
        bucket = BUCKETS[bucket_key]
        limit = self.backend.quota.limits.get(bucket_key)
        return err.quota_exceeded(
            bucket.metric_name,
            bucket.limit_name,
            bucket.metric_id,
            bucket.limit_id,
            bucket.default if limit is None else limit,
            self.backend.client.project_number,
        )

    # ---- OAuth 2.0 --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        return self.oauth.authorize(request.args.to_dict())

    def token(self, request: Request) -> Response:
        if request.mimetype == "application/json":
            raw = _body(request)
            form = {k: str(v) for k, v in raw.items()}
        else:
            form = {k: v for k, v in request.form.items()}
        basic = None
        auth = request.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise err.oauth_error(400, "invalid_request", "Bad Request") from None
            basic = (user, password)
        body = self.oauth.grant(form, basic) or self.backend.grant(form, basic)
        return json_response(
            body,
            200,
            {
                "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
                "Pragma": "no-cache",
            },
        )

    def revoke(self, request: Request) -> Response:
        token = request.args.get("token") or request.form.get("token") or ""
        if not self.oauth.revoke(token):
            raise err.oauth_error(400, "invalid_token", "Token expired or revoked")
        return json_response({})

    # ---- people.connections.list ---------------------------------------------------------------

    def list_connections(self, request: Request) -> Response:
        args = request.args
        first_page = not args.get("pageToken") and not args.get("syncToken")
        extra = {"full_sync_requests": 1} if first_page else None
        user, book = self._begin(request, "people.connections.list", extra=extra)
        args = _args(
            request,
            (
                "personFields",
                "requestMask.includeField",
                "pageSize",
                "pageToken",
                "requestSyncToken",
                "syncToken",
                "sortOrder",
                "sources",
            ),
        )
        mask = _person_mask(args, required=True)
        page_size = _page_size(args, default=100, maximum=1000)
        sort_order = args.get("sortOrder") or "LAST_MODIFIED_ASCENDING"
        if sort_order not in SORT_ORDERS:
            raise err.invalid_value("sort_order", SORT_ORDER_TYPE, sort_order)
        sources = _sources(args)
        request_sync = _bool(args, "requestSyncToken", "request_sync_token")
        page_token, sync_token = args.get("pageToken") or None, args.get("syncToken") or None
        sync_key = params_key({"personFields": mask, "sources": sources, "sortOrder": sort_order})
        page_key = params_key(
            {
                "sync": sync_key,
                "pageSize": page_size,
                "requestSyncToken": request_sync,
                "syncToken": sync_token,
            }
        )
        now = self.clock.timestamp()
        if page_token is not None:
            cursor, offset = self._resume(book, page_token, page_key)
        elif sync_token is not None:
            token = self._sync_token(user, sync_token, sync_key)
            numbers, position = book.changes_since(token.seq)
            anchor = (
                token.anchor
                if self.backend.settings.sync_token_expiry_anchor == "full_sync"
                else now
            )
            cursor = book.open_cursor(
                page_key,
                numbers,
                incremental=True,
                sync_key=sync_key,
                sync_seq=position,
                anchor=anchor,
            )
            offset = 0
        else:
            cursor = book.open_cursor(
                page_key,
                book.snapshot(sort_order),
                incremental=False,
                sync_key=sync_key,
                sync_seq=book.seq,
                anchor=now,
            )
            offset = 0
        return self._connections_page(user, book, cursor, offset, page_size, mask, request_sync)

    def _resume(self, book: AddressBook, page_token: str, key: str) -> tuple[Cursor, int]:
        decoded = self.backend.codec.read_page_token(page_token)
        cursor = None if decoded is None else book.cursor(decoded[0])
        if decoded is None or cursor is None or not 0 < decoded[1] <= len(cursor.numbers):
            raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "page_token")
        if cursor.params_key != key:
            # "When the page_token is specified, all other request parameters must match the
            # first call."
            raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "page_token")
        return cursor, decoded[1]

    def _sync_token(self, user: UserAccount, text: str, key: str) -> SyncToken:
        token = self.backend.codec.read_sync_token(text)
        if token is None or token.user_index != user.index:
            raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "sync_token")
        settings = self.backend.settings
        if (
            token.epoch != self.backend.epoch
            or self.clock.timestamp() - token.anchor > settings.sync_token_ttl_seconds
        ):
            raise err.expired_sync_token(settings.expired_sync_token_status)
        if token.params_key != key:
            raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "sync_token")
        return token

    def _connections_page(
        self,
        user: UserAccount,
        book: AddressBook,
        cursor: Cursor,
        offset: int,
        size: int,
        mask: tuple[str, ...],
        request_sync: bool,
    ) -> Response:
        end = offset + size
        people: list[bytes] = []
        for number in cursor.numbers[offset:end]:
            contact = book.contacts.get(number)
            if contact is None:
                continue
            if contact.deleted:
                if cursor.incremental:
                    people.append(json.dumps(render.tombstone(contact)).encode())
                continue
            people.append(render.person_json(contact, mask, capped=True))
        body: dict[str, Any] = {}
        if end < len(cursor.numbers):
            book.keep_cursor(cursor)
            body["nextPageToken"] = self.backend.codec.page_token(cursor.id, end)
        elif request_sync or cursor.incremental:
            token = SyncToken(
                self.backend.epoch, user.index, cursor.sync_key, cursor.sync_seq, cursor.anchor
            )
            body["nextSyncToken"] = self.backend.codec.sync_token(token)
        if cursor.total:
            body["totalPeople"] = cursor.total
            body["totalItems"] = cursor.total
        # The page is spliced from the contacts' cached JSON rather than encoded again.
        data = json.dumps(body, separators=(",", ":")).encode()
        if people:
            tail = b"," + data[1:] if body else b"}"
            data = b"".join((b'{"connections":[', b",".join(people), b"]", tail))
        return Response(data, status=200, content_type="application/json; charset=utf-8")

    # ---- people: reads -------------------------------------------------------------------------

    def get_person(self, request: Request, pid: str) -> Response:
        user, book = self._begin(request, "people.get")
        args = _args(request, ("personFields", "requestMask.includeField", "sources"))
        _sources(args)
        mask = _person_mask(args, required=True)
        if pid == "me" or pid == user.profile_id:
            return json_response(render.profile(user, mask, self._profile_etag(user)))
        contact = book.find(f"people/{pid}")
        if contact is None:
            raise err.not_found()
        return json_response(render.person(contact, mask))

    def _profile_etag(self, user: UserAccount) -> str:
        raw = hashlib.blake2b(self.backend.secret + user.profile_id.encode(), digest_size=18)
        return "%Eg" + base64.b64encode(raw.digest()).decode()

    def batch_get(self, request: Request) -> Response:
        user, book = self._begin(request, "people.getBatchGet")
        args = _args(
            request, ("personFields", "requestMask.includeField", "resourceNames", "sources")
        )
        names = args.getlist("resourceNames")
        if not names:
            raise err.invalid_argument("Must specify at least one resource name.", "resource_names")
        if len(names) > MAX_BATCH_GET:
            raise err.invalid_argument(
                f"Too many resource names: {len(names)}. The maximum is {MAX_BATCH_GET}.",
                "resource_names",
            )
        _sources(args)
        mask = _person_mask(args, required=True)
        responses = []
        for name in names:
            if name in ("people/me", f"people/{user.profile_id}"):
                found: dict[str, Any] | None = render.profile(user, mask, self._profile_etag(user))
            else:
                contact = book.find(name)
                found = None if contact is None else render.person(contact, mask)
            responses.append(self._person_response(name, found))
        return json_response({"responses": responses})

    @staticmethod
    def _person_response(name: str, person: dict[str, Any] | None) -> dict[str, Any]:
        if person is None:
            return {
                "httpStatusCode": 404,
                "requestedResourceName": name,
                "status": {"code": 5, "message": err.NOT_FOUND_MESSAGE},
            }
        return {
            "httpStatusCode": 200,
            "person": person,
            "requestedResourceName": name,
            "status": {},
        }

    # ---- people: writes -------------------------------------------------------------------------

    def _new_contact(
        self, book: AddressBook, raw: Any, where: str
    ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        person = check_person_keys(raw, where)
        stored = [name for name in person if name in STORED_FIELDS]
        fields = normalise_fields(person, stored, where, "US")
        groups = requested_groups(person, where) or []
        book.check_groups(groups, f"{where}.memberships")
        return fields, groups

    def create_contact(self, request: Request) -> Response:
        _, book = self._begin(request, "people.createContact", write=True)
        args = _args(request, ("personFields", "sources"))
        _sources(args)
        mask = _person_mask(args, required=False)
        fields, groups = self._new_contact(book, _body(request), "person")
        contact = book.create(fields, groups)
        return json_response(render.person(contact, mask))

    def _updated_contact(
        self, book: AddressBook, name: str, raw: Any, mask: tuple[str, ...], where: str
    ) -> tuple[Contact, dict[str, list[dict[str, Any]]], list[str] | None]:
        """Validates one update (existence, etag, fields) without applying it."""
        person = check_person_keys(raw, where)
        contact = book.find(name)
        if contact is None:
            raise err.not_found()
        etag, source_etag = request_etags(person)
        if etag is None and source_etag is None:
            raise err.invalid_argument(err.MISSING_ETAG, f"{where}.etag")
        if etag is not None and etag != contact.etag:
            raise self._stale(err.STALE_ETAG)
        if etag is None and source_etag != contact.source_etag:
            raise self._stale(err.STALE_SOURCE_ETAG)
        fields = normalise_fields(person, mask, where, "US")
        groups = None
        if "memberships" in mask:
            groups = requested_groups(person, where) or []
            if not groups:
                raise err.invalid_argument(
                    "A contact must always have at least one contact group membership: "
                    "person.memberships must name one when memberships is updated.",
                    f"{where}.memberships",
                )
            book.check_groups(
                [g for g in groups if g not in contact.groups], f"{where}.memberships"
            )
        return contact, fields, groups

    @staticmethod
    def _stale(message: str) -> ProviderError:
        # The reference: 'a 400 error with reason "failedPrecondition"'.
        body = {
            "error": {
                "code": 400,
                "message": message,
                "errors": [
                    {"message": message, "domain": "global", "reason": "failedPrecondition"}
                ],
                "status": "FAILED_PRECONDITION",
            }
        }
        return ProviderError(json_response(body, 400))

    def update_contact(self, request: Request, pid: str) -> Response:
        _, book = self._begin(request, "people.updateContact", write=True)
        args = _args(request, ("updatePersonFields", "personFields", "sources"))
        update_mask = parse_mask(
            args.get("updatePersonFields"), UPDATE_FIELDS, "updatePersonFields", UPDATE_DOCS
        )
        _sources(args)
        read_mask = _person_mask(args, required=False)
        contact, fields, groups = self._updated_contact(
            book, f"people/{pid}", _body(request), update_mask, "person"
        )
        book.update(contact, fields, update_mask, groups)
        return json_response(render.person(contact, read_mask))

    def delete_contact(self, request: Request, pid: str) -> Response:
        _, book = self._begin(request, "people.deleteContact", write=True)
        _args(request, ())
        contact = book.find(f"people/{pid}")
        if contact is None:
            raise err.not_found()
        book.delete(contact)
        return json_response({})

    def batch_create(self, request: Request) -> Response:
        body = _body(request)
        contacts = body.get("contacts")
        count = len(contacts) if isinstance(contacts, list) else 0
        _, book = self._begin(
            request, "people.batchCreateContacts", write=True, extra={"daily_contact_writes": count}
        )
        _args(request, ())
        _check_keys(body, ("contacts", "readMask", "sources"))
        if not isinstance(contacts, list) or not contacts:
            raise err.invalid_argument("contacts must not be empty.", "contacts")
        if len(contacts) > MAX_BATCH_WRITE:
            raise err.invalid_argument(
                f"Too many contacts in the request: {len(contacts)}. "
                f"Allows up to {MAX_BATCH_WRITE} contacts in a single request.",
                "contacts",
            )
        read_mask = _read_mask(body.get("readMask"), "readMask")
        planned = []
        errors: dict[str, ProviderError] = {}
        for i, item in enumerate(contacts):
            where = f"contacts[{i}]"
            try:
                if not isinstance(item, dict):
                    raise err.invalid_value(where, CONTACT_TO_CREATE, item)
                _check_keys(item, ("contactPerson",))
                person = item.get("contactPerson", {})
                planned.append(self._new_contact(book, person, f"{where}.contact_person"))
            except ProviderError as exc:
                errors[str(i)] = exc
        if errors:  # the batch fails whole, naming the contacts that made it fail
            raise err.batch_failure("BatchCreateContacts", errors)
        book.ensure_capacity(len(planned))
        created = [book.create(fields, groups) for fields, groups in planned]
        if not read_mask:
            return json_response({})
        return json_response(
            {
                "createdPeople": [
                    self._person_response(c.resource_name, render.person(c, read_mask))
                    for c in created
                ]
            }
        )

    def batch_update(self, request: Request) -> Response:
        body = _body(request)
        contacts = body.get("contacts")
        count = len(contacts) if isinstance(contacts, dict) else 0
        _, book = self._begin(
            request, "people.batchUpdateContacts", write=True, extra={"daily_contact_writes": count}
        )
        _args(request, ())
        _check_keys(body, ("contacts", "readMask", "sources", "updateMask"))
        if not isinstance(contacts, dict) or not contacts:
            raise err.invalid_argument("contacts must not be empty.", "contacts")
        if len(contacts) > MAX_BATCH_WRITE:
            raise err.invalid_argument(
                f"Too many contacts in the request: {len(contacts)}. "
                f"Allows up to {MAX_BATCH_WRITE} contacts in a single request.",
                "contacts",
            )
        update_mask = parse_mask(body.get("updateMask"), UPDATE_FIELDS, "updateMask", UPDATE_DOCS)
        read_mask = _read_mask(body.get("readMask"), "readMask")
        # All or nothing: every contact is checked before any is written.
        planned = []
        errors: dict[str, ProviderError] = {}
        for name, person in contacts.items():
            try:
                planned.append(
                    self._updated_contact(book, name, person, update_mask, f"contacts[{name}]")
                )
            except ProviderError as exc:
                errors[name] = exc
        if errors:
            raise err.batch_failure("BatchUpdateContacts", errors)
        for contact, fields, groups in planned:
            book.update(contact, fields, update_mask, groups)
        if not read_mask:
            return json_response({})
        return json_response(
            {
                "updateResult": {
                    name: self._person_response(name, render.person(contact, read_mask))
                    for name, (contact, _, _) in zip(contacts, planned, strict=True)
                }
            }
        )

    def batch_delete(self, request: Request) -> Response:
        _, book = self._begin(request, "people.batchDeleteContacts", write=True)
        _args(request, ())
        body = _body(request)
        _check_keys(body, ("resourceNames",))
        names = _names(body.get("resourceNames"), "resource_names")
        if not names:
            raise err.invalid_argument("Must specify at least one resource name.", "resource_names")
        if len(names) > MAX_BATCH_DELETE:
            raise err.invalid_argument(
                f"Too many resource names: {len(names)}. The maximum is {MAX_BATCH_DELETE}.",
                "resource_names",
            )
        targets: dict[int, Contact] = {}
        for name in names:
            contact = book.find(name)
            if contact is None:
                raise err.not_found()
            targets[contact.number] = contact
        for contact in targets.values():
            book.delete(contact)
        return json_response({})

    # ---- contact groups -----------------------------------------------------------------------

    def _group(self, book: AddressBook, gid: str) -> ContactGroup:
        group = book.groups.get(gid)
        if group is None or group.deleted:
            raise err.not_found()
        return group

    def list_groups(self, request: Request) -> Response:
        user, book = self._begin(request, "contactGroups.list")
        args = _args(request, ("groupFields", "pageSize", "pageToken", "syncToken"))
        fields = _group_fields(args.get("groupFields"), "groupFields")
        page_size = _page_size(args, default=30, maximum=1000)
        codec = self.backend.codec
        sync_token = args.get("syncToken")
        if sync_token:
            parts = codec.open("g", sync_token, 3)
            if parts is None or int(parts[1]) != user.index:
                raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "sync_token")
            if int(parts[0]) != self.backend.epoch:
                raise err.expired_sync_token(self.backend.settings.expired_sync_token_status)
            changed = [g for g in book.groups.values() if g.seq > int(parts[2])]
            body: dict[str, Any] = {
                "nextSyncToken": codec.seal("g", self.backend.epoch, user.index, book.group_seq)
            }
            if changed:
                body["contactGroups"] = [render.group(book, g, fields) for g in changed]
            return json_response(body)
        live = [g for g in book.groups.values() if not g.deleted]
        key = params_key({"fields": fields, "pageSize": page_size})
        offset = 0
        page_token = args.get("pageToken")
        if page_token:
            parts = codec.open("q", page_token, 3)
            if parts is None or parts[0] != key or int(parts[1]) != user.index:
                raise err.invalid_argument(err.INVALID_ARGUMENT_MESSAGE, "page_token")
            offset = int(parts[2])
        page = live[offset : offset + page_size]
        body = {
            "contactGroups": [render.group(book, g, fields) for g in page],
            "totalItems": len(live),
        }
        if offset + page_size < len(live):
            body["nextPageToken"] = codec.seal("q", key, user.index, offset + page_size)
        else:
            body["nextSyncToken"] = codec.seal("g", self.backend.epoch, user.index, book.group_seq)
        return json_response(body)

    def get_group(self, request: Request, gid: str) -> Response:
        _, book = self._begin(request, "contactGroups.get")
        args = _args(request, ("groupFields", "maxMembers"))
        fields = _group_fields(args.get("groupFields"), "groupFields")
        max_members = _int(args, "maxMembers", "max_members") or 0
        return json_response(render.group(book, self._group(book, gid), fields, max_members))

    def batch_get_groups(self, request: Request) -> Response:
        _, book = self._begin(request, "contactGroups.batchGet")
        args = _args(request, ("groupFields", "maxMembers", "resourceNames"))
        fields = _group_fields(args.get("groupFields"), "groupFields")
        max_members = _int(args, "maxMembers", "max_members") or 0
        names = args.getlist("resourceNames")
        if not names:
            raise err.invalid_argument("Must specify at least one resource name.", "resource_names")
        if len(names) > MAX_BATCH_GET:
            raise err.invalid_argument(
                f"Too many resource names: {len(names)}. The maximum is {MAX_BATCH_GET}.",
                "resource_names",
            )
        responses = []
        for name in names:
            group = book.groups.get(name.removeprefix("contactGroups/"))
            if group is None or group.deleted or not name.startswith("contactGroups/"):
                responses.append(
                    {
                        "requestedResourceName": name,
                        "status": {"code": 5, "message": err.NOT_FOUND_MESSAGE},
                    }
                )
            else:
                responses.append(
                    {
                        "requestedResourceName": name,
                        "status": {},
                        "contactGroup": render.group(book, group, fields, max_members),
                    }
                )
        return json_response({"responses": responses})

    @staticmethod
    def _group_body(raw: Any, where: str) -> tuple[str | None, list[dict[str, Any]] | None]:
        if not isinstance(raw, dict):
            raise err.invalid_argument(f"{where} is required.", where)
        _check_keys(
            raw,
            (
                "clientData",
                "etag",
                "formattedName",
                "groupType",
                "memberCount",
                "memberResourceNames",
                "metadata",
                "name",
                "resourceName",
            ),
        )
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise err.invalid_value(f"{where}.name", "TYPE_STRING", name)
        client_data = raw.get("clientData")
        if client_data is not None and (
            not isinstance(client_data, list) or not all(isinstance(d, dict) for d in client_data)
        ):
            raise err.invalid_value(f"{where}.client_data", "TYPE_MESSAGE", client_data)
        return name, client_data

    def create_group(self, request: Request) -> Response:
        _, book = self._begin(request, "contactGroups.create", write=True)
        _args(request, ())
        body = _body(request)
        _check_keys(body, ("contactGroup", "readGroupFields"))
        name, client_data = self._group_body(body.get("contactGroup"), "contact_group")
        if not name or not name.strip():
            raise err.invalid_argument("contact_group.name is required.", "contact_group.name")
        fields = _group_fields(
            body.get("readGroupFields") or "groupType,metadata,name", "readGroupFields"
        )
        group = book.create_group(name.strip(), client_data or [])
        return json_response(render.group(book, group, fields))

    def update_group(self, request: Request, gid: str) -> Response:
        _, book = self._begin(request, "contactGroups.update", write=True)
        _args(request, ())
        body = _body(request)
        _check_keys(body, ("contactGroup", "readGroupFields", "updateGroupFields"))
        group = self._group(book, gid)
        raw = body.get("contactGroup")
        name, client_data = self._group_body(raw, "contact_group")
        if group.system:
            raise err.failed_precondition("System contact groups cannot be updated.")
        assert isinstance(raw, dict)
        if isinstance(raw.get("etag"), str) and raw["etag"] != book.group_etag(group):
            raise err.failed_precondition(
                "Request contact group etag is different than the current contact group etag. "
                "Clear local cache and get the latest contact group."
            )
        update = parse_mask(
            body.get("updateGroupFields") or "name",
            frozenset({"clientData", "name"}),
            "updateGroupFields",
            GROUP_DOCS,
        )
        if "name" in update and (not name or not name.strip()):
            raise err.invalid_argument("contact_group.name is required.", "contact_group.name")
        book.rename_group(
            group,
            name.strip() if "name" in update and name else None,
            (client_data or []) if "clientData" in update else None,
        )
        fields = _group_fields(
            body.get("readGroupFields") or "groupType,metadata,name", "readGroupFields"
        )
        return json_response(render.group(book, group, fields))

    def delete_group(self, request: Request, gid: str) -> Response:
        _, book = self._begin(request, "contactGroups.delete", write=True)
        args = _args(request, ("deleteContacts",))
        delete_contacts = _bool(args, "deleteContacts", "delete_contacts")
        group = self._group(book, gid)
        if group.system:
            raise err.failed_precondition("System contact groups cannot be deleted.")
        book.delete_group(group, delete_contacts)
        return json_response({})

    def modify_members(self, request: Request, gid: str) -> Response:
        _, book = self._begin(request, "contactGroups.members.modify", write=True)
        _args(request, ())
        body = _body(request)
        _check_keys(body, ("resourceNamesToAdd", "resourceNamesToRemove"))
        add = _names(body.get("resourceNamesToAdd"), "resource_names_to_add")
        remove = _names(body.get("resourceNamesToRemove"), "resource_names_to_remove")
        if len(add) + len(remove) > MAX_MEMBER_CHANGES:
            raise err.invalid_argument(
                "The total number of resource names in resource_names_to_add and "
                f"resource_names_to_remove must be less than or equal to {MAX_MEMBER_CHANGES}.",
                "resource_names_to_add",
            )
        group = self._group(book, gid)
        if add and group.system and group.id not in ADDABLE_SYSTEM_GROUPS:
            raise err.failed_precondition(
                f"Cannot add members to system contact group {group.resource_name}: only user "
                "contact groups, contactGroups/myContacts and contactGroups/starred accept new "
                "members."
            )
        not_found, last_group = book.modify_members(group, add, remove)
        out: dict[str, Any] = {}
        if not_found:
            out["notFoundResourceNames"] = not_found
        if last_group:
            out["canNotRemoveLastContactGroupResourceNames"] = last_group
        return json_response(out)

    # ---- provider hooks for the shared machinery ----------------------------------------------

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        if request.path.startswith(("/gmail/", "/calendar/")):
            if rule.kind == "throttle":
                return workspace_err.rate_limited("Rate Limit Exceeded", rule.retry_after)
            return workspace_err.server_error(rule.status)
        if request.path in ("/token", "/revoke"):
            if rule.kind == "throttle":
                return json_response(
                    {"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"},
                    429,
                )
            return json_response(
                {"error": "internal_failure", "error_description": "Backend Error"}, rule.status
            )
        if rule.kind == "throttle":
            bucket = (
                "critical_read_requests" if request.method == "GET" else "critical_write_requests"
            )
            if request.path.startswith("/v1/contactGroups"):
                bucket = "read_requests" if request.method == "GET" else "write_requests"
            return self._quota_response(bucket)
        if rule.status == 502:
            return err.html_bad_gateway()
        message = err.GENERIC_MESSAGE.get(rule.status, "The service encountered an error.")
        return err.error_response(rule.status, message)

    def render_not_found(self, request: Request) -> Response:
        return err.html_not_found(request.path)

    def render_method_not_allowed(self, request: Request) -> Response:
        return err.html_not_found(request.path)

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        email = body.get("user", self.backend.default_user.email)
        if email not in self.backend.books:
            raise ValueError(f"unknown user {email!r}; users: {', '.join(self.backend.by_email)}")
        book = self.backend.book(email)
        created: list[str] = []
        try:
            if "records" in body:
                records = body["records"]
                if not isinstance(records, list):
                    raise ValueError('"records" must be a list of People API Person objects')
                planned = [
                    self._new_contact(book, r, f"records[{i}]") for i, r in enumerate(records)
                ]
                book.ensure_capacity(len(planned))
                created += [book.create(f, g).resource_name for f, g in planned]
            if "count" in body:
                created += self._seed_generated(book, body)
        except ProviderError as exc:  # the API's own validation: report it to the admin caller
            raise ValueError(exc.response.get_data(as_text=True)) from exc
        return {"user": email, "created": created, "count": len(created), "total": book.live}

    def _seed_generated(self, book: AddressBook, body: dict[str, Any]) -> list[str]:
        count, seed = body["count"], body.get("seed", 0)
        overlap = body.get("overlap", 0.3)
        if not isinstance(seed, int) or not isinstance(overlap, int | float):
            raise ValueError("seed must be an integer and overlap a number between 0 and 1")
        cap = self.backend.settings.max_contacts_per_user
        if cap is not None and book.live + count > cap:
            raise ValueError(
                f"seeding {count} contacts would exceed the per-user cap of {cap} "
                f"({book.live} already); raise it with quotas.max_contacts_per_user"
            )
        labels = {g.name: g.id for g in book.groups.values() if not g.system and not g.deleted}
        for label, _ in LABELS:
            if label not in labels:
                labels[label] = book.create_group(label, []).id
        labels["starred"] = "starred"
        created = []
        for fields, names in generated(count, seed, float(overlap), book.generated):
            created.append(book.create(fields, [labels[n] for n in names]).resource_name)
        book.generated += count
        return created

    def _admin_redirect_uris(self, body: dict[str, Any]) -> Response:
        uris = self.oauth.redirect_uris
        return json_response(uris.configure(body) if body else uris.to_json())

    def dump_state(self) -> dict[str, Any]:
        return {
            **self.backend.to_json(),
            "oauth": self.oauth.to_json(),
            "workspace": self.workspace.to_json(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.backend.load(state)
        self.oauth.load(state.get("oauth", {}))
        self.workspace.load(state.get("workspace", {}))

    def reset(self) -> None:
        self.backend.reset()
        self.oauth.reset()
        self.workspace.reset()

    def client_config(self) -> dict[str, Any]:
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        default = self.backend.default_user
        return {
            "api_base": base,
            "auth_uri": base + AUTH_PATH.lstrip("/"),
            "token_uri": base + "token",
            "revoke_uri": base + "revoke",
            "client_id": self.backend.client.client_id,
            "client_secret": self.backend.client.client_secret,
            "refresh_token": default.refresh_token,
            "user": default.email,
            "users": {u.email: u.refresh_token for u in self.backend.users},
            "scopes": [CONTACTS_SCOPE],
            "gmail_api_base": base,
            "calendar_api_base": base,
            "admin": base + "_sandbox/",
        }

    def configure_quotas(self, quotas: dict[str, Any]) -> None:
        """``enabled`` (false turns rate limits and the daily quota off), per-bucket limits
        (``critical_read_requests``, ``critical_write_requests``, ``read_requests``,
        ``write_requests``, ``daily_contact_writes``, ``full_sync_requests``; null = unlimited),
        and the service's policies (see ``models.Settings``)."""
        limits = {k: v for k, v in quotas.items() if k in BUCKETS}
        settings = {k: v for k, v in quotas.items() if k not in BUCKETS and k != "enabled"}
        enabled = quotas.get("enabled", self.backend.quota.enabled)
        if not isinstance(enabled, bool):
            raise ValueError("quotas.enabled must be true or false")
        trial = type(self.backend.settings)(**self.backend.settings.to_json())
        trial.update(settings)  # raises on an unknown key or a bad value: nothing changes
        self.backend.quota.configure(limits)
        self.backend.settings.update(settings)
        self.backend.tokens.ttl_seconds = self.backend.settings.access_token_ttl_seconds
        self.backend.quota.enabled = enabled

    def quotas(self) -> dict[str, Any]:
        return {**self.backend.quota.to_json(), "settings": self.backend.settings.to_json()}
