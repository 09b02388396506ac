"""The sync settings lifecycle (seed 004): create (the initial sync starts, status in_progress),
edit (re-scoping applies cleanly), pause and resume (catching up from the cursor), delete
(synced records stay on both sides), delete-and-revert (records this sync created in its
target are deleted there, nothing else), dry-run preview, status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactsync.connectors.base import ConnectorError, Delete
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.base import utcnow
from contactsync.domain.cursor import Cursor
from contactsync.domain.errors import InvalidInput, NotFound, VersionConflict
from contactsync.domain.link import Link
from contactsync.domain.sync import SyncSettings, SyncState, SyncStatus
from contactsync.store.base import Store
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from contactsync.sync.spokes import ConnectorFactory

# Changing any of these changes which records belong to the sync.
RESCOPING_FIELDS = frozenset({"scope", "objects", "direction", "field_mapping"})
EDITABLE = RESCOPING_FIELDS | {
    "default_object",
    "conflict",
    "auto_removal",
    "schedule",
    "mass_delete_threshold",
}
REVERT_CHUNK = 200


@dataclass
class Syncs:
    store: Store
    org_id: str
    connectors: ConnectorFactory
    now: Callable[[], datetime] = utcnow

    def get(self, sync_id: str) -> SyncSettings:
        return self.store.get(SyncSettings, self.org_id, sync_id)

    def list(self) -> list[SyncSettings]:
        return list(self.store.scan(SyncSettings, self.org_id))

    def create(self, account_id: str, data: dict[str, Any]) -> SyncSettings:
        account = self.store.find(ConnectedAccount, self.org_id, account_id)
        if account is None or account.status is AccountStatus.DELETED:
            raise NotFound("connected_account", account_id)
        if self.store.lookup(SyncSettings, self.org_id, "account", account_id, limit=1):
            raise InvalidInput.one("account_id", "this account already has a sync")
        forbidden = set(data) - EDITABLE
        if forbidden:
            raise InvalidInput.one(sorted(forbidden)[0], "cannot be set when creating a sync")
        settings = SyncSettings.parse(
            {
                **data,
                "org_id": self.org_id,
                "id": f"sync-{account_id}",
                "account_id": account_id,
                "created_at": self.now(),
            }
        )
        return self.store.create(settings)

    def update(self, sync_id: str, changes: dict[str, Any], expected_version: int) -> SyncSettings:
        current = self.get(sync_id)
        unknown = set(changes) - EDITABLE
        if unknown:
            raise InvalidInput.one(sorted(unknown)[0], "is not an editable sync setting")
        if current.version != expected_version:
            raise VersionConflict("sync", sync_id, expected_version, current.version)
        merged = SyncSettings.parse({**current.model_dump(mode="json"), **changes})
        rescoping = any(
            getattr(merged, name) != getattr(current, name) for name in RESCOPING_FIELDS
        )
        if rescoping:
            merged = merged.model_copy(update={"rescope_pending": True})
            self._forget_cursors(current.account_id)
        merged.__dict__["version"] = current.version
        return self.store.update(merged)

    def pause(self, sync_id: str) -> SyncSettings:
        return self._set_state(sync_id, SyncState.PAUSED)

    def resume(self, sync_id: str, *, confirm_mass_delete: bool = False) -> SyncSettings:
        """Resumes from the cursor (nothing missed: the provider's changes since are read).
        ``confirm_mass_delete`` lets the next run apply deletes the breaker held back."""
        settings = self.get(sync_id)
        state = SyncState.ACTIVE if settings.status.last_run_at else SyncState.IN_PROGRESS
        updated = settings.model_copy(
            update={
                "status": settings.status.model_copy(update={"state": state, "last_error": None}),
                "mass_delete_confirmed": confirm_mass_delete,
            }
        )
        return self.store.update(updated)

    def _set_state(self, sync_id: str, state: SyncState) -> SyncSettings:
        settings = self.get(sync_id)
        status = settings.status.model_copy(update={"state": state})
        return self.store.update(settings.model_copy(update={"status": status}))

    def delete(self, sync_id: str) -> None:
        """Stops the sync; records already synced stay where they are on both sides. Links are
        kept, so a sync created again later recognises them instead of duplicating."""
        settings = self.get(sync_id)
        self._forget_cursors(settings.account_id)
        self.store.delete(SyncSettings, self.org_id, sync_id)

    def delete_and_revert(self, sync_id: str) -> dict[str, int]:
        """Deletes, in the sync's own account, the records this sync created there (and only
        those), then the sync. Returns counts; records that fail to delete are reported and the
        sync is kept so the revert can be retried."""
        settings = self.get(sync_id)
        account = self.store.get(ConnectedAccount, self.org_id, settings.account_id)
        connector = self.connectors(account)
        created = self.store.lookup_ids(Link, self.org_id, "created_by", sync_id)
        deleted = failed = 0
        for start in range(0, len(created), REVERT_CHUNK):
            links = list(
                self.store.get_many(
                    Link, self.org_id, created[start : start + REVERT_CHUNK]
                ).values()
            )
            by_stream: dict[str, list[Link]] = {}
            for link in links:
                if link.account_id == settings.account_id and not link.pending_create:
                    by_stream.setdefault(link.object_type, []).append(link)
            for stream, items in by_stream.items():
                try:
                    results = connector.apply(
                        stream, [Delete(lk.remote_id, lk.object_type) for lk in items]
                    )
                except ConnectorError:
                    failed += len(items)
                    continue
                for link, result in zip(items, results, strict=True):
                    gone = result.ok or (
                        result.error is not None and result.error.kind == "not_found"
                    )
                    if gone:
                        self.store.delete(Link, self.org_id, link.id)
                        deleted += 1
                    else:
                        failed += 1
        if failed == 0:
            self.delete(sync_id)
        return {"deleted": deleted, "failed": failed}

    def preview(self, sync_id: str) -> RunReport:
        """What the next run of this sync would do, without doing it."""
        settings = self.get(sync_id)
        service = SyncService(self.store, self.org_id, self.connectors, now=self.now)
        return service.run_once(dry_run=True, accounts={settings.account_id})

    def status(self, sync_id: str) -> SyncStatus:
        return self.get(sync_id).status

    def _forget_cursors(self, account_id: str) -> None:
        for cursor in list(self.store.scan(Cursor, self.org_id)):
            if cursor.account_id == account_id:
                self.store.delete(Cursor, self.org_id, cursor.id)
