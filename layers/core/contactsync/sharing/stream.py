"""The Stream (seed 002): per contact and per company (seed 000's account), the activities the
caller may see, newest first, with content only where it is shared. Visibility is decided here,
where the data is read, by the pure rules in ``sharing.rules``: every caller of this module (API,
CLI, demo) gets the same answer.

- The caller must be an active user of the organisation (a removed user loses access at once).
- The contact must be visible to the caller in the gallery (a personal contact only to its
  owner); a company's Stream is made of its contacts the caller may see.
- The same email or meeting captured from several teammates' mailboxes shows once, at the
  highest level the caller has on any copy (their own copy gives them its content).
- Paging is by (time, id) keyset tokens, bound to the organisation and the listing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contactsync.app.gallery import Actor, visible
from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.base import utcnow
from contactsync.domain.company import Account, company_key_loose
from contactsync.domain.contact import HubContact, fold
from contactsync.domain.errors import InvalidInput, NotFound
from contactsync.domain.org import User
from contactsync.domain.sharing import AccessStatus
from contactsync.sharing.facts import Facts
from contactsync.sharing.rules import Level, Viewer, content_shared, is_confidential, level
from contactsync.store.base import Store, check_limit, decode_token, encode_token

CHUNK = 500
MAX_COMPANY_CONTACTS = 2000


class OwnSharing(BaseModel):
    """For the owner only: how this activity is shared and why."""

    event: bool | None = Field(description="The per-event decision (None: none made)")
    confidential: bool = Field(description="The subject holds Confidential/Private/...")
    content_shared: bool = Field(description="Teammates see the content")


class StreamItem(BaseModel):
    id: str
    kind: ActivityKind
    occurred_at: datetime
    owner_user_id: str
    direction: str
    level: Literal["metadata", "content"]
    own: bool
    contact_ids: list[str] = Field(description="The contacts in it that the caller may see")
    duration_seconds: int | None = None
    subject: str | None = None
    participants: list[str] | None = None
    thread_id: str | None = None
    body: str | None = None
    body_captured: bool = False
    copies: int = Field(default=1, description="Mailboxes it was captured from")
    access_request: AccessStatus | None = Field(
        default=None, description="The caller's request for its content, if any"
    )
    can_request_access: bool = False
    sharing: OwnSharing | None = None


class StreamPage(BaseModel):
    items: list[StreamItem]
    next_page_token: str | None = None


def viewer_of(store_user: User | None, actor: Actor) -> Viewer:
    active = store_user is not None and store_user.active and store_user.org_id == actor.org_id
    return Viewer(actor.org_id, actor.user_id, active)


@dataclass
class StreamQuery:
    store: Store
    now: Callable[[], datetime] = utcnow

    # ---- entry points --------------------------------------------------------------------------

    def viewer(self, actor: Actor) -> Viewer:
        """The caller as the rules see them; NotFound for a removed or unknown user (the API
        refuses them earlier; the CLI and tests reach this)."""
        user = self.store.find(User, actor.org_id, actor.user_id)
        viewer = viewer_of(user, actor)
        if not viewer.active:
            raise NotFound("user", actor.user_id)
        return viewer

    def contact_stream(
        self, actor: Actor, contact_id: str, *, limit: int = 50, page_token: str | None = None
    ) -> StreamPage:
        viewer = self.viewer(actor)
        contact = self.store.find(HubContact, actor.org_id, contact_id)
        if contact is None or not visible(contact, actor):
            raise NotFound("contact", contact_id)
        return self._page(viewer, actor, [contact_id], f"stream.c.{contact_id}", limit, page_token)

    def company_stream(
        self, actor: Actor, company_id: str, *, limit: int = 50, page_token: str | None = None
    ) -> StreamPage:
        viewer = self.viewer(actor)
        company = self.store.find(Account, actor.org_id, company_id)
        if company is None:
            raise NotFound("company", company_id)
        contact_ids = [c.id for c in company_contacts(self.store, actor, company)]
        return self._page(viewer, actor, contact_ids, f"stream.a.{company_id}", limit, page_token)

    def activity(self, actor: Actor, activity_id: str) -> StreamItem:
        """One activity as the caller may see it in the Stream (or as its owner)."""
        viewer = self.viewer(actor)
        activity = self.store.find(Activity, actor.org_id, activity_id)
        if activity is None:
            raise NotFound("activity", activity_id)
        facts = Facts(self.store, actor.org_id)
        facts.prime([activity], viewer.user_id)
        item = self.render(viewer, actor, activity, facts, own_view=True)
        if item is None:
            raise NotFound("activity", activity_id)  # not visible: indistinguishable from absent
        return item

    def own_activities(
        self, actor: Actor, *, limit: int = 50, page_token: str | None = None
    ) -> StreamPage:
        """The caller's own captured activity, whatever their sharing switches (to manage
        per-event sharing)."""
        viewer = self.viewer(actor)
        check_limit(limit)
        ids = self.store.lookup_ids(Activity, actor.org_id, "owner", actor.user_id)
        after = self._after(actor.org_id, f"stream.own.{actor.user_id}", page_token)
        chosen = self._newest(actor.org_id, ids, limit + 1, after)
        facts = Facts(self.store, actor.org_id)
        facts.prime(chosen, viewer.user_id)
        items = [
            item
            for a in chosen
            if (item := self.render(viewer, actor, a, facts, own_view=True)) is not None
        ]
        return self._finish(actor.org_id, f"stream.own.{actor.user_id}", items, limit)

    # ---- rendering -----------------------------------------------------------------------------

    def render(
        self,
        viewer: Viewer,
        actor: Actor,
        activity: Activity,
        facts: Facts,
        *,
        own_view: bool = False,
    ) -> StreamItem | None:
        deleted = facts.account_deleted(activity)
        owner = facts.owner(activity)
        own = viewer.user_id == activity.owner_user_id
        seen = level(
            viewer,
            activity,
            owner,
            facts.facts(activity),
            granted=facts.granted(viewer.user_id, activity),
            account_deleted=deleted,
        )
        if own and own_view and viewer.active and not deleted:
            seen = Level.CONTENT  # the owner manages their own activity outside the Stream
        if seen is Level.NONE:
            return None
        contact_ids = [
            cid
            for cid in activity.contact_ids
            if (c := facts.contacts.get(cid)) is not None and visible(c, actor)
        ]
        request = None if own else facts.request(viewer.user_id, activity)
        item = StreamItem(
            id=activity.id,
            kind=activity.activity_kind,
            occurred_at=activity.occurred_at,
            owner_user_id=activity.owner_user_id,
            direction=activity.direction,
            level="content" if seen is Level.CONTENT else "metadata",
            own=own,
            contact_ids=contact_ids,
            duration_seconds=activity.duration_seconds,
            access_request=request.status if request is not None else None,
            can_request_access=(
                seen is Level.METADATA
                and owner.active
                and (request is None or request.status is AccessStatus.DECLINED)
            ),
        )
        if seen is Level.CONTENT:
            item.subject = activity.subject
            item.participants = list(activity.participants)
            item.thread_id = activity.thread_id
            item.body = activity.body
            item.body_captured = activity.body is not None
        if own:
            content = facts.facts(activity)
            item.sharing = OwnSharing(
                event=content.event,
                confidential=activity.activity_kind is not ActivityKind.CALL
                and is_confidential(activity.subject),
                content_shared=content_shared(activity, content),
            )
        return item

    # ---- paging --------------------------------------------------------------------------------

    def _page(
        self,
        viewer: Viewer,
        actor: Actor,
        contact_ids: Sequence[str],
        listing: str,
        limit: int,
        page_token: str | None,
    ) -> StreamPage:
        check_limit(limit)
        after = self._after(actor.org_id, listing, page_token)
        ids: set[str] = set()
        for contact_id in contact_ids:
            ids.update(self.store.lookup_ids(Activity, actor.org_id, "contact", contact_id))
        shown: list[tuple[Activity, StreamItem]] = []
        cursor = after
        window = (limit + 1) * 2
        # Activities the caller may not see are skipped: read on (in growing windows) until
        # the page is full or nothing older remains.
        while len(shown) <= limit:
            batch = self._newest(actor.org_id, ids, window, cursor)
            facts = Facts(self.store, actor.org_id)
            facts.prime(batch, viewer.user_id)
            for activity in batch:
                item = self.render(viewer, actor, activity, facts)
                if item is not None:
                    shown.append((activity, item))
            if len(batch) < window:
                break
            cursor = (batch[-1].occurred_at, batch[-1].id)
            window *= 2
        return self._finish(actor.org_id, listing, _dedupe(shown), limit)

    def _finish(self, org_id: str, listing: str, items: list[StreamItem], limit: int) -> StreamPage:
        if len(items) <= limit:
            return StreamPage(items=items)
        page = items[:limit]
        last = page[-1]
        token = encode_token(
            {"o": org_id, "k": listing, "t": last.occurred_at.isoformat(), "i": last.id}
        )
        return StreamPage(items=page, next_page_token=token)

    @staticmethod
    def _after(org_id: str, listing: str, token: str | None) -> tuple[datetime, str] | None:
        if token is None:
            return None
        data = decode_token(token, org_id, listing)
        try:
            return datetime.fromisoformat(str(data["t"])), str(data["i"])
        except (KeyError, ValueError):
            raise InvalidInput.one("page_token", "is not a page token") from None

    def _newest(
        self,
        org_id: str,
        ids: Iterable[str],
        count: int,
        after: tuple[datetime, str] | None,
    ) -> list[Activity]:
        """The ``count`` newest activities strictly older than ``after`` (time, then id), read
        in chunks so memory stays at ``count`` whatever the number of ids."""
        heap: list[tuple[datetime, str, Activity]] = []
        for activity in self._iter(org_id, sorted(ids)):
            key = (activity.occurred_at, activity.id)
            if after is not None and key >= after:
                continue
            entry = (activity.occurred_at, activity.id, activity)
            if len(heap) < count:
                heapq.heappush(heap, entry)
            elif key > heap[0][:2]:
                heapq.heapreplace(heap, entry)
        return [a for _, _, a in sorted(heap, key=lambda e: (e[0], e[1]), reverse=True)]

    def _iter(self, org_id: str, ids: Sequence[str]) -> Iterator[Activity]:
        for start in range(0, len(ids), CHUNK):
            found = self.store.get_many(Activity, org_id, ids[start : start + CHUNK])
            yield from found.values()


def _dedupe(shown: list[tuple[Activity, StreamItem]]) -> list[StreamItem]:
    """One entry per email or meeting (its Message-ID or iCalUID): the copy the caller sees
    best, their own first; the entry counts the copies and unites their contacts. Order (newest
    first) is kept."""
    best: dict[str, StreamItem] = {}
    order: list[str] = []
    for activity, item in shown:
        key = (
            f"{activity.activity_kind.value}:{activity.message_key}"
            if activity.message_key
            else activity.id
        )
        current = best.get(key)
        if current is None:
            best[key] = item
            order.append(key)
            continue
        rank = (item.level == "content", item.own)
        winner, other = (
            (item, current) if rank > (current.level == "content", current.own) else (current, item)
        )
        winner.copies = current.copies + 1
        winner.contact_ids = sorted(set(winner.contact_ids) | set(other.contact_ids))
        best[key] = winner
    return [best[k] for k in order]


def company_contacts(store: Store, actor: Actor, company: Account) -> list[HubContact]:
    """The contacts of a company the caller may see: linked by id, or working there by name
    (legal-form suffixes and case ignored), not archived."""
    found: dict[str, HubContact] = {}
    for contact in store.lookup(HubContact, actor.org_id, "company", company.id, limit=1000):
        found[contact.id] = contact
    key = company_key_loose(company.name)
    words = [w for w in fold(company.name).split() if len(w) >= 2]
    if key and words:
        ids = store.lookup_ids(HubContact, actor.org_id, "word", words[0])
        for start in range(0, min(len(ids), MAX_COMPANY_CONTACTS), CHUNK):
            chunk = ids[start : start + CHUNK]
            for contact in store.get_many(HubContact, actor.org_id, chunk).values():
                if contact.company and company_key_loose(contact.company) == key:
                    found[contact.id] = contact
    return sorted(
        (c for c in found.values() if visible(c, actor) and not c.archived),
        key=lambda c: c.id,
    )
