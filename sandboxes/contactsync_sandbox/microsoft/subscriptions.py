"""Change notification subscriptions (webhooks) on contact folders.

Creation validates the notification URL first (Graph POSTs ``?validationToken=...`` and wants
200 ``text/plain`` with the decoded token back within 10 s, else 400). Lifetimes are capped
(10,070 minutes for Outlook resources on live tenants), ``clientState`` holds at most 128
characters, a mailbox holds at most 1,000 subscriptions. Notifications and lifecycle events go
through the shared WebhookDispatcher (queued, retried on the virtual clock for about 4 hours);
when a change notification is given up on, a ``missed`` lifecycle event follows. Expired
subscriptions are removed and stop delivering; ``reauthorizationRequired`` is sent once as the
expiry approaches (and on demand through the admin surface).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.webhooks import WebhookDispatcher
from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.models import Change, derive_uuid
from contactsync_sandbox.microsoft.settings import Limits

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
LIFECYCLE_SUFFIX = "#lifecycle"
_RESOURCE = re.compile(
    r"^/?(?:v1\.0/)?(?:(me)|users/([^/]+))/(?:contacts|contactfolders/([^/]+)/contacts)/?$",
    re.IGNORECASE,
)
_KEY = re.compile(r"\('([^']*)'\)")


def graph_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def parse_datetime(text: Any) -> datetime:
    if not isinstance(text, str):
        raise ValueError("not a string")
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    moment = datetime.fromisoformat(trimmed)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_resource(resource: str) -> tuple[str, str | None]:
    """(user reference or "me", folder reference or None for the default folder)."""
    normalized = _KEY.sub(lambda m: "/" + m.group(1), resource.strip())
    match = _RESOURCE.match(normalized)
    if match is None:
        raise err.extension_error(
            400, f"Resource '{resource}' is not supported for change notifications."
        )
    return ("me" if match.group(1) else match.group(2)), match.group(3)


@dataclass
class Subscription:
    id: str
    resource: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: float
    app_id: str
    creator_id: str
    mailbox_id: str
    folder_id: str
    latest_tls: str = "v1_2"
    reauthorization_sent: bool = False

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_datetime(datetime.fromtimestamp(self.expiration, UTC)),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    def __init__(
        self,
        seed: int,
        clock: VirtualClock,
        limits: Limits,
        dispatcher: WebhookDispatcher,
        tenant_id: str,
    ) -> None:
        self.seed = seed
        self.clock = clock
        self.limits = limits
        self.dispatcher = dispatcher
        self.tenant_id = tenant_id
        self.items: dict[str, Subscription] = {}
        self.counter = 0
        self.missed = 0
        self.next_check = 0.0  # nothing expires or needs a warning before this instant

    # ---- creation and renewal ----------------------------------------------------------------

    def check_url(self, url: Any, name: str) -> str:
        if not isinstance(url, str) or not url:
            raise err.subscription_error(f"The {name} is required.")
        parts = urlsplit(url)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme == "https" or (
            parts.scheme == "http" and local and self.limits.allow_http_localhost
        ):
            return url
        raise err.subscription_error(f"The {name} must use the HTTPS protocol: '{url}'.")

    def check_expiration(self, raw: Any) -> float:
        try:
            moment = parse_datetime(raw)
        except ValueError as exc:
            raise err.subscription_error("The expirationDateTime is not a valid date.") from exc
        now = self.clock.now()
        if moment <= now:
            raise err.extension_error(400, "Subscription expiration must be in the future.")
        if moment > now + timedelta(minutes=self.limits.subscription_max_minutes):
            raise err.GraphError(
                400,
                "ExtensionError",
                f"Subscription expiration can only be {self.limits.subscription_max_minutes} "
                "minutes in the future.",
            )
        return moment.timestamp()

    def validate_endpoint(self, url: str) -> None:
        """Graph's validation handshake; raises its 400 when the endpoint does not answer it."""
        self.counter += 1
        request_id = derive_uuid(self.seed, "validation", self.counter)
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {request_id}"
        )
        separator = "&" if "?" in url else "?"
        try:
            answer = self.dispatcher.session.post(
                f"{url}{separator}validationToken={quote(token, safe='')}",
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.limits.subscription_validation_timeout_seconds,
            )
        except requests.Timeout as exc:
            raise err.subscription_error("Subscription validation request timed out.") from exc
        except requests.RequestException as exc:
            raise err.subscription_error(
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request."
            ) from exc
        if answer.status_code != 200:
            raise err.subscription_error(
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request."
            )
        content_type = answer.headers.get("Content-Type", "")
        if not content_type.lower().startswith("text/plain") or answer.text != token:
            raise err.subscription_error(
                "Subscription validation request failed. Response must exactly match "
                "validationToken query parameter."
            )

    def create(
        self,
        body: dict[str, Any],
        *,
        app_id: str,
        creator_id: str,
        mailbox_id: str,
        folder_id: str,
        expiration: float,
    ) -> Subscription:
        mailbox_count = sum(1 for s in self.items.values() if s.mailbox_id == mailbox_id)
        if mailbox_count >= self.limits.subscriptions_per_mailbox:
            raise err.extension_error(403, "Maximum number of subscriptions has been reached")
        self.counter += 1
        subscription = Subscription(
            id=derive_uuid(self.seed, "subscription", self.counter),
            resource=body["resource"],
            change_types=parse_change_types(body.get("changeType")),
            notification_url=body["notificationUrl"],
            lifecycle_url=body.get("lifecycleNotificationUrl"),
            client_state=body.get("clientState"),
            expiration=expiration,
            app_id=app_id,
            creator_id=creator_id,
            mailbox_id=mailbox_id,
            folder_id=folder_id,
            latest_tls=body.get("latestSupportedTlsVersion") or "v1_2",
        )
        self.items[subscription.id] = subscription
        self.next_check = 0.0
        return subscription

    def renew(self, subscription: Subscription, expiration: float) -> None:
        subscription.expiration = expiration
        subscription.reauthorization_sent = False
        self.next_check = 0.0

    def get(self, subscription_id: str, app_id: str) -> Subscription:
        found = self.items.get(subscription_id)
        if found is None or found.app_id != app_id:
            raise err.resource_not_found()
        return found

    def delete(self, subscription: Subscription) -> None:
        self.items.pop(subscription.id, None)
        self.dispatcher.drop_subscription(subscription.id)
        self.dispatcher.drop_subscription(subscription.id + LIFECYCLE_SUFFIX)

    # ---- delivery ----------------------------------------------------------------------------

    def notify(self, user_id: str, change: Change) -> int:
        """Queues one notification per matching subscription; returns how many."""
        queued = 0
        now = self.clock.timestamp()
        for sub in self.items.values():
            if (
                sub.mailbox_id != user_id
                or sub.folder_id != change.folder_id
                or change.change_type not in sub.change_types
                or sub.expiration <= now
            ):
                continue
            path = f"Users/{user_id}/Contacts/{change.contact_id}"
            resource_data: dict[str, Any] = {
                "@odata.type": "#Microsoft.Graph.Contact",
                "@odata.id": path,
            }
            if change.etag is not None:
                resource_data["@odata.etag"] = change.etag
            resource_data["id"] = change.contact_id
            notification = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_datetime(
                    datetime.fromtimestamp(sub.expiration, UTC)
                ),
                "changeType": change.change_type,
                "resource": path,
                "resourceData": resource_data,
                "clientState": sub.client_state,
                "tenantId": self.tenant_id,
            }
            self.dispatcher.enqueue(sub.notification_url, {"value": [notification]}, sub.id)
            queued += 1
        return queued

    def lifecycle(self, subscription: Subscription, event: str) -> bool:
        """Queues a lifecycle notification; False when the subscription has no lifecycle URL."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        if event == "subscriptionRemoved":
            self.items.pop(subscription.id, None)
            self.dispatcher.drop_subscription(subscription.id)
        if subscription.lifecycle_url is None:
            return False
        body = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": graph_datetime(
                        datetime.fromtimestamp(subscription.expiration, UTC)
                    ),
                    "tenantId": self.tenant_id,
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        self.dispatcher.enqueue(
            subscription.lifecycle_url, body, subscription.id + LIFECYCLE_SUFFIX
        )
        return True

    def on_give_up(self, subscription_id: str) -> None:
        if subscription_id.endswith(LIFECYCLE_SUFFIX):
            return
        self.missed += 1
        subscription = self.items.get(subscription_id)
        if subscription is not None:
            self.lifecycle(subscription, "missed")

    def tick(self) -> None:
        """Removes expired subscriptions; warns those about to expire (once per renewal)."""
        now = self.clock.timestamp()
        if now < self.next_check:
            return
        lead = self.limits.reauthorization_lead_minutes * 60
        upcoming = float("inf")
        for sub in list(self.items.values()):
            if sub.expiration <= now:
                self.delete(sub)
                continue
            if not sub.reauthorization_sent and sub.expiration - now <= lead:
                sub.reauthorization_sent = True
                self.lifecycle(sub, "reauthorizationRequired")
            warn_at = sub.expiration if sub.reauthorization_sent else sub.expiration - lead
            upcoming = min(upcoming, warn_at)
        self.next_check = upcoming

    # ---- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "counter": self.counter,
            "missed": self.missed,
            "items": [asdict(s) for s in self.items.values()],
        }

    def load_json(self, raw: dict[str, Any]) -> None:
        self.counter = int(raw["counter"])
        self.missed = int(raw["missed"])
        self.items = {s["id"]: Subscription(**s) for s in raw["items"]}
        self.next_check = 0.0

    def clear(self) -> None:
        for sub in list(self.items.values()):
            self.delete(sub)
        self.counter = 0
        self.missed = 0


def parse_change_types(raw: Any) -> list[str]:
    if not isinstance(raw, str) or not raw.strip():
        raise err.subscription_error("The changeType is required.")
    types = [t.strip() for t in raw.split(",") if t.strip()]
    for change_type in types:
        if change_type not in CHANGE_TYPES:
            raise err.subscription_error(f"'{change_type}' is not a valid changeType for contacts.")
    return types
