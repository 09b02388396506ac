"""A small organisation for the sharing tests: Pam (owner of the activity), Jim (teammate),
Michael (admin), Bob (another organisation), a few contacts, connected mailboxes, and helpers
to record activity as the capture would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contactsync.app.gallery import Actor
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.contact import EmailAddress, HubContact, PhoneNumber, Visibility
from contactsync.domain.org import Organisation, Role, SharingSettings, User
from contactsync.sharing.connections import pairs_of, recompute
from contactsync.sharing.service import SharingService
from contactsync.sharing.stream import StreamQuery
from contactsync.store.base import Store
from tests.factories import T0

ORG = "org-dm"
OTHER = "org-vance"
_ids = itertools.count(1)


def _user(org: str, user_id: str, email: str, name: str, role: Role = Role.USER) -> User:
    return User(
        org_id=org,
        id=user_id,
        email=EmailAddress(address=email),
        name=name,
        role=role,
        created_at=T0,
    )


@dataclass
class World:
    store: Store
    now: datetime = T0 + timedelta(days=1)
    pam: User = field(init=False)
    jim: User = field(init=False)
    michael: User = field(init=False)
    bob: User = field(init=False)
    accounts: dict[str, ConnectedAccount] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store.create(Organisation(org_id=ORG, id=ORG, name="Dunder Mifflin"))
        self.store.create(Organisation(org_id=OTHER, id=OTHER, name="Vance Refrigeration"))
        self.michael = self.store.create(
            _user(ORG, "u-michael", "michael@dundermifflin.com", "Michael Scott", Role.ADMIN)
        )
        self.pam = self.store.create(_user(ORG, "u-pam", "pam@dundermifflin.com", "Pam Beesly"))
        self.jim = self.store.create(_user(ORG, "u-jim", "jim@dundermifflin.com", "Jim Halpert"))
        self.bob = self.store.create(
            _user(OTHER, "u-bob", "bob@vance.example", "Bob Vance", Role.ADMIN)
        )
        for user in (self.pam, self.jim, self.michael):
            self.mailbox(user)

    # ---- people and switches -------------------------------------------------------------------

    def actor(self, user: User) -> Actor:
        return Actor(user.org_id, user.id, user.role)

    def reload(self, user: User) -> User:
        return self.store.get(User, user.org_id, user.id)

    def switch(self, user: User, **settings: bool) -> User:
        current = self.reload(user)
        updated = current.model_copy(
            update={"sharing": SharingSettings(**{**current.sharing.model_dump(), **settings})}
        )
        return self.store.update(updated)

    @property
    def sharing(self) -> SharingService:
        return SharingService(self.store, lambda: self.now)

    @property
    def stream(self) -> StreamQuery:
        return StreamQuery(self.store, lambda: self.now)

    # ---- contacts and accounts -----------------------------------------------------------------

    def contact(
        self,
        emails: list[str] | None = None,
        *,
        owner: User | None = None,
        personal: bool = False,
        phones: list[str] | None = None,
        company: str = "",
        org: str = ORG,
        given_name: str = "Zoë",
    ) -> HubContact:
        n = next(_ids)
        return self.store.create(
            HubContact(
                org_id=org,
                id=f"c-{n:04d}",
                given_name=given_name,
                family_name=f"Müller{n}",
                emails=[EmailAddress(address=e) for e in (emails or [f"client{n}@acme.example"])],
                phones=[PhoneNumber.parse(p, "US") for p in phones or []],
                company=company,
                owner_user_id=(owner or self.pam).id,
                visibility=Visibility.PERSONAL if personal else Visibility.ORGANISATION,
            )
        )

    def mailbox(self, user: User, provider: Provider = Provider.GOOGLE) -> ConnectedAccount:
        account = self.store.create(
            ConnectedAccount(
                org_id=user.org_id,
                id=f"acc-{provider.value}-{user.id}",
                provider=provider,
                owner_user_id=user.id,
                address=user.email.address,
            )
        )
        self.accounts[user.id] = account
        return account

    # ---- activity ----------------------------------------------------------------------------

    def activity(
        self,
        owner: User,
        contacts: list[HubContact],
        *,
        kind: ActivityKind = ActivityKind.EMAIL,
        subject: str = "Paper order for Q3",
        body: str | None = None,
        at: datetime | None = None,
        direction: str = "outbound",
        message_key: str | None = None,
        participants: list[str] | None = None,
        **extra: Any,
    ) -> Activity:
        n = next(_ids)
        account = self.accounts[owner.id]
        remote = f"m-{n}"
        if participants is None:
            participants = [owner.email.key] + [
                (c.email_keys() or c.phone_keys())[0] for c in contacts
            ]
        activity = Activity(
            org_id=owner.org_id,
            id=Activity.make_id(account.id, remote),
            activity_kind=kind,
            account_id=account.id,
            owner_user_id=owner.id,
            remote_id=remote,
            occurred_at=at or T0 + timedelta(minutes=n),
            direction=direction,  # type: ignore[arg-type]
            subject=subject if kind is not ActivityKind.CALL else "",
            participants=participants,
            contact_ids=[c.id for c in contacts],
            body=body,
            message_key=message_key,
            duration_seconds=300 if kind is ActivityKind.CALL else None,
            **extra,
        )
        stored = self.store.create(activity)
        recompute(self.store, owner.org_id, pairs_of([stored]), self.now)
        self.sharing.ensure_queued(self.reload(owner), contacts)
        return stored
