"""Connected accounts (seed 001): OAuth connects for Google, Microsoft and Salesforce (and
Aircall's install flow), API-key connects for Aircall, list with status, disable, reconnect,
and delete after confirmation (stops sync, removes the account's activity data)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from contactsync.api.context import ApiContext
from contactsync.api.oauth import OAUTH_PROVIDERS, OAuthFlows
from contactsync.api.problems import ApiError, Conflict, Forbidden, Unprocessable
from contactsync.api.queue import PullAction
from contactsync.api.routes._docs import BEARER, ok
from contactsync.api.schemas import (
    AccountList,
    AccountOut,
    AircallKeyConnect,
    Connected,
    ConnectStart,
    ConnectStarted,
    Deleted,
    IdStr,
    Reconnect,
    Reconnected,
)
from contactsync.app.setup import Setup
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.cursor import Cursor
from contactsync.domain.errors import NotFound
from contactsync.domain.link import Link
from contactsync.domain.org import User
from contactsync.domain.sync import SyncSettings
from contactsync.sharing.lifecycle import forget_account

log = logging.getLogger(__name__)

# Organisation-wide systems are connected by admins; mailboxes by their users.
ADMIN_PROVIDERS = frozenset({Provider.SALESFORCE, Provider.AIRCALL})
OAUTH_PATHS = {p.value: p for p in OAUTH_PROVIDERS}


def webhook_config(
    ctx: ApiContext, account: ConnectedAccount
) -> tuple[dict[str, str], dict[str, str]]:
    """The config and secrets a connector needs to register our webhooks for ``account``."""
    url = ctx.webhook_url(account)
    config: dict[str, str] = {}
    secrets: dict[str, str] = {}
    if url and account.provider is Provider.MICROSOFT:
        config = {"webhook_url": url, "lifecycle_url": f"{url}/lifecycle"}
        secrets = {"webhook_client_state": ctx.graph_client_state(account.org_id, account.id)}
    elif url and account.provider is Provider.AIRCALL:
        # Contact events pull; call events (a webhook of their own) are captured at once.
        config = {"webhook_url": url, "calls_webhook_url": f"{url}/calls"}
    return config, secrets


def ensure_webhook_config(ctx: ApiContext, account: ConnectedAccount) -> ConnectedAccount:
    """Writes the webhook URL (and Graph's clientState) where the connector reads them.
    Idempotent; `contactsync serve` runs it for every account when the port changes."""
    config, secrets = webhook_config(ctx, account)
    if secrets and account.secret_ref:
        try:
            current = ctx.secrets.get(account.secret_ref)
        except KeyError:
            current = {}
        if any(current.get(k) != v for k, v in secrets.items()):
            ctx.secrets.put(account.secret_ref, {**current, **secrets})
    if all(account.config.get(k) == v for k, v in config.items()):
        return account
    return ctx.store.update(account.model_copy(update={"config": {**account.config, **config}}))


def _ping_aircall(ctx: ApiContext, api_id: str, api_token: str) -> None:
    try:
        response = ctx.http.get(
            f"{ctx.settings.aircall_api_base.rstrip('/')}/ping",
            auth=(api_id, api_token),
            timeout=ctx.settings.http_timeout_seconds,
        )
    except requests.RequestException as exc:
        raise ApiError("Aircall did not answer.", code="provider_down", status=502) from exc
    if response.status_code in (401, 403):
        raise Unprocessable("Aircall refused this API id and token.", code="credentials_rejected")
    if response.status_code != 200:
        raise ApiError("Aircall failed to check the key.", code="provider_error", status=502)


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:  # noqa: C901 - route table
    flows = OAuthFlows(ctx.settings, ctx.store, ctx.http, ctx.now)
    setup = Setup(ctx.store, ctx.secrets, ctx.now)

    def out(account: ConnectedAccount) -> AccountOut:
        url = ctx.webhook_url(account) if account.provider is Provider.SALESFORCE else None
        return AccountOut.of(account, url)

    def finish_connect(account: ConnectedAccount, sync: SyncSettings | None) -> Connected:
        # Re-read: Setup.connect returns the entities as written, before their versions moved.
        account = ensure_webhook_config(
            ctx, ctx.store.get(ConnectedAccount, account.org_id, account.id)
        )
        if account.config.get("webhook_url"):
            # Webhooks registered now rather than at the first scheduled pull. Best effort:
            # the scheduled pulls register them anyway.
            try:
                ctx.inbox.request(account.org_id, account.id, PullAction.PREPARE, "connected")
            except Exception as exc:  # noqa: BLE001 - the connect itself has succeeded
                log.warning(
                    "webhook registration not queued",
                    extra={"account": account.id, "error": type(exc).__name__},
                )
        if sync is not None:
            sync = ctx.store.get(SyncSettings, sync.org_id, sync.id)
        return Connected(account=out(account), sync=sync)

    @app.get("/accounts", tags=["accounts"], security=BEARER, summary="List connected accounts")
    def list_accounts() -> AccountList:
        caller = ctx.caller(app)
        items = [
            out(a)
            for a in ctx.store.scan(ConnectedAccount, caller.org_id)
            if caller.is_admin or a.owner_user_id == caller.user_id
        ]
        return AccountList(items=sorted(items, key=lambda a: a.created_at))

    @app.get("/accounts/<account_id>", tags=["accounts"], security=BEARER)
    def get_account(account_id: Annotated[IdStr, Path()]) -> AccountOut:
        caller = ctx.caller(app)
        return out(ctx.account(caller, account_id))

    @app.post(
        "/accounts/connect/<provider>",
        tags=["accounts"],
        security=BEARER,
        summary="Start an OAuth connect (authorization code + PKCE + state)",
        responses=ok("Send the user's browser to authorization_url", 201),
    )
    def start_connect(
        provider: Annotated[str, Path(pattern="^(google|microsoft|salesforce|aircall)$")],
        body: ConnectStart,
    ) -> Response[ConnectStarted]:
        caller = ctx.caller(app)
        chosen = OAUTH_PATHS[provider]
        if chosen in ADMIN_PROVIDERS:
            caller.require_admin()
        started = flows.start(
            caller.org_id, caller.user_id, chosen, login_hint=body.login_hint, label=body.label
        )
        result = ConnectStarted(
            authorization_url=started.authorization_url,
            state=started.state,
            expires_at=started.expires_at,
        )
        return Response(201, body=result, content_type="application/json")

    @app.get(
        "/oauth/callback",
        tags=["accounts"],
        summary="The providers' redirect after consent (public: the state authenticates it)",
        responses=ok("The account is connected (or reconnected)", 201),
    )
    def oauth_callback(
        state: Annotated[str, Query(min_length=1, max_length=300)],
        code: Annotated[str | None, Query(max_length=4096)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response[Connected]:
        attempt = flows.take(state)
        if error is not None or code is None:
            raise Unprocessable(
                "The provider did not grant access.", code=f"denied:{error or 'no_code'}"[:100]
            )
        owner = ctx.store.find(User, attempt.org_id, attempt.user_id)
        if owner is None or not owner.active:
            raise Forbidden("The user who started this connect has left.", code="unknown_user")
        tokens = flows.redeem(attempt, code)
        client = flows.client(attempt.provider)
        if attempt.account_id is not None:
            account = ctx.store.get(ConnectedAccount, attempt.org_id, attempt.account_id)
            if tokens.address and tokens.address.lower() != account.address.lower():
                raise Unprocessable(
                    "You signed in as another account than the one to reconnect.",
                    code="other_account",
                )
            if account.secret_ref is None:
                raise Conflict("This account has no credentials to replace.", code="no_secret")
            ctx.secrets.put(
                account.secret_ref, {**ctx.secrets.get(account.secret_ref), **tokens.credentials}
            )
            account = ctx.store.update(
                account.model_copy(
                    update={"status": AccountStatus.CONNECTED, "status_reason": None}
                )
            )
            return Response(
                201, body=finish_connect(account, None), content_type="application/json"
            )
        address = tokens.address or attempt.login_hint or attempt.label
        if not address:
            raise Unprocessable(
                "The provider did not say which account this is.", code="no_address"
            )
        config = {**client.account_config, **tokens.config}
        account, sync = setup.connect(
            attempt.org_id, owner, attempt.provider, address, config, tokens.credentials
        )
        return Response(201, body=finish_connect(account, sync), content_type="application/json")

    @app.post(
        "/accounts/aircall",
        tags=["accounts"],
        security=BEARER,
        summary="Connect Aircall with an API id and token (checked with Aircall first)",
        responses=ok("Connected", 201),
    )
    def connect_aircall(body: AircallKeyConnect) -> Response[Connected]:
        caller = ctx.caller(app)
        caller.require_admin()
        _ping_aircall(ctx, body.api_id, body.api_token)
        account, sync = setup.connect(
            caller.org_id,
            caller.user,
            Provider.AIRCALL,
            body.address,
            {"api_base": ctx.settings.aircall_api_base, **ctx.settings.aircall_account_config},
            {"api_id": body.api_id, "api_token": body.api_token},
        )
        return Response(201, body=finish_connect(account, sync), content_type="application/json")

    @app.post(
        "/accounts/<account_id>/disable",
        tags=["accounts"],
        security=BEARER,
        summary="Disable: history kept, no new pulls",
    )
    def disable(account_id: Annotated[IdStr, Path()]) -> AccountOut:
        caller = ctx.caller(app)
        account = ctx.account(caller, account_id)
        if account.status is AccountStatus.DELETED:
            raise Conflict("A deleted account cannot be disabled.", code="deleted")
        if account.status is AccountStatus.DISABLED:
            return out(account)
        updated = account.model_copy(
            update={"status": AccountStatus.DISABLED, "status_reason": None}
        )
        return out(ctx.store.update(updated))

    @app.post(
        "/accounts/<account_id>/reconnect",
        tags=["accounts"],
        security=BEARER,
        summary="Reconnect a disabled account, or renew credentials",
    )
    def reconnect(account_id: Annotated[IdStr, Path()], body: Reconnect) -> Reconnected:
        caller = ctx.caller(app)
        account = ctx.account(caller, account_id)
        if account.status is AccountStatus.DELETED:
            raise Conflict("A deleted account cannot come back; connect it again.", code="deleted")
        if body.api_id or body.api_token:
            if account.provider is not Provider.AIRCALL or not (body.api_id and body.api_token):
                raise Unprocessable(
                    "api_id and api_token go together, for Aircall only.", code="bad_credentials"
                )
            _ping_aircall(ctx, body.api_id, body.api_token)
            assert account.secret_ref is not None
            current = ctx.secrets.get(account.secret_ref)
            ctx.secrets.put(
                account.secret_ref, {**current, "api_id": body.api_id, "api_token": body.api_token}
            )
        elif account.status is AccountStatus.NEEDS_RECONNECT:
            if (
                account.provider not in OAUTH_PROVIDERS
                or account.provider not in ctx.settings.oauth
            ):
                raise Unprocessable(
                    "This account needs new credentials (api_id and api_token).",
                    code="needs_credentials",
                )
            started = flows.start(
                caller.org_id,
                caller.user_id,
                account.provider,
                account_id=account.id,
                login_hint=account.address,
            )
            return Reconnected(account=out(account), authorization_url=started.authorization_url)
        if account.status is not AccountStatus.CONNECTED:
            account = ctx.store.update(
                account.model_copy(
                    update={"status": AccountStatus.CONNECTED, "status_reason": None}
                )
            )
        return Reconnected(account=out(account))

    @app.delete(
        "/accounts/<account_id>",
        tags=["accounts"],
        security=BEARER,
        summary="Delete after confirmation: stops sync, removes the account's activity data",
    )
    def delete_account(
        account_id: Annotated[IdStr, Path()],
        confirm: Annotated[
            str, Query(min_length=1, max_length=254, description="The account's address, repeated")
        ],
    ) -> Deleted:
        caller = ctx.caller(app)
        account = ctx.account(caller, account_id)
        if confirm.strip().lower() != account.address.lower():
            raise Unprocessable("confirm must repeat the account's address.", code="not_confirmed")
        if account.status is not AccountStatus.DELETED:
            # First the state change (atomic): from here no pull or push touches the account.
            account = ctx.store.update(
                account.model_copy(update={"status": AccountStatus.DELETED, "status_reason": None})
            )
        # Then the purge, idempotent: a retried DELETE finishes what a failed one started.
        return Deleted(id=account.id, removed=purge(ctx, account))


def purge(ctx: ApiContext, account: ConnectedAccount) -> dict[str, int]:
    org_id, removed = account.org_id, {"syncs": 0, "activities": 0, "links": 0, "cursors": 0}
    for sync_id in ctx.store.lookup_ids(SyncSettings, org_id, "account", account.id):
        ctx.store.delete(SyncSettings, org_id, sync_id)
        removed["syncs"] += 1
    # The activity with its access requests and its part of the connection strengths.
    removed["activities"] = forget_account(ctx.store, org_id, account.id, ctx.now()).activities
    gone: list[tuple[Any, str]] = []
    gone += [
        (Link, link.id) for link in ctx.store.scan(Link, org_id) if link.account_id == account.id
    ]
    gone += [(Cursor, c.id) for c in ctx.store.scan(Cursor, org_id) if c.account_id == account.id]
    for kind, entity_id in gone:
        ctx.store.delete(kind, org_id, entity_id)
        removed["links" if kind is Link else "cursors"] += 1
    if account.secret_ref:
        ctx.secrets.delete(account.secret_ref)
    return removed


__all__ = ["NotFound", "ensure_webhook_config", "purge", "register"]
