"""What a consumer of the pull queue does with a request, for the local scheduler and the
cloud's pull worker alike: claim it (so later notifications queue new work), run the provider
hook it names, then pull the account through the sync service.

Provider hooks are optional methods of a connector: ``reauthorize_webhooks()`` (Graph
``reauthorizationRequired``: renew the subscription) and ``prepare()`` (idempotent setup, which
(re)creates subscriptions and webhook registrations). A connector without the first gets the
second. ``PREPARE`` (an account just connected) runs the hook and pulls nothing: the initial
sync, a bulk sync in the cloud, owns the first read."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from contactsync.api.queue import PullAction, PullInbox, PullRequest
from contactsync.connectors.base import Connector, ConnectorError, Delete
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.link import Link
from contactsync.store.base import Store
from contactsync.sync.report import RunReport
from contactsync.sync.service import SyncService
from contactsync.sync.spokes import ConnectorFactory

log = logging.getLogger(__name__)
REVERT_BATCH = 100


def revert_sync(store: Store, org_id: str, connector: Connector, sync_id: str) -> int:
    """Delete-and-revert (seed 004): deletes in the provider the records this sync created
    there, and their links. Idempotent: a record already gone counts as reverted."""
    by_type: dict[str, list[Link]] = defaultdict(list)
    for link in store.lookup(Link, org_id, "created_by", sync_id, limit=1000):
        by_type[link.object_type].append(link)
    deleted = 0
    for object_type, links in by_type.items():
        for start in range(0, len(links), REVERT_BATCH):
            batch = links[start : start + REVERT_BATCH]
            mutations = [
                Delete(remote_id=link.remote_id, object_type=object_type) for link in batch
            ]
            results = connector.apply(object_type, mutations)
            for link, result in zip(batch, results, strict=True):
                gone = result.ok or (result.error is not None and result.error.kind == "not_found")
                if gone:
                    store.delete(Link, org_id, link.id)
                    deleted += 1
    return deleted


@dataclass
class Consumer:
    store: Store
    inbox: PullInbox
    connectors: ConnectorFactory
    service: SyncService

    def handle(self, requests: Iterable[PullRequest]) -> RunReport | None:
        """Handles a batch of requests for the service's organisation: hooks first, then one
        sync round pulling every account asked for."""
        pulls: set[str] = set()
        for request in requests:
            self.inbox.claim(request.org_id, request.account_id, request.action)
            account = self.store.find(ConnectedAccount, request.org_id, request.account_id)
            if request.action is PullAction.REVERT:
                if account is not None and request.sync_id:
                    self._revert(account, request.sync_id)
                continue
            if account is None or account.status is not AccountStatus.CONNECTED:
                continue
            if request.action in (PullAction.REAUTHORIZE, PullAction.RESYNC, PullAction.PREPARE):
                self._hook(account, request.action)
            if request.action is not PullAction.PREPARE:  # the initial sync does the reading
                pulls.add(account.id)
        if not pulls:
            return None
        return self.service.run_once(accounts=pulls)

    def _hook(self, account: ConnectedAccount, action: PullAction) -> None:
        try:
            connector = self.connectors(account)
            renew = getattr(connector, "reauthorize_webhooks", None)
            if action is PullAction.REAUTHORIZE and callable(renew):
                renew()
            else:
                connector.prepare()
        except ConnectorError as exc:
            log.warning(
                "webhook maintenance failed", extra={"account": account.id, "code": exc.code}
            )

    def _revert(self, account: ConnectedAccount, sync_id: str) -> None:
        try:
            count = revert_sync(self.store, account.org_id, self.connectors(account), sync_id)
            log.info("sync reverted", extra={"account": account.id, "deleted": count})
        except ConnectorError as exc:
            log.warning("revert failed", extra={"account": account.id, "code": exc.code})
