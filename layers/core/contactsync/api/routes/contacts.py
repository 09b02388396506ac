"""The contact gallery (seed 000): list and search with paging, get with provenance and links,
history, create, update (version-guarded), archive and unarchive (never a hard delete), merge
and merge suggestions. Visibility is enforced by the Gallery service."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from contactsync.api.context import ApiContext
from contactsync.api.routes._docs import BEARER, ok
from contactsync.api.schemas import (
    ContactCreate,
    ContactDetail,
    ContactPage,
    ContactPatch,
    History,
    IdStr,
    LinkOut,
    MergeIn,
    SuggestionList,
)
from contactsync.app.gallery import Gallery
from contactsync.domain.contact import HubContact
from contactsync.domain.merge import MergeSuggestion


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:
    gallery = Gallery(ctx.store, ctx.now)

    @app.get(
        "/contacts",
        tags=["contacts"],
        security=BEARER,
        summary="List (paged) or search by name, email, phone or company words",
    )
    def list_contacts(
        q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
        include_archived: Annotated[bool, Query()] = False,
        personal: Annotated[bool | None, Query()] = None,
    ) -> ContactPage:
        caller = ctx.caller(app)
        if q is not None:
            found = gallery.search(caller.actor, q, limit=limit, region=ctx.region(caller.org_id))
            if personal is not None:
                found = [c for c in found if c.personal == personal]
            return ContactPage(items=found)
        page = gallery.page(
            caller.actor,
            limit=limit,
            page_token=page_token,
            include_archived=include_archived,
            personal=personal,
        )
        return ContactPage(items=page.items, next_page_token=page.next_token)

    @app.post("/contacts", tags=["contacts"], security=BEARER, responses=ok("Created", 201))
    def create_contact(body: ContactCreate) -> Response[HubContact]:
        caller = ctx.caller(app)
        data = body.changes()
        data["visibility"] = body.visibility.value
        created = gallery.create(caller.actor, data, region=ctx.region(caller.org_id))
        return Response(201, body=created, content_type="application/json")

    @app.get(
        "/contacts/<contact_id>",
        tags=["contacts"],
        security=BEARER,
        summary="A contact with its per-field provenance and its links",
    )
    def get_contact(contact_id: Annotated[IdStr, Path()]) -> ContactDetail:
        caller = ctx.caller(app)
        contact = gallery.get(caller.actor, contact_id)
        links = [LinkOut.of(link) for link in gallery.links(caller.actor, contact_id)]
        return ContactDetail(contact=contact, links=links)

    @app.get("/contacts/<contact_id>/history", tags=["contacts"], security=BEARER)
    def history(contact_id: Annotated[IdStr, Path()]) -> History:
        caller = ctx.caller(app)
        return History(items=gallery.history(caller.actor, contact_id))

    @app.patch("/contacts/<contact_id>", tags=["contacts"], security=BEARER)
    def update_contact(contact_id: Annotated[IdStr, Path()], body: ContactPatch) -> HubContact:
        caller = ctx.caller(app)
        changes = body.changes()
        changes.pop("version", None)
        return gallery.update(
            caller.actor, contact_id, changes, body.version, region=ctx.region(caller.org_id)
        )

    @app.post("/contacts/<contact_id>/archive", tags=["contacts"], security=BEARER)
    def archive(contact_id: Annotated[IdStr, Path()]) -> HubContact:
        return gallery.set_archived(ctx.caller(app).actor, contact_id, True)

    @app.post("/contacts/<contact_id>/unarchive", tags=["contacts"], security=BEARER)
    def unarchive(contact_id: Annotated[IdStr, Path()]) -> HubContact:
        return gallery.set_archived(ctx.caller(app).actor, contact_id, False)

    @app.post(
        "/contacts/<contact_id>/merge",
        tags=["contacts"],
        security=BEARER,
        summary="Merge other_id into this contact (the other is archived, links move)",
    )
    def merge(contact_id: Annotated[IdStr, Path()], body: MergeIn) -> HubContact:
        return gallery.merge(ctx.caller(app).actor, contact_id, body.other_id)

    @app.get("/merge-suggestions", tags=["contacts"], security=BEARER)
    def suggestions() -> SuggestionList:
        return SuggestionList(items=gallery.suggestions(ctx.caller(app).actor))

    @app.post("/merge-suggestions/<suggestion_id>/dismiss", tags=["contacts"], security=BEARER)
    def dismiss(suggestion_id: Annotated[IdStr, Path()]) -> MergeSuggestion:
        return gallery.dismiss(ctx.caller(app).actor, suggestion_id)
