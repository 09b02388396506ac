"""Aircall (the cloud phone system): contacts through the Public API v1, plain ``requests``.

``from_account`` builds the connector for one connected account:

- ``account.config`` (all optional): ``api_base`` (default ``https://api.aircall.io/v1``),
  ``webhook_url`` and ``webhook_name`` (``prepare()`` registers the contact.* webhook there),
  ``rate_limit_per_minute`` (120), ``requests_per_minute`` (our budget; default the limit less
  ``headroom``, 0.25), ``reconcile_hours`` (24), ``delete_rescan_minutes`` (60; empty or
  ``off``: deletes wait for the periodic full scan), ``per_page`` (50), ``query_cap`` (10000),
  ``default_region`` (US), ``timeout_seconds`` (30), ``ca_bundle``;
- ``secrets``: ``api_id`` + ``api_token`` (Basic), or ``access_token`` (OAuth bearer); plus
  ``webhook_id`` / ``webhook_token``, which ``prepare()`` writes back through
  ``on_secret_rotated``.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from contactsync.connectors.aircall.client import (
    AircallConfig,
    Credentials,
    authorize_url,
    exchange_code,
)
from contactsync.connectors.aircall.connector import AircallConnector, SecretsCallback
from contactsync.connectors.aircall.errors import RemoteNotFound, WebhookRejected
from contactsync.connectors.aircall.models import STREAM
from contactsync.connectors.http import Clock
from contactsync.domain.accounts import ConnectedAccount, Provider

__all__ = [
    "STREAM",
    "AircallConfig",
    "AircallConnector",
    "RemoteNotFound",
    "WebhookRejected",
    "authorize_url",
    "exchange_code",
    "from_account",
]


def from_account(
    account: ConnectedAccount,
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: SecretsCallback | None = None,
) -> AircallConnector:
    """The connector for ``account``. Raises AuthError (``missing_credentials``) when the
    secrets hold neither an API key nor an access token, ValueError for an invalid config."""
    if account.provider is not Provider.AIRCALL:
        raise ValueError(f"not an Aircall account: {account.provider.value}")
    return AircallConnector(
        AircallConfig.from_mapping(account.config),
        Credentials.from_secrets(secrets),
        session=session,
        clock=clock,
        secrets=secrets,
        on_secret_rotated=on_secret_rotated,
    )
