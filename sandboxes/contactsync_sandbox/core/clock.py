"""A virtual clock: token expiry, cursor expiry and rate-limit windows are measured on it, so a
test can jump seven days ahead in microseconds and a failing run replays exactly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class VirtualClock:
    """Wall time plus an offset that only moves forward.

    frozen=True (tests, benchmarks): time stands still except when advanced, so two runs see the
    same timestamps. frozen=False (`contactsync sandbox up`): time flows with the machine's clock,
    and `advance` still jumps ahead.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = True) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._start = start or datetime.now(UTC).replace(microsecond=0)
        self._real_start = time.monotonic()
        self._offset = 0.0
        self._frozen = frozen
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return self._frozen

    def now(self) -> datetime:
        with self._lock:
            flowed = 0.0 if self._frozen else time.monotonic() - self._real_start
            return self._start + timedelta(seconds=self._offset + flowed)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def sleep(self, seconds: float) -> None:
        """What a client waiting on this sandbox calls instead of time.sleep: advances the
        virtual clock (frozen) or really waits (flowing)."""
        if seconds <= 0:
            return
        if self._frozen:
            self.advance(seconds)
        else:
            time.sleep(seconds)

    def to_json(self) -> dict[str, object]:
        return {
            "now": self.now().isoformat(),
            "offset_seconds": self._offset,
            "frozen": self._frozen,
        }
