"""Activity capture: from each connected mailbox and phone system, the emails, meetings and
calls that involve gallery contacts, into the hub as activities (metadata only).

One run, per connected account (connected, its owner still in the organisation), per stream:
take the stream's lease (one writer per cursor), read from the cursor (or backfill the
provider's window, seed 001: Gmail 6 months, Exchange 1 year, Office 365 2 years, Aircall's
6 months of calls), store each page, then move the cursor (at least once in, exactly one effect:
activities have deterministic ids). After the pages, the bodies due (content shared but not
fetched yet) are fetched. Deleted accounts' activity is forgotten.

Matching: a participant is a contact when one of its email addresses or E.164 numbers belongs
to a gallery contact the owner may see (the organisation's, or their own personal ones), never
the owner's own addresses and never a teammate's. Nothing without a contact is stored. Each
new (owner, contact) pair joins the owner's approval queue (or is shared at once under
auto-share), the connection strengths of the pairs touched are rebuilt, and the bodies follow
the owner's sharing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from contactsync.activity.base import CALENDAR, CALLS, MAIL, ActivityReader, Captured
from contactsync.app.gallery import Actor, visible
from contactsync.connectors.base import ConnectorError
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.domain.activity import Activity
from contactsync.domain.base import utcnow
from contactsync.domain.contact import HubContact
from contactsync.domain.cursor import Cursor
from contactsync.domain.errors import LeaseHeld, LeaseLost, VersionConflict
from contactsync.domain.org import User
from contactsync.sharing.connections import pairs_of, recompute
from contactsync.sharing.lifecycle import forget_account
from contactsync.sharing.service import SharingService, refresh_bodies
from contactsync.store.base import Store, Write

log = logging.getLogger(__name__)

ReaderFactory = Callable[[ConnectedAccount], Sequence[ActivityReader]]
CAPTURED_PROVIDERS = frozenset({Provider.GOOGLE, Provider.MICROSOFT, Provider.AIRCALL})
LEASE_TTL = timedelta(minutes=10)
MAX_BODIES_PER_RUN = 500
WRITE_CHUNK = 25


class StreamReport(BaseModel):
    account_id: str
    stream: str
    pages: int = 0
    read: int = 0
    stored: int = 0
    unmatched: int = Field(default=0, description="Read but involving no gallery contact")
    removed: int = 0
    restarted: bool = Field(default=False, description="A backfill (first read or expired cursor)")
    error: str | None = None


class CaptureReport(BaseModel):
    run_id: str
    streams: list[StreamReport] = Field(default_factory=list)
    bodies_fetched: int = 0
    forgotten_accounts: list[str] = Field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(s.stored for s in self.streams)


@dataclass
class _Matcher:
    """Participant keys -> the contacts one owner may see, cached for one batch."""

    store: Store
    owner: User
    own: frozenset[str]
    internal: frozenset[str]
    cache: dict[str, list[str]] = field(default_factory=dict)

    def contacts(self, keys: Iterable[str]) -> dict[str, list[str]]:
        actor = Actor(self.owner.org_id, self.owner.id, self.owner.role)
        found: dict[str, list[str]] = {}
        for key in keys:
            if key in self.own or key in self.internal:
                continue
            if key not in self.cache:
                index = "phone" if key.startswith("+") else "email"
                matches = []
                for contact in self.store.lookup(
                    HubContact, self.owner.org_id, index, key, limit=20
                ):
                    target = self._follow(contact)
                    if target is not None and visible(target, actor) and not target.archived:
                        matches.append(target.id)
                self.cache[key] = sorted(set(matches))
            for contact_id in self.cache[key]:
                found.setdefault(contact_id, []).append(key)
        return found

    def _follow(self, contact: HubContact) -> HubContact | None:
        """A contact merged into another is that other one now."""
        seen = 0
        while contact.merged_into and seen < 5:
            nxt = self.store.find(HubContact, self.owner.org_id, contact.merged_into)
            if nxt is None:
                return None
            contact, seen = nxt, seen + 1
        return contact


@dataclass
class ActivityCapture:
    store: Store
    org_id: str
    readers: ReaderFactory
    now: Callable[[], datetime] = utcnow
    worker: str = field(default_factory=lambda: f"capture-{uuid.uuid4().hex[:8]}")
    # False once no page should be started (a Lambda near its timeout): the cursor of the last
    # stored page stays, and the next run continues from it.
    keep_going: Callable[[], bool] = lambda: True

    # ---- one run -----------------------------------------------------------------------------

    def run(self, accounts: Iterable[str] | None = None) -> CaptureReport:
        report = CaptureReport(run_id=f"cap-{uuid.uuid4().hex[:10]}")
        wanted = set(accounts) if accounts is not None else None
        for account in sorted(self.store.scan(ConnectedAccount, self.org_id), key=lambda a: a.id):
            if wanted is not None and account.id not in wanted:
                continue
            if account.status is AccountStatus.DELETED:
                if self.store.lookup_ids(Activity, self.org_id, "account", account.id):
                    forget_account(self.store, self.org_id, account.id, self.now())
                    report.forgotten_accounts.append(account.id)
                continue
            if (
                account.provider not in CAPTURED_PROVIDERS
                or account.status is not AccountStatus.CONNECTED
            ):
                continue
            owner = self.store.find(User, self.org_id, account.owner_user_id)
            if owner is None or not owner.active:
                continue  # a removed user's future communication does not enter
            try:
                readers = self.readers(account)
            except (ConnectorError, ValueError, KeyError) as exc:
                report.streams.append(
                    StreamReport(account_id=account.id, stream="*", error=type(exc).__name__)
                )
                continue
            for reader in readers:
                if self.keep_going():
                    report.streams.append(self._stream(account, reader))
            if self.keep_going():
                report.bodies_fetched += self.fetch_bodies(account, readers)
        return report

    def _stream(self, account: ConnectedAccount, reader: ActivityReader) -> StreamReport:
        result = StreamReport(account_id=account.id, stream=reader.stream)
        lease_name = Cursor.make_id(account.id, reader.stream)
        try:
            lease = self.store.acquire_lease(
                self.org_id, lease_name, self.worker, LEASE_TTL, self.now()
            )
        except LeaseHeld:
            result.error = "busy"
            return result
        try:
            stored = self.store.load_cursor(self.org_id, account.id, reader.stream)
            since = self.now() - timedelta(days=max(account.mail_history_days, 1))
            for page in reader.read(stored.value if stored else None, since):
                if not self.keep_going():
                    result.error = "deadline"  # this page is read again next time
                    break
                result.pages += 1
                result.read += len(page.items)
                result.restarted = result.restarted or page.full
                stored_now, unmatched, removed = self.ingest(account, page.items)
                result.stored += stored_now
                result.unmatched += unmatched
                result.removed += removed
                if page.cursor is not None:
                    lease = self.store.renew_lease(self.org_id, lease, LEASE_TTL, self.now())
                    cursor = Cursor(
                        org_id=self.org_id,
                        id=lease_name,
                        account_id=account.id,
                        stream=reader.stream,
                        value=page.cursor,
                        started_at=stored.started_at if stored and not page.full else self.now(),
                        updated_at=self.now(),
                    )
                    stored = self.store.save_cursor(cursor, lease)
        except (ConnectorError, LeaseLost) as exc:
            # Counts and codes only: provider messages may quote addresses.
            result.error = f"{type(exc).__name__}:{getattr(exc, 'code', '')}"[:120]
            log.warning(
                "activity read failed",
                extra={"account_id": account.id, "stream": reader.stream, "error": result.error},
            )
        finally:
            self.store.release_lease(self.org_id, lease)
        return result

    # ---- storing what was read ---------------------------------------------------------------

    def ingest(self, account: ConnectedAccount, items: Sequence[Captured]) -> tuple[int, int, int]:
        """Stores one batch of captured items for ``account`` (also what a call webhook calls).
        Returns (stored or changed, unmatched, removed)."""
        if not items:
            return 0, 0, 0
        users = {u.id: u for u in self.store.scan(User, self.org_id)}
        by_email = {u.email.key: u for u in users.values()}
        internal = frozenset(by_email)
        account_owner = users.get(account.owner_user_id)
        if account_owner is None:
            return 0, 0, 0
        matchers: dict[str, _Matcher] = {}
        ids = [Activity.make_id(account.id, c.remote_id) for c in items]
        existing = self.store.get_many(Activity, self.org_id, ids)
        writes: list[Activity] = []
        gone: list[Activity] = []
        unmatched = 0
        for item, activity_id in zip(items, ids, strict=True):
            before = existing.get(activity_id)
            if item.cancelled:
                if before is not None:
                    gone.append(before)
                continue
            owner = by_email.get(item.handled_by or "") if item.handled_by else None
            owner = owner if owner is not None and owner.active else account_owner
            if not owner.active:
                continue
            matcher = matchers.get(owner.id)
            if matcher is None:
                own = frozenset({owner.email.key, account.address.lower()})
                matcher = matchers[owner.id] = _Matcher(self.store, owner, own, internal - own)
            contacts = matcher.contacts(item.participants)
            if not contacts:
                unmatched += 1
                continue
            activity = self._activity(
                account, owner, item, activity_id, sorted(contacts), matcher.own, internal
            )
            if before is not None:
                same = before.model_dump(
                    exclude={"version", "body", "body_due", "created_at", "updated_at"}
                )
                if same == activity.model_dump(
                    exclude={"version", "body", "body_due", "created_at", "updated_at"}
                ):
                    continue
                activity = activity.model_copy(
                    update={
                        "body": before.body,
                        "body_due": before.body_due,
                        "created_at": before.created_at,
                        "version": before.version,
                    }
                )
            writes.append(activity)
        self._write(writes, existing)
        for activity in gone:
            self.store.delete(Activity, self.org_id, activity.id)
        touched = writes + gone
        if touched:
            recompute(self.store, self.org_id, pairs_of(touched), self.now())
        sharing = SharingService(self.store, self.now)
        for owner_id in {a.owner_user_id for a in writes}:
            owner_contacts = sorted(
                {cid for a in writes if a.owner_user_id == owner_id for cid in a.contact_ids}
            )
            found = self.store.get_many(HubContact, self.org_id, owner_contacts)
            sharing.ensure_queued(users[owner_id], [found[c] for c in owner_contacts if c in found])
        refresh_bodies(self.store, self.org_id, [a.id for a in writes], now=self.now())
        return len(writes), unmatched, len(gone)

    def _activity(
        self,
        account: ConnectedAccount,
        owner: User,
        item: Captured,
        activity_id: str,
        contact_ids: list[str],
        own: frozenset[str],
        internal: frozenset[str],
    ) -> Activity:
        direction: Any = item.direction
        if direction is None:
            outsiders = [p for p in item.participants if p not in own and p not in internal]
            if item.sender is not None and item.sender in own:
                direction = "outbound"
            elif not outsiders:
                direction = "internal"
            else:
                direction = "inbound"
        now = self.now()
        return Activity(
            org_id=self.org_id,
            id=activity_id,
            activity_kind=item.kind,
            account_id=account.id,
            owner_user_id=owner.id,
            remote_id=item.remote_id[:512],
            occurred_at=item.occurred_at,
            direction=direction,
            subject=item.subject[:1000],
            thread_id=item.thread_id,
            participants=list(item.participants)[:500],
            contact_ids=contact_ids[:500],
            duration_seconds=item.duration_seconds,
            message_key=item.message_key,
            sender=item.sender,
            created_at=now,
            updated_at=now,
        )

    def _write(self, activities: Sequence[Activity], existing: dict[str, Activity]) -> None:
        for start in range(0, len(activities), WRITE_CHUNK):
            chunk = activities[start : start + WRITE_CHUNK]
            writes = [
                Write(a, expected_version=existing[a.id].version if a.id in existing else 0)
                for a in chunk
            ]
            try:
                self.store.transact(writes)
            except VersionConflict:
                # Another writer (a webhook, a retried run) got there first: what was read
                # last wins, the body state stays as that writer left it.
                for activity in chunk:
                    self._write_one(activity)

    def _write_one(self, activity: Activity) -> None:
        for _ in range(3):
            current = self.store.find(Activity, self.org_id, activity.id)
            if current is None:
                candidate, expected = activity.model_copy(update={"version": 0}), 0
            else:
                keep = {"body": current.body, "body_due": current.body_due}
                candidate = activity.model_copy(update={**keep, "version": current.version})
                expected = current.version
            try:
                self.store.transact([Write(candidate, expected_version=expected)])
                return
            except VersionConflict:
                continue

    # ---- bodies --------------------------------------------------------------------------------

    def fetch_bodies(self, account: ConnectedAccount, readers: Sequence[ActivityReader]) -> int:
        """Fetches the content of the account's activities whose content became shared."""
        due = sorted(self.store.lookup_ids(Activity, self.org_id, "body_due", account.id))[
            :MAX_BODIES_PER_RUN
        ]
        by_stream = {r.stream: r for r in readers}
        fetched = 0
        for activity in self.store.get_many(Activity, self.org_id, due).values():
            if not activity.body_due:
                continue
            reader = by_stream.get(_stream_of(activity))
            if reader is None:
                continue
            try:
                body = reader.fetch_body(activity.remote_id)
            except ConnectorError as exc:
                log.warning("body fetch failed", extra={"account_id": account.id, "code": exc.code})
                continue
            try:
                self.store.update(
                    activity.model_copy(
                        update={
                            "body": (body or "")[:200_000],
                            "body_due": False,
                            "updated_at": self.now(),
                        }
                    )
                )
            except VersionConflict:
                continue  # its sharing changed meanwhile: the next run decides again
            fetched += 1
        return fetched


def _stream_of(activity: Activity) -> str:
    return {"email": MAIL, "meeting": CALENDAR, "call": CALLS}[activity.activity_kind.value]
