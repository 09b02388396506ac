"""Public webhook routes (no bearer token; each delivery is verified instead). They only ask
for work: a pull of the right account, through the PullInbox (deduplicated, coalesced), and
answer at once (Graph wants 2xx within 3 s, Aircall within 5 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from contactsync.api.context import ApiContext
from contactsync.api.problems import TooLarge, Unauthorized, Unavailable, dumps
from contactsync.api.queue import Outcome, PullAction
from contactsync.api.routes._docs import ok
from contactsync.api.schemas import IdStr
from contactsync.api.webhooks import (
    SOAP_ACK,
    AircallEvent,
    WebhookRejected,
    graph_validation_token,
    same,
    verify_aircall,
    verify_graph,
    verify_salesforce,
)
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.errors import NotFound

CALL_WEBHOOK_TOKEN = "call_webhook_token"  # contactsync.activity.aircall's secret name

TOKEN_CACHE_SECONDS = 60.0


class _TokenCache:
    """Aircall webhook tokens by account, kept a minute (a Secrets Manager read per delivery
    would cost more than the rest of the request). ``name``: the secret holding the token."""

    def __init__(self, name: str = "webhook_token") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[float, str | None]] = {}

    def get(self, ctx: ApiContext, account: ConnectedAccount, fresh: bool = False) -> str | None:
        key = (account.org_id, account.id)
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and not fresh and time.monotonic() - hit[0] < TOKEN_CACHE_SECONDS:
            return hit[1]
        token: str | None = None
        if account.secret_ref:
            try:
                token = ctx.secrets.get(account.secret_ref).get(self.name)
            except KeyError:
                token = None
        with self._lock:
            self._items[key] = (time.monotonic(), token)
        return token


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:  # noqa: C901 - route table
    tokens = _TokenCache()
    call_tokens = _TokenCache(CALL_WEBHOOK_TOKEN)

    def account_for(org_id: str, account_id: str, provider: Provider) -> ConnectedAccount:
        account = ctx.store.find(ConnectedAccount, org_id, account_id)
        if (
            account is None
            or account.provider is not provider
            or (account.status is AccountStatus.DELETED)
        ):
            raise NotFound("connected_account", account_id)
        return account

    def body() -> bytes:
        event = app.current_event
        raw = event.body or ""
        if len(raw) > ctx.settings.max_webhook_bytes * 4 // 3 + 4:
            raise TooLarge("The body is too large.", code="too_large")
        data = event.decoded_body
        encoded = data.encode() if isinstance(data, str) else bytes(data or b"")
        if len(encoded) > ctx.settings.max_webhook_bytes:
            raise TooLarge("The body is too large.", code="too_large")
        return encoded

    def ask(
        account: ConnectedAccount, keyed: Sequence[tuple[str, PullAction]], reason: str
    ) -> dict[str, Any]:
        """Records the deliveries and queues each kind of work the new ones ask for. When
        queueing fails, the receipts are forgotten and the provider is told to retry."""
        if account.status is not AccountStatus.CONNECTED:
            return {"outcome": "ignored", "reason": f"account {account.status.value}"}
        fresh = set(ctx.inbox.seen(account.org_id, account.id, [k for k, _ in keyed]))
        actions = sorted({a for k, a in keyed if k in fresh}, key=lambda a: a.value)
        outcomes: dict[str, str] = {}
        try:
            for action in actions:
                outcomes[action.value] = ctx.inbox.request(
                    account.org_id, account.id, action, reason
                ).value
        except Exception as exc:
            ctx.inbox.forget(account.org_id, account.id, fresh)
            raise Unavailable("Could not queue the work; retry.", code="queue_unavailable") from exc
        if not fresh:
            return {"outcome": Outcome.DUPLICATE.value}
        return {"outcome": "accepted", "actions": outcomes}

    def aircall_delivery(
        account: ConnectedAccount, cache: _TokenCache
    ) -> tuple[AircallEvent, bytes, str | None]:
        """The verified delivery, its body and the token it matched (Aircall's contact and
        call webhooks each have their own token, in the secret ``cache`` names)."""
        raw = body()
        max_age = timedelta(seconds=ctx.settings.aircall_max_age_seconds)
        region = ctx.region(account.org_id)
        token = cache.get(ctx, account)
        try:
            return verify_aircall(raw, token, ctx.now(), max_age, region), raw, token
        except WebhookRejected as exc:
            if exc.code != "forged":
                raise
        # The token may have been rotated (the webhook registered again): read it afresh.
        token = cache.get(ctx, account, fresh=True)
        return verify_aircall(raw, token, ctx.now(), max_age, region), raw, token

    def graph(org_id: str, account_id: str, validation: str | None) -> Response[Any]:
        account = account_for(org_id, account_id, Provider.MICROSOFT)
        token = graph_validation_token(validation)
        if token is not None:
            return Response(200, content_type="text/plain; charset=utf-8", body=token)
        state = ctx.graph_client_state(org_id, account_id)
        batch = verify_graph(body(), state, ctx.now())
        result = ask(account, list(zip(batch.keys, batch.actions, strict=True)), "graph")
        result["rejected"] = batch.rejected
        return Response(202, content_type="application/json", body=dumps(result))

    graph_doc = ok("Queued (200 text/plain for the validation handshake)", 202)

    @app.post(
        "/webhooks/microsoft/<org_id>/<account_id>",
        tags=["webhooks"],
        responses=graph_doc,
        summary="Microsoft Graph change notifications and the validation handshake",
    )
    def graph_notifications(
        org_id: Annotated[IdStr, Path()],
        account_id: Annotated[IdStr, Path()],
        validationToken: Annotated[str | None, Query(max_length=1024)] = None,  # noqa: N803
    ) -> Response[Any]:
        return graph(org_id, account_id, validationToken)

    @app.post(
        "/webhooks/microsoft/<org_id>/<account_id>/lifecycle",
        tags=["webhooks"],
        responses=graph_doc,
        summary="Graph lifecycle events: reauthorizationRequired, subscriptionRemoved, missed",
    )
    def graph_lifecycle(
        org_id: Annotated[IdStr, Path()],
        account_id: Annotated[IdStr, Path()],
        validationToken: Annotated[str | None, Query(max_length=1024)] = None,  # noqa: N803
    ) -> Response[Any]:
        return graph(org_id, account_id, validationToken)

    @app.post(
        "/webhooks/aircall/<org_id>/<account_id>",
        tags=["webhooks"],
        responses=ok("Accepted (or a duplicate, ignored)"),
        summary="Aircall webhook deliveries (token checked, deduplicated)",
    )
    def aircall(
        org_id: Annotated[IdStr, Path()], account_id: Annotated[IdStr, Path()]
    ) -> Response[Any]:
        account = account_for(org_id, account_id, Provider.AIRCALL)
        event, _, _ = aircall_delivery(account, tokens)
        if not event.contact_event:
            return Response(
                200, content_type="application/json", body=dumps({"outcome": "ignored"})
            )
        result = ask(account, [(event.key, PullAction.PULL)], "aircall")
        return Response(200, content_type="application/json", body=dumps(result))

    @app.post(
        "/webhooks/aircall/<org_id>/<account_id>/calls",
        tags=["webhooks"],
        responses=ok("Stored, unmatched (no gallery contact), a duplicate, or ignored"),
        summary="Aircall call webhooks: the call captured as an activity at once",
    )
    def aircall_calls(
        org_id: Annotated[IdStr, Path()], account_id: Annotated[IdStr, Path()]
    ) -> Response[Any]:
        account = account_for(org_id, account_id, Provider.AIRCALL)
        event, raw, token = aircall_delivery(account, call_tokens)
        outcome = capture_call(ctx, account, event, raw, token)
        return Response(200, content_type="application/json", body=dumps({"outcome": outcome}))

    @app.post(
        "/webhooks/salesforce/<org_id>/<account_id>",
        tags=["webhooks"],
        responses=ok("The SOAP Ack (text/xml)"),
        summary="Salesforce outbound messages (OrganizationId and endpoint key checked)",
    )
    def salesforce(
        org_id: Annotated[IdStr, Path()],
        account_id: Annotated[IdStr, Path()],
        key: Annotated[str, Query(min_length=1, max_length=100)],
    ) -> Response[Any]:
        account = account_for(org_id, account_id, Provider.SALESFORCE)
        if not same(key, ctx.salesforce_key(org_id, account_id)):
            raise Unauthorized("The endpoint key is not this account's.", code="forged")
        message = verify_salesforce(body(), account.config.get("organization_id"))
        keyed = [(f"sfdc\x00{n}", PullAction.PULL) for n in message.notification_ids]
        ask(account, keyed, "salesforce")
        return Response(200, content_type="text/xml; charset=utf-8", body=SOAP_ACK)


def capture_call(
    ctx: ApiContext, account: ConnectedAccount, event: AircallEvent, raw: bytes, token: str | None
) -> str:
    """Stores the call a verified delivery carries as an activity, as the capture's own read
    would (same deterministic id: a repeated delivery or a later read changes nothing)."""
    if account.status is not AccountStatus.CONNECTED:
        return "ignored"  # a disabled account's future communication does not enter
    # Imported on use: the activity package loads every provider's client library, which the
    # API's other routes (and its cold start) do without.
    from contactsync.activity.aircall import CALL_EVENTS, captured_from_delivery
    from contactsync.activity.capture import ActivityCapture

    try:
        captured = captured_from_delivery(raw, token, ctx.region(account.org_id))
    except Exception as exc:  # the connector's WebhookRejected (a ConnectorError)
        if type(exc).__name__ != "WebhookRejected":
            raise
        raise WebhookRejected("Not an Aircall call delivery.", code="malformed") from exc
    if captured is None:
        if event.name in {f"call:{name}" for name in CALL_EVENTS}:
            raise WebhookRejected("The call in the delivery is unreadable.", code="malformed")
        return "ignored"  # not a call event we capture
    capture = ActivityCapture(ctx.store, account.org_id, lambda _: (), now=ctx.now)
    stored, unmatched, removed = capture.ingest(account, [captured])
    if stored or removed:
        return "stored"
    return "unmatched" if unmatched else "duplicate"
