"""Aircall webhooks: registration (``/v1/webhooks``) and delivery.

A delivery is a POST of ``{"resource", "event", "timestamp", "token", "data"}``; there is no
signature, the receiver compares ``token`` with the one returned when the webhook was created.
Aircall delivers at least once and in no particular order, times out after 5 seconds, retries
a failed event for hours, deactivates the webhook (``active: false``) after repeated failures,
and re-activates it if one of the retries succeeds; an admin re-enables it with ``PUT``.

Here an event first waits in an outbox until its release time (``call.ended`` comes about 30 s
after the call; the ``reorder_window_seconds`` switch spreads releases at random, the
``duplicate_rate`` switch adds second copies), then goes to the shared
``core.webhooks.WebhookDispatcher``, which posts it and retries on the virtual clock.
``deliver()`` moves both along; nothing is sent before it is called.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from contactsync_sandbox.aircall.exceptions import BadRequest, NotFound
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.webhooks import Delivery, WebhookDispatcher

MAX_WEBHOOKS = 100  # per company
# Retries of a failed event: growing gaps over about eleven hours.
DEFAULT_BACKOFF = (10, 30, 60, 300, 900, 1800, 3600, 3600, 7200, 7200, 7200, 7200)
DEFAULT_FAILURES_BEFORE_DEACTIVATION = 10
CALL_ENDED_DELAY_SECONDS = 30

CONTACT_EVENTS = ("contact.created", "contact.updated", "contact.deleted")
CALL_EVENTS = (
    "call.created",
    "call.ringing_on_agent",
    "call.agent_declined",
    "call.answered",
    "call.transferred",
    "call.external_transferred",
    "call.unsuccessful_transfer",
    "call.hungup",
    "call.ended",
    "call.hold",
    "call.unhold",
    "call.ivr_option_selected",
    "call.comm_assets_generated",
    "call.voicemail_left",
    "call.assigned",
    "call.archived",
    "call.tagged",
    "call.untagged",
    "call.commented",
)
OTHER_EVENTS = (
    *(
        f"user.{name}{suffix}"
        for suffix in ("", ".v2")
        for name in (
            "created",
            "deleted",
            "connected",
            "disconnected",
            "opened",
            "closed",
            "wut_start",
            "wut_end",
        )
    ),
    "number.created",
    "number.opened",
    "number.closed",
    "number.deleted",
    "message.sent",
    "message.received",
    "message.status_updated",
    "integration.deleted",
)
ALL_EVENTS = (*CALL_EVENTS, *CONTACT_EVENTS, *OTHER_EVENTS)


def _iso_millis(timestamp: int) -> str:
    """``2020-03-24T19:51:24.000Z``, how a webhook's ``created_at`` is spelled."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Webhook:
    webhook_id: str
    url: str
    custom_name: str
    events: list[str]
    token: str
    created_at: int
    owner: str
    active: bool = True
    consecutive_failures: int = 0

    def to_json(self, api_base: str) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "direct_link": f"{api_base}/webhooks/{self.webhook_id}",
            "created_at": _iso_millis(self.created_at),
            "url": self.url,
            "active": self.active,
            "events": list(self.events),
            "token": self.token,
            "custom_name": self.custom_name,
        }

    def state(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "url": self.url,
            "custom_name": self.custom_name,
            "events": list(self.events),
            "token": self.token,
            "created_at": self.created_at,
            "owner": self.owner,
            "active": self.active,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass
class WebhookSettings:
    require_https: bool = True
    failures_before_deactivation: int = DEFAULT_FAILURES_BEFORE_DEACTIVATION
    duplicate_rate: float = 0.0  # share of events delivered twice
    reorder_window_seconds: float = 0.0  # > 0: events released at random within this window

    def to_json(self) -> dict[str, Any]:
        return {
            "webhook_require_https": self.require_https,
            "webhook_failures_before_deactivation": self.failures_before_deactivation,
            "webhook_duplicate_rate": self.duplicate_rate,
            "webhook_reorder_window_seconds": self.reorder_window_seconds,
        }


@dataclass(order=True)
class _Pending:
    release_at: float
    sequence: int
    webhook_id: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)


@dataclass
class _Dispatcher(WebhookDispatcher):
    """The shared dispatcher, reporting each attempt's outcome (Aircall counts consecutive
    failures per webhook)."""

    registry: WebhookRegistry | None = None

    def _send(self, delivery: Delivery) -> bool:
        ok = super()._send(delivery)
        if self.registry is not None:
            self.registry.record_attempt(delivery.subscription_id, ok)
        return ok


class WebhookRegistry:
    def __init__(self, clock: VirtualClock, seed: int, lock: threading.RLock) -> None:
        self.clock = clock
        self.lock = lock
        self.seed = seed
        self.settings = WebhookSettings()
        self.webhooks: dict[str, Webhook] = {}
        self.outbox: list[_Pending] = []
        self._sequence = 0
        self._random = random.Random(f"aircall-webhooks:{seed}")
        self.dispatcher = _Dispatcher(
            clock, backoff=DEFAULT_BACKOFF, on_give_up=self._give_up, registry=self
        )

    @property
    def session(self) -> requests.Session:
        """The session deliveries go out on: mount receivers or set ``verify`` here."""
        return self.dispatcher.session

    # ---- registration ----------------------------------------------------------------------

    def _url(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("Missing url", "A webhook needs a url.")
        parts = urlsplit(value)
        schemes = ("https",) if self.settings.require_https else ("https", "http")
        if parts.scheme not in schemes or not parts.netloc:
            raise BadRequest("Invalid url", "The webhook url must be a valid https URL.")
        return value

    @staticmethod
    def _events(value: object) -> list[str]:
        if value is None or value == []:
            return list(ALL_EVENTS)
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise BadRequest("Invalid events", "events must be an array of event names.")
        unknown = [e for e in value if e not in ALL_EVENTS]
        if unknown:
            raise BadRequest("Invalid events", f"Unknown events: {', '.join(unknown)}.")
        return list(dict.fromkeys(value))

    @staticmethod
    def _name(value: object) -> str:
        if value is None:
            return "Webhook"
        if not isinstance(value, str):
            raise BadRequest("Invalid custom_name", "custom_name must be a string.")
        return value

    def create(self, owner: str, body: dict[str, Any]) -> Webhook:
        if len(self.webhooks) >= MAX_WEBHOOKS:
            raise BadRequest(
                "Webhook limit reached",
                f"A company has at most {MAX_WEBHOOKS} webhooks: delete unused ones first.",
            )
        webhook = Webhook(
            webhook_id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            url=self._url(body.get("url")),
            custom_name=self._name(body.get("custom_name")),
            events=self._events(body.get("events")),
            token=f"{self._random.getrandbits(128):032x}",
            created_at=int(self.clock.timestamp()),
            owner=owner,
        )
        self.webhooks[webhook.webhook_id] = webhook
        return webhook

    def get(self, owner: str, webhook_id: str) -> Webhook:
        webhook = self.webhooks.get(webhook_id)
        if webhook is None or webhook.owner != owner:
            raise NotFound("webhook", webhook_id)
        return webhook

    def owned_by(self, owner: str) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.owner == owner]

    def update(
        self,
        owner: str,
        webhook_id: str,
        body: dict[str, Any],
        events_action: Literal["add", "remove"] | None,
    ) -> Webhook:
        """``PUT``: note Aircall's rule that leaving ``events`` out re-subscribes the webhook
        to every event (unless ``events_action`` says to add or remove the given ones)."""
        webhook = self.get(owner, webhook_id)
        url = self._url(body["url"]) if "url" in body else webhook.url
        name = self._name(body["custom_name"]) if "custom_name" in body else webhook.custom_name
        active = body.get("active", webhook.active)
        if not isinstance(active, bool):
            raise BadRequest("Invalid active", "active must be true or false.")
        if events_action is None:
            events = self._events(body.get("events"))
        else:
            if not body.get("events"):
                raise BadRequest("Missing events", f"events_action={events_action} needs events.")
            given = self._events(body.get("events"))
            if events_action == "add":
                events = list(dict.fromkeys([*webhook.events, *given]))
            else:
                events = [e for e in webhook.events if e not in given]
        webhook.url, webhook.custom_name, webhook.events = url, name, events
        if active and not webhook.active:
            webhook.consecutive_failures = 0
        webhook.active = active
        return webhook

    def delete(self, owner: str, webhook_id: str) -> None:
        self.get(owner, webhook_id)
        del self.webhooks[webhook_id]
        self.outbox = [p for p in self.outbox if p.webhook_id != webhook_id]
        self.dispatcher.drop_subscription(webhook_id)

    # ---- events ----------------------------------------------------------------------------

    def emit(self, resource: str, event: str, data: dict[str, Any], delay: float = 0.0) -> int:
        """Queues ``event`` for every active webhook subscribed to it; returns how many."""
        now = self.clock.timestamp()
        queued = 0
        for webhook in self.webhooks.values():
            if not webhook.active or event not in webhook.events:
                continue
            body = {
                "resource": resource,
                "event": event,
                "timestamp": int(now),
                "token": webhook.token,
                "data": data,
            }
            release = now + delay
            if self.settings.reorder_window_seconds > 0:
                release += self._random.uniform(0, self.settings.reorder_window_seconds)
            self._queue(release, webhook.webhook_id, body)
            if self._random.random() < self.settings.duplicate_rate:
                self._queue(release + self._random.uniform(0, 5), webhook.webhook_id, body)
            queued += 1
        return queued

    def _queue(self, release_at: float, webhook_id: str, body: dict[str, Any]) -> None:
        self._sequence += 1
        self.outbox.append(_Pending(release_at, self._sequence, webhook_id, body))

    def release_due(self) -> int:
        """Hands the events whose time has come to the dispatcher (shuffled when reordering
        is on); events of webhooks deactivated meanwhile are dropped."""
        now = self.clock.timestamp()
        due = sorted(p for p in self.outbox if p.release_at <= now)
        self.outbox = [p for p in self.outbox if p.release_at > now]
        if self.settings.reorder_window_seconds > 0:
            self._random.shuffle(due)
        released = 0
        for pending in due:
            webhook = self.webhooks.get(pending.webhook_id)
            if webhook is None or not webhook.active:
                continue
            self.dispatcher.enqueue(webhook.url, pending.body, webhook.webhook_id)
            released += 1
        return released

    def deliver(self) -> int:
        """Releases due events and sends every due delivery once; returns the number
        acknowledged. Call it with the sandbox lock held (it takes it again per attempt)."""
        with self.lock:
            self.release_due()
        return self.dispatcher.deliver_due()

    def pending(self) -> int:
        return len(self.outbox) + self.dispatcher.pending()

    def record_attempt(self, webhook_id: str, ok: bool) -> None:
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is None:
                return
            if ok:
                webhook.consecutive_failures = 0
                webhook.active = True  # a retry that succeeds re-enables a deactivated webhook
                return
            webhook.consecutive_failures += 1
            if webhook.consecutive_failures >= self.settings.failures_before_deactivation:
                webhook.active = False

    def _give_up(self, webhook_id: str) -> None:
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is not None:
                webhook.active = False

    # ---- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "webhooks": [w.state() for w in self.webhooks.values()],
            "outbox": [
                {"release_at": p.release_at, "webhook_id": p.webhook_id, "body": p.body}
                for p in sorted(self.outbox)
            ],
            "pending_deliveries": self.dispatcher.pending(),
            "settings": self.settings.to_json(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.webhooks = {w["webhook_id"]: Webhook(**w) for w in state["webhooks"]}
        self.outbox = []
        for raw in state["outbox"]:
            self._queue(raw["release_at"], raw["webhook_id"], raw["body"])

    def clear(self) -> None:
        for webhook_id in list(self.webhooks):
            self.dispatcher.drop_subscription(webhook_id)
        self.webhooks.clear()
        self.outbox.clear()
