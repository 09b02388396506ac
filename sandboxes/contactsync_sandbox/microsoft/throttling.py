"""Outlook's service limits: 10,000 requests per 10 minutes per app and mailbox (a sliding
window on the virtual clock) and 4 concurrent requests (counted before the app lock is taken, so
the threaded HTTPS server observes real concurrency). Throttled requests count too: a client
that ignores Retry-After keeps itself throttled, as live tenants report."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.settings import Limits

ThrottleKey = tuple[str, str]  # (app id, mailbox id)

CONCURRENCY_MESSAGE = "Application is over its MailboxConcurrency limit."
RATE_MESSAGE = "Application is over its MailboxRequestRate limit."


@dataclass
class Throttle:
    clock: VirtualClock
    limits: Limits
    _inflight: dict[Any, int] = field(default_factory=dict)
    _windows: dict[ThrottleKey, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    throttled: int = 0

    def _concurrency_key(self, key: ThrottleKey) -> Any:
        return key if self.limits.concurrency_scope == "mailbox" else key[0]

    def enter(self, key: ThrottleKey) -> None:
        ckey = self._concurrency_key(key)
        with self._lock:
            self._inflight[ckey] = self._inflight.get(ckey, 0) + 1

    def leave(self, key: ThrottleKey) -> None:
        ckey = self._concurrency_key(key)
        with self._lock:
            left = self._inflight.get(ckey, 0) - 1
            if left > 0:
                self._inflight[ckey] = left
            else:
                self._inflight.pop(ckey, None)

    def inflight(self, key: ThrottleKey) -> int:
        with self._lock:
            return self._inflight.get(self._concurrency_key(key), 0)

    def admit(self, key: ThrottleKey, concurrent: int) -> None:
        """Counts one request of ``key`` that runs alongside ``concurrent`` requests in total
        (itself included); raises Graph's 429 when a limit is exceeded."""
        if not self.limits.enabled:
            return
        now = self.clock.timestamp()
        window = self._windows.setdefault(key, deque())
        horizon = now - self.limits.window_seconds
        while window and window[0] <= horizon:
            window.popleft()
        window.append(now)
        if concurrent > self.limits.concurrent_requests:
            self.throttled += 1
            raise err.throttled(CONCURRENCY_MESSAGE, 1)
        if len(window) > self.limits.requests_per_window:
            self.throttled += 1
            retry_after = max(1, math.ceil(window[0] + self.limits.window_seconds - now))
            raise err.throttled(RATE_MESSAGE, retry_after)

    def usage(self) -> dict[str, Any]:
        now = self.clock.timestamp()
        horizon = now - self.limits.window_seconds
        return {
            "throttled": self.throttled,
            "windows": [
                {"app": app, "mailbox": mailbox, "requests": sum(1 for t in w if t > horizon)}
                for (app, mailbox), w in self._windows.items()
            ],
        }

    def clear(self) -> None:
        self._windows.clear()
        self.throttled = 0
