"""An optional extension of the connector contract for initial bulk syncs: a stream's full read
split into shards that separate workers read independently (the cloud's Step Functions bulk
sync runs one Lambda invocation per shard, several at once).

- ``plan_shards(stream, max_shards)`` splits the stream's current contents into at most
  ``max_shards`` shards and returns them with the *start-of-sync cursor*: the cursor an
  incremental read continues from once every shard is read (so nothing changed while the
  shards ran is missed). A start cursor of None means the provider only knows it at the end of
  a complete read: then exactly one shard is marked ``carries_cursor`` and the cursor of its
  last page is the one to keep.
- ``read_shard(shard)`` reads one shard page by page. A page's ``cursor`` is where the shard
  stands (None while it cannot say): a shard read again with ``resume`` set to it continues
  from there, so a worker that runs out of time checkpoints and hands over.

Providers shard as their APIs allow: Aircall by creation-date windows (every window under its
10,000-records-per-query cap), Salesforce by Bulk API 2.0 result locators. Page chains (Graph
delta links, Google page tokens) cannot be entered in the middle: ``WholeStream`` is the generic
fallback, one shard over ``Connector.read(stream, None)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Protocol, runtime_checkable

from pydantic import ConfigDict, Field, StringConstraints

from contactsync.connectors.base import ChangePage, Connector
from contactsync.domain.base import Model

SpecValue = str | int | float | bool | None


class Shard(Model):
    """One independently readable part of a stream. ``spec`` is the connector's own description
    (window bounds, a result locator); only the connector interprets it. JSON-serialisable: it
    is stored with the bulk sync's state and travels through the state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    index: int = Field(ge=0)
    spec: dict[str, SpecValue] = Field(default_factory=dict)
    # How many records the shard should hold (progress totals); None when unknown.
    estimate: int | None = Field(default=None, ge=0)
    # The last page's cursor is the stream's cursor (no start cursor could be planned).
    carries_cursor: bool = False
    # Where a previous, interrupted read of this shard stopped (a page's cursor).
    resume: Annotated[str, StringConstraints(max_length=16_384)] | None = None


@runtime_checkable
class ShardedReader(Protocol):
    def plan_shards(self, stream: str, max_shards: int) -> tuple[list[Shard], str | None]:
        """The shards of ``stream`` (at most ``max_shards``) and the start-of-sync cursor."""
        ...

    def read_shard(self, shard: Shard) -> Iterator[ChangePage]:
        """The shard's records, page by page, lazily; from ``shard.resume`` when set."""
        ...


class WholeStream:
    """The fallback for any connector: one shard, a complete read from the beginning, whose
    last page carries the stream's cursor. Resumable where the connector's pages carry cursors
    (Graph's delta pages and Salesforce's Bulk API result sets do); otherwise an interrupted
    shard reads again from the start, and the records it had ingested come back as echoes
    (a link read and a fingerprint compared, nothing written), so each call gets further."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def plan_shards(self, stream: str, max_shards: int) -> tuple[list[Shard], str | None]:
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")
        return [Shard(stream=stream, index=0, carries_cursor=True)], None

    def read_shard(self, shard: Shard) -> Iterator[ChangePage]:
        for page in self.connector.read(shard.stream, shard.resume):
            yield page
            if page.last:
                return
