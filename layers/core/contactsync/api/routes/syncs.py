"""Sync settings (seeds 003 and 004): create, read, update, delete; pause, resume,
delete-and-revert; dry-run preview; status with counts and per-record errors; the field mapping
studio."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from contactsync.api.auth import Caller
from contactsync.api.context import ApiContext
from contactsync.api.problems import Conflict, Unavailable
from contactsync.api.queue import Outcome, PullAction
from contactsync.api.routes._docs import BEARER, ok
from contactsync.api.schemas import (
    Deleted,
    IdStr,
    MappingPut,
    MappingStudio,
    Planned,
    Preview,
    ProviderField,
    Queued,
    Resume,
    StreamFields,
    SyncCreate,
    SyncFields,
    SyncList,
    SyncPatch,
    SyncStatusOut,
)
from contactsync.app.setup import default_settings
from contactsync.connectors.base import Connector
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.contact import CONTACT_FIELDS
from contactsync.domain.errors import InvalidInput, NotFound, VersionConflict
from contactsync.domain.sync import FieldRule, SyncSettings, SyncState
from contactsync.sync.service import SyncService

MAX_PLANNED = 200


def _merged(settings: SyncSettings, fields: SyncFields) -> SyncSettings:
    changes = fields.model_dump(exclude_unset=True, exclude={"version", "account_id"})
    data = settings.model_dump()
    data.update({k: v for k, v in changes.items() if v is not None})
    return SyncSettings.parse(data)


def _describe(connector: Connector, stream: str) -> list[ProviderField] | None:
    """The provider's fields from the connector's describe, when it has one."""
    describe = getattr(connector, "describe_fields", None)
    if not callable(describe):
        return None
    fields: list[ProviderField] = []
    for item in describe(stream):
        if isinstance(item, ProviderField):
            fields.append(item)
        elif isinstance(item, dict):
            fields.append(ProviderField.model_validate(item))
        else:
            fields.append(ProviderField(name=str(getattr(item, "name", item))))
    return fields


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:  # noqa: C901 - route table
    def load(caller: Caller, sync_id: str) -> tuple[SyncSettings, ConnectedAccount]:
        settings = ctx.store.find(SyncSettings, caller.org_id, sync_id)
        if settings is None:
            raise NotFound("sync", sync_id)
        try:
            account = ctx.account(caller, settings.account_id)
        except NotFound:
            raise NotFound("sync", sync_id) from None
        return settings, account

    def check_priority(caller: Caller, settings: SyncSettings) -> None:
        for i, account_id in enumerate(settings.conflict.priority):
            if ctx.store.find(ConnectedAccount, caller.org_id, account_id) is None:
                raise InvalidInput.one(f"body.conflict.priority.{i}", "is not a connected account")

    def connector(account: ConnectedAccount) -> Connector:
        if ctx.connectors is None:
            raise Unavailable("This runtime cannot reach the providers.", code="no_connectors")
        return ctx.connectors(account)

    @app.get("/syncs", tags=["syncs"], security=BEARER)
    def list_syncs() -> SyncList:
        caller = ctx.caller(app)
        own = None
        if not caller.is_admin:
            own = {
                a.id
                for a in ctx.store.scan(ConnectedAccount, caller.org_id)
                if a.owner_user_id == caller.user_id
            }
        items = [
            s
            for s in ctx.store.scan(SyncSettings, caller.org_id)
            if own is None or s.account_id in own
        ]
        return SyncList(items=items)

    @app.post("/syncs", tags=["syncs"], security=BEARER, responses=ok("Created", 201))
    def create_sync(body: SyncCreate) -> Response[SyncSettings]:
        caller = ctx.caller(app)
        account = ctx.account(caller, body.account_id)
        if account.status is AccountStatus.DELETED:
            raise Conflict("The account is deleted.", code="deleted")
        if ctx.store.lookup_ids(SyncSettings, caller.org_id, "account", account.id):
            raise Conflict("This account already has a sync; update it instead.", code="exists")
        settings = _merged(default_settings(caller.org_id, account), body)
        check_priority(caller, settings)
        try:
            stored = ctx.store.create(settings)
        except VersionConflict as exc:
            raise Conflict("This account already has a sync.", code="exists") from exc
        return Response(201, body=stored, content_type="application/json")

    @app.get("/syncs/<sync_id>", tags=["syncs"], security=BEARER)
    def get_sync(sync_id: Annotated[IdStr, Path()]) -> SyncSettings:
        return load(ctx.caller(app), sync_id)[0]

    @app.patch(
        "/syncs/<sync_id>",
        tags=["syncs"],
        security=BEARER,
        summary="Edit the configuration (direction, objects, scope, mapping, policies)",
    )
    def update_sync(sync_id: Annotated[IdStr, Path()], body: SyncPatch) -> SyncSettings:
        caller = ctx.caller(app)
        settings, _ = load(caller, sync_id)
        if settings.version != body.version:
            raise VersionConflict("sync", sync_id, body.version, settings.version)
        updated = _merged(settings, body)
        check_priority(caller, updated)
        return ctx.store.update(updated)

    @app.delete(
        "/syncs/<sync_id>",
        tags=["syncs"],
        security=BEARER,
        summary="Delete the sync; records already synced stay on both sides",
    )
    def delete_sync(sync_id: Annotated[IdStr, Path()]) -> Deleted:
        caller = ctx.caller(app)
        settings, _ = load(caller, sync_id)
        ctx.store.delete(
            SyncSettings, caller.org_id, settings.id, expected_version=settings.version
        )
        return Deleted(id=settings.id)

    @app.post(
        "/syncs/<sync_id>/delete-and-revert",
        tags=["syncs"],
        security=BEARER,
        summary="Delete the sync and remove from the provider the records it created",
        responses=ok("The revert is queued", 202),
    )
    def delete_and_revert(sync_id: Annotated[IdStr, Path()]) -> Response[Queued]:
        caller = ctx.caller(app)
        settings, account = load(caller, sync_id)
        outcome = ctx.inbox.request(
            caller.org_id, account.id, PullAction.REVERT, "delete-and-revert", sync_id=settings.id
        )
        ctx.store.delete(SyncSettings, caller.org_id, settings.id)
        return Response(
            202,
            body=Queued(outcome=outcome.value, action="revert"),
            content_type="application/json",
        )

    def set_state(sync_id: str, state: SyncState, confirm: bool = False) -> SyncSettings:
        caller = ctx.caller(app)
        settings, account = load(caller, sync_id)
        if state is SyncState.ACTIVE and settings.status.last_run_at is None:
            state = SyncState.IN_PROGRESS  # never ran: the initial sync starts (orange)
        changes: dict[str, Any] = {"status": settings.status.model_copy(update={"state": state})}
        if confirm:
            changes["mass_delete_confirmed"] = True
        updated = ctx.store.update(settings.model_copy(update=changes))
        if state is not SyncState.PAUSED and account.status is AccountStatus.CONNECTED:
            ctx.inbox.request(caller.org_id, account.id, PullAction.PULL, "resumed")
        return updated

    @app.post("/syncs/<sync_id>/pause", tags=["syncs"], security=BEARER)
    def pause(sync_id: Annotated[IdStr, Path()]) -> SyncSettings:
        return set_state(sync_id, SyncState.PAUSED)

    @app.post("/syncs/<sync_id>/resume", tags=["syncs"], security=BEARER)
    def resume(sync_id: Annotated[IdStr, Path()], body: Resume) -> SyncSettings:
        return set_state(sync_id, SyncState.ACTIVE, body.confirm_mass_delete)

    @app.get(
        "/syncs/<sync_id>/status",
        tags=["syncs"],
        security=BEARER,
        summary="State (in_progress, active, paused, error), counts and per-record errors",
    )
    def status(sync_id: Annotated[IdStr, Path()]) -> SyncStatusOut:
        settings, account = load(ctx.caller(app), sync_id)
        st = settings.status
        return SyncStatusOut(
            sync_id=settings.id,
            account_id=account.id,
            provider=account.provider,
            account_status=account.status,
            account_status_reason=account.status_reason,
            state=st.state,
            counts=st.counts,
            last_error=st.last_error,
            last_run_at=st.last_run_at,
            progress_done=st.progress_done,
            progress_total=st.progress_total,
            record_errors=st.record_errors,
        )

    @app.post(
        "/syncs/<sync_id>/preview",
        tags=["syncs"],
        security=BEARER,
        summary="Dry run: what one round would change, changing nothing",
    )
    def preview(sync_id: Annotated[IdStr, Path()]) -> Preview:
        caller = ctx.caller(app)
        _, account = load(caller, sync_id)
        if ctx.connectors is None:
            raise Unavailable("This runtime cannot reach the providers.", code="no_connectors")
        service = SyncService(ctx.store, caller.org_id, ctx.connectors, now=ctx.now)
        report = service.run_once(dry_run=True, accounts={account.id})
        planned = [
            Planned(
                account_id=p.account_id,
                kind=p.kind,
                contact_id=p.contact_id,
                remote_id=p.remote_id,
                fields=list(p.fields),
                reason=p.reason,
            )
            for p in report.planned[:MAX_PLANNED]
        ]
        spokes = {k: v for k, v in report.to_json()["spokes"].items()}
        return Preview(
            run_id=report.run_id,
            spokes=spokes,
            planned=planned,
            truncated=len(report.planned) > MAX_PLANNED,
            remote_writes=report.remote_writes,
            hub_writes=report.hub_writes,
        )

    @app.get(
        "/syncs/<sync_id>/fields",
        tags=["syncs"],
        security=BEARER,
        summary="Field mapping studio: the provider's fields and the current mapping",
    )
    def fields(sync_id: Annotated[IdStr, Path()]) -> MappingStudio:
        settings, account = load(ctx.caller(app), sync_id)
        conn = connector(account)
        streams = []
        for stream in conn.streams():
            described = _describe(conn, stream)
            defaults = conn.default_mapping(stream)
            streams.append(
                StreamFields(
                    stream=stream,
                    source="describe" if described is not None else "default_mapping",
                    provider_fields=described
                    if described is not None
                    else [ProviderField(name=r.remote_field) for r in defaults],
                    default_mapping=defaults,
                )
            )
        mapping = settings.field_mapping or [r for s in streams for r in s.default_mapping]
        return MappingStudio(
            sync_id=settings.id, hub_fields=list(CONTACT_FIELDS), mapping=mapping, streams=streams
        )

    @app.put(
        "/syncs/<sync_id>/mapping",
        tags=["syncs"],
        security=BEARER,
        summary="Set each field's direction (both, to_provider, to_hub, off)",
    )
    def put_mapping(sync_id: Annotated[IdStr, Path()], body: MappingPut) -> SyncSettings:
        caller = ctx.caller(app)
        settings, account = load(caller, sync_id)
        if settings.version != body.version:
            raise VersionConflict("sync", sync_id, body.version, settings.version)
        if ctx.connectors is not None:
            check_remote_fields(connector(account), body.field_mapping)
        updated = SyncSettings.parse(
            {**settings.model_dump(), "field_mapping": [r.model_dump() for r in body.field_mapping]}
        )
        return ctx.store.update(updated)


def check_remote_fields(conn: Connector, rules: list[FieldRule]) -> None:
    known: set[str] = set()
    described_any = False
    for stream in conn.streams():
        described = _describe(conn, stream)
        if described is not None:
            described_any = True
            known |= {f.name for f in described}
        known |= {r.remote_field for r in conn.default_mapping(stream)}
    if not described_any:
        return  # without a describe, any provider field name is taken on trust
    for i, rule in enumerate(rules):
        if rule.remote_field not in known:
            raise InvalidInput.one(
                f"body.field_mapping.{i}.remote_field", "is not a field of the provider"
            )


__all__ = ["Outcome", "register"]
