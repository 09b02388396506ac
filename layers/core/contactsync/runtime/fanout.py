"""The fan-out: hub changes from the table's stream to the push queue of every spoke that may
take them.

The outbox entry written with each hub change (sync/ingest.py, app/gallery.py) is the
transactional outbox; the stream delivers it here at least once and in order per contact. For
each spoke of the organisation whose sync runs, pushes (direction) and may hold the contact
(scope: a spoke that only syncs the records its user marked takes only contacts already linked
to it) the fan-out sends one message to the spoke's provider queue: FIFO, one group per account
(one push at a time per spoke, in order), deduplicated by (account, contact, hub version). The
push worker then plans precisely (sync/push.py). The source spoke gets the message too: values
it lost in a conflict are corrected there.

Once sent, the entry has been relayed: it is removed, on the condition of its version (an entry
rewritten meanwhile arrives again as its own stream record and is relayed then).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from pydantic import Field

from contactsync.domain.accounts import AccountStatus
from contactsync.domain.base import Id, Model
from contactsync.domain.errors import VersionConflict
from contactsync.domain.link import Link
from contactsync.domain.outbox import OutboxEntry
from contactsync.domain.sync import ScopeKind, SyncState
from contactsync.runtime.aws import FifoQueues, dedupe_id, group_id
from contactsync.runtime.spokes import OrgSpokes
from contactsync.runtime.streams import EntityChange
from contactsync.store.base import Store

log = logging.getLogger(__name__)

RUNNING = (SyncState.IN_PROGRESS, SyncState.ACTIVE)


class PushMessage(Model):
    """One hub contact for one spoke (a push queue's message)."""

    org_id: Id
    account_id: Id
    contact_id: Id
    hub_version: int = Field(ge=0)
    source: str = Field(default="", max_length=200)


@dataclass
class FanOut:
    store: Store
    queues: FifoQueues
    # Each organisation's spokes, read once per invocation.
    _orgs: dict[str, OrgSpokes] = field(default_factory=dict)

    def relay(self, entry: OutboxEntry) -> list[str]:
        """Sends the change to every spoke that may take it; returns their account ids."""
        org = self._orgs.get(entry.org_id)
        if org is None:
            org = self._orgs[entry.org_id] = OrgSpokes.load(self.store, entry.org_id)
        linked: set[str] | None = None
        sent = []
        for account_id, settings in sorted(org.settings.items()):
            account = org.accounts[account_id]
            if account.status is not AccountStatus.CONNECTED:
                continue
            if settings.status.state not in RUNNING or not settings.direction.pushes:
                continue
            if account.provider not in self.queues.urls:
                continue  # no push worker for this provider (Exchange, a later wave)
            if settings.scope.kind is ScopeKind.MARKED:
                if linked is None:
                    links = self.store.lookup(Link, entry.org_id, "contact", entry.contact_id)
                    linked = {lk.account_id for lk in links}
                if account_id not in linked:
                    continue
            message = PushMessage(
                org_id=entry.org_id,
                account_id=account_id,
                contact_id=entry.contact_id,
                hub_version=entry.hub_version,
                source=entry.source[:200],
            )
            self.queues.send(
                account.provider,
                group_id(entry.org_id, account_id),
                dedupe_id(account_id, entry.contact_id, str(entry.hub_version)),
                message.model_dump_json(),
            )
            sent.append(account_id)
        with contextlib.suppress(VersionConflict):
            self.store.delete(OutboxEntry, entry.org_id, entry.id, expected_version=entry.version)
        log.debug("hub change relayed", extra={"org": entry.org_id, "spokes": len(sent)})
        return sent

    def handle(self, change: EntityChange | None) -> list[str]:
        """A stream record: outbox entries written (not removed) are relayed."""
        if change is None or change.kind != OutboxEntry.kind or change.event == "REMOVE":
            return []
        entry = change.entity(OutboxEntry)
        return self.relay(entry) if entry is not None else []
