"""The sandbox's limits and quirks, set through ``POST /_sandbox/faults {"quotas": {...}}``.

Defaults follow Microsoft's documentation and what live tenants answer (see the notes on each
field); ``{"enabled": false}`` turns throttling off for benchmarks without touching the API's
own limits (page sizes, batch size, subscription lifetimes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

ConcurrencyScope = Literal["mailbox", "app"]


@dataclass
class Limits:
    # Throttling (Outlook service limits): per app and mailbox.
    enabled: bool = True
    requests_per_window: int = 10_000
    window_seconds: int = 600
    concurrent_requests: int = 4
    # "mailbox": per app and mailbox (the MailboxConcurrency error); "app": per app across
    # mailboxes, as the current throttling-limits page words it.
    concurrency_scope: ConcurrencyScope = "mailbox"
    # Paging.
    list_default_top: int = 10
    list_max_top: int = 1000
    delta_default_page_size: int = 10
    delta_max_page_size: int = 200
    # Delta tokens live in a bounded cache: old generations of a chain are dropped, and a token
    # older than this is gone too (no fixed lifetime is documented for Outlook; None: never).
    delta_token_ttl_seconds: int | None = 7 * 86_400
    delta_generations_kept: int = 3
    # Real delta pages are sometimes empty yet carry a nextLink, and items repeat.
    delta_empty_page_rate: float = 0.05
    delta_repeat_rate: float = 0.05
    # JSON batching.
    batch_max_requests: int = 20
    batch_parallelism: int = 4
    # Subscriptions: live Graph refuses 10,080 minutes for Outlook resources ("can only be
    # 10070 minutes in the future"); older docs said 4,230.
    subscription_max_minutes: int = 10_070
    subscriptions_per_mailbox: int = 1_000
    subscription_validation_timeout_seconds: float = 10.0
    reauthorization_lead_minutes: int = 60
    allow_http_localhost: bool = False
    # Tokens.
    access_token_ttl_seconds: int = 3_599
    refresh_token_ttl_seconds: int = 90 * 86_400
    authorization_code_ttl_seconds: int = 600
    # Outlook's multi-value property caps (400 beyond them).
    max_email_addresses: int = 3
    max_business_phones: int = 2
    max_home_phones: int = 2

    def configure(self, raw: dict[str, Any]) -> None:
        """Applies the given keys (all valid, or nothing changes)."""
        current = asdict(self)
        unknown = sorted(set(raw) - set(current))
        if unknown:
            raise ValueError(f"unknown quota keys: {', '.join(unknown)}")
        for key, value in raw.items():
            _check(key, value, current[key])
        for key, value in raw.items():
            setattr(self, key, float(value) if isinstance(current[key], float) else value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(key: str, value: Any, default: Any) -> None:
    if key == "concurrency_scope":
        if value not in ("mailbox", "app"):
            raise ValueError('concurrency_scope must be "mailbox" or "app"')
    elif key == "delta_token_ttl_seconds":
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise ValueError("delta_token_ttl_seconds must be a non-negative integer or null")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
    elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    elif isinstance(default, int) and not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if key in ("delta_empty_page_rate", "delta_repeat_rate") and value > 0.9:
        raise ValueError(f"{key} must be at most 0.9 (pages must make progress)")
    if key in ("list_max_top", "delta_max_page_size", "batch_max_requests") and value < 1:
        raise ValueError(f"{key} must be at least 1")
