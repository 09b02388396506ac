"""Outbound webhook delivery, as providers do it: at least once, retried with backoff on the
virtual clock, possibly out of order, and given up on (the subscription disabled) after repeated
failures. Deliveries are queued; ``deliver_due`` sends those whose time has come, so tests drive
delivery step by step and the HTTPS server drives it from a background thread."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from contactsync_sandbox.core.clock import VirtualClock

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    url: str
    body: Any
    headers: dict[str, str]
    subscription_id: str
    due: datetime
    attempts: int = 0
    content_type: str = "application/json"


@dataclass
class WebhookDispatcher:
    clock: VirtualClock
    session: requests.Session = field(default_factory=requests.Session)
    # Delays between attempts (seconds): providers retry for hours with growing gaps.
    backoff: tuple[int, ...] = (10, 60, 300, 1800, 3600, 7200)
    timeout_seconds: float = 5.0
    # Called with a subscription id once its deliveries keep failing (the provider disables it).
    on_give_up: Callable[[str], None] | None = None
    _queue: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    delivered: int = 0
    failed_attempts: int = 0

    def enqueue(
        self,
        url: str,
        body: Any,
        subscription_id: str,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        with self._lock:
            self._queue.append(
                Delivery(
                    url, body, headers or {}, subscription_id, self.clock.now(), 0, content_type
                )
            )

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def deliver_due(self) -> int:
        """Sends every due delivery once; returns how many were acknowledged with a 2xx."""
        now = self.clock.now()
        with self._lock:
            due = [d for d in self._queue if d.due <= now]
            self._queue = [d for d in self._queue if d.due > now]
        acked = 0
        for delivery in due:
            if self._send(delivery):
                acked += 1
                continue
            delivery.attempts += 1
            self.failed_attempts += 1
            if delivery.attempts > len(self.backoff):
                if self.on_give_up is not None:
                    self.on_give_up(delivery.subscription_id)
                continue
            delivery.due = now + timedelta(seconds=self.backoff[delivery.attempts - 1])
            with self._lock:
                self._queue.append(delivery)
        self.delivered += acked
        return acked

    def _send(self, delivery: Delivery) -> bool:
        data = (
            delivery.body
            if isinstance(delivery.body, str | bytes)
            else json.dumps(delivery.body, ensure_ascii=False)
        )
        headers = {"Content-Type": delivery.content_type, **delivery.headers}
        try:
            response = self.session.post(
                delivery.url, data=data, headers=headers, timeout=self.timeout_seconds
            )
        except requests.RequestException as exc:
            log.info("webhook delivery failed", extra={"error": type(exc).__name__})
            return False
        return 200 <= response.status_code < 300

    def drop_subscription(self, subscription_id: str) -> None:
        with self._lock:
            self._queue = [d for d in self._queue if d.subscription_id != subscription_id]
