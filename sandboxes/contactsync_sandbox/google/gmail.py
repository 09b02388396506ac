"""The HTTP edge of the sandbox's Gmail API v1 (``https://gmail.googleapis.com/gmail/v1`` in
production; here under the Google sandbox's root):

    GET    /gmail/v1/users/{userId}/profile              users.getProfile
    GET    /gmail/v1/users/{userId}/messages             users.messages.list
    POST   /gmail/v1/users/{userId}/messages             users.messages.insert (a mail client)
    GET    /gmail/v1/users/{userId}/messages/{id}        users.messages.get
    DELETE /gmail/v1/users/{userId}/messages/{id}        users.messages.delete
    GET    /gmail/v1/users/{userId}/history              users.history.list

``userId`` is ``me`` or the token's own address (anything else: 403 "Delegation denied").
Scopes as Google enforces them: any Gmail read scope lists and reads; ``gmail.metadata`` allows
neither ``q`` nor the ``full``/``raw`` formats (403); insert needs ``gmail.insert``,
``gmail.modify`` or ``https://mail.google.com/``; delete needs the last one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from werkzeug.routing import Rule

from contactsync_sandbox.core.app import ProviderError, Request, Response, json_response
from contactsync_sandbox.google import workspace_errors as err
from contactsync_sandbox.google.models import UserAccount
from contactsync_sandbox.google.scopes import GMAIL_FULL
from contactsync_sandbox.google.workspace import (
    GMAIL_BODY_SCOPES,
    GMAIL_INSERT_SCOPES,
    GMAIL_READ_SCOPES,
    Mailbox,
    Query,
    Workspace,
    date_header_ms,
    parse_raw,
)

# Set by the Google sandbox's on_request for every authenticated call (responses.USER_KEY).
USER_KEY = "contactsync.google.user"
SCOPE_KEY = "contactsync.google.scope"
SERVICE = "gmail.googleapis.com"
FORMATS = ("minimal", "metadata", "full", "raw")
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")


def gmail_rules() -> list[Rule]:
    base = "/gmail/v1/users/<user>"
    return [
        Rule(f"{base}/profile", methods=["GET"], endpoint="gmail_profile"),
        Rule(f"{base}/messages", methods=["GET"], endpoint="gmail_list"),
        Rule(f"{base}/messages", methods=["POST"], endpoint="gmail_insert"),
        Rule(f"{base}/messages/<mid>", methods=["GET"], endpoint="gmail_get"),
        Rule(f"{base}/messages/<mid>", methods=["DELETE"], endpoint="gmail_delete"),
        Rule(f"{base}/history", methods=["GET"], endpoint="gmail_history"),
    ]


def _int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise err.invalid(f"Invalid value for {name}: {raw}", name) from None
    if value < 1:
        raise err.invalid(f"Invalid value for {name}: {raw}", name)
    return min(value, maximum)


class GmailRoutes:
    """Mixed into the Google sandbox's app; ``workspace`` and ``codec`` come from it."""

    workspace: Workspace

    def _gmail_begin(
        self, request: Request, user_ref: str, method: str, scopes: frozenset[str]
    ) -> tuple[UserAccount, Mailbox, set[str]]:
        user: UserAccount = request.environ[USER_KEY]
        granted = set(str(request.environ.get(SCOPE_KEY, "")).split())
        if not granted & scopes:
            raise err.insufficient_scopes(SERVICE, f"caribou.api.proto.MailboxService.{method}")
        if user_ref not in ("me", user.email):
            raise err.delegation_denied(user_ref)
        wait = self.workspace.charge_gmail(user.email, method)
        if wait is not None:
            raise ProviderError(
                err.rate_limited(
                    "User-rate limit exceeded.  Retry after "
                    f"{wait} seconds (quota units per minute per user)",
                    wait,
                )
            )
        box = self.workspace.mailboxes[user.email]
        box.purge()
        return user, box, granted

    def gmail_profile(self, request: Request, user: str) -> Response:
        account, box, _ = self._gmail_begin(
            request, user, "gmail.users.getProfile", GMAIL_READ_SCOPES
        )
        threads = {m.thread_id for m in box.messages.values()}
        return json_response(
            {
                "emailAddress": account.email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len(threads),
                "historyId": str(box.history_id),
            }
        )

    def gmail_list(self, request: Request, user: str) -> Response:
        _, box, granted = self._gmail_begin(
            request, user, "gmail.users.messages.list", GMAIL_READ_SCOPES
        )
        q = request.args.get("q") or ""
        if q and not granted & GMAIL_BODY_SCOPES:
            raise err.forbidden("Metadata scope does not support 'q' parameter")
        size = _int(request, "maxResults", 100, 500)
        labels = request.args.getlist("labelIds")
        spam_trash = (request.args.get("includeSpamTrash") or "").lower() == "true"
        query = Query.parse(q, self.workspace.clock.timestamp())
        key = json.dumps([q, sorted(labels), spam_trash])
        before = None
        token = request.args.get("pageToken")
        if token:
            parts = self.workspace.codec.open("gm", token, 3)
            if parts is None or parts[0] != _digest(key):
                raise err.invalid("Invalid pageToken", "pageToken")
            before = (int(parts[1]), parts[2])
        page, more = box.listing(query, labels, spam_trash, before, size)
        body: dict[str, Any] = {}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if more:
            last = page[-1]
            body["nextPageToken"] = self.workspace.codec.seal(
                "gm", _digest(key), last.internal_ms, last.id
            )
        body["resultSizeEstimate"] = len(page) + (size if more else 0)
        return json_response(body)

    def gmail_get(self, request: Request, user: str, mid: str) -> Response:
        _, box, granted = self._gmail_begin(
            request, user, "gmail.users.messages.get", GMAIL_READ_SCOPES
        )
        fmt = (request.args.get("format") or "full").lower()
        if fmt not in FORMATS:
            raise err.invalid(f"Invalid value at 'format' ({fmt})", "format")
        metadata_only = not granted & GMAIL_BODY_SCOPES
        if metadata_only and fmt in ("full", "raw"):
            raise err.forbidden(f"Metadata scope doesn't allow format {fmt.upper()}")
        message = box.get(mid)
        wanted = request.args.getlist("metadataHeaders")
        return json_response(message.render(fmt, wanted, with_snippet=not metadata_only))

    def gmail_insert(self, request: Request, user: str) -> Response:
        _, box, _ = self._gmail_begin(
            request, user, "gmail.users.messages.insert", GMAIL_INSERT_SCOPES
        )
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise err.bad_request("Invalid JSON payload received.", "parseError") from None
        if not isinstance(body, dict) or not isinstance(body.get("raw"), str) or not body["raw"]:
            raise err.invalid(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL "
                "required",
                None,
            )
        headers, text, html = parse_raw(body["raw"])
        source = (request.args.get("internalDateSource") or "receivedTime").lower()
        moment = date_header_ms(headers) if source == "dateheader" else None
        if moment is None:
            moment = int(self.workspace.clock.timestamp() * 1000)
        labels = body.get("labelIds") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise err.invalid("Invalid label ids", "labelIds")
        thread = body.get("threadId") if isinstance(body.get("threadId"), str) else None
        message = box.add(headers, text, labels, moment, thread, html)
        return json_response(message.render("minimal", [], with_snippet=False))

    def gmail_delete(self, request: Request, user: str, mid: str) -> Response:
        _, box, _ = self._gmail_begin(
            request, user, "gmail.users.messages.delete", frozenset({GMAIL_FULL})
        )
        box.delete(mid)
        return Response(b"", status=204)

    def gmail_history(self, request: Request, user: str) -> Response:
        _, box, _ = self._gmail_begin(request, user, "gmail.users.history.list", GMAIL_READ_SCOPES)
        raw_start = request.args.get("startHistoryId")
        if not raw_start:
            raise err.invalid("Missing required parameter: startHistoryId", "startHistoryId")
        try:
            start = int(raw_start)
        except ValueError:
            raise err.invalid(f"Invalid startHistoryId: {raw_start}", "startHistoryId") from None
        types = request.args.getlist("historyTypes")
        for kind in types:
            if kind not in HISTORY_TYPES:
                raise err.invalid(f"Invalid value at 'history_types' ({kind})", "historyTypes")
        label = request.args.get("labelId") or None
        size = _int(request, "maxResults", 100, 500)
        upper = box.history_id
        token = request.args.get("pageToken")
        key = _digest(json.dumps([start, sorted(types), label]))
        if token:
            parts = self.workspace.codec.open("gh", token, 3)
            if parts is None or parts[0] != key:
                raise err.invalid("Invalid pageToken", "pageToken")
            start, upper = int(parts[1]), int(parts[2])
        records = [r for r in box.changes(start, set(types) or None, label) if r.id <= upper]
        page, more = records[:size], len(records) > size
        history = []
        for record in page:
            entry: dict[str, Any] = {
                "id": str(record.id),
                "messages": [{"id": record.message_id, "threadId": record.thread_id}],
            }
            message = {
                "id": record.message_id,
                "threadId": record.thread_id,
                "labelIds": record.labels,
            }
            if record.kind == "messageAdded":
                entry["messagesAdded"] = [{"message": message}]
            elif record.kind == "messageDeleted":
                entry["messagesDeleted"] = [{"message": message}]
            history.append(entry)
        body: dict[str, Any] = {"historyId": str(box.history_id)}
        if history:
            body["history"] = history
        if more:
            body["nextPageToken"] = self.workspace.codec.seal("gh", key, page[-1].id, upper)
        return json_response(body)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
