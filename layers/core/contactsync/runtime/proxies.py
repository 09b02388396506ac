"""Connectors wrapped for the cloud workers: one that stops reading when the invocation's time
runs short, one that keeps the results of the writes it passes on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ContactFields,
    Mutation,
    MutationResult,
    RemoteRecord,
)
from contactsync.domain.sync import FieldRule


class ConnectorProxy(Connector):
    """Delegates every verb to ``inner``."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.stats = inner.stats

    def streams(self) -> Sequence[str]:
        return self.inner.streams()

    def default_mapping(self, stream: str) -> list[FieldRule]:
        return self.inner.default_mapping(stream)

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        return self.inner.read(stream, cursor)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        return self.inner.apply(stream, mutations)

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        return self.inner.find_created(stream, hub_id, fields)

    def representable(self, fields: ContactFields) -> ContactFields:
        return self.inner.representable(fields)

    def prepare(self) -> None:
        self.inner.prepare()


class UntilDeadline(ConnectorProxy):
    """Reads stop after the page during which the time left fell under ``margin`` seconds (that
    page is committed first: the reader only stops asking for more)."""

    def __init__(self, inner: Connector, seconds_left: Callable[[], float], margin: float):
        super().__init__(inner)
        self.seconds_left = seconds_left
        self.margin = margin
        self.stopped = False

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        for page in self.inner.read(stream, cursor):
            yield page
            if page.last:
                return
            if self.seconds_left() < self.margin:
                self.stopped = True
                return


class RecordingWrites(ConnectorProxy):
    """Keeps the failed results of the writes it passes on."""

    def __init__(self, inner: Connector) -> None:
        super().__init__(inner)
        self.failed: list[MutationResult] = []

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        results = self.inner.apply(stream, mutations)
        self.failed.extend(r for r in results if not r.ok)
        return results
