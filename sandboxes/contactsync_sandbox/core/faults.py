"""Fault injection, per endpoint, from a seeded random generator so that a failing run replays.

A rule matches requests by method and a regular expression on the path. Kinds:
- ``error``: answer with ``status`` (a 5xx by default) in the provider's own error shape;
- ``throttle``: the provider's throttling answer (429 + Retry-After, Salesforce's 403
  REQUEST_LIMIT_EXCEEDED, ...), rendered by the provider;
- ``timeout``: the client never gets an answer and the request is not processed;
- ``drop_after_commit``: the request *is* processed (a create is committed) but the response is
  lost on the way back: the case that makes naive retries create duplicates;
- ``latency``: the answer comes ``latency_ms`` late (on the wall clock, since it measures us).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["error", "throttle", "timeout", "drop_after_commit", "latency"]
_KINDS = ("error", "throttle", "timeout", "drop_after_commit", "latency")


@dataclass
class FaultRule:
    kind: FaultKind
    path: str = ".*"
    method: str = "*"
    rate: float = 1.0
    status: int = 503
    retry_after: int = 1
    latency_ms: int = 0
    times: int | None = None  # stop after firing this many times (None: forever)
    fired: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(_KINDS)}, not {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate!r}")
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"fault path is not a valid regular expression: {exc}") from exc

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return self._pattern.search(path) is not None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        allowed = {"kind", "path", "method", "rate", "status", "retry_after", "latency_ms", "times"}
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule keys: {', '.join(sorted(unknown))}")
        return cls(**raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "method": self.method,
            "rate": self.rate,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "times": self.times,
            "fired": self.fired,
        }


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def configure(self, rules: list[FaultRule], seed: int | None = None) -> None:
        with self._lock:
            self._rules = list(rules)
            if seed is not None:
                self._random = random.Random(seed)

    def pick(self, method: str, path: str) -> list[FaultRule]:
        """The rules that fire for this request (latency can combine with one other fault)."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and self._random.random() < rule.rate:
                    rule.fired += 1
                    fired.append(rule)
        return fired

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._rules]
