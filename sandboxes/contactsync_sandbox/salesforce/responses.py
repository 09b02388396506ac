"""The HTTP edge of the Salesforce sandbox: routes, request parsing and response rendering for the
REST API (``/services/data/vXX.X/...``), Bulk API 2.0 (``.../jobs/...``), the OAuth endpoints
(``/services/oauth2/...``) and the sandbox-only admin additions under ``/_sandbox/``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
from werkzeug.routing import Rule

from contactsync_sandbox.core.app import ProviderError, Request, Response, SandboxApp, json_response
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.faults import FaultRule
from contactsync_sandbox.salesforce import exceptions as err
from contactsync_sandbox.salesforce import ids, seed
from contactsync_sandbox.salesforce.bulk import BulkJobs
from contactsync_sandbox.salesforce.exceptions import OAuthError, SalesforceError
from contactsync_sandbox.salesforce.models import (
    DuplicateRule,
    Org,
    Record,
    WriteContext,
    format_datetime,
)
from contactsync_sandbox.salesforce.oauth import AUTHORIZE_PATH, SalesforceOAuth
from contactsync_sandbox.salesforce.outbound import (
    MAX_NOTIFICATIONS,
    RETRY_BACKOFF,
    OutboundDispatcher,
    OutboundMessage,
    envelope,
    notification_values,
)
from contactsync_sandbox.salesforce.schema import OBJECTS, SObject, get_object
from contactsync_sandbox.salesforce.soql import Column, parse, parse_datetime

API_VERSIONS = [f"{v}.0" for v in range(31, 63)]
DEFAULT_VERSION = "59.0"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
MAX_COLLECTION = 200
MAX_RETRIEVE_IDS = 2000
USER_KEY = "contactsync.salesforce.user"
V = "/services/data/v<version>"


class SalesforceSandbox(SandboxApp):
    """Salesforce REST API + Bulk API 2.0 + OAuth, driven by the unpatched simple-salesforce."""

    name = "salesforce"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        clock = clock or VirtualClock()
        self.org = Org(clock, seed)
        self.oauth = SalesforceOAuth(self.org)
        self.bulk = BulkJobs(self.org)
        self.outbound: dict[str, OutboundMessage] = {}
        self.dispatcher = OutboundDispatcher(clock, backoff=RETRY_BACKOFF)
        self.org.on_change.append(self._queue_outbound)
        super().__init__(clock, seed=seed)

    # ---- routes ---------------------------------------------------------------------------------

    def routes(self) -> Iterable[Rule]:
        r = Rule
        return [
            r(AUTHORIZE_PATH, methods=["GET", "POST"], endpoint="oauth_authorize"),
            r("/services/oauth2/token", methods=["POST"], endpoint="oauth_token"),
            r("/services/oauth2/revoke", methods=["POST", "GET"], endpoint="oauth_revoke"),
            r("/services/oauth2/userinfo", methods=["GET", "POST"], endpoint="userinfo"),
            r("/id/<org_id>/<user_id>", methods=["GET"], endpoint="userinfo"),
            r("/services/data", methods=["GET"], endpoint="versions"),
            r(f"{V}", methods=["GET"], endpoint="resources"),
            r(f"{V}/limits", methods=["GET"], endpoint="limits"),
            r(f"{V}/sobjects", methods=["GET"], endpoint="describe_global"),
            r(f"{V}/sobjects/<obj>", methods=["GET"], endpoint="sobject_info"),
            r(f"{V}/sobjects/<obj>", methods=["POST"], endpoint="create"),
            r(f"{V}/sobjects/<obj>/describe", methods=["GET"], endpoint="describe"),
            r(f"{V}/sobjects/<obj>/updated", methods=["GET"], endpoint="get_updated"),
            r(f"{V}/sobjects/<obj>/deleted", methods=["GET"], endpoint="get_deleted"),
            r(f"{V}/sobjects/<obj>/listviews", methods=["GET"], endpoint="list_views"),
            r(
                f"{V}/sobjects/<obj>/listviews/<view_id>/describe",
                methods=["GET"],
                endpoint="list_view_describe",
            ),
            r(f"{V}/sobjects/<obj>/<rid>", methods=["GET"], endpoint="read"),
            r(f"{V}/sobjects/<obj>/<rid>", methods=["PATCH"], endpoint="update"),
            r(f"{V}/sobjects/<obj>/<rid>", methods=["DELETE"], endpoint="delete"),
            r(
                f"{V}/sobjects/<obj>/<ext>/<path:value>",
                methods=["GET", "PATCH", "DELETE"],
                endpoint="by_external_id",
            ),
            r(f"{V}/query", methods=["GET"], endpoint="query"),
            r(f"{V}/query/<locator>", methods=["GET"], endpoint="query_more"),
            r(f"{V}/queryAll", methods=["GET"], endpoint="query_all"),
            r(f"{V}/queryAll/<locator>", methods=["GET"], endpoint="query_more"),
            r(
                f"{V}/composite/sobjects",
                methods=["POST", "PATCH", "DELETE"],
                endpoint="collection",
            ),
            r(
                f"{V}/composite/sobjects/<obj>",
                methods=["GET", "POST"],
                endpoint="collection_retrieve",
            ),
            r(
                f"{V}/composite/sobjects/<obj>/<ext>",
                methods=["PATCH"],
                endpoint="collection_upsert",
            ),
            r(f"{V}/jobs/query", methods=["POST"], endpoint="bulk_query_create"),
            r(f"{V}/jobs/query", methods=["GET"], endpoint="bulk_query_list"),
            r(
                f"{V}/jobs/query/<job_id>",
                methods=["GET", "PATCH", "DELETE"],
                endpoint="bulk_query_job",
            ),
            r(f"{V}/jobs/query/<job_id>/results", methods=["GET"], endpoint="bulk_query_results"),
            r(f"{V}/jobs/ingest", methods=["POST"], endpoint="bulk_ingest_create"),
            r(f"{V}/jobs/ingest", methods=["GET"], endpoint="bulk_ingest_list"),
            r(
                f"{V}/jobs/ingest/<job_id>",
                methods=["GET", "PATCH", "DELETE"],
                endpoint="bulk_ingest_job",
            ),
            r(f"{V}/jobs/ingest/<job_id>/batches", methods=["PUT"], endpoint="bulk_ingest_upload"),
            r(f"{V}/jobs/ingest/<job_id>/<which>", methods=["GET"], endpoint="bulk_ingest_results"),
        ]

    def _admin_routes(self) -> list[Rule]:
        return [
            *super()._admin_routes(),
            Rule("/_sandbox/sessions", methods=["POST"], endpoint="_admin_session"),
            Rule("/_sandbox/listviews", methods=["POST"], endpoint="_admin_list_view"),
            Rule("/_sandbox/duplicate_rules", methods=["POST"], endpoint="_admin_duplicate_rule"),
            Rule("/_sandbox/outbound_messages", methods=["POST"], endpoint="_admin_outbound"),
            Rule(
                "/_sandbox/outbound_messages/deliver",
                methods=["POST"],
                endpoint="_admin_outbound_deliver",
            ),
            Rule("/_sandbox/recycle_bin/empty", methods=["POST"], endpoint="_admin_empty_bin"),
            Rule(
                "/_sandbox/oauth/redirect_uris",
                methods=["GET", "POST"],
                endpoint="_admin_redirect_uris",
            ),
        ]

    # ---- the base class's hooks --------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if request.path.startswith("/services/data/v"):
            response.headers["Sforce-Limit-Info"] = self.org.limit_info()
        return response

    def on_request(self, request: Request) -> Response | None:
        path = request.path
        if path.startswith(("/services/oauth2/token", "/services/oauth2/revoke", AUTHORIZE_PATH)):
            return None
        if path.rstrip("/") == "/services/data":
            return None
        match = re.match(r"^/services/data/v(\d+\.\d)(/|$)", path)
        if match and match.group(1) not in API_VERSIONS:
            return err.not_found().response()
        session = self.org.sessions.check(_bearer(request))
        if session is None:
            if path.startswith(("/services/oauth2/userinfo", "/id/")):
                return Response("Bad_OAuth_Token", 403, content_type="text/plain")
            return err.invalid_session().response()
        request.environ[USER_KEY] = session.user_id
        if match:
            try:
                self.org.count_api_request()
            except SalesforceError as exc:
                return exc.response()
            self.org.purge_recycle_bin()
        return None

    def _dispatch(self, request: Request) -> Response:
        try:
            return super()._dispatch(request)
        except SalesforceError as exc:
            return exc.response()
        except OAuthError as exc:
            return exc.response()

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        if request.path.startswith("/services/oauth2/"):
            return json_response(
                {"error": "unknown_error", "error_description": "retry your request"},
                rule.status,
            )
        if rule.kind == "throttle":
            return err.request_limit_exceeded().response()
        return err.fault_error(rule.status).response()

    def render_not_found(self, request: Request) -> Response:
        return err.not_found().response()

    def render_method_not_allowed(self, request: Request) -> Response:
        return err.SalesforceError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed."
        ).response()

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        if "records" in body:
            records = body["records"]
            if not isinstance(records, list):
                raise ValueError("records must be a list")
            try:
                created = seed.add_records(self.org, records)
            except SalesforceError as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from exc
            return {"created": created}
        count = int(body["count"])
        seed_value = body.get("seed", 0)
        overlap = body.get("overlap", 0.3)
        if not isinstance(seed_value, int) or not isinstance(overlap, int | float):
            raise ValueError("seed must be an integer and overlap a number")
        new_ids = seed.generate(self.org, count, seed_value, float(overlap))
        return {"created": {"Contact": new_ids}, "count": len(new_ids)}

    def dump_state(self) -> dict[str, Any]:
        return {
            "org": self.org.dump(),
            "bulk_jobs": self.bulk.dump(),
            "outbound_messages": [m.to_json() for m in self.outbound.values()],
            "oauth": self.oauth.to_json(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.org.load(state["org"])
        self.bulk.load(state.get("bulk_jobs", []))
        self.oauth.load(state.get("oauth", {}))
        self.outbound = {}
        for raw in state.get("outbound_messages", []):
            message = OutboundMessage(
                raw["id"],
                raw["sobject"],
                raw["fields"],
                raw["endpoint"],
                raw["organization_id"],
                [(nid, values) for nid, values in raw.get("pending", [])],
            )
            self.outbound[message.id] = message

    def reset(self) -> None:
        self.org.reset()
        self.bulk.reset()
        self.outbound.clear()
        self.oauth.reset()

    def client_config(self) -> dict[str, Any]:
        base = self.base_url.rstrip("/")
        creds = self.org.credentials
        return {
            "instance_url": base,
            "authorize_url": base + AUTHORIZE_PATH,
            "token_url": f"{base}/services/oauth2/token",
            "login_url": base,
            "api_version": DEFAULT_VERSION,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "refresh_token": creds.refresh_token,
            "username": creds.admin.username,
            "user_id": creds.admin.id,
            "organization_id": creds.org_id,
            "jwt_audience": LOGIN_AUDIENCES[0],
            "jwt_private_key": creds.private_key_pem(),
            "jwt_public_key": creds.public_key_pem(),
            "users": [
                {"username": u.username, "id": u.id, "jwt_approved": u.approved}
                for u in creds.users
            ],
            "external_id_field": "Contactsync_Id__c",
            "admin": f"{base}/_sandbox/",
        }

    def configure_quotas(self, quotas: dict[str, Any]) -> None:
        self.org.settings.update(quotas)
        self.org.sessions.ttl = self.org.settings.session_ttl_seconds

    def quotas(self) -> dict[str, Any]:
        settings = self.org.settings.to_json()
        settings["api_requests_used"] = self.org.api_used
        return settings

    # ---- helpers --------------------------------------------------------------------------------

    def issue_session(self, username: str = "admin@example.com") -> str:
        """An access token for ``username``, as a successful OAuth flow would give (tests)."""
        user = self.org.credentials.user_by_name(username)
        if user is None:
            raise ValueError(f"no such user: {username}")
        with self.lock:
            return self.org.sessions.issue(user.id)

    def identity_url(self, user_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/id/{self.org.credentials.org_id}/{user_id}"

    def deliver_webhooks(self) -> int:
        """For `sandbox up`'s delivery thread: the queue is flushed under the lock, the POSTs
        go out without it (a receiver may call back)."""
        with self.lock:
            self._flush_outbound()
        return self.dispatcher.deliver_due()

    def deliver_outbound(self) -> dict[str, int]:
        """Flushes queued notifications into SOAP messages and delivers what is due."""
        enqueued = self._flush_outbound()
        acked = self.dispatcher.deliver_due()
        return {"enqueued": enqueued, "acked": acked, "pending": self.dispatcher.pending()}

    def _flush_outbound(self) -> int:
        enqueued = 0
        base = self.base_url.rstrip("/")
        for message in self.outbound.values():
            while message.pending:
                batch = message.pending[:MAX_NOTIFICATIONS]
                del message.pending[:MAX_NOTIFICATIONS]
                self.dispatcher.enqueue(
                    message.endpoint,
                    envelope(message, base, DEFAULT_VERSION, batch),
                    message.id,
                    content_type="text/xml; charset=utf-8",
                )
                enqueued += 1
        return enqueued

    def _queue_outbound(self, name: str, rec: Record, created: bool) -> None:
        types = {f.name: f.type for f in OBJECTS[name].fields}
        for message in self.outbound.values():
            if message.sobject == name:
                notification_id = self.org.seq.next("04l")
                message.pending.append((notification_id, notification_values(message, rec, types)))

    def _ctx(self, request: Request) -> WriteContext:
        header = request.headers.get("Sforce-Duplicate-Rule-Header", "")
        allow = "allowsave=true" in header.replace(" ", "").lower()
        return WriteContext(request.environ[USER_KEY], allow_save=allow)

    @staticmethod
    def _json(request: Request) -> Any:
        data = request.get_data()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise err.json_parser_error(
                "Unexpected character: was expecting a JSON value at [line:1, column:1]"
            ) from exc

    def _object(self, obj: str) -> SObject:
        sobject = get_object(obj)
        if sobject is None:
            raise err.not_found()
        return sobject

    def render_record(
        self, sobject: SObject, rec: Record, version: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject.name,
                "url": f"/services/data/v{version}/sobjects/{sobject.name}/{rec['Id']}",
            }
        }
        chosen = sobject.fields if fields is None else [sobject.by_lower[f.lower()] for f in fields]
        for f in chosen:
            value = rec.get(f.name)
            out[f.name] = (
                format_datetime(value) if f.type == "datetime" and value is not None else value
            )
        return out

    def render_rows(
        self, sobject_name: str, columns: list[Column], found: list[str], version: str
    ) -> list[dict[str, Any]]:
        recs = self.org.tables[sobject_name].records
        lookup = self.org.lookup
        prefix = f"/services/data/v{version}/sobjects/"
        simple = [(c.field.name, c.field.type == "datetime") for c in columns if not c.hops]
        nested = [c for c in columns if c.hops]
        out = []
        for rid in found:
            rec = recs.get(rid)
            if rec is None:
                continue
            row: dict[str, Any] = {
                "attributes": {"type": sobject_name, "url": prefix + sobject_name + "/" + rid}
            }
            for name, is_dt in simple:
                value = rec.get(name)
                row[name] = format_datetime(value) if is_dt and value is not None else value
            for column in nested:
                target: dict[str, Any] = row
                cur: Record | None = rec
                for hop in column.hops:
                    assert cur is not None
                    cur = lookup(hop.target, cur.get(hop.foreign_key))
                    if cur is None:
                        target.setdefault(hop.relationship, None)
                        break
                    node = target.get(hop.relationship)
                    if node is None:
                        node = {
                            "attributes": {
                                "type": hop.target,
                                "url": prefix + hop.target + "/" + cur["Id"],
                            }
                        }
                        target[hop.relationship] = node
                    target = node
                if cur is not None:
                    value = cur.get(column.field.name)
                    target[column.field.name] = (
                        format_datetime(value)
                        if column.field.type == "datetime" and value is not None
                        else value
                    )
            out.append(row)
        return out

    # ---- OAuth -------------------------------------------------------------------------------

    def oauth_authorize(self, request: Request) -> Response:
        return self.oauth.authorize({**request.args.to_dict(), **request.form.to_dict()})

    def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data().decode("utf-8", "replace")).items()}
        form.update({k: v for k, v in request.args.items() if k not in form})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return json_response(self.oauth.exchange(form, request.authorization, self.base_url))
        if grant == "refresh_token":
            return self._refresh_grant(form, request)
        if grant == JWT_GRANT:
            return self._jwt_grant(form)
        if not grant:
            raise OAuthError("invalid_request", "grant type is missing")
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def _refresh_grant(self, form: dict[str, str], request: Request) -> Response:
        creds = self.org.credentials
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username, auth.password
        if client_id != creds.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if secret is not None and secret != creds.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")
        user_id = self.org.refresh_tokens.get(form.get("refresh_token", ""))
        if user_id is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        token = self.org.sessions.issue(user_id)
        issued_at = str(int(self.clock.timestamp() * 1000))
        identity = self.identity_url(user_id)
        return json_response(
            {
                "access_token": token,
                "signature": creds.signature(identity, issued_at),
                "scope": "refresh_token api id",
                "instance_url": self.base_url.rstrip("/"),
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )

    def _jwt_grant(self, form: dict[str, str]) -> Response:
        creds = self.org.credentials
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if unverified.get("iss") != creds.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        try:
            claims = jwt.decode(
                assertion,
                creds.public_key_pem(),
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        audiences = (*LOGIN_AUDIENCES, self.base_url.rstrip("/"))
        aud = claims.get("aud")
        if (aud if isinstance(aud, str) else None) not in audiences and not (
            isinstance(aud, list) and any(a in audiences for a in aud)
        ):
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            exp = float(claims["exp"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        # The client signs with its wall clock; compare on the sandbox's clock minus any jumps
        # made through the admin surface, so that advancing virtual time does not reject it.
        client_now = self.clock.timestamp() - float(str(self.clock.to_json()["offset_seconds"]))
        if exp <= client_now:
            raise OAuthError("invalid_grant", "expired authorization code")
        user = creds.user_by_name(str(claims.get("sub", "")))
        if user is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        if not user.approved:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        token = self.org.sessions.issue(user.id)
        return json_response(
            {
                "access_token": token,
                "scope": "api id",
                "instance_url": self.base_url.rstrip("/"),
                "id": self.identity_url(user.id),
                "token_type": "Bearer",
            }
        )

    def oauth_revoke(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data().decode("utf-8", "replace")).items()}
        token = form.get("token") or request.args.get("token") or ""
        if token in self.org.refresh_tokens:
            del self.org.refresh_tokens[token]
        elif token in self.org.sessions.tokens:
            self.org.sessions.revoke(token)
        else:
            raise OAuthError("unsupported_token_type", "this token type is not supported")
        return Response(b"", 200)

    def userinfo(
        self, request: Request, org_id: str | None = None, user_id: str | None = None
    ) -> Response:
        me = request.environ[USER_KEY]
        creds = self.org.credentials
        user = creds.user_by_id(user_id or me)
        if user is None or (org_id is not None and org_id != creds.org_id):
            return Response("Bad_OAuth_Token", 403, content_type="text/plain")
        base = self.base_url.rstrip("/")
        return json_response(
            {
                "sub": self.identity_url(user.id),
                "user_id": user.id,
                "organization_id": creds.org_id,
                "preferred_username": user.username,
                "nickname": user.alias,
                "name": f"{user.first_name} {user.last_name}",
                "email": user.email,
                "email_verified": True,
                "given_name": user.first_name,
                "family_name": user.last_name,
                "zoneinfo": "Etc/UTC",
                "active": True,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": 0,
                "urls": {
                    "rest": f"{base}/services/data/v{{version}}/",
                    "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                    "query": f"{base}/services/data/v{{version}}/query/",
                },
            }
        )

    # ---- REST: discovery ---------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return json_response(
            [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS]
        )

    def resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "limits", "composite", "jobs"]
        return json_response({n: f"{base}/{n}" for n in names})

    def limits(self, request: Request, version: str) -> Response:
        s = self.org.settings
        jobs_used = len(self.bulk.query_job_times)
        return json_response(
            {
                "DailyApiRequests": {
                    "Max": s.daily_api_requests,
                    "Remaining": max(0, s.daily_api_requests - self.org.api_used),
                },
                "DailyBulkV2QueryJobs": {
                    "Max": s.bulk_query_jobs_per_day,
                    "Remaining": max(0, s.bulk_query_jobs_per_day - jobs_used),
                },
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DataStorageMB": {"Max": 5120, "Remaining": 5120},
                "FileStorageMB": {"Max": 5120, "Remaining": 5120},
            }
        )

    def describe_global(self, request: Request, version: str) -> Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": MAX_COLLECTION,
                "sobjects": [o.summary(version) for o in OBJECTS.values()],
            }
        )

    def sobject_info(self, request: Request, version: str, obj: str) -> Response:
        return json_response(
            {"objectDescribe": self._object(obj).summary(version), "recentItems": []}
        )

    def describe(self, request: Request, version: str, obj: str) -> Response:
        sobject = self._object(obj)
        record_types = []
        if sobject.name == "Account":
            for person, label in ((False, "Business Account"), (True, "Person Account")):
                record_types.append(
                    {
                        "active": True,
                        "available": True,
                        "defaultRecordTypeMapping": not person,
                        "developerName": "PersonAccount" if person else "Business_Account",
                        "master": False,
                        "name": label,
                        "recordTypeId": self.org.record_type_id(person),
                        "urls": {
                            "layout": f"/services/data/v{version}/sobjects/Account/describe"
                            f"/layouts/{self.org.record_type_id(person)}"
                        },
                    }
                )
        return json_response(sobject.describe(version, record_types))

    # ---- REST: records -----------------------------------------------------------------------

    def create(self, request: Request, version: str, obj: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise err.json_parser_error("Cannot deserialize instance of sObject from START_ARRAY")
        rid = self.org.create(self._object(obj).name, body, self._ctx(request))
        return json_response({"id": rid, "success": True, "errors": []}, 201)

    def read(self, request: Request, version: str, obj: str, rid: str) -> Response:
        table, rec = self.org.get_record(obj, rid)
        etag = _etag(rec)
        last_modified = format_datetime(rec["LastModifiedDate"])
        if request.headers.get("If-None-Match") == etag:
            return Response(b"", 304, headers={"ETag": etag})
        since = _http_date(request.headers.get("If-Modified-Since", ""))
        if since is not None and rec["LastModifiedDate"] <= since:
            return Response(b"", 304, headers={"ETag": etag})
        fields = [f for f in request.args.get("fields", "").split(",") if f]
        unknown = [f for f in fields if table.sobject.field(f) is None]
        if unknown:
            raise err.bad_request(
                "INVALID_FIELD",
                f"No such column '{unknown[0]}' on sobject of type {table.sobject.name}",
            )
        return json_response(
            self.render_record(table.sobject, rec, version, fields or None),
            headers={"ETag": etag, "Last-Modified": last_modified},
        )

    def _preconditions(self, request: Request, rec: Record) -> None:
        match = request.headers.get("If-Match")
        since = _http_date(request.headers.get("If-Unmodified-Since", ""))
        stale = since is not None and rec["LastModifiedDate"] > since
        if (match and match != _etag(rec)) or stale:
            raise SalesforceError(
                412,
                "PRECONDITION_FAILED",
                "The requested resource has been modified since the precondition was evaluated",
            )

    def update(self, request: Request, version: str, obj: str, rid: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise err.json_parser_error("Cannot deserialize instance of sObject from START_ARRAY")
        _, rec = self.org.get_record(obj, rid)
        self._preconditions(request, rec)
        self.org.update(obj, rid, body, self._ctx(request))
        return Response(b"", 204)

    def delete(self, request: Request, version: str, obj: str, rid: str) -> Response:
        _, rec = self.org.get_record(obj, rid)
        self._preconditions(request, rec)
        self.org.delete(obj, rid, self._ctx(request))
        return Response(b"", 204)

    def by_external_id(
        self, request: Request, version: str, obj: str, ext: str, value: str
    ) -> Response:
        if request.method == "PATCH":
            body = self._json(request) or {}
            if not isinstance(body, dict):
                raise err.json_parser_error(
                    "Cannot deserialize instance of sObject from START_ARRAY"
                )
            try:
                rid, created = self.org.upsert(obj, ext, value, body, self._ctx(request))
            except SalesforceError as exc:
                if exc.status == 300:
                    return self._multiple(obj, ext, value, version)
                raise
            if created:
                return json_response(
                    {"id": rid, "success": True, "errors": [], "created": True}, 201
                )
            if float(version) >= 46.0:
                return json_response(
                    {"id": rid, "success": True, "errors": [], "created": False}, 200
                )
            return Response(b"", 204)
        sobject, _, found = self.org.find_by_external(obj, ext, value)
        if len(found) > 1:
            return self._multiple(obj, ext, value, version)
        if not found:
            raise err.not_found()
        if request.method == "DELETE":
            self.org.delete(sobject.name, found[0]["Id"], self._ctx(request))
            return Response(b"", 204)
        return json_response(self.render_record(sobject, found[0], version))

    def _multiple(self, obj: str, ext: str, value: str, version: str) -> Response:
        sobject, _, found = self.org.find_by_external(obj, ext, value)
        return json_response(
            [f"/services/data/v{version}/sobjects/{sobject.name}/{r['Id']}" for r in found], 300
        )

    # ---- REST: queries -----------------------------------------------------------------------

    def query(self, request: Request, version: str) -> Response:
        return self._query(request, version, include_deleted=False)

    def query_all(self, request: Request, version: str) -> Response:
        return self._query(request, version, include_deleted=True)

    def _batch_size(self, request: Request) -> int | None:
        options = request.headers.get("Sforce-Query-Options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", options)
        if not match:
            return None
        return min(2000, max(200, int(match.group(1))))

    def _query(self, request: Request, version: str, include_deleted: bool) -> Response:
        text = request.args.get("q")
        if not text:
            raise err.bad_request("MALFORMED_QUERY", "A query string has to be specified")
        user = request.environ[USER_KEY]
        q = self.org.compile(text)
        found = self.org.select_ids(q, include_deleted, user)
        if q.count_only:
            return json_response({"totalSize": len(found), "done": True, "records": []})
        if q.count_column is not None:
            recs = self.org.tables[q.sobject.name].records
            get = q.count_column.getter
            n = sum(1 for rid in found if get(recs[rid]) is not None)
            row = {"attributes": {"type": "AggregateResult"}, "expr0": n}
            return json_response({"totalSize": 1, "done": True, "records": [row]})
        batch = self._batch_size(request) or 2000
        body: dict[str, Any] = {"totalSize": len(found), "done": len(found) <= batch}
        if len(found) > batch:
            cursor = self.org.open_cursor(q, found, include_deleted, user)
            cursor.batch = batch
            endpoint = "queryAll" if include_deleted else "query"
            body["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{cursor.id}-{batch}"
        body["records"] = self.render_rows(q.sobject.name, q.columns, found[:batch], version)
        return json_response(body)

    def query_more(self, request: Request, version: str, locator: str) -> Response:
        cursor, position = self.org.cursor(locator)
        if cursor.user_id != request.environ[USER_KEY]:
            raise err.invalid_query_locator()
        batch = self._batch_size(request) or cursor.batch
        end = position + batch
        page = cursor.ids[position:end]
        done = end >= len(cursor.ids)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": done}
        if done:
            self.org.close_cursor(cursor)
        else:
            endpoint = "queryAll" if cursor.include_deleted else "query"
            body["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{cursor.id}-{end}"
        body["records"] = self.render_rows(cursor.sobject, cursor.columns, page, version)
        return json_response(body)

    # ---- REST: replication -------------------------------------------------------------------

    def get_updated(self, request: Request, version: str, obj: str) -> Response:
        return json_response(
            self.org.updated(obj, request.args.get("start"), request.args.get("end"))
        )

    def get_deleted(self, request: Request, version: str, obj: str) -> Response:
        return json_response(
            self.org.deleted(obj, request.args.get("start"), request.args.get("end"))
        )

    # ---- REST: list views --------------------------------------------------------------------

    def list_views(self, request: Request, version: str, obj: str) -> Response:
        sobject = self._object(obj)
        views = [v for v in self.org.list_views.values() if v.sobject == sobject.name]
        base = f"/services/data/v{version}/sobjects/{sobject.name}/listviews"
        return json_response(
            {
                "done": True,
                "listviews": [
                    {
                        "describeUrl": f"{base}/{v.id}/describe",
                        "developerName": v.developer_name,
                        "id": v.id,
                        "label": v.label,
                        "resultsUrl": f"{base}/{v.id}/results",
                        "soqlCompatible": True,
                        "url": f"{base}/{v.id}",
                    }
                    for v in views
                ],
                "nextRecordsUrl": None,
                "size": len(views),
                "sobjectType": sobject.name,
            }
        )

    def list_view_describe(
        self, request: Request, version: str, obj: str, view_id: str
    ) -> Response:
        sobject = self._object(obj)
        view = self.org.list_views.get(ids.normalize(view_id) or "")
        if view is None or view.sobject != sobject.name:
            raise err.not_found()
        query = self.org.list_view_query(view)
        q = self.org.compile(query)
        visible = {c.lower() for c in view.columns}
        columns = []
        for column in q.columns:
            columns.append(
                {
                    "ascendingLabel": "A-Z" if column.field.is_string else "Low to High",
                    "descendingLabel": "Z-A" if column.field.is_string else "High to Low",
                    "fieldNameOrPath": column.header,
                    "hidden": column.header.lower() not in visible,
                    "label": column.field.label,
                    "searchable": column.field.is_string,
                    "selectListItem": column.header,
                    "sortDirection": None,
                    "sortIndex": None,
                    "sortable": True,
                    "type": column.field.type,
                }
            )
        parsed_where = self._where_condition(query)
        return json_response(
            {
                "columns": columns,
                "id": view.id,
                "orderBy": [
                    {
                        "fieldNameOrPath": f,
                        "nullsPosition": "last" if d else "first",
                        "sortDirection": "descending" if d else "ascending",
                    }
                    for f, d in [
                        *view.order_by,
                        ("Id", bool(view.order_by and view.order_by[0][1])),
                    ]
                ],
                "query": query,
                "relatedEntityId": None,
                "scope": view.scope,
                "scopeEntityId": None,
                "sobjectType": sobject.name,
                "whereCondition": parsed_where,
            }
        )

    def _where_condition(self, query: str) -> dict[str, Any]:
        parsed = parse(query)
        if parsed.where is None:
            return {"conditions": [], "conjunction": "and"}
        return _condition_json(parsed.where)

    # ---- REST: sObject Collections -----------------------------------------------------------

    def collection(self, request: Request, version: str) -> Response:
        ctx = self._ctx(request)
        if request.method == "DELETE":
            raw_ids = [i for i in request.args.get("ids", "").split(",") if i]
            all_or_none = request.args.get("allOrNone", "false").lower() == "true"
            if len(raw_ids) > MAX_COLLECTION:
                raise err.exceeded_id_limit(
                    "record limit reached. cannot submit more than 200 records into this call"
                )
            return json_response(
                self._run_all(raw_ids, all_or_none, lambda rid: self._delete_item(rid, ctx))
            )
        body = self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise err.json_parser_error(
                "Cannot deserialize instance of collection from the request body"
            )
        records = body["records"]
        all_or_none = bool(body.get("allOrNone", False))
        if len(records) > MAX_COLLECTION:
            raise err.exceeded_id_limit(
                "record limit reached. cannot submit more than 200 records into this call"
            )
        op = self._create_item if request.method == "POST" else self._update_item
        return json_response(self._run_all(records, all_or_none, lambda rec: op(rec, ctx)))

    def _run_all(self, items: list[Any], all_or_none: bool, op: Any) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        failed = False
        queued = {m.id: len(m.pending) for m in self.outbound.values()}
        self.org.begin()
        try:
            for item in items:
                try:
                    results.append(op(item))
                except SalesforceError as exc:
                    failed = True
                    rid = item if isinstance(item, str) else None
                    results.append({"id": rid, "success": False, "errors": [exc.item()]})
        finally:
            if failed and all_or_none:
                self.org.rollback()
                for message in self.outbound.values():  # no notification for rolled-back saves
                    del message.pending[queued.get(message.id, 0) :]
            else:
                self.org.commit()
        if failed and all_or_none:
            rolled = err.rolled_back().item()
            results = [
                r if not r["success"] else {"id": None, "success": False, "errors": [rolled]}
                for r in results
            ]
        return results

    def _type_of(self, rec: Any) -> str:
        if not isinstance(rec, dict):
            raise err.json_parser_error("each record must be a JSON object")
        attributes = rec.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not name:
            raise err.bad_request("INVALID_TYPE", "sObject type not specified: set attributes.type")
        return str(name)

    def _create_item(self, rec: Any, ctx: WriteContext) -> dict[str, Any]:
        name = self._type_of(rec)
        if rec.get("Id"):
            raise err.bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
            )
        rid = self.org.create(name, rec, ctx)
        return {"id": rid, "success": True, "errors": []}

    def _update_item(self, rec: Any, ctx: WriteContext) -> dict[str, Any]:
        name = self._type_of(rec)
        rid = rec.get("Id")
        if not rid:
            raise err.bad_request("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        try:
            updated = self.org.update(name, str(rid), rec, ctx)
        except SalesforceError as exc:
            if exc.code == "NOT_FOUND":
                raise err.bad_request(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []
                ) from exc
            raise
        return {"id": updated["Id"], "success": True, "errors": []}

    def _delete_item(self, raw_id: str, ctx: WriteContext) -> dict[str, Any]:
        rid = ids.normalize(raw_id)
        name = OBJECTS_BY_PREFIX.get((rid or "")[:3])
        if rid is None or name is None:
            raise err.bad_request("MALFORMED_ID", f"malformed id {raw_id}", [])
        try:
            self.org.delete(name, rid, ctx)
        except SalesforceError as exc:
            if exc.code == "NOT_FOUND":
                raise err.bad_request(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []
                ) from exc
            if exc.code == "ENTITY_IS_DELETED":
                raise err.bad_request("ENTITY_IS_DELETED", "entity is deleted", []) from exc
            raise
        return {"id": rid, "success": True, "errors": []}

    def collection_retrieve(self, request: Request, version: str, obj: str) -> Response:
        sobject = self._object(obj)
        if request.method == "POST":
            body = self._json(request) or {}
            raw_ids = body.get("ids") or [] if isinstance(body, dict) else []
            fields = body.get("fields") or [] if isinstance(body, dict) else []
        else:
            raw_ids = [i for i in request.args.get("ids", "").split(",") if i]
            fields = [f for f in request.args.get("fields", "").split(",") if f]
        if not fields:
            raise err.bad_request("MISSING_ARGUMENT", "fields parameter is required")
        if len(raw_ids) > MAX_RETRIEVE_IDS:
            raise err.exceeded_id_limit(
                "record limit reached. cannot submit more than 2000 records into this call"
            )
        unknown = [f for f in fields if sobject.field(f) is None]
        if unknown:
            raise err.bad_request(
                "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{sobject.name}'"
            )
        table = self.org.tables[sobject.name]
        out: list[Any] = []
        for raw in raw_ids:
            rec = table.records.get(ids.normalize(str(raw)) or "")
            out.append(
                None
                if rec is None or rec.get("IsDeleted")
                else self.render_record(sobject, rec, version, fields)
            )
        return json_response(out)

    def collection_upsert(self, request: Request, version: str, obj: str, ext: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise err.json_parser_error(
                "Cannot deserialize instance of collection from the request body"
            )
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise err.exceeded_id_limit(
                "record limit reached. cannot submit more than 200 records into this call"
            )
        ctx = self._ctx(request)

        def op(rec: Any) -> dict[str, Any]:
            name = self._type_of(rec)
            value = rec.get(ext)
            if value is None:
                raise err.bad_request("MISSING_ARGUMENT", f"{ext} not specified", [ext])
            fields = {k: v for k, v in rec.items() if k not in ("attributes", ext)}
            try:
                rid, created = self.org.upsert(name, ext, str(value), fields, ctx)
            except SalesforceError as exc:
                if exc.status == 300:
                    raise err.bad_request(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{ext}: more than one record found for external id field",
                        [ext],
                    ) from exc
                raise
            return {"id": rid, "success": True, "errors": [], "created": created}

        return json_response(self._run_all(records, bool(body.get("allOrNone", False)), op))

    # ---- Bulk API 2.0 ------------------------------------------------------------------------

    def bulk_query_create(self, request: Request, version: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise err.json_parser_error("Cannot deserialize the job request")
        job = self.bulk.create_query(body, request.environ[USER_KEY], version)
        return json_response(job.info())

    def bulk_query_list(self, request: Request, version: str) -> Response:
        return json_response(self.bulk.list_jobs("query"))

    def bulk_query_job(self, request: Request, version: str, job_id: str) -> Response:
        return self._job(request, job_id, "query")

    def _job(self, request: Request, job_id: str, kind: str) -> Response:
        job = self.bulk.get(job_id, kind)
        if request.method == "DELETE":
            self.bulk.delete(job)
            return Response(b"", 204)
        if request.method == "PATCH":
            body = self._json(request)
            state = body.get("state") if isinstance(body, dict) else None
            return json_response(self.bulk.set_state(job, state).info())
        return json_response(self.bulk.poll(job).info())

    def bulk_query_results(self, request: Request, version: str, job_id: str) -> Response:
        job = self.bulk.get(job_id, "query")
        data, count, locator = self.bulk.results(
            job, request.args.get("locator"), request.args.get("maxRecords")
        )
        return Response(
            data,
            200,
            headers={"Sforce-NumberOfRecords": str(count), "Sforce-Locator": locator},
            content_type="text/csv; charset=UTF-8",
        )

    def bulk_ingest_create(self, request: Request, version: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise err.json_parser_error("Cannot deserialize the job request")
        return json_response(
            self.bulk.create_ingest(body, request.environ[USER_KEY], version).info()
        )

    def bulk_ingest_list(self, request: Request, version: str) -> Response:
        return json_response(self.bulk.list_jobs("ingest"))

    def bulk_ingest_job(self, request: Request, version: str, job_id: str) -> Response:
        return self._job(request, job_id, "ingest")

    def bulk_ingest_upload(self, request: Request, version: str, job_id: str) -> Response:
        job = self.bulk.get(job_id, "ingest")
        self.bulk.upload(job, request.get_data().decode("utf-8", "replace"))
        return Response(b"", 201)

    def bulk_ingest_results(
        self, request: Request, version: str, job_id: str, which: str
    ) -> Response:
        job = self.bulk.get(job_id, "ingest")
        return Response(
            self.bulk.result_set(job, which), 200, content_type="text/csv; charset=UTF-8"
        )

    # ---- admin additions ---------------------------------------------------------------------

    def _admin_session(self, body: dict[str, Any]) -> Response:
        user = self.org.credentials.user_by_name(str(body.get("username", "admin@example.com")))
        if user is None:
            raise ValueError("no such user")
        token = self.org.sessions.issue(user.id)
        return json_response(
            {
                "access_token": token,
                "instance_url": self.base_url.rstrip("/"),
                "id": self.identity_url(user.id),
            }
        )

    def _admin_list_view(self, body: dict[str, Any]) -> Response:
        order = body.get("order_by") or [["Name", False]]
        try:
            view = self.org.add_list_view(
                str(body.get("sobject", "Contact")),
                str(body["label"]),
                str(body.get("developer_name") or re.sub(r"\W", "_", str(body["label"]))),
                body.get("where"),
                list(body.get("columns") or ["Name", "Email"]),
                [(str(f), bool(d)) for f, d in order],
                str(body.get("scope", "everything")),
            )
        except SalesforceError as exc:
            raise ValueError(f"{exc.code}: {exc.message}") from exc
        return json_response({"id": view.id, "query": self.org.list_view_query(view)})

    def _admin_duplicate_rule(self, body: dict[str, Any]) -> Response:
        sobject = get_object(str(body.get("sobject", "Contact")))
        if sobject is None:
            raise ValueError("unknown sObject")
        action = str(body.get("action", "block"))
        field_def = sobject.field(str(body.get("field", "Email")))
        if field_def is None or action not in ("block", "allow", "off"):
            raise ValueError("field must exist and action be block, allow or off")
        self.org.duplicate_rules = [
            r for r in self.org.duplicate_rules if r.sobject != sobject.name
        ]
        if action != "off":
            self.org.duplicate_rules.append(DuplicateRule(sobject.name, field_def.name, action))
        return json_response({"rules": [r.__dict__ for r in self.org.duplicate_rules]})

    def _admin_outbound(self, body: dict[str, Any]) -> Response:
        sobject = get_object(str(body.get("sobject", "Contact")))
        endpoint = body.get("endpoint")
        if sobject is None or not isinstance(endpoint, str) or not endpoint.startswith("http"):
            raise ValueError("outbound messages need an sobject and an http(s) endpoint")
        fields = list(body.get("fields") or ["Id"])
        bad = [f for f in fields if sobject.field(f) is None]
        if bad:
            raise ValueError(f"unknown field {bad[0]} on {sobject.name}")
        message = OutboundMessage(
            self.org.seq.next("04k"),
            sobject.name,
            [sobject.by_lower[f.lower()].name for f in fields if f.lower() != "id"],
            endpoint,
            str(body.get("organization_id") or self.org.credentials.org_id),
        )
        self.outbound[message.id] = message
        return json_response({"id": message.id})

    def _admin_outbound_deliver(self, body: dict[str, Any]) -> Response:
        return json_response(self.deliver_outbound())

    def _admin_redirect_uris(self, body: dict[str, Any]) -> Response:
        uris = self.oauth.redirect_uris
        return json_response(uris.configure(body) if body else uris.to_json())

    def _admin_empty_bin(self, body: dict[str, Any]) -> Response:
        return json_response({"purged": self.org.purge_recycle_bin(everything=True)})


OBJECTS_BY_PREFIX = {o.key_prefix: o.name for o in OBJECTS.values()}
_OPERATORS = {
    "=": "equals",
    "!=": "notEqual",
    "<": "lessThan",
    "<=": "lessOrEqual",
    ">": "greaterThan",
    ">=": "greaterOrEqual",
}


def _condition_json(node: Any) -> dict[str, Any]:
    """A parsed WHERE clause in the shape of a list view's ``whereCondition``."""
    if node.kind in ("and", "or"):
        return {"conditions": [_condition_json(c) for c in node.children], "conjunction": node.kind}
    if node.kind == "not":
        return {"conditions": [_condition_json(node.children[0])], "conjunction": "not"}
    values = [
        (
            "null"
            if v.kind == "NULL"
            else (
                f"'{v.value}'"
                if v.kind == "STRING"
                else str(v.value).lower()
                if v.kind == "BOOL"
                else str(v.value)
            )
        )
        for v in node.values
    ]
    if node.kind == "in":
        operator = "excludes" if node.negate else "includes"
    elif node.kind == "like":
        operator = "like"
    else:
        operator = _OPERATORS[node.op]
    return {"field": node.path.text, "operator": operator, "values": values}


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "oauth"):
        return ""
    return token.strip()


def _etag(rec: Record) -> str:
    return f'"{rec["Id"]}-{rec["SystemModstamp"]}"'


def _http_date(text: str) -> int | None:
    """An HTTP date (or an ISO datetime) as epoch seconds; None if it is neither."""
    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError):
        pass
    try:
        return int(parse_datetime(text))
    except ValueError:
        return None


__all__ = ["ProviderError", "SalesforceSandbox"]
