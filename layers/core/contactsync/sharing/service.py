"""Sharing decisions (seed 002), written: the user's switches, the queue of new contacts to
approve (one by one, All or None), per-contact and per-address content sharing, per-event
overrides, and access requests that the owner grants or declines.

Every write validates the whole request first (a bad item names its field and nothing is
written). After a decision changes what teammates may read, the bodies follow at once: an
activity whose content is no longer shared loses its stored body; one newly shared is marked
``body_due`` for the capture to fetch (bodies are fetched only for shared content).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from contactsync.app.gallery import Actor, visible
from contactsync.domain.activity import Activity
from contactsync.domain.base import utcnow
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import InvalidInput, NotFound, VersionConflict
from contactsync.domain.org import SharingSettings, User
from contactsync.domain.sharing import AccessRequest, AccessStatus, SharingFlag, SharingTarget
from contactsync.sharing.facts import Facts, contact_keys
from contactsync.sharing.rules import Level, body_wanted, level, sharing_available
from contactsync.sharing.stream import viewer_of
from contactsync.store.base import Store, Write

SETTINGS = ("email_contact_sync", "share_activity", "auto_share_content")
WRITE_CHUNK = 25  # DynamoDB transactions take 100 items; keep well under
READ_CHUNK = 500


class Decision(BaseModel):
    """One content-sharing decision for a contact, optionally per address (email address or
    phone number of the contact); addresses not named follow the contact decision."""

    contact_id: str
    shared: bool
    addresses: dict[str, bool] = {}


class AddressState(BaseModel):
    address: str
    shared: bool | None


class QueueEntry(BaseModel):
    """A contact awaiting the user's content-sharing decision."""

    contact_id: str
    display_name: str
    company: str
    addresses: list[AddressState]
    since: datetime


@dataclass
class SharingService:
    store: Store
    now: Callable[[], datetime] = utcnow
    # Activities whose body lifecycle changed in the last call (for tests and the CLI).
    touched: list[str] = field(default_factory=list)

    # ---- the caller --------------------------------------------------------------------------

    def user(self, actor: Actor) -> User:
        user = self.store.find(User, actor.org_id, actor.user_id)
        if user is None or not viewer_of(user, actor).active:
            raise NotFound("user", actor.user_id)
        return user

    def active_users(self, org_id: str) -> int:
        return sum(1 for u in self.store.scan(User, org_id) if u.active)

    # ---- switches ------------------------------------------------------------------------------

    def settings(self, actor: Actor) -> SharingSettings:
        return self.user(actor).sharing

    def update_settings(self, actor: Actor, changes: Mapping[str, Any]) -> User:
        """Turns the user's switches on or off. Turning one on needs an organisation of at
        least two users. Auto-share, once on, also shares the pending contacts the user added."""
        user = self.user(actor)
        for name, value in changes.items():
            if name not in SETTINGS:
                raise InvalidInput.one(name, "is not a sharing setting")
            if not isinstance(value, bool):
                raise InvalidInput.one(name, "must be true or false")
        turned_on = [n for n, v in changes.items() if v and not getattr(user.sharing, n)]
        if turned_on and not sharing_available(self.active_users(actor.org_id)):
            raise InvalidInput.one(
                turned_on[0], "sharing exists only in organisations with at least two users"
            )
        if not changes:
            return user
        updated = self.store.update(
            user.model_copy(update={"sharing": user.sharing.model_copy(update=dict(changes))})
        )
        if "auto_share_content" in turned_on:
            pending = [e.contact_id for e in self._pending(updated)]
            owned = self.store.get_many(HubContact, actor.org_id, pending)
            mine = [c.id for c in owned.values() if c.owner_user_id == updated.id]
            self._write_flags(updated, [Decision(contact_id=c, shared=True) for c in mine])
            self._refresh_contacts(updated, mine)
        if "share_activity" in changes and changes["share_activity"] != user.sharing.share_activity:
            self._refresh(actor.org_id, self._owned_activity_ids(updated))
        return updated

    # ---- the queue of new contacts to approve --------------------------------------------------

    def queue(self, actor: Actor) -> list[QueueEntry]:
        user = self.user(actor)
        return self._pending(user)

    def _pending(self, user: User) -> list[QueueEntry]:
        ids = self.store.lookup_ids(SharingFlag, user.org_id, "pending", user.id)
        entries: list[QueueEntry] = []
        actor = Actor(user.org_id, user.id, user.role)
        for start in range(0, len(ids), READ_CHUNK):
            flags = self.store.get_many(SharingFlag, user.org_id, ids[start : start + READ_CHUNK])
            pending = [
                f
                for f in flags.values()
                if f.target is SharingTarget.CONTACT
                and f.user_id == user.id
                and f.content_shared is None
            ]
            contacts = self.store.get_many(HubContact, user.org_id, [f.target_id for f in pending])
            for flag in pending:
                contact = contacts.get(flag.target_id)
                if contact is None or contact.archived or not visible(contact, actor):
                    continue
                entries.append(
                    QueueEntry(
                        contact_id=contact.id,
                        display_name=contact.display_name,
                        company=contact.company,
                        addresses=self._addresses(user, contact),
                        since=flag.created_at,
                    )
                )
        return sorted(entries, key=lambda e: (e.since, e.contact_id))

    def _addresses(self, user: User, contact: HubContact) -> list[AddressState]:
        keys = contact_keys(contact)
        ids = [SharingFlag.make_id(user.id, SharingTarget.ADDRESS, k) for k in keys]
        flags = self.store.get_many(SharingFlag, user.org_id, ids)
        return [
            AddressState(address=k, shared=(flags[i].content_shared if i in flags else None))
            for k, i in zip(keys, ids, strict=True)
        ]

    def contact_sharing(
        self, actor: Actor, contact_id: str
    ) -> tuple[bool | None, list[AddressState]]:
        """The caller's decision for one contact and each of its addresses."""
        user = self.user(actor)
        contact = self._visible_contact(actor, contact_id, "contact_id")
        flag = self.store.find(
            SharingFlag,
            actor.org_id,
            SharingFlag.make_id(user.id, SharingTarget.CONTACT, contact.id),
        )
        return (flag.content_shared if flag else None), self._addresses(user, contact)

    def decide(self, actor: Actor, decisions: Sequence[Decision]) -> int:
        """Content sharing for each contact (and its addresses). All are checked before any
        is written. Returns how many decisions were stored."""
        user = self.user(actor)
        if not decisions:
            return 0
        if len(decisions) > 1000:
            raise InvalidInput.one("decisions", "at most 1000 decisions at once")
        for i, decision in enumerate(decisions):
            contact = self._visible_contact(actor, decision.contact_id, f"decisions.{i}.contact_id")
            keys = set(contact_keys(contact))
            for address in decision.addresses:
                if address.strip().lower() not in keys:
                    raise InvalidInput.one(
                        f"decisions.{i}.addresses", "names an address the contact does not have"
                    )
        self._write_flags(user, decisions)
        self._refresh_contacts(user, [d.contact_id for d in decisions])
        return len(decisions)

    def decide_all(
        self, actor: Actor, shared: bool, contact_ids: Iterable[str] | None = None
    ) -> int:
        """All (shared) or None (unshared) for the contacts awaiting a decision (those listed,
        or every one in the queue)."""
        user = self.user(actor)
        pending = {e.contact_id for e in self._pending(user)}
        if contact_ids is not None:
            chosen = list(dict.fromkeys(contact_ids))
            for i, cid in enumerate(chosen):
                if cid not in pending:
                    raise InvalidInput.one(f"contact_ids.{i}", "is not awaiting a decision")
        else:
            chosen = sorted(pending)
        return self.decide(actor, [Decision(contact_id=c, shared=shared) for c in chosen])

    def _visible_contact(self, actor: Actor, contact_id: str, field_name: str) -> HubContact:
        contact = self.store.find(HubContact, actor.org_id, contact_id)
        if contact is None or not visible(contact, actor):
            raise InvalidInput.one(field_name, "no such contact")
        return contact

    def _write_flags(self, user: User, decisions: Sequence[Decision]) -> None:
        now = self.now()
        wanted: dict[str, SharingFlag] = {}
        for decision in decisions:
            wanted_flag = self._flag(
                user, SharingTarget.CONTACT, decision.contact_id, decision.shared, now
            )
            wanted[wanted_flag.id] = wanted_flag
            for address, shared in decision.addresses.items():
                flag = self._flag(user, SharingTarget.ADDRESS, address.strip().lower(), shared, now)
                wanted[flag.id] = flag
        self._upsert(user.org_id, list(wanted.values()))

    @staticmethod
    def _flag(
        user: User, target: SharingTarget, target_id: str, shared: bool | None, now: datetime
    ) -> SharingFlag:
        return SharingFlag(
            org_id=user.org_id,
            id=SharingFlag.make_id(user.id, target, target_id),
            user_id=user.id,
            target=target,
            target_id=target_id,
            content_shared=shared,
            decided_at=now if shared is not None else None,
            created_at=now,
        )

    def _upsert(self, org_id: str, flags: Sequence[SharingFlag]) -> None:
        """Writes each flag over the stored one (keeping its creation time)."""
        for start in range(0, len(flags), WRITE_CHUNK):
            chunk = flags[start : start + WRITE_CHUNK]
            for attempt in range(3):
                stored = self.store.get_many(SharingFlag, org_id, [f.id for f in chunk])
                writes = []
                for flag in chunk:
                    old = stored.get(flag.id)
                    if old is None:
                        writes.append(Write(flag, expected_version=0))
                    else:
                        new = flag.model_copy(
                            update={"created_at": old.created_at, "version": old.version}
                        )
                        writes.append(Write(new, expected_version=old.version))
                try:
                    self.store.transact(writes)
                    break
                except VersionConflict:
                    if attempt == 2:
                        raise

    def ensure_queued(self, owner: User, contacts: Sequence[HubContact]) -> list[str]:
        """The capture met these contacts in the owner's communication: each one without a
        decision yet joins the owner's queue of new contacts to approve, or is shared at once
        when the owner added it and auto-shares content for the contacts they add. Returns the
        contacts newly queued or shared."""
        ids = {c.id: SharingFlag.make_id(owner.id, SharingTarget.CONTACT, c.id) for c in contacts}
        existing = self.store.get_many(SharingFlag, owner.org_id, list(ids.values()))
        now = self.now()
        new = []
        for contact in contacts:
            if ids[contact.id] in existing:
                continue
            auto = owner.sharing.auto_share_content and contact.owner_user_id == owner.id
            new.append(
                self._flag(owner, SharingTarget.CONTACT, contact.id, True if auto else None, now)
            )
        for start in range(0, len(new), WRITE_CHUNK):
            try:
                self.store.transact(
                    [Write(f, expected_version=0) for f in new[start : start + WRITE_CHUNK]]
                )
            except VersionConflict:  # another capture queued one meanwhile: go one by one
                for flag in new[start : start + WRITE_CHUNK]:
                    if self.store.find(SharingFlag, owner.org_id, flag.id) is None:
                        self.store.create(flag)
        return [f.target_id for f in new]

    # ---- per-event overrides -------------------------------------------------------------------

    def set_event(self, actor: Actor, activity_id: str, shared: bool | None) -> None:
        """Shares (True) or unshares (False) one of the caller's own emails or meetings over
        the contact settings; None goes back to them."""
        user = self.user(actor)
        activity = self.store.find(Activity, actor.org_id, activity_id)
        if activity is None or activity.owner_user_id != user.id:
            raise NotFound("activity", activity_id)
        flag_id = SharingFlag.make_id(user.id, SharingTarget.EVENT, activity.id)
        if shared is None:
            self.store.delete(SharingFlag, actor.org_id, flag_id)
        else:
            self._upsert(
                actor.org_id,
                [self._flag(user, SharingTarget.EVENT, activity.id, shared, self.now())],
            )
        self._refresh(actor.org_id, [activity.id])

    # ---- access requests -----------------------------------------------------------------------

    def request_access(self, actor: Actor, activity_id: str, note: str = "") -> AccessRequest:
        """Asks the owner for the content of an activity the caller sees happened but may not
        read. Asking again after a decline asks anew; a pending or granted request is returned
        as it is."""
        user = self.user(actor)
        if len(note) > 500:
            raise InvalidInput.one("note", "at most 500 characters")
        activity = self.store.find(Activity, actor.org_id, activity_id)
        if activity is None:
            raise NotFound("activity", activity_id)
        facts = Facts(self.store, actor.org_id)
        facts.prime([activity], user.id)
        viewer = viewer_of(user, actor)
        owner = facts.owner(activity)
        seen = level(
            viewer,
            activity,
            owner,
            facts.facts(activity),
            granted=facts.granted(user.id, activity),
            account_deleted=facts.account_deleted(activity),
        )
        if seen is Level.NONE:
            raise NotFound("activity", activity_id)
        if seen is Level.CONTENT and not facts.granted(user.id, activity):
            raise InvalidInput.one("activity_id", "its content is already shared with you")
        if not owner.active:
            raise InvalidInput.one("activity_id", "its owner has left the organisation")
        existing = facts.request(user.id, activity)
        if existing is not None and existing.status is not AccessStatus.DECLINED:
            return existing
        request = AccessRequest(
            org_id=actor.org_id,
            id=AccessRequest.make_id(user.id, activity.id),
            activity_id=activity.id,
            requester_user_id=user.id,
            owner_user_id=activity.owner_user_id,
            note=note,
            created_at=self.now(),
        )
        if existing is None:
            return self.store.create(request)
        return self.store.update(request.model_copy(update={"version": existing.version}))

    def answer(self, actor: Actor, request_id: str, grant: bool) -> AccessRequest:
        """The owner grants (the requester reads the content) or declines; a grant can be
        withdrawn later by declining."""
        user = self.user(actor)
        request = self.store.find(AccessRequest, actor.org_id, request_id)
        if request is None or request.owner_user_id != user.id:
            raise NotFound("access_request", request_id)
        status = AccessStatus.GRANTED if grant else AccessStatus.DECLINED
        if request.status is status:
            return request
        updated = self.store.update(
            request.model_copy(update={"status": status, "decided_at": self.now()})
        )
        self._refresh(actor.org_id, [request.activity_id])
        return updated

    def requests(
        self,
        actor: Actor,
        role: Literal["owner", "requester"] = "owner",
        status: AccessStatus | None = None,
    ) -> list[AccessRequest]:
        user = self.user(actor)
        index = "owner" if role == "owner" else "requester"
        ids = self.store.lookup_ids(AccessRequest, actor.org_id, index, user.id)
        found: list[AccessRequest] = []
        for start in range(0, len(ids), READ_CHUNK):
            for request in self.store.get_many(
                AccessRequest, actor.org_id, ids[start : start + READ_CHUNK]
            ).values():
                mine = request.owner_user_id if role == "owner" else request.requester_user_id
                if mine == user.id and (status is None or request.status is status):
                    found.append(request)
        return sorted(found, key=lambda r: (r.created_at, r.id), reverse=True)

    # ---- bodies follow the decisions -----------------------------------------------------------

    def _owned_activity_ids(self, user: User) -> list[str]:
        return sorted(self.store.lookup_ids(Activity, user.org_id, "owner", user.id))

    def _refresh_contacts(self, user: User, contact_ids: Iterable[str]) -> None:
        ids: set[str] = set()
        for cid in set(contact_ids):
            ids.update(self.store.lookup_ids(Activity, user.org_id, "contact", cid))
        self._refresh(user.org_id, sorted(ids), owner_id=user.id)

    def _refresh(
        self, org_id: str, activity_ids: Sequence[str], owner_id: str | None = None
    ) -> None:
        refresh_bodies(self.store, org_id, activity_ids, owner_id=owner_id, now=self.now())


def refresh_bodies(
    store: Store,
    org_id: str,
    activity_ids: Sequence[str],
    *,
    owner_id: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Makes each activity's stored body follow its sharing: dropped when nobody besides its
    owner may read it, marked ``body_due`` when someone may and it is not fetched yet. Returns
    the ids changed."""
    changed: list[str] = []
    for start in range(0, len(activity_ids), READ_CHUNK):
        chunk = store.get_many(Activity, org_id, activity_ids[start : start + READ_CHUNK])
        activities = [a for a in chunk.values() if owner_id is None or a.owner_user_id == owner_id]
        facts = Facts(store, org_id)
        facts.prime(activities)
        for activity in activities:
            owner = facts.owner(activity)
            grants = any(
                r.status is AccessStatus.GRANTED
                for r in store.lookup(AccessRequest, org_id, "activity", activity.id, limit=1000)
            )
            wanted = owner.share_activity and body_wanted(
                activity, facts.facts(activity), any_grant=grants
            )
            if facts.account_deleted(activity):
                wanted = False
            current: Activity | None = activity
            for _ in range(3):
                if current is None:
                    break
                update = _body_update(current, wanted, now or utcnow())
                if update is None:
                    break
                try:
                    store.update(current.model_copy(update=update))
                    changed.append(current.id)
                    break
                except VersionConflict:  # the capture wrote meanwhile: re-read, decide again
                    current = store.find(Activity, org_id, current.id)
    return changed


def _body_update(activity: Activity, wanted: bool, now: datetime) -> dict[str, Any] | None:
    if not wanted and (activity.body is not None or activity.body_due):
        return {"body": None, "body_due": False, "updated_at": now}
    if wanted and activity.body is None and not activity.body_due:
        return {"body_due": True, "updated_at": now}
    return None
