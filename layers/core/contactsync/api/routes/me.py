"""The caller and their sharing settings (seed 002): everything off by default; Email Contact
Sync (share the contacts I add with the organisation) only in organisations with at least two
users."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from contactsync.api.context import ApiContext
from contactsync.api.problems import Conflict
from contactsync.api.routes._docs import BEARER
from contactsync.api.schemas import MeOut, SharingPatch
from contactsync.domain.org import Role, User
from contactsync.sharing.service import SharingService

MIN_USERS_FOR_SHARING = 2


def register(app: APIGatewayHttpResolver, ctx: ApiContext) -> None:
    def active_users(org_id: str) -> int:
        return sum(1 for u in ctx.store.scan(User, org_id) if u.active)

    def me_of(user: User, role_org: tuple[Role, str]) -> MeOut:
        return MeOut(
            org_id=role_org[1],
            user_id=user.id,
            email=user.email.address,
            name=user.name,
            role=role_org[0],
            sharing=user.sharing,
            organisation_users=active_users(user.org_id),
        )

    @app.get("/me", tags=["me"], security=BEARER, summary="Who I am, my role and my sharing")
    def me() -> MeOut:
        caller = ctx.caller(app)
        return me_of(caller.user, (caller.role, caller.org_id))

    @app.patch(
        "/me/sharing",
        tags=["me"],
        security=BEARER,
        summary="Sharing settings, including the Email Contact Sync toggle",
    )
    def sharing(body: SharingPatch) -> MeOut:
        caller = ctx.caller(app)
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        if any(changes.values()) and active_users(caller.org_id) < MIN_USERS_FOR_SHARING:
            raise Conflict(
                "Sharing is available only in organisations with at least two users.",
                code="sharing_needs_two_users",
            )
        # The sharing service, as PATCH /sharing/settings: turning auto-share on also shares
        # the contacts waiting for approval, and activity sharing refreshes what teammates see.
        stored = SharingService(ctx.store, ctx.now).update_settings(caller.actor, changes)
        return me_of(stored, (caller.role, caller.org_id))
