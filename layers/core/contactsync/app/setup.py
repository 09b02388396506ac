"""Organisations, users and connected accounts: creating them, connecting an account with its
sync settings, and the defaults each provider starts with."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.base import utcnow
from contactsync.domain.contact import EmailAddress
from contactsync.domain.errors import InvalidInput
from contactsync.domain.org import Organisation, Role, User
from contactsync.domain.sync import (
    AutoRemoval,
    Direction,
    ObjectChoice,
    Scope,
    ScopeKind,
    SyncSettings,
)
from contactsync.secrets import SecretStore, secret_ref
from contactsync.store.base import Store, Write

_ALIAS = re.compile(r"\+[^@]*@")


def default_settings(org_id: str, account: ConnectedAccount) -> SyncSettings:
    """Two-way sync with the seeds' behaviour: deletes in Salesforce propagate (seed 003), a
    record deleted in a mailbox's synced folder or in the phone system is restored from the hub
    unless auto-removal is switched on, address books receive the business contacts."""
    provider = account.provider
    # Mailboxes and the phone system follow hub archives; Salesforce deletes reach the hub.
    auto = AutoRemoval(from_provider=False, to_provider=True)
    objects = ObjectChoice.CONTACTS
    scope = Scope(kind=ScopeKind.ALL)
    if provider is Provider.SALESFORCE:
        auto = AutoRemoval(from_provider=True, to_provider=False)
        objects = ObjectChoice.BOTH
    return SyncSettings(
        org_id=org_id,
        id=f"sync-{account.id}",
        account_id=account.id,
        direction=Direction.BOTH,
        objects=objects,
        scope=scope,
        auto_removal=auto,
    )


@dataclass
class Setup:
    store: Store
    secrets: SecretStore
    now: Callable[[], datetime] = utcnow

    def create_organisation(
        self, name: str, admin_email: str, *, org_id: str | None = None, region: str = "US"
    ) -> tuple[Organisation, User]:
        org_id = org_id or f"org-{uuid.uuid4().hex[:12]}"
        org = Organisation.parse(
            {"org_id": org_id, "id": org_id, "name": name, "default_region": region}
        )
        admin = User.parse(
            {
                "org_id": org_id,
                "id": f"u-{uuid.uuid4().hex[:12]}",
                "email": {"address": admin_email},
                "role": Role.ADMIN.value,
            }
        )
        self.store.transact([Write(org, 0), Write(admin, 0)])
        return org, admin

    def add_user(self, org_id: str, email: str, name: str = "", role: Role = Role.USER) -> User:
        key = EmailAddress(address=email).key
        if self.store.lookup(User, org_id, "email", key, limit=1):
            raise InvalidInput.one("email", "a user with this email already exists")
        user = User.parse(
            {
                "org_id": org_id,
                "id": f"u-{uuid.uuid4().hex[:12]}",
                "email": {"address": email},
                "name": name,
                "role": role.value,
            }
        )
        return self.store.create(user)

    def connect(
        self,
        org_id: str,
        owner: User,
        provider: Provider,
        address: str,
        config: dict[str, str],
        credentials: dict[str, str],
        settings: SyncSettings | None = None,
    ) -> tuple[ConnectedAccount, SyncSettings]:
        """Connects an account: stores its credentials, the account and its sync settings (the
        initial sync starts on the next run, status in_progress)."""
        if provider in (Provider.GOOGLE, Provider.MICROSOFT, Provider.EXCHANGE) and _ALIAS.search(
            address
        ):
            raise InvalidInput.one(
                "address", "alias addresses cannot be connected; connect the mailbox itself"
            )
        existing = self.store.lookup(
            ConnectedAccount, org_id, "address", f"{provider.value}:{address.lower()}", limit=5
        )
        if any(a.status is not AccountStatus.DELETED for a in existing):
            raise InvalidInput.one("address", "this account is already connected")
        account_id = f"acc-{provider.value}-{uuid.uuid4().hex[:8]}"
        ref = secret_ref(org_id, account_id)
        account = ConnectedAccount.parse(
            {
                "org_id": org_id,
                "id": account_id,
                "provider": provider.value,
                "owner_user_id": owner.id,
                "address": address,
                "secret_ref": ref,
                "config": config,
                "created_at": self.now(),
            }
        )
        sync = settings or default_settings(org_id, account)
        self.secrets.put(ref, credentials)
        stored_account, stored_sync = self.store.transact([Write(account, 0), Write(sync, 0)])
        assert isinstance(stored_account, ConnectedAccount)
        assert isinstance(stored_sync, SyncSettings)
        return stored_account, stored_sync
