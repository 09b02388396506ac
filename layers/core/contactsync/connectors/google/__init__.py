"""Google Contacts (Gmail): one user's contacts through the People API v1, on google-auth's
``AuthorizedSession``.

``from_account`` builds the connector for one connected account:

- ``account.config`` (all optional): ``api_base`` (the server root, default
  ``https://people.googleapis.com/``), ``token_uri`` (default
  ``https://oauth2.googleapis.com/token``), ``ca_bundle`` (trusted for both when given),
  ``label`` (the sync label, "Salesforce"), ``page_size`` (1000), ``default_region`` (US: how
  numbers without a country code are read), ``timeout_seconds`` (30), ``requests_per_minute``
  (our own budget; unset), ``backoff_initial_seconds`` (2) and ``backoff_max_seconds`` (64)
  for 429s, ``max_attempts`` (8), ``find_created_hours`` (24);
- ``secrets``: ``client_id``, ``client_secret``, ``refresh_token`` (and optionally a current
  ``access_token``). A refresh token Google rotates is reported through
  ``on_secret_rotated({"refresh_token": ...})``.
- ``session``: a ``requests.Session`` that carries the traffic (a sandbox mounted in-process,
  or a CA bundle); its adapters and TLS settings are copied onto the AuthorizedSession and
  token refreshes go through it.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from contactsync.connectors.google.client import GoogleConfig, Secrets, SecretsCallback
from contactsync.connectors.google.connector import GoogleConnector
from contactsync.connectors.google.models import HUB_ID_KEY, STREAM
from contactsync.connectors.http import Clock
from contactsync.domain.accounts import ConnectedAccount, Provider

__all__ = ["HUB_ID_KEY", "STREAM", "GoogleConfig", "GoogleConnector", "from_account"]


def from_account(
    account: ConnectedAccount,
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: SecretsCallback | None = None,
) -> GoogleConnector:
    """The connector for ``account``. Raises AuthError (``missing_credentials``) when a secret
    is missing, ValueError (pydantic's) for an invalid config."""
    if account.provider is not Provider.GOOGLE:
        raise ValueError(f"not a Google account: {account.provider.value}")
    return GoogleConnector(
        GoogleConfig.from_mapping(account.config),
        Secrets.from_mapping(secrets),
        session=session,
        clock=clock,
        on_secret_rotated=on_secret_rotated,
    )
