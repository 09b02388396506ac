"""An organisation's spokes as one worker of the cloud runtime sees them.

A worker builds connectors only for the accounts it works on (its IAM role reads only its own
provider's secrets); every other spoke is a view without a connector, enough for what the
engine asks of the others: whether a record is linked to a shared system (CRM, phone system),
which decides whether a contact is a business contact that may be created elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.org import User
from contactsync.domain.sync import SyncSettings
from contactsync.engine.merge import SpokeView
from contactsync.store.base import Store
from contactsync.sync.spokes import ConnectorFactory, Spoke, build_view


@dataclass
class OrgSpokes:
    accounts: dict[str, ConnectedAccount]
    settings: dict[str, SyncSettings]  # by account id
    users: dict[str, User]

    @classmethod
    def load(cls, store: Store, org_id: str) -> OrgSpokes:
        accounts = {
            a.id: a
            for a in store.scan(ConnectedAccount, org_id)
            if a.status is not AccountStatus.DELETED
        }
        settings = {
            s.account_id: s for s in store.scan(SyncSettings, org_id) if s.account_id in accounts
        }
        users = {u.id: u for u in store.scan(User, org_id)}
        return cls(accounts, settings, users)

    def peer_views(self) -> dict[str, SpokeView]:
        """Every spoke as a view without a connector (provider, owner, direction)."""
        return {
            account_id: SpokeView(
                account_id=account_id,
                provider=self.accounts[account_id].provider,
                owner_user_id=self.accounts[account_id].owner_user_id,
                direction=settings.direction,
                sync_id=settings.id,
            )
            for account_id, settings in self.settings.items()
        }

    def spoke(self, account_id: str, connectors: ConnectorFactory) -> Spoke | None:
        """The full spoke (connector and view) of one account, or None without a sync."""
        account = self.accounts.get(account_id)
        settings = self.settings.get(account_id)
        if account is None or settings is None:
            return None
        connector = connectors(account)
        connector.configure(settings)  # the objects and scope the sync takes, as locally
        owner = self.users.get(account.owner_user_id)
        return Spoke(account, settings, build_view(account, settings, owner, connector), connector)

    def views_with(self, spoke: Spoke) -> dict[str, SpokeView]:
        """The views the engine compares a spoke's records with: every peer, and this spoke
        in full."""
        return {**self.peer_views(), spoke.account.id: spoke.view}
