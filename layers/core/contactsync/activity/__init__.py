"""Activity capture (issue 7): readers of email, meeting and call metadata per provider, and
the capture that stores what involves gallery contacts.

- ``gmail``: Gmail (history) and Google Calendar (sync tokens);
- ``outlook``: Graph delta on the inbox and sent items, and on a calendar view;
- ``aircall``: the calls API and call webhooks;
- ``capture``: ``ActivityCapture(store, org_id, readers).run()``.

``reader_factory`` builds an account's readers from its stored credentials, like the
connectors' factory: an injected ``requests.Session`` per provider (the sandboxes in-process),
or HTTPS trusting the account's ``ca_bundle``. Accounts need the read scopes: Google
``gmail.readonly`` and ``calendar.readonly``; Microsoft ``Mail.Read`` and ``Calendars.Read``;
Aircall's API key or token as for contacts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import requests

from contactsync.activity import aircall, gmail, outlook
from contactsync.activity.base import ActivityReader
from contactsync.activity.capture import ActivityCapture, CaptureReport, ReaderFactory
from contactsync.connectors.base import ConnectorError
from contactsync.connectors.http import Clock
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.secrets import SecretStore

log = logging.getLogger(__name__)

__all__ = [
    "ActivityCapture",
    "CaptureReport",
    "ReaderFactory",
    "reader_factory",
    "readers_for",
    "register_call_webhook",
]


def readers_for(
    account: ConnectedAccount,
    credentials: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    on_secret_rotated: object = None,
) -> Sequence[ActivityReader]:
    """The readers of one account (none for providers without activity)."""
    if session is None and account.config.get("ca_bundle"):
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.verify = account.config["ca_bundle"]
    config = {**account.config, "user": account.config.get("user") or account.address}
    if account.provider is Provider.GOOGLE:
        return gmail.readers(config, credentials, session=session, clock=clock)
    if account.provider is Provider.MICROSOFT:
        return outlook.readers(
            config,
            credentials,
            address=account.address,
            session=session,
            clock=clock,
            on_secret_rotated=on_secret_rotated,
        )
    if account.provider is Provider.AIRCALL:
        return aircall.readers(config, credentials, session=session, clock=clock)
    return []


def reader_factory(
    secrets: SecretStore,
    *,
    clock: Clock | None = None,
    sessions: Mapping[str, requests.Session] | None = None,
) -> ReaderFactory:
    """Builds (and caches) each account's readers from the secret store."""
    built: dict[str, Sequence[ActivityReader]] = {}

    def build(account: ConnectedAccount) -> Sequence[ActivityReader]:
        if account.id in built:
            return built[account.id]
        if account.secret_ref is None:
            raise ValueError(f"account {account.id} has no credentials")
        ref = account.secret_ref

        def rotated(new_values: dict[str, str]) -> None:
            secrets.put(ref, {**secrets.get(ref), **new_values})

        readers = readers_for(
            account,
            secrets.get(ref),
            session=(sessions or {}).get(account.provider.value),
            clock=clock,
            on_secret_rotated=rotated,
        )
        register_call_webhook(account, readers, secrets)
        built[account.id] = readers
        return readers

    return build


def register_call_webhook(
    account: ConnectedAccount, readers: Sequence[ActivityReader], secrets: SecretStore
) -> None:
    """Aircall call events reach the API's calls route (``calls_webhook_url``, which the API
    writes into the account's config) as they happen, instead of at the next read. Registered
    once per URL; a failure leaves the periodic read, which misses nothing, to capture the
    calls."""
    url = account.config.get("calls_webhook_url")
    if account.provider is not Provider.AIRCALL or not url or account.secret_ref is None:
        return
    current = secrets.get(account.secret_ref)
    if current.get(aircall.CALL_WEBHOOK_URL) == url and current.get(aircall.CALL_WEBHOOK_ID):
        return
    for reader in readers:
        if isinstance(reader, aircall.AircallCallsReader):
            try:
                found = reader.ensure_webhook(url, current) or {}
            except ConnectorError as exc:
                log.warning(
                    "call webhook registration failed",
                    extra={"account_id": account.id, "code": exc.code},
                )
                return
            fresh = secrets.get(account.secret_ref)
            secrets.put(account.secret_ref, {**fresh, **found, aircall.CALL_WEBHOOK_URL: url})
