"""A store overlay for dry runs: reads see the real store plus the run's own writes; nothing
reaches the real store. The dry run executes the same code as a real run, so what it reports
is what a real run would do (as of now)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from contactsync.domain.base import Entity
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.errors import VersionConflict
from contactsync.store.base import E, Page, Store, StoreStats, Write, index_set

_GONE = object()


class DryRunStore(Store):
    def __init__(self, base: Store) -> None:
        self.base = base
        self.stats = StoreStats()
        self._overlay: dict[tuple[str, str, str], Entity | object] = {}

    def _key(self, kind: type[Entity], org_id: str, entity_id: str) -> tuple[str, str, str]:
        return (kind.kind, org_id, entity_id)

    def find(self, kind: type[E], org_id: str, entity_id: str) -> E | None:
        key = self._key(kind, org_id, entity_id)
        if key in self._overlay:
            value = self._overlay[key]
            return None if value is _GONE else value  # type: ignore[return-value]
        return self.base.find(kind, org_id, entity_id)

    def get_many(self, kind: type[E], org_id: str, entity_ids: Sequence[str]) -> dict[str, E]:
        result = self.base.get_many(kind, org_id, entity_ids)
        for entity_id in entity_ids:
            key = self._key(kind, org_id, entity_id)
            if key in self._overlay:
                value = self._overlay[key]
                if value is _GONE:
                    result.pop(entity_id, None)
                else:
                    result[entity_id] = value  # type: ignore[assignment]
        return result

    def transact(self, writes: Sequence[Write]) -> list[Entity]:
        for write in writes:
            entity = write.entity
            current = self.find(type(entity), entity.org_id, entity.id)
            actual = None if current is None else current.version
            if write.expected_version is not None and actual != (write.expected_version or None):
                raise VersionConflict(type(entity).kind, entity.id, write.expected_version, actual)
        stored = [w.stored() for w in writes]
        for entity in stored:
            self._overlay[self._key(type(entity), entity.org_id, entity.id)] = entity
        return stored

    def bulk_put(self, entities: Sequence[Entity]) -> None:
        self.transact([Write(e) for e in entities])

    def delete(
        self,
        kind: type[Entity],
        org_id: str,
        entity_id: str,
        *,
        expected_version: int | None = None,
    ) -> None:
        self._overlay[self._key(kind, org_id, entity_id)] = _GONE

    def page(
        self, kind: type[E], org_id: str, *, limit: int = 100, page_token: str | None = None
    ) -> Page[E]:
        base = self.base.page(kind, org_id, limit=limit, page_token=page_token)
        items = []
        for item in base.items:
            value = self._overlay.get(self._key(kind, org_id, item.id), item)
            if value is not _GONE:
                items.append(value)
        if base.next_token is None:
            # After the real listing, the entities only this run created.
            known = {i.id for i in base.items}
            for (k, o, entity_id), value in sorted(self._overlay.items(), key=lambda kv: kv[0]):
                ours = k == kind.kind and o == org_id and value is not _GONE
                if ours and entity_id not in known and not self.base.find(kind, org_id, entity_id):
                    items.append(value)
        return Page(items, base.next_token)  # type: ignore[arg-type]

    def lookup_ids(self, kind: type[Entity], org_id: str, index: str, value: str) -> list[str]:
        ids = set(self.base.lookup_ids(kind, org_id, index, value))
        for (k, o, entity_id), entity in self._overlay.items():
            if k != kind.kind or o != org_id:
                continue
            if entity is _GONE:
                ids.discard(entity_id)
            elif (index, value) in index_set(entity):  # type: ignore[arg-type]
                ids.add(entity_id)
        return sorted(ids)

    def acquire_lease(
        self, org_id: str, name: str, owner: str, ttl: timedelta, now: datetime
    ) -> Lease:
        # A dry run takes no lease: it writes nothing a lease would protect.
        return Lease(name=name, owner=owner, expires_at=now + ttl, token=1)

    def renew_lease(self, org_id: str, lease: Lease, ttl: timedelta, now: datetime) -> Lease:
        return lease.model_copy(update={"expires_at": now + ttl})

    def release_lease(self, org_id: str, lease: Lease) -> None:
        return None

    def save_cursor(self, cursor: Cursor, lease: Lease) -> Cursor:
        stored = self.transact([Write(cursor)])[0]
        assert isinstance(stored, Cursor)
        return stored
