"""How much concurrency each provider tolerates, and how the bulk sync shards it.

Pull and push workers take one FIFO message group per connected account, so one account never
has two pulls, or two pushes, at once; the figures below bound how many accounts of a provider
are worked on at the same time (the functions' reserved concurrency in template.yaml, which a
test keeps equal to this table) and how many shards of one account's bulk sync run at once (the
Distributed Map's MaxConcurrency, taken from the plan).
"""

from __future__ import annotations

from dataclasses import dataclass

from contactsync.domain.accounts import Provider


@dataclass(frozen=True)
class ProviderLimits:
    pull_concurrency: int
    push_concurrency: int
    # Shards of one bulk sync read at once, and how many shards a stream is split into.
    bulk_concurrency: int
    max_shards: int
    reason: str


LIMITS: dict[Provider, ProviderLimits] = {
    Provider.GOOGLE: ProviderLimits(
        pull_concurrency=10,
        push_concurrency=10,
        bulk_concurrency=1,
        max_shards=1,
        reason=(
            "People API quotas are per user and per minute, and mutations for one user must be "
            "sequential (one push per account at a time); page tokens chain, so a full read is "
            "one shard"
        ),
    ),
    Provider.MICROSOFT: ProviderLimits(
        pull_concurrency=10,
        push_concurrency=10,
        bulk_concurrency=2,
        max_shards=1,
        reason=(
            "Graph allows 4 concurrent requests per mailbox: one pull, one push and at most "
            "two shards of a bulk sync touch a mailbox at once; delta pages chain, so a full "
            "read is one shard until the connector shards itself"
        ),
    ),
    Provider.SALESFORCE: ProviderLimits(
        pull_concurrency=5,
        push_concurrency=5,
        bulk_concurrency=10,
        max_shards=50,
        reason=(
            "an org allows 25 concurrent long-running requests: 5 pulls, 5 pushes and 10 bulk "
            "readers stay under it with room for the customer's other integrations"
        ),
    ),
    Provider.AIRCALL: ProviderLimits(
        pull_concurrency=2,
        push_concurrency=2,
        bulk_concurrency=4,
        max_shards=40,
        reason=(
            "one rate limit per company (120 requests a minute) shared by every API key: the "
            "bulk sync's readers split the connector's budget four ways, and every worker "
            "backs off together on X-AircallApi-Remaining"
        ),
    ),
    Provider.EXCHANGE: ProviderLimits(
        pull_concurrency=2,
        push_concurrency=2,
        bulk_concurrency=1,
        max_shards=1,
        reason="EWS (a later wave) has no runtime functions yet",
    ),
}


def limits(provider: Provider) -> ProviderLimits:
    return LIMITS[provider]
