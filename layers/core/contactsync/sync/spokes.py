"""Building the engine's view of each spoke from the stored account, settings and user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contactsync.connectors.base import Connector
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.contact import ContactField
from contactsync.domain.org import User
from contactsync.domain.sync import FieldRule, SyncSettings, SyncState
from contactsync.engine.merge import SpokeView

ConnectorFactory = Callable[[ConnectedAccount], Connector]


@dataclass
class Spoke:
    account: ConnectedAccount
    settings: SyncSettings
    view: SpokeView
    connector: Connector

    @property
    def runnable(self) -> bool:
        """Paused syncs and disabled, deleted or disconnected accounts are left alone."""
        return self.account.status is AccountStatus.CONNECTED and self.settings.status.state in (
            SyncState.IN_PROGRESS,
            SyncState.ACTIVE,
        )


def field_sets(
    rules: list[FieldRule],
) -> tuple[frozenset[ContactField], frozenset[ContactField]]:
    pull = frozenset(r.hub_field for r in rules if r.direction.pulls)
    push = frozenset(r.hub_field for r in rules if r.direction.pushes)
    return pull, push


def build_view(
    account: ConnectedAccount, settings: SyncSettings, owner: User | None, connector: Connector
) -> SpokeView:
    rules = settings.field_mapping
    if not rules:
        rules = [r for stream in connector.streams() for r in connector.default_mapping(stream)]
    pull, push = field_sets(rules)
    if not settings.direction.pulls:
        pull = frozenset()
    if not settings.direction.pushes:
        push = frozenset()
    return SpokeView(
        account_id=account.id,
        provider=account.provider,
        owner_user_id=account.owner_user_id,
        owner_email=owner.email.key if owner else "",
        direction=settings.direction,
        pull_fields=pull,
        push_fields=push,
        conflict=settings.conflict,
        auto_removal=settings.auto_removal,
        scope=settings.scope,
        objects=settings.objects,
        default_object=settings.default_object,
        owner_shares_contacts=bool(owner and owner.active and owner.sharing.email_contact_sync),
        sync_id=settings.id,
        mass_delete_threshold=settings.mass_delete_threshold,
        fit=connector.representable,
        fit_as=connector.representable_as,
    )
