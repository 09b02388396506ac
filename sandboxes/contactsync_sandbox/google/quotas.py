"""People API quotas: per-user buckets counted in windows of the virtual clock.

Google publishes what each method costs but not the default limits; the numbers below are those
a project's "Quotas & System Limits" page showed (reported in public write-ups) and are all
configurable through ``POST /_sandbox/faults {"rules": [], "quotas": {...}}``.

- Critical read requests (Contact and Profile Reads): 60 per minute per user
- Critical write requests (Contact Creates and Updates): 30 per minute per user
- Read requests (Contact Group Reads): 90 per minute per user
- Write requests (Contact Deletes and Contact Group Writes): 30 per minute per user
- Daily Contact Writes (Total): 100,000 per day per user (days end at midnight Pacific time)
- the fixed extra quota on the first page of a full sync (number unpublished; 10 a minute here)

Costs (Google's "Read and Manage Contacts" guide): create or update one contact = 1 critical
read + 1 critical write + 1 daily contact write; a batch create or update (up to 200) = 6 critical
reads + 6 critical writes + one daily contact write per contact; delete = 1 write; batch delete =
10 writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal

from contactsync_sandbox.core.clock import VirtualClock

try:
    from zoneinfo import ZoneInfo

    PACIFIC: tzinfo = ZoneInfo("America/Los_Angeles")
except (ImportError, KeyError):  # no tz database here: Pacific standard time all year
    PACIFIC = timezone(timedelta(hours=-8))


@dataclass(frozen=True)
class Bucket:
    key: str
    metric_name: str
    limit_name: str
    metric_id: str
    limit_id: str
    window: Literal["minute", "day"]
    default: int


BUCKETS: dict[str, Bucket] = {
    b.key: b
    for b in (
        Bucket(
            "critical_read_requests",
            "Critical read requests (Contact and Profile Reads)",
            "Critical read requests (Contact and Profile Reads) per minute per user",
            "people.googleapis.com/critical_read_requests",
            "CriticalReadRequestsPerMinutePerProjectPerUser",
            "minute",
            60,
        ),
        Bucket(
            "critical_write_requests",
            "Critical write requests (Contact Creates and Updates)",
            "Critical write requests (Contact Creates and Updates) per minute per user",
            "people.googleapis.com/critical_write_requests",
            "CriticalWritesPerMinutePerProjectPerUser",
            "minute",
            30,
        ),
        Bucket(
            "read_requests",
            "Read requests (Contact Group Reads)",
            "Read requests (Contact Group Reads) per minute per user",
            "people.googleapis.com/read_requests",
            "ReadRequestsPerMinutePerProjectPerUser",
            "minute",
            90,
        ),
        Bucket(
            "write_requests",
            "Write requests (Contact Deletes and Contact Group Writes)",
            "Write requests (Contact Deletes and Contact Group Writes) per minute per user",
            "people.googleapis.com/write_requests",
            "WriteRequestsPerMinutePerProjectPerUser",
            "minute",
            30,
        ),
        Bucket(
            "daily_contact_writes",
            "Daily Contact Writes (Total)",
            "Daily Contact Writes (Total) per day per user",
            "people.googleapis.com/daily_contact_writes",
            "DailyContactWritesPerDayPerProjectPerUser",
            "day",
            100_000,
        ),
        Bucket(
            "full_sync_requests",
            "Full sync requests",
            "Full sync requests per minute per user",
            "people.googleapis.com/full_sync_requests",
            "FullSyncRequestsPerMinutePerProjectPerUser",
            "minute",
            10,
        ),
    )
}

_READ = {"critical_read_requests": 1}
_WRITE = {"critical_read_requests": 1, "critical_write_requests": 1, "daily_contact_writes": 1}
_BATCH_WRITE = {"critical_read_requests": 6, "critical_write_requests": 6}
COSTS: dict[str, dict[str, int]] = {
    "people.connections.list": _READ,
    "people.get": _READ,
    "people.getBatchGet": _READ,
    "people.createContact": _WRITE,
    "people.updateContact": _WRITE,
    "people.deleteContact": {"write_requests": 1},
    "people.batchCreateContacts": _BATCH_WRITE,
    "people.batchUpdateContacts": _BATCH_WRITE,
    "people.batchDeleteContacts": {"write_requests": 10},
    "contactGroups.list": {"read_requests": 1},
    "contactGroups.get": {"read_requests": 1},
    "contactGroups.batchGet": {"read_requests": 1},
    "contactGroups.create": {"write_requests": 1},
    "contactGroups.update": {"write_requests": 1},
    "contactGroups.delete": {"write_requests": 1},
    "contactGroups.members.modify": {"write_requests": 1},
}


class QuotaLimiter:
    """Fixed windows per (user, bucket): a minute on the virtual clock, or a Pacific day."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.enabled = True
        self.limits: dict[str, int | None] = {k: b.default for k, b in BUCKETS.items()}
        self._usage: dict[tuple[str, str], tuple[str, int]] = {}

    def _window(self, bucket: Bucket, now: datetime) -> str:
        if bucket.window == "day":
            return now.astimezone(PACIFIC).date().isoformat()
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")

    def charge(self, user: str, costs: dict[str, int]) -> Bucket | None:
        """Charges every bucket, or none: returns the first bucket that would overflow."""
        if not self.enabled:
            return None
        now = self.clock.now()
        planned: list[tuple[tuple[str, str], str, int]] = []
        for key, units in costs.items():
            limit = self.limits.get(key)
            if units <= 0:
                continue
            bucket = BUCKETS[key]
            window = self._window(bucket, now)
            seen_window, used = self._usage.get((user, key), (window, 0))
            used = used if seen_window == window else 0
            if limit is not None and used + units > limit:
                return bucket
            planned.append(((user, key), window, used + units))
        for slot, window, used in planned:
            self._usage[slot] = (window, used)
        return None

    def configure(self, raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            if key not in BUCKETS:
                raise ValueError(f"unknown quota {key!r}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"quota {key} must be a non-negative integer or null")
            if value is not None and value < 0:
                raise ValueError(f"quota {key} must be a non-negative integer or null")
        self.limits.update(raw)
        self._usage.clear()  # new limits start with fresh windows

    def reset(self) -> None:
        self.enabled = True
        self.limits = {k: b.default for k, b in BUCKETS.items()}
        self._usage.clear()

    def to_json(self) -> dict[str, Any]:
        usage: dict[str, dict[str, Any]] = {}
        for (user, key), (window, used) in sorted(self._usage.items()):
            usage.setdefault(user, {})[key] = {"window": window, "used": used}
        return {"enabled": self.enabled, "limits": dict(self.limits), "usage": usage}

    def load(self, data: dict[str, Any]) -> None:
        self.enabled = bool(data.get("enabled", True))
        self.limits = {k: b.default for k, b in BUCKETS.items()}
        self.limits.update({k: v for k, v in data.get("limits", {}).items() if k in BUCKETS})
        self._usage = {
            (user, key): (slot["window"], int(slot["used"]))
            for user, buckets in data.get("usage", {}).items()
            for key, slot in buckets.items()
            if key in BUCKETS
        }
