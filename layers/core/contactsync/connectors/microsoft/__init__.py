"""Microsoft 365 (Outlook contacts) through Microsoft Graph v1.0, with msal and ``requests``.

``from_account`` builds the connector for one connected account:

- ``account.config``: ``authority`` (``https://login.microsoftonline.com/{tenant}``; or
  ``tenant_id``), ``graph_base`` (default ``https://graph.microsoft.com/v1.0``), ``user_id``
  (the mailbox; default the account's address), and optionally ``folder_name`` ("Salesforce
  Contacts"), ``category`` ("Salesforce"), ``category_color``, ``default_region`` (US),
  ``page_size`` (200), ``batch_size`` (20), ``requests_per_minute``, ``timeout_seconds``,
  ``move_window_minutes`` (30), ``webhook_url`` / ``lifecycle_url`` and
  ``subscription_minutes`` (4230) for change notifications, ``ca_bundle``;
- ``secrets``: ``client_id`` and ``client_secret`` (app-only tokens, client credentials), plus
  ``refresh_token`` for a user who connected through OAuth (delegated tokens; rotations are
  reported through ``on_secret_rotated``), and ``webhook_client_state`` for subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from contactsync.connectors.http import Clock
from contactsync.connectors.microsoft.client import Credentials, MicrosoftConfig
from contactsync.connectors.microsoft.connector import MicrosoftConnector, SecretsCallback
from contactsync.connectors.microsoft.errors import Conflict, RemoteNotFound
from contactsync.connectors.microsoft.models import STREAM
from contactsync.connectors.microsoft.subscriptions import Subscription
from contactsync.domain.accounts import ConnectedAccount, Provider

__all__ = [
    "STREAM",
    "Conflict",
    "Credentials",
    "MicrosoftConfig",
    "MicrosoftConnector",
    "RemoteNotFound",
    "Subscription",
    "from_account",
]


def from_account(
    account: ConnectedAccount,
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: SecretsCallback | None = None,
) -> MicrosoftConnector:
    """The connector for ``account``. Raises AuthError (``missing_credentials``) without a
    client id and secret, ValueError for an invalid config. Makes no request: msal discovers
    the authority on the first token."""
    if account.provider is not Provider.MICROSOFT:
        raise ValueError(f"not a Microsoft account: {account.provider.value}")
    config = MicrosoftConfig.from_mapping(account.config)
    config.authority_url()  # fail early on a config without authority or tenant
    return MicrosoftConnector(
        config,
        Credentials.from_secrets(secrets),
        user=account.address,
        session=session,
        clock=clock,
        secrets=secrets,
        on_secret_rotated=on_secret_rotated,
    )
