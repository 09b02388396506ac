"""Factories for domain objects: tests say what matters and take defaults for the rest."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from contactsync.domain import (
    AccessRequest,
    Account,
    Activity,
    ActivityKind,
    ChangeLogEntry,
    ConnectedAccount,
    ConnectionStrength,
    Contribution,
    Cursor,
    EmailAddress,
    FieldChange,
    HubContact,
    Link,
    MergeSuggestion,
    Organisation,
    PhoneNumber,
    Provider,
    SharingFlag,
    SharingTarget,
    SyncSettings,
    User,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
_seq = itertools.count(1)


def org(org_id: str = "org-a", **kw: Any) -> Organisation:
    return Organisation(org_id=org_id, id=org_id, name=kw.pop("name", f"Org {org_id}"), **kw)


def user(org_id: str = "org-a", user_id: str = "u-1", **kw: Any) -> User:
    email = kw.pop("email", f"{user_id}@{org_id}.example")
    return User(org_id=org_id, id=user_id, email=EmailAddress(address=email), **kw)


def contact(org_id: str = "org-a", contact_id: str | None = None, **kw: Any) -> HubContact:
    n = next(_seq)
    emails = kw.pop("emails", [f"person{n}@example.com"])
    phones = kw.pop("phones", [])
    return HubContact(
        org_id=org_id,
        id=contact_id or f"c-{n:06d}",
        given_name=kw.pop("given_name", "Zoë"),
        family_name=kw.pop("family_name", f"Müller{n}"),
        emails=[EmailAddress(address=e) for e in emails],
        phones=[p if isinstance(p, PhoneNumber) else PhoneNumber.parse(p, "US") for p in phones],
        **kw,
    )


def connected_account(
    org_id: str = "org-a",
    account_id: str = "acc-sf",
    provider: Provider = Provider.SALESFORCE,
    **kw: Any,
) -> ConnectedAccount:
    return ConnectedAccount(
        org_id=org_id,
        id=account_id,
        provider=provider,
        owner_user_id=kw.pop("owner_user_id", "u-1"),
        address=kw.pop("address", f"admin@{org_id}.example"),
        **kw,
    )


def sync_settings(org_id: str = "org-a", sync_id: str = "sync-1", **kw: Any) -> SyncSettings:
    return SyncSettings(org_id=org_id, id=sync_id, account_id=kw.pop("account_id", "acc-sf"), **kw)


def link(
    org_id: str = "org-a",
    contact_id: str = "c-1",
    account_id: str = "acc-sf",
    object_type: str = "Contact",
    remote_id: str = "003000000000001AAA",
    **kw: Any,
) -> Link:
    return Link(
        org_id=org_id,
        id=Link.key(account_id, object_type, remote_id),
        contact_id=contact_id,
        account_id=account_id,
        object_type=object_type,
        remote_id=remote_id,
        **kw,
    )


def cursor(
    org_id: str = "org-a", account_id: str = "acc-sf", stream: str = "Contact", **kw: Any
) -> Cursor:
    return Cursor(
        org_id=org_id,
        id=Cursor.make_id(account_id, stream),
        account_id=account_id,
        stream=stream,
        **kw,
    )


def company(org_id: str = "org-a", company_id: str = "co-1", **kw: Any) -> Account:
    return Account(org_id=org_id, id=company_id, name=kw.pop("name", "Dunder Mifflin"), **kw)


def sharing_flag(org_id: str = "org-a", **kw: Any) -> SharingFlag:
    user_id = kw.pop("user_id", "u-1")
    target = kw.pop("target", SharingTarget.CONTACT)
    target_id = kw.pop("target_id", "c-1")
    return SharingFlag(
        org_id=org_id,
        id=SharingFlag.make_id(user_id, target, target_id),
        user_id=user_id,
        target=target,
        target_id=target_id,
        **kw,
    )


def activity(org_id: str = "org-a", activity_id: str = "act-1", **kw: Any) -> Activity:
    return Activity(
        org_id=org_id,
        id=activity_id,
        activity_kind=kw.pop("activity_kind", ActivityKind.EMAIL),
        account_id=kw.pop("account_id", "acc-g"),
        owner_user_id=kw.pop("owner_user_id", "u-1"),
        remote_id=kw.pop("remote_id", "msg-1"),
        occurred_at=kw.pop("occurred_at", T0),
        contact_ids=kw.pop("contact_ids", ["c-1"]),
        **kw,
    )


def merge_suggestion(
    org_id: str = "org-a", a: str = "c-1", b: str = "c-2", **kw: Any
) -> MergeSuggestion:
    return MergeSuggestion(
        org_id=org_id,
        id=MergeSuggestion.make_id(a, b),
        contact_ids=[a, b],
        score=kw.pop("score", 0.8),
        **kw,
    )


def change(org_id: str = "org-a", contact_id: str = "c-1", **kw: Any) -> ChangeLogEntry:
    return ChangeLogEntry(
        org_id=org_id,
        id=kw.pop("change_id", f"ch-{next(_seq):06d}"),
        contact_id=contact_id,
        source=kw.pop("source", "acc-sf"),
        at=kw.pop("at", T0),
        changes=kw.pop("changes", [FieldChange(field="given_name", old="Zoe", new="Zoë")]),
        **kw,
    )


def connection_strength(
    org_id: str = "org-a", user_id: str = "u-1", contact_id: str = "c-1", **kw: Any
) -> ConnectionStrength:
    return ConnectionStrength(
        org_id=org_id,
        id=ConnectionStrength.make_id(user_id, contact_id),
        user_id=user_id,
        contact_id=contact_id,
        as_of=kw.pop("as_of", T0),
        by_account=kw.pop(
            "by_account", {"acc-g": Contribution(weighted=3.0, inbound=1, outbound=2, emails=3)}
        ),
        **kw,
    )


def access_request(
    org_id: str = "org-a", requester: str = "u-2", activity_id: str = "act-1", **kw: Any
) -> AccessRequest:
    return AccessRequest(
        org_id=org_id,
        id=AccessRequest.make_id(requester, activity_id),
        activity_id=activity_id,
        requester_user_id=requester,
        owner_user_id=kw.pop("owner_user_id", "u-1"),
        **kw,
    )
