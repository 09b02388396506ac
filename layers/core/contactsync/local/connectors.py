"""Building each connected account's connector in the local runtime: its credentials from the
local secret store, HTTPS trusting the sandbox CA when the account's config names one, or an
injected session (in-process sandboxes in tests and benchmarks)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import requests

from contactsync.connectors.base import Connector
from contactsync.connectors.http import Clock
from contactsync.domain.accounts import ConnectedAccount
from contactsync.secrets import SecretStore
from contactsync.sync.spokes import ConnectorFactory


def https_session(ca_bundle: str | None) -> requests.Session:
    session = requests.Session()
    if ca_bundle:
        # REQUESTS_CA_BUNDLE in the environment would otherwise override session.verify.
        session.trust_env = False
        session.verify = ca_bundle
    return session


def connector_factory(
    secrets: SecretStore,
    *,
    clock: Clock | None = None,
    sessions: Mapping[str, requests.Session] | None = None,
) -> ConnectorFactory:
    """A factory that caches one connector per account (token caches, pacers and webhook state
    live in it)."""
    built: dict[str, Connector] = {}

    def build(account: ConnectedAccount) -> Connector:
        if account.id in built:
            return built[account.id]
        if account.secret_ref is None:
            raise ValueError(f"account {account.id} has no credentials")
        module = importlib.import_module(f"contactsync.connectors.{account.provider.value}")
        ref = account.secret_ref
        credentials = secrets.get(ref)

        def rotated(new_values: dict[str, str]) -> None:
            secrets.put(ref, {**secrets.get(ref), **new_values})

        session = (sessions or {}).get(account.provider.value) or https_session(
            account.config.get("ca_bundle")
        )
        connector: Connector = module.from_account(
            account, credentials, session=session, clock=clock, on_secret_rotated=rotated
        )
        built[account.id] = connector
        return connector

    return build
