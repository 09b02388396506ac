"""Gathering what the sharing rules need about a batch of activities, in a few store reads:
the owners (and their sharing switches), the owners' sharing flags for the contacts, addresses
and events involved, the viewer's access grants, the accounts' statuses and the contacts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from contactsync.domain.accounts import AccountStatus, ConnectedAccount
from contactsync.domain.activity import Activity
from contactsync.domain.base import Entity
from contactsync.domain.contact import HubContact
from contactsync.domain.org import User
from contactsync.domain.sharing import AccessRequest, AccessStatus, SharingFlag, SharingTarget
from contactsync.sharing.rules import ContentFacts, Owner, matched_keys
from contactsync.store.base import Store

E = TypeVar("E", bound=Entity)


def contact_keys(contact: HubContact) -> list[str]:
    """The keys an activity's participants are matched on: email addresses and E.164 numbers."""
    return contact.email_keys() + contact.phone_keys()


def flag_id(user_id: str, target: SharingTarget, target_id: str) -> str:
    return SharingFlag.make_id(user_id, target, target_id)


@dataclass
class Facts:
    """A read-through cache over one organisation, filled in batches by ``prime``."""

    store: Store
    org_id: str
    users: dict[str, User | None] = field(default_factory=dict)
    accounts: dict[str, ConnectedAccount | None] = field(default_factory=dict)
    contacts: dict[str, HubContact | None] = field(default_factory=dict)
    flags: dict[str, SharingFlag | None] = field(default_factory=dict)
    requests: dict[str, AccessRequest | None] = field(default_factory=dict)

    # ---- batch loading -----------------------------------------------------------------------

    def _load(self, cache: dict[str, E | None], kind: type[E], ids: Iterable[str]) -> None:
        missing = sorted({i for i in ids if i not in cache})
        if not missing:
            return
        found = self.store.get_many(kind, self.org_id, missing)
        for entity_id in missing:
            cache[entity_id] = found.get(entity_id)

    def load_contacts(self, ids: Iterable[str]) -> None:
        self._load(self.contacts, HubContact, ids)

    def prime(self, activities: Sequence[Activity], viewer_id: str | None = None) -> None:
        """Loads everything ``facts``/``owner``/``granted`` will ask about these activities."""
        self._load(self.users, User, (a.owner_user_id for a in activities))
        self._load(self.accounts, ConnectedAccount, (a.account_id for a in activities))
        self.load_contacts(cid for a in activities for cid in a.contact_ids)
        wanted: set[str] = set()
        for activity in activities:
            owner = activity.owner_user_id
            wanted.add(flag_id(owner, SharingTarget.EVENT, activity.id))
            for cid, keys in self.matched(activity).items():
                wanted.add(flag_id(owner, SharingTarget.CONTACT, cid))
                wanted.update(flag_id(owner, SharingTarget.ADDRESS, k) for k in keys)
        self._load(self.flags, SharingFlag, wanted)
        if viewer_id is not None:
            ids = [AccessRequest.make_id(viewer_id, a.id) for a in activities]
            self._load(self.requests, AccessRequest, ids)

    # ---- answers -------------------------------------------------------------------------------

    def matched(self, activity: Activity) -> dict[str, tuple[str, ...]]:
        keys = {
            cid: contact_keys(c)
            for cid in activity.contact_ids
            if (c := self.contacts.get(cid)) is not None
        }
        return matched_keys(activity, keys)

    def decision(self, user_id: str, target: SharingTarget, target_id: str) -> bool | None:
        flag = self.flags.get(flag_id(user_id, target, target_id))
        return None if flag is None else flag.content_shared

    def facts(self, activity: Activity) -> ContentFacts:
        owner = activity.owner_user_id
        matched = self.matched(activity)
        return ContentFacts(
            event=self.decision(owner, SharingTarget.EVENT, activity.id),
            contacts={
                cid: self.decision(owner, SharingTarget.CONTACT, cid)
                for cid in activity.contact_ids
            },
            matched=matched,
            addresses={
                key: self.decision(owner, SharingTarget.ADDRESS, key)
                for keys in matched.values()
                for key in keys
            },
        )

    def owner(self, activity: Activity) -> Owner:
        user = self.users.get(activity.owner_user_id)
        if user is None:  # an owner who no longer exists shares nothing
            return Owner(activity.owner_user_id, share_activity=False, active=False)
        return Owner(user.id, share_activity=user.sharing.share_activity, active=user.active)

    def account_deleted(self, activity: Activity) -> bool:
        account = self.accounts.get(activity.account_id)
        return account is None or account.status is AccountStatus.DELETED

    def request(self, viewer_id: str, activity: Activity) -> AccessRequest | None:
        return self.requests.get(AccessRequest.make_id(viewer_id, activity.id))

    def granted(self, viewer_id: str, activity: Activity) -> bool:
        found = self.request(viewer_id, activity)
        return found is not None and found.status is AccessStatus.GRANTED
