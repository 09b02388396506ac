"""What every route needs, injected once: settings, store, secrets, the pull inbox, an HTTP
session for provider calls, and (where the runtime has them) the connectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from contactsync.api.auth import Caller, authenticate
from contactsync.api.queue import PullInbox
from contactsync.api.settings import ApiSettings
from contactsync.api.webhooks import derive_secret
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.base import utcnow
from contactsync.domain.errors import NotFound
from contactsync.domain.org import Organisation
from contactsync.secrets import SecretStore
from contactsync.store.base import Store
from contactsync.sync.spokes import ConnectorFactory

GRAPH_STATE = "graph-client-state"
SALESFORCE_KEY = "salesforce-endpoint"


@dataclass
class ApiContext:
    settings: ApiSettings
    store: Store
    secrets: SecretStore
    inbox: PullInbox
    http: requests.Session = field(default_factory=requests.Session)
    # Builds a connector for previews and the mapping studio; None where the runtime has none.
    connectors: ConnectorFactory | None = None
    now: Callable[[], datetime] = utcnow

    def caller(self, app: APIGatewayHttpResolver) -> Caller:
        event = app.current_event
        headers = {k.lower(): v for k, v in (event.headers or {}).items()}
        return authenticate(self.settings, self.store, event.raw_event, headers, self.now())

    def region(self, org_id: str) -> str:
        org = self.store.find(Organisation, org_id, org_id)
        return org.default_region if org else "US"

    def account(self, caller: Caller, account_id: str) -> ConnectedAccount:
        """An account the caller may manage: admins any of the organisation's, users their own.
        Others' are indistinguishable from absent."""
        account = self.store.find(ConnectedAccount, caller.org_id, account_id)
        if account is None or not (caller.is_admin or account.owner_user_id == caller.user_id):
            raise NotFound("connected_account", account_id)
        return account

    # ---- webhook addresses and secrets ------------------------------------------------------

    def webhook_url(self, account: ConnectedAccount) -> str | None:
        base = f"{self.settings.public_base_url}/webhooks/{account.provider.value}"
        path = f"{base}/{account.org_id}/{account.id}"
        if account.provider is Provider.SALESFORCE:
            return f"{path}?key={self.salesforce_key(account.org_id, account.id)}"
        if account.provider in (Provider.MICROSOFT, Provider.AIRCALL):
            return path
        return None

    def graph_client_state(self, org_id: str, account_id: str) -> str:
        return derive_secret(self.settings.webhook_key, GRAPH_STATE, org_id, account_id)

    def salesforce_key(self, org_id: str, account_id: str) -> str:
        return derive_secret(self.settings.webhook_key, SALESFORCE_KEY, org_id, account_id)[:32]
