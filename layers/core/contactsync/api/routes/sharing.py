"""Sharing (seed 002), the Stream and Closest Connections (seed 000): the caller's switches, the
queue of new contacts to approve (All, None, one by one), per-contact and per-address content
sharing, per-event overrides, access requests, the Stream per contact and per company, one
activity, the caller's own activity, Closest Connections, and removing a user.

Visibility is decided by the query layer (``contactsync.sharing``), not here: these routes only
parse, call it as the authenticated caller, and answer."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contactsync.api.context import ApiContext
from contactsync.api.routes._docs import BEARER, ok
from contactsync.api.schemas import IdStr
from contactsync.domain.company import Account
from contactsync.domain.org import SharingSettings
from contactsync.domain.sharing import AccessRequest, AccessStatus
from contactsync.sharing.companies import resolve_company
from contactsync.sharing.connections import (
    ClosestConnections,
    CompanyConnections,
    ContactConnections,
)
from contactsync.sharing.lifecycle import Lifecycle, Removal
from contactsync.sharing.rules import sharing_available
from contactsync.sharing.service import AddressState, Decision, QueueEntry, SharingService
from contactsync.sharing.stream import StreamItem, StreamPage, StreamQuery

Address = Annotated[str, StringConstraints(min_length=1, max_length=254)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SharingOut(BaseModel):
    settings: SharingSettings
    organisation_users: int
    available: bool = Field(description="Sharing exists only with at least two users")


class SharingPatchIn(_In):
    email_contact_sync: bool | None = None
    share_activity: bool | None = None
    auto_share_content: bool | None = None


class QueueOut(BaseModel):
    items: list[QueueEntry]


class BulkIn(_In):
    contact_ids: Annotated[list[IdStr], Field(max_length=1000)] | None = Field(
        default=None, description="The contacts displayed (default: the whole queue)"
    )


class Decided(BaseModel):
    decided: int


class ContactSharingIn(_In):
    shared: bool
    addresses: Annotated[dict[Address, bool], Field(max_length=40)] = Field(
        default_factory=dict, description="Per address (email or E.164 number) of the contact"
    )


class ContactSharingOut(BaseModel):
    contact_id: str
    shared: bool | None = Field(description="None: awaiting a decision (not shared)")
    addresses: list[AddressState]


class DecisionIn(ContactSharingIn):
    contact_id: IdStr


class DecisionsIn(_In):
    decisions: Annotated[list[DecisionIn], Field(min_length=1, max_length=1000)]


class EventSharingIn(_In):
    shared: bool | None = Field(
        description="True or False over the contact settings; null: back to them"
    )


class AccessRequestIn(_In):
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class AccessRequestList(BaseModel):
    items: list[AccessRequest]


class CompanyOut(BaseModel):
    company: Account


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:  # noqa: C901 - route table
    def sharing() -> SharingService:
        return SharingService(ctx.store, ctx.now)

    def stream() -> StreamQuery:
        return StreamQuery(ctx.store, ctx.now)

    def settings_out(org_id: str, settings: SharingSettings) -> SharingOut:
        users = sharing().active_users(org_id)
        return SharingOut(
            settings=settings, organisation_users=users, available=sharing_available(users)
        )

    # ---- switches and decisions ---------------------------------------------------------------

    @app.get("/sharing/settings", tags=["sharing"], security=BEARER, summary="My sharing switches")
    def get_settings() -> SharingOut:
        caller = ctx.caller(app)
        return settings_out(caller.org_id, sharing().settings(caller.actor))

    @app.patch(
        "/sharing/settings",
        tags=["sharing"],
        security=BEARER,
        summary="Turn activity sharing, auto-share and Email Contact Sync on or off",
    )
    def patch_settings(body: SharingPatchIn) -> SharingOut:
        caller = ctx.caller(app)
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        user = sharing().update_settings(caller.actor, changes)
        return settings_out(caller.org_id, user.sharing)

    @app.get("/sharing/queue", tags=["sharing"], security=BEARER, summary="New contacts to approve")
    def queue() -> QueueOut:
        return QueueOut(items=sharing().queue(ctx.caller(app).actor))

    @app.post(
        "/sharing/queue/all",
        tags=["sharing"],
        security=BEARER,
        summary="Share the queue's contacts",
    )
    def queue_all(body: BulkIn) -> Decided:
        return Decided(decided=sharing().decide_all(ctx.caller(app).actor, True, body.contact_ids))

    @app.post(
        "/sharing/queue/none",
        tags=["sharing"],
        security=BEARER,
        summary="Unshare the queue's contacts",
    )
    def queue_none(body: BulkIn) -> Decided:
        return Decided(decided=sharing().decide_all(ctx.caller(app).actor, False, body.contact_ids))

    @app.post(
        "/sharing/decisions",
        tags=["sharing"],
        security=BEARER,
        summary="Content sharing for several contacts at once (all checked before any is stored)",
    )
    def decisions(body: DecisionsIn) -> Decided:
        chosen = [Decision(**d.model_dump()) for d in body.decisions]
        return Decided(decided=sharing().decide(ctx.caller(app).actor, chosen))

    @app.get("/sharing/contacts/<contact_id>", tags=["sharing"], security=BEARER)
    def contact_sharing(contact_id: Annotated[IdStr, Path()]) -> ContactSharingOut:
        shared, addresses = sharing().contact_sharing(ctx.caller(app).actor, contact_id)
        return ContactSharingOut(contact_id=contact_id, shared=shared, addresses=addresses)

    @app.put(
        "/sharing/contacts/<contact_id>",
        tags=["sharing"],
        security=BEARER,
        summary="Share or unshare a contact's content, and per address",
    )
    def put_contact_sharing(
        contact_id: Annotated[IdStr, Path()], body: ContactSharingIn
    ) -> ContactSharingOut:
        actor = ctx.caller(app).actor
        service = sharing()
        service.decide(
            actor, [Decision(contact_id=contact_id, shared=body.shared, addresses=body.addresses)]
        )
        shared, addresses = service.contact_sharing(actor, contact_id)
        return ContactSharingOut(contact_id=contact_id, shared=shared, addresses=addresses)

    # ---- activities ----------------------------------------------------------------------------

    @app.get(
        "/activities/<activity_id>",
        tags=["stream"],
        security=BEARER,
        summary="One activity, as I may see it",
    )
    def get_activity(activity_id: Annotated[IdStr, Path()]) -> StreamItem:
        return stream().activity(ctx.caller(app).actor, activity_id)

    @app.put(
        "/activities/<activity_id>/sharing",
        tags=["sharing"],
        security=BEARER,
        summary="Share or unshare one of my emails or meetings (over the contact settings)",
    )
    def put_event_sharing(
        activity_id: Annotated[IdStr, Path()], body: EventSharingIn
    ) -> StreamItem:
        actor = ctx.caller(app).actor
        sharing().set_event(actor, activity_id, body.shared)
        return stream().activity(actor, activity_id)

    @app.post(
        "/activities/<activity_id>/access-requests",
        tags=["sharing"],
        security=BEARER,
        summary="Ask the owner for the content of an activity",
        responses=ok("Requested (or the request already standing)", 201),
    )
    def request_access(
        activity_id: Annotated[IdStr, Path()], body: AccessRequestIn
    ) -> Response[AccessRequest]:
        request = sharing().request_access(ctx.caller(app).actor, activity_id, body.note)
        return Response(201, body=request, content_type="application/json")

    @app.get(
        "/access-requests",
        tags=["sharing"],
        security=BEARER,
        summary="Requests to answer, or that I made",
    )
    def list_requests(
        role: Annotated[Literal["owner", "requester"], Query()] = "owner",
        status: Annotated[AccessStatus | None, Query()] = None,
    ) -> AccessRequestList:
        return AccessRequestList(items=sharing().requests(ctx.caller(app).actor, role, status))

    @app.post("/access-requests/<request_id>/grant", tags=["sharing"], security=BEARER)
    def grant(request_id: Annotated[IdStr, Path()]) -> AccessRequest:
        return sharing().answer(ctx.caller(app).actor, request_id, True)

    @app.post("/access-requests/<request_id>/decline", tags=["sharing"], security=BEARER)
    def decline(request_id: Annotated[IdStr, Path()]) -> AccessRequest:
        return sharing().answer(ctx.caller(app).actor, request_id, False)

    # ---- the Stream and Closest Connections ----------------------------------------------------

    @app.get(
        "/me/activities",
        tags=["stream"],
        security=BEARER,
        summary="My captured activity and its sharing",
    )
    def my_activities(
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> StreamPage:
        return stream().own_activities(ctx.caller(app).actor, limit=limit, page_token=page_token)

    @app.get(
        "/contacts/<contact_id>/stream",
        tags=["stream"],
        security=BEARER,
        summary="A contact's Stream",
    )
    def contact_stream(
        contact_id: Annotated[IdStr, Path()],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> StreamPage:
        return stream().contact_stream(
            ctx.caller(app).actor, contact_id, limit=limit, page_token=page_token
        )

    @app.get(
        "/contacts/<contact_id>/closest-connections",
        tags=["stream"],
        security=BEARER,
        summary="The teammates with the strongest connection to a contact",
    )
    def contact_connections(
        contact_id: Annotated[IdStr, Path()], limit: Annotated[int, Query(ge=1, le=50)] = 5
    ) -> ContactConnections:
        return ClosestConnections(ctx.store, ctx.now).for_contact(
            ctx.caller(app).actor, contact_id, limit
        )

    @app.get("/companies", tags=["stream"], security=BEARER, summary="A company by name (or id)")
    def find_company(name: Annotated[str, Query(min_length=1, max_length=255)]) -> CompanyOut:
        return CompanyOut(company=resolve_company(ctx.store, ctx.caller(app).actor, name))

    @app.get(
        "/companies/<company_id>/stream",
        tags=["stream"],
        security=BEARER,
        summary="A company's Stream",
    )
    def company_stream(
        company_id: Annotated[IdStr, Path()],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> StreamPage:
        return stream().company_stream(
            ctx.caller(app).actor, company_id, limit=limit, page_token=page_token
        )

    @app.get(
        "/companies/<company_id>/closest-connections",
        tags=["stream"],
        security=BEARER,
        summary="A company's contacts with the strongest connection to the organisation",
    )
    def company_connections(
        company_id: Annotated[IdStr, Path()], limit: Annotated[int, Query(ge=1, le=50)] = 10
    ) -> CompanyConnections:
        return ClosestConnections(ctx.store, ctx.now).for_company(
            ctx.caller(app).actor, company_id, limit
        )

    # ---- people leaving ------------------------------------------------------------------------

    @app.post(
        "/users/<user_id>/remove",
        tags=["sharing"],
        security=BEARER,
        summary="Remove a user (an admin, or the user themself): access ends at once",
    )
    def remove_user(user_id: Annotated[IdStr, Path()]) -> Removal:
        caller = ctx.caller(app)
        return Lifecycle(ctx.store, ctx.now).remove_user(caller.actor, user_id)
