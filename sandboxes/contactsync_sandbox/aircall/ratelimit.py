"""Aircall's per-company rate limit: a leaky bucket on the virtual clock.

Every API key and OAuth token of a company pours into the same bucket. It holds ``limit``
requests and drains at ``limit`` per minute; a request that would overflow it is refused with a
429 and not counted. The company's *other* integrations pour in too, at
``background_requests_per_minute``: our connector only ever gets what they leave.

Headers on every answer of the application tier (the gateway's 401/403 carry none):
``X-AircallApi-Limit`` (the bucket size), ``X-AircallApi-Remaining`` (free places now) and
``X-AircallApi-Reset`` (UNIX seconds at which the bucket will have drained empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 120  # requests a minute per company (60 in older material)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str]


@dataclass
class LeakyBucket:
    limit: int = DEFAULT_LIMIT
    background_per_minute: float = 0.0
    enabled: bool = True
    level: float = 0.0
    updated_at: float | None = None  # UNIX seconds of the last drain computation
    refused: int = 0

    def _drain_to(self, now: float) -> None:
        if self.updated_at is not None and now > self.updated_at:
            elapsed = now - self.updated_at
            net = (self.background_per_minute - self.limit) / 60.0 * elapsed
            self.level = min(float(self.limit), max(0.0, self.level + net))
        self.updated_at = now if self.updated_at is None else max(self.updated_at, now)

    def reconfigure(self, now: float, enabled: bool, limit: int, background: float) -> None:
        self._drain_to(now)
        self.enabled, self.limit, self.background_per_minute = enabled, limit, background
        self.level = min(self.level, float(limit))

    def hit(self, now: float) -> Decision:
        """One request arriving at ``now``: counted and allowed, or refused."""
        if not self.enabled:
            return Decision(True, self.headers(now))
        self._drain_to(now)
        if self.level + 1.0 > self.limit + 1e-9:
            self.refused += 1
            return Decision(False, self.headers(now))
        self.level += 1.0
        return Decision(True, self.headers(now))

    def remaining(self, now: float) -> int:
        if not self.enabled:
            return self.limit
        self._drain_to(now)
        return max(0, math.floor(self.limit - self.level + 1e-9))

    def reset_at(self, now: float) -> int:
        """When the bucket will be empty again at the current net drain rate."""
        drain_per_second = max(self.limit - self.background_per_minute, 1e-6) / 60.0
        level = self.level if self.enabled else 0.0
        return math.ceil(now + level / drain_per_second)

    def headers(self, now: float) -> dict[str, str]:
        return {
            "X-AircallApi-Limit": str(self.limit),
            "X-AircallApi-Remaining": str(self.remaining(now)),
            "X-AircallApi-Reset": str(self.reset_at(now)),
        }

    def exhausted_headers(self, now: float, seconds: int) -> dict[str, str]:
        """Headers of a refusal that frees a place only after ``seconds`` (injected faults)."""
        return {
            "X-AircallApi-Limit": str(self.limit),
            "X-AircallApi-Remaining": "0",
            "X-AircallApi-Reset": str(math.ceil(now + seconds)),
        }

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "requests_per_minute": self.limit,
            "background_requests_per_minute": self.background_per_minute,
            "remaining": self.remaining(now),
            "reset": self.reset_at(now),
            "refused": self.refused,
        }

    def state(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "background_per_minute": self.background_per_minute,
            "enabled": self.enabled,
            "level": self.level,
            "updated_at": self.updated_at,
            "refused": self.refused,
        }
