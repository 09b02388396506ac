"""People and accounts leaving (seeds 001 and 002).

Removing a user: shared activity, notes, tasks and shared contacts stay in the organisation;
the user's unshared personal contacts and any future communication do not enter it; the user
loses access at once. Concretely: the user is marked inactive (every API call and every query
refuses them from then on), their mailboxes are disabled (no new pulls, history kept), the
organisation systems they connected (Salesforce, Aircall) keep running, pending access requests
addressed to them are declined (their unshared content can no longer be shared), and their
sharing decisions stay as they were.

Deleting a connected account removes its activity (and its part of every connection strength);
disabling keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from contactsync.app.gallery import Actor
from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.activity import Activity, ConnectionStrength
from contactsync.domain.base import utcnow
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.org import Role, User
from contactsync.domain.sharing import AccessRequest, AccessStatus
from contactsync.sharing.connections import pairs_of, recompute
from contactsync.store.base import Store

REMOVED_REASON = "its owner left the organisation"
READ_CHUNK = 500


class Removal(BaseModel):
    user_id: str
    disabled_accounts: list[str]
    kept_accounts: list[str]
    declined_requests: int
    personal_contacts_withheld: int
    shared_contacts_kept: int


class Forgotten(BaseModel):
    account_id: str
    activities: int
    access_requests: int
    connections: int


@dataclass
class Lifecycle:
    store: Store
    now: Callable[[], datetime] = utcnow

    def remove_user(self, actor: Actor, user_id: str) -> Removal:
        """An admin removes a user, or a user removes themself."""
        caller = self.store.find(User, actor.org_id, actor.user_id)
        if caller is None or not caller.active:
            raise NotFound("user", actor.user_id)
        if actor.user_id != user_id and not (
            actor.role is Role.ADMIN and caller.role is Role.ADMIN
        ):
            raise NotFound("user", user_id)  # not theirs to remove: as if absent
        user = self.store.find(User, actor.org_id, user_id)
        if user is None or not user.active:
            raise NotFound("user", user_id)
        if user.role is Role.ADMIN:
            admins = [
                u for u in self.store.scan(User, actor.org_id) if u.active and u.role is Role.ADMIN
            ]
            if len(admins) <= 1:
                raise InvalidInput.one("user_id", "the last admin cannot be removed")
        now = self.now()
        # First the access: from this write on, every request and query refuses the user.
        self.store.update(user.model_copy(update={"active": False, "removed_at": now}))
        disabled, kept = [], []
        for account in self.store.lookup(
            ConnectedAccount, actor.org_id, "owner", user.id, limit=1000
        ):
            if account.status in (AccountStatus.DELETED, AccountStatus.DISABLED):
                continue
            if account.is_address_book:
                self.store.update(
                    account.model_copy(
                        update={"status": AccountStatus.DISABLED, "status_reason": REMOVED_REASON}
                    )
                )
                disabled.append(account.id)
            else:
                kept.append(account.id)
        declined = 0
        for request in self.store.lookup(
            AccessRequest, actor.org_id, "pending", user.id, limit=1000
        ):
            if request.status is AccessStatus.PENDING and request.owner_user_id == user.id:
                self.store.update(
                    request.model_copy(update={"status": AccessStatus.DECLINED, "decided_at": now})
                )
                declined += 1
        owned = self.store.lookup(HubContact, actor.org_id, "owner", user.id, limit=1000)
        return Removal(
            user_id=user.id,
            disabled_accounts=disabled,
            kept_accounts=kept,
            declined_requests=declined,
            personal_contacts_withheld=sum(1 for c in owned if c.personal),
            shared_contacts_kept=sum(1 for c in owned if not c.personal),
        )


def forget_account(
    store: Store, org_id: str, account_id: str, now: datetime | None = None
) -> Forgotten:
    """Removes a deleted account's activity, the access requests for it and its part of the
    connection strengths. Idempotent (a retry finishes what a failed run started)."""
    ids = sorted(store.lookup_ids(Activity, org_id, "account", account_id))
    pairs: set[tuple[str, str]] = set()
    requests = 0
    for start in range(0, len(ids), READ_CHUNK):
        chunk = store.get_many(Activity, org_id, ids[start : start + READ_CHUNK])
        pairs |= pairs_of(chunk.values())
        for activity_id in chunk:
            for request_id in store.lookup_ids(AccessRequest, org_id, "activity", activity_id):
                store.delete(AccessRequest, org_id, request_id)
                requests += 1
            store.delete(Activity, org_id, activity_id)
    # Rows that still carry the account's part (their activity may already be gone).
    for row in store.scan(ConnectionStrength, org_id):
        if account_id in row.by_account:
            pairs.add((row.user_id, row.contact_id))
    recompute(store, org_id, pairs, now)
    return Forgotten(
        account_id=account_id,
        activities=len(ids),
        access_requests=requests,
        connections=len(pairs),
    )
