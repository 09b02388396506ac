"""HTTP plumbing every connector shares: a clock that tests can make virtual, a pacer that
honours Retry-After (no request before it expires) and request budgets, and one retry loop
driven by each connector's own error table."""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from contactsync.connectors.base import (
    ConnectorError,
    ConnectorStats,
    Throttled,
    TransientError,
    Uncertain,
)

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class Pacer:
    """Spaces one account's requests: never before a Retry-After expires, and at most
    ``per_minute`` requests in any sliding minute when a budget is set (to leave headroom in a
    rate limit shared with the customer's other integrations)."""

    clock: Clock
    per_minute: float | None = None
    stats: ConnectorStats | None = None
    _not_before: float = 0.0
    _sent: deque[float] = field(default_factory=deque)

    def hold(self, seconds: float) -> None:
        until = self.clock.now().timestamp() + max(seconds, 0.0)
        self._not_before = max(self._not_before, until)

    def wait(self) -> None:
        now = self.clock.now().timestamp()
        delay = self._not_before - now
        if self.per_minute:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                delay = max(delay, self._sent[0] + 60.0 - now)
        if delay > 0:
            if self.stats is not None:
                self.stats.slept_seconds += delay
            self.clock.sleep(delay)
        if self.per_minute:
            self._sent.append(self.clock.now().timestamp())


# What a connector's error table says about a response: None (a success), or the error to raise.
Classifier = Callable[[requests.Response], ConnectorError | None]


def retry_after_seconds(response: requests.Response, default: float = 1.0) -> float:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return default
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return default


@dataclass
class HttpClient:
    """One account's session plus the retry discipline. ``classify`` is the connector's error
    table; throttling and transient errors are retried with backoff (honouring Retry-After),
    everything else is raised at once."""

    session: requests.Session
    classify: Classifier
    pacer: Pacer
    stats: ConnectorStats
    max_attempts: int = 6
    timeout: float = 30.0
    backoff_base: float = 0.5
    jitter: random.Random = field(default_factory=lambda: random.Random(0))

    def request(
        self, method: str, url: str, endpoint: str, *, idempotent: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Sends with retries. ``idempotent=False`` (creates): a timeout, a dropped connection or
        a 5xx raises Uncertain at once instead of retrying, because the create may have
        happened; only throttling (not processed) is retried."""
        last: ConnectorError | None = None
        for attempt in range(self.max_attempts):
            self.pacer.wait()
            self.stats.count(endpoint)
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if not idempotent:
                    raise Uncertain(type(exc).__name__, "no answer to a create") from exc
                last = TransientError("no answer", type(exc).__name__)
            else:
                error = self.classify(response)
                if error is None:
                    return response
                if not isinstance(error, Throttled | TransientError):
                    raise error
                if isinstance(error, TransientError) and not idempotent:
                    raise Uncertain(error.code, "the request may have been applied") from error
                last = error
                if isinstance(error, Throttled):
                    self.stats.throttled += 1
                    self.pacer.hold(error.retry_after if error.retry_after is not None else 1.0)
                    continue
            delay = self.backoff_base * 2**attempt * (0.5 + self.jitter.random())
            self.pacer.hold(delay)
        assert last is not None
        raise last
