"""Property: no sequence of setting changes makes unshared content visible to anyone but its
owner (seed 002), and bodies are stored only while someone besides the owner may read them.

Hypothesis drives the real service and query layer on SQLite through random sequences of
switches, contact / address / event decisions, All / None, access requests and answers, user
removals and captures. A model written from seed 002 (not from the rules module) says, after
each step, what every viewer must and must not read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.contact import HubContact
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.org import User
from contactsync.sharing.lifecycle import Lifecycle
from contactsync.sharing.service import Decision
from contactsync.store.sqlite import SQLiteStore
from tests.sharing.world import World

CONFIDENTIAL = "Privileged and confidential"
NAMES = ("pam", "jim", "michael")


@dataclass
class Model:
    """What each owner decided, as seed 002 describes the decisions."""

    share_activity: dict[str, bool] = field(default_factory=dict)
    active: dict[str, bool] = field(default_factory=dict)
    contact: dict[tuple[str, str], bool] = field(default_factory=dict)  # (owner, contact)
    address: dict[tuple[str, str], bool] = field(default_factory=dict)  # (owner, address)
    event: dict[str, bool] = field(default_factory=dict)  # activity -> decision
    granted: set[tuple[str, str]] = field(default_factory=set)  # (requester, activity)
    auto_share: dict[str, bool] = field(default_factory=dict)
    queued: set[tuple[str, str]] = field(default_factory=set)  # (owner, contact) met

    def owner_shares(self, activity: Activity, contacts: dict[str, HubContact]) -> bool:
        owner = activity.owner_user_id
        if activity.id in self.event:
            return self.event[activity.id]
        if activity.activity_kind is not ActivityKind.CALL and activity.subject == CONFIDENTIAL:
            return False
        for cid in activity.contact_ids:
            keys = [k for k in contacts[cid].email_keys() if k in activity.participants]
            decided = self.contact.get((owner, cid))
            for key in keys or [None]:
                choice = self.address.get((owner, key)) if key else None
                if (decided if choice is None else choice) is not True:
                    return False
        return bool(activity.contact_ids)

    def readable_by(self, viewer: str, activity: Activity, contacts: dict[str, HubContact]) -> bool:
        """May ``viewer`` (not the owner) read the content?"""
        if not self.active.get(viewer, False) or not self.share_activity.get(
            activity.owner_user_id, False
        ):
            return False
        return (viewer, activity.id) in self.granted or self.owner_shares(activity, contacts)


class SharingMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.world = World(SQLiteStore(":memory:"))
        w = self.world
        self.users: dict[str, User] = {"pam": w.pam, "jim": w.jim, "michael": w.michael}
        self.contacts = {
            c.id: c
            for c in (
                w.contact(["zoe@acme.example", "zoe@home.example"]),
                w.contact(["jose@acme.example"]),
                w.contact(["roy@mail.example"], owner=w.pam, personal=True),
            )
        }
        self.activities: list[Activity] = []
        ids = [u.id for u in self.users.values()]
        self.model = Model(
            share_activity=dict.fromkeys(ids, False), active=dict.fromkeys(ids, True)
        )

    def _uid(self, name: str) -> str:
        return self.users[name].id

    def _name(self, user_id: str) -> str:
        return next(n for n, u in self.users.items() if u.id == user_id)

    def _actor(self, name: str):  # type: ignore[no-untyped-def]
        return self.world.actor(self.users[name])

    # ---- what users do -------------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(NAMES),
        picks=st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True),
        kind=st.sampled_from(list(ActivityKind)),
        confidential=st.booleans(),
        home=st.booleans(),
    )
    def capture(
        self, owner: str, picks: list[int], kind: ActivityKind, confidential: bool, home: bool
    ) -> None:
        if not self.model.active[self._uid(owner)]:
            return  # future communication of a removed user does not enter
        ids = sorted(self.contacts)
        chosen = [self.contacts[ids[i]] for i in picks]
        if any(c.personal and c.owner_user_id != self._uid(owner) for c in chosen):
            return  # the capture only matches contacts the owner may see
        user = self.users[owner]
        participants = [user.email.key] + [c.email_keys()[-1 if home else 0] for c in chosen]
        activity = self.world.activity(
            user,
            chosen,
            kind=kind,
            subject=CONFIDENTIAL if confidential else "Order",
            participants=participants,
        )
        self.activities.append(activity)
        for contact in chosen:
            key = (user.id, contact.id)
            if key in self.model.queued or key in self.model.contact:
                continue
            self.model.queued.add(key)
            if self.model.auto_share.get(owner) and contact.owner_user_id == user.id:
                self.model.contact[key] = True

    @rule(
        name=st.sampled_from(NAMES),
        setting=st.sampled_from(["share_activity", "auto_share_content"]),
        value=st.booleans(),
    )
    def switch(self, name: str, setting: str, value: bool) -> None:
        try:
            self.world.sharing.update_settings(self._actor(name), {setting: value})
        except NotFound:
            assert not self.model.active[self._uid(name)]
            return
        except InvalidInput:
            assert value
            assert sum(self.model.active.values()) < 2
            return
        if setting == "share_activity":
            self.model.share_activity[self._uid(name)] = value
        else:
            self._auto_share(name, value)

    def _auto_share(self, name: str, value: bool) -> None:
        was = self.model.auto_share.get(name, False)
        self.model.auto_share[name] = value
        if not value or was:
            return
        # Turning it on shares the pending contacts the user added
        uid = self._uid(name)
        for cid, contact in self.contacts.items():
            key = (uid, cid)
            mine = contact.owner_user_id == uid
            if mine and key in self.model.queued and key not in self.model.contact:
                self.model.contact[key] = True

    @rule(
        name=st.sampled_from(NAMES),
        index=st.integers(0, 2),
        shared=st.booleans(),
        address=st.none() | st.booleans(),
    )
    def decide(self, name: str, index: int, shared: bool, address: bool | None) -> None:
        cid = sorted(self.contacts)[index]
        contact = self.contacts[cid]
        addresses = {contact.email_keys()[-1]: address} if address is not None else {}
        try:
            self.world.sharing.decide(
                self._actor(name), [Decision(contact_id=cid, shared=shared, addresses=addresses)]
            )
        except NotFound:
            assert not self.model.active[self._uid(name)]
            return
        except InvalidInput:
            assert contact.personal
            assert contact.owner_user_id != self._uid(name)
            return
        self.model.contact[(self._uid(name), cid)] = shared
        self.model.queued.add((self._uid(name), cid))
        for key, value in addresses.items():
            self.model.address[(self._uid(name), key)] = value

    @rule(data=st.data(), value=st.none() | st.booleans())
    def override(self, data: st.DataObject, value: bool | None) -> None:
        if not self.activities:
            return
        activity = data.draw(st.sampled_from(self.activities))
        owner = self._name(activity.owner_user_id)
        try:
            self.world.sharing.set_event(self._actor(owner), activity.id, value)
        except NotFound:
            assert not self.model.active[self._uid(owner)]
            return
        if value is None:
            self.model.event.pop(activity.id, None)
        else:
            self.model.event[activity.id] = value

    @rule(data=st.data(), requester=st.sampled_from(NAMES), grant=st.booleans())
    def ask_and_answer(self, data: st.DataObject, requester: str, grant: bool) -> None:
        if not self.activities:
            return
        activity = data.draw(st.sampled_from(self.activities))
        owner = self._name(activity.owner_user_id)
        if owner == requester:
            return
        try:
            request = self.world.sharing.request_access(self._actor(requester), activity.id)
        except (NotFound, InvalidInput):
            return
        try:
            self.world.sharing.answer(self._actor(owner), request.id, grant)
        except NotFound:
            assert not self.model.active[self._uid(owner)]
            return
        key = (self._uid(requester), activity.id)
        if grant:
            self.model.granted.add(key)
        else:
            self.model.granted.discard(key)

    @rule(name=st.sampled_from(["pam", "jim"]), dice=st.integers(0, 5))
    def remove(self, name: str, dice: int) -> None:
        if dice or not self.model.active[self._uid(name)]:
            return  # rarer than the other steps: a removal ends a user's story
        Lifecycle(self.world.store).remove_user(self._actor("michael"), self._uid(name))
        self.model.active[self._uid(name)] = False
        # Pending requests addressed to the removed user are declined (nothing was granted)

    @rule()
    def fetch_bodies(self) -> None:
        """The capture fetches every body that is due."""
        store = self.world.store
        for activity in self.activities:
            stored = store.get(Activity, "org-dm", activity.id)
            if stored.body_due:
                store.update(stored.model_copy(update={"body": "the content", "body_due": False}))

    # ---- what must hold ----------------------------------------------------------------------

    @invariant()
    def nobody_reads_unshared_content(self) -> None:
        if not hasattr(self, "world"):
            return
        for activity in self.activities:
            owner = self._name(activity.owner_user_id)
            for viewer in NAMES:
                if viewer == owner:
                    continue
                try:
                    item = self.world.stream.activity(self._actor(viewer), activity.id)
                except NotFound:
                    continue
                may = self.model.readable_by(self._uid(viewer), activity, self.contacts)
                if item.level == "content":
                    assert may, (viewer, activity.id)
                else:
                    assert item.body is None
                    assert item.subject is None
                    assert not may or not self.model.active[self._uid(viewer)]
            try:
                self.world.stream.activity(self.world.actor(self.world.bob), activity.id)
                raise AssertionError("another organisation read an activity")
            except NotFound:
                pass

    @invariant()
    def bodies_only_while_someone_else_may_read(self) -> None:
        if not hasattr(self, "world"):
            return
        for activity in self.activities:
            stored = self.world.store.get(Activity, "org-dm", activity.id)
            if stored.body is None and not stored.body_due:
                continue
            readers = [
                n
                for n in NAMES
                if self._uid(n) != activity.owner_user_id
                and self.model.share_activity[activity.owner_user_id]
                and (
                    (self._uid(n), activity.id) in self.model.granted
                    or self.model.owner_shares(activity, self.contacts)
                )
            ]
            assert readers, activity.id


SharingMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SHARING_EXAMPLES", "150")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
TestSharingProperties = SharingMachine.TestCase
