"""Graph change notifications on the mailbox's contact folders (issue 6 builds on these).

Creating a subscription makes Graph validate the notification URL first (the receiver echoes
``validationToken``); a subscription lives a few days at most and is renewed by PATCHing its
``expirationDateTime``. Notifications only say that something changed: the receiver checks
``clientState`` and asks for a pull, which reads the folders' deltas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from contactsync.connectors.base import InvalidRequest
from contactsync.connectors.http import Clock
from contactsync.connectors.microsoft.client import GraphClient, path_id
from contactsync.connectors.microsoft.models import parse_time

CHANGE_TYPES = "created,updated,deleted"
MAX_CLIENT_STATE = 128


@dataclass(frozen=True)
class Subscription:
    id: str
    resource: str
    notification_url: str
    expires_at: datetime
    lifecycle_url: str | None = None

    @classmethod
    def from_graph(cls, raw: dict[str, Any], now: datetime) -> Subscription | None:
        sid, resource, url = raw.get("id"), raw.get("resource"), raw.get("notificationUrl")
        if not (isinstance(sid, str) and isinstance(resource, str) and isinstance(url, str)):
            return None
        expiry = raw.get("expirationDateTime")
        lifecycle = raw.get("lifecycleNotificationUrl")
        return cls(
            id=sid,
            resource=resource,
            notification_url=url,
            expires_at=parse_time(expiry if isinstance(expiry, str) else None, now),
            lifecycle_url=lifecycle if isinstance(lifecycle, str) else None,
        )


def folder_resource(user: str, folder: str) -> str:
    return f"/users/{user}/contactFolders/{folder}/contacts"


def _expiry(clock: Clock, minutes: int) -> str:
    # A minute short of the cap: the service measures from its own clock.
    moment = clock.now() + timedelta(minutes=minutes - 1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _acceptable_url(url: str) -> bool:
    """https, or http on the loopback address: a local `contactsync serve` receiving from a
    local Graph (the sandbox); the real Graph refuses that at its validation handshake."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    return parts.scheme == "https" or (parts.scheme == "http" and loopback)


def create(
    client: GraphClient,
    clock: Clock,
    *,
    resource: str,
    notification_url: str,
    client_state: str,
    minutes: int,
    lifecycle_url: str | None = None,
) -> Subscription:
    if not client_state or len(client_state) > MAX_CLIENT_STATE:
        raise InvalidRequest("client_state", "clientState needs 1 to 128 characters")
    if not _acceptable_url(notification_url):
        raise InvalidRequest("notification_url", "Graph posts notifications to https only")
    body: dict[str, Any] = {
        "changeType": CHANGE_TYPES,
        "notificationUrl": notification_url,
        "resource": resource,
        "expirationDateTime": _expiry(clock, minutes),
        "clientState": client_state,
    }
    if lifecycle_url:
        body["lifecycleNotificationUrl"] = lifecycle_url
    # Not idempotent (a retry after a lost answer makes a second subscription), but harmless:
    # notifications are deduplicated downstream and prepare() removes extra ones.
    raw = client.post_json("subscriptions", "subscriptions.create", body, idempotent=False)
    found = Subscription.from_graph(raw, clock.now())
    if found is None:
        raise InvalidRequest("bad_response", "Graph's subscription answer had no id")
    return found


def renew(client: GraphClient, clock: Clock, subscription_id: str, minutes: int) -> Subscription:
    response = client.request(
        "PATCH",
        client.url(f"subscriptions/{path_id(subscription_id)}"),
        "subscriptions.renew",
        json={"expirationDateTime": _expiry(clock, minutes)},
    )
    raw = response.json() if response.content else {}
    found = Subscription.from_graph(raw if isinstance(raw, dict) else {}, clock.now())
    if found is None:
        raise InvalidRequest("bad_response", "Graph's subscription answer had no id")
    return found


def delete(client: GraphClient, subscription_id: str) -> None:
    client.request(
        "DELETE", client.url(f"subscriptions/{path_id(subscription_id)}"), "subscriptions.delete"
    )


def listing(client: GraphClient, clock: Clock) -> Iterator[Subscription]:
    """The app's subscriptions (Graph lists those of the calling app)."""
    now = clock.now()
    for page in client.pages("subscriptions", "subscriptions.list"):
        for raw in page:
            found = Subscription.from_graph(raw, now)
            if found is not None:
                yield found
