"""Salesforce: Contacts, Leads and Person Accounts through simple-salesforce (REST and Bulk
API 2.0), in direct mode on a session from the OAuth token endpoint.

``from_account`` builds the connector for one connected account:

- ``account.config``: ``instance_url`` (from the token response when absent), ``token_url``
  (default ``{login_url}/services/oauth2/token``, ``login_url`` default
  https://login.salesforce.com), ``api_version`` (59.0), ``username`` (the JWT bearer's
  subject), ``user_id`` (the connected user; else from the token's identity URL),
  ``ca_bundle``; what to sync: ``streams`` ("Contact,Lead"), ``person_accounts``
  ("true": the "Account" stream), ``scope`` (all | mine | list_view) with ``list_view_id``,
  ``external_id_field`` (Contactsync_Id__c; "" for an org without it); tuning:
  ``bulk_threshold``, ``bulk_max_records``, ``bulk_poll_seconds``, ``bulk_max_wait_seconds``,
  ``query_batch_size``, ``daily_api_budget``, ``api_usage_ceiling``,
  ``throttle_backoff_seconds``, ``requests_per_minute``, ``account_cache_seconds``,
  ``default_region``, ``timeout_seconds``;
- ``secrets``: ``client_id`` and ``client_secret`` (the connected app), ``refresh_token``
  (or ``jwt_private_key`` / ``private_key``, PEM, for the JWT bearer grant), optionally an
  ``access_token`` to start with. A rotated refresh token is written back through
  ``on_secret_rotated``.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from contactsync.connectors.http import Clock
from contactsync.connectors.salesforce.client import Credentials, SalesforceConfig, SecretsCallback
from contactsync.connectors.salesforce.connector import FieldInfo, SalesforceConnector
from contactsync.connectors.salesforce.models import ACCOUNT, CONTACT, LEAD, NOT_PROVIDED
from contactsync.domain.accounts import ConnectedAccount, Provider

__all__ = [
    "ACCOUNT",
    "CONTACT",
    "LEAD",
    "NOT_PROVIDED",
    "FieldInfo",
    "SalesforceConfig",
    "SalesforceConnector",
    "from_account",
]


def from_account(
    account: ConnectedAccount,
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: SecretsCallback | None = None,
) -> SalesforceConnector:
    """The connector for ``account``. Raises AuthError (``missing_credentials``) when the
    secrets hold no grant, ValueError (pydantic's) for an invalid config. Makes no request."""
    if account.provider is not Provider.SALESFORCE:
        raise ValueError(f"not a Salesforce account: {account.provider.value}")
    return SalesforceConnector(
        SalesforceConfig.from_mapping(account.config),
        Credentials.from_secrets(secrets),
        session=session,
        clock=clock,
        on_secret_rotated=on_secret_rotated,
    )
