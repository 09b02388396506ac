"""The Google connector: one user's Google Contacts (People API v1) as the engine's ``person``
stream.

Reads: a full sync with ``requestSyncToken`` (cursor None on every page until the last, which
carries the sync token), then incremental syncs from the token; deleted persons come back as
deleted records; an expired token (ErrorInfo ``EXPIRED_SYNC_TOKEN``) raises CursorExpired and
the engine starts over with a full sync that reconciles against its links. Every record says
whether the person carries the sync label (``marked``) and the hub id we stamped on it.

Writes go one call at a time (Google: "mutate requests for the same user should be sent
sequentially"), in Google's batches: deletes first (500 a call, which also makes room under the
25,000-contact cap), then updates and creates (200 a call). A batch fails whole: the contacts it
names are reported (or, for a stale etag, re-read and retried once) and the rest sent again.

- Creates stamp ``clientData`` ``contactsync_hub_id`` and join myContacts (and the label when
  marked). A lost answer is "uncertain"; ``find_created`` looks for the stamp among recently
  modified people. A full address book is an "invalid" ``contact_limit_exceeded`` per contact
  (a batch that does not fit is split until the ones that fit are in).
- Updates re-read the people first (``batchGet``), then replace only the hub fields that
  changed, inside Google fields that hold several (``names``, ``organizations``) and in lists
  (an email's type, a number's formatting, items the hub cannot hold are kept). The etag sent
  is the one just read; when it differs from the version the engine last saw, someone changed
  the person meanwhile: the update is rebased (only our fields replaced) and its result carries
  no record, so that their change still reaches the hub on the next read instead of being
  taken for ours. A stale etag in the batch (changed again since the re-read) is re-read and
  retried once, then reported as a "conflict".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests

from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ConnectorError,
    ConnectorStats,
    ContactFields,
    Create,
    Delete,
    InvalidRequest,
    Mutation,
    MutationError,
    MutationResult,
    RemoteRecord,
    TransientError,
    Update,
)
from contactsync.connectors.google.client import (
    MAX_BATCH_GET,
    GoogleConfig,
    PeopleApi,
    RotationWatch,
    Secrets,
    SecretsCallback,
    build_session,
    make_http,
)
from contactsync.connectors.google.errors import (
    AlreadyExists,
    BatchRejected,
    ContactLimitExceeded,
    RemoteNotFound,
    StaleEtag,
    contact_limit,
    mutation_error,
)
from contactsync.connectors.google.models import (
    STREAM,
    PersonUpdate,
    RawPerson,
    create_body,
    default_mapping,
    plan_update,
    to_record,
)
from contactsync.connectors.google.paging import SyncCursor, walk
from contactsync.connectors.http import Clock, SystemClock
from contactsync.domain.accounts import Provider
from contactsync.domain.sync import FieldRule

MAX_BATCH_WRITE = 200
MAX_BATCH_DELETE = 500
# Batches sent for one chunk of updates: each failed one settles or re-reads someone.
MAX_UPDATE_ROUNDS = 4
# After one of these the rest of an apply is not attempted: it would fail the same way, and
# more requests into a throttled or failing API only make it worse.
_STOP_KINDS = frozenset({"throttled", "auth", "quota", "transient", "uncertain"})
# A recent-changes scan for find_created serves the other lost creates of the same round.
RECENT_SCAN_SECONDS = 60.0
_PERSON_NAME = re.compile(r"people/c\d{1,30}")
_NOT_FOUND = MutationError("not_found", "not_found", "no such Google contact")

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _unique_chunks(
    items: Sequence[tuple[int, Update]], size: int
) -> Iterator[list[tuple[int, Update]]]:
    """Batches of distinct people (a batch update is keyed by resource name); a second update
    of the same person goes into a later batch, in order."""
    pending = list(items)
    while pending:
        chunk: list[tuple[int, Update]] = []
        names: set[str] = set()
        later: list[tuple[int, Update]] = []
        for item in pending:
            if len(chunk) < size and item[1].remote_id not in names:
                chunk.append(item)
                names.add(item[1].remote_id)
            else:
                later.append(item)
        yield chunk
        pending = later


@dataclass
class _Run:
    """One ``apply``: a result slot per mutation, and whether the API told us to stop."""

    mutations: Sequence[Mutation]
    label: str | None
    slots: dict[int, MutationResult] = field(default_factory=dict)
    stopped: ConnectorError | None = None
    full: bool = False  # the address book is at its contact cap

    def done(self, index: int, result: MutationResult) -> None:
        self.slots[index] = result

    def fail(self, index: int, error: MutationError) -> None:
        self.slots[index] = MutationResult(self.mutations[index], ok=False, error=error)

    def failed_call(self, indexes: Iterable[int], exc: ConnectorError) -> None:
        for index in indexes:
            self.fail(index, mutation_error(exc))
        if exc.kind in _STOP_KINDS:
            self.stopped = exc

    def skipped(self, indexes: Iterable[int]) -> bool:
        """After a stop, the rest fail without a request: True when that happened."""
        if self.stopped is None:
            return False
        stopped = self.stopped
        if stopped.kind in ("throttled", "auth", "quota"):
            error = mutation_error(stopped)
        else:
            error = MutationError("transient", "not_attempted", f"stopped after {stopped.code}")
        for index in indexes:
            self.fail(index, error)
        return True

    def results(self) -> list[MutationResult]:
        missing = MutationError("transient", "not_attempted", "no answer for this item")
        return [
            self.slots.get(i) or MutationResult(m, ok=False, error=missing)
            for i, m in enumerate(self.mutations)
        ]


@dataclass(frozen=True)
class _RecentScan:
    """The stamped people modified lately: hub id -> resource name."""

    at: datetime
    found: dict[str, str]


class GoogleConnector(Connector):
    provider = Provider.GOOGLE

    def __init__(
        self,
        config: GoogleConfig,
        secrets: Secrets,
        *,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        on_secret_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.stats = ConnectorStats()
        self.session = build_session(config, secrets, session)
        self.rotation = RotationWatch(self.session.credentials, on_secret_rotated)
        self.http = make_http(self.session, config, self.clock, self.stats, self.rotation)
        self.api = PeopleApi(self.http, config.api_base, config.page_size)
        self._recent: _RecentScan | None = None

    # ---- the contract ---------------------------------------------------------------------

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def default_mapping(self, stream: str) -> list[FieldRule]:
        self._check_stream(stream)
        return default_mapping()

    def prepare(self) -> None:
        """Creates the sync label if the user has none (a duplicate name, 409, means it exists:
        it is looked up). Idempotent."""
        self._label_group(create=True)

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        self._check_stream(stream)
        state = SyncCursor.load(cursor) if cursor is not None else None
        label = self._label_group(create=False)
        full = state is None
        params = {"requestSyncToken": "true"} if state is None else {"syncToken": state.sync_token}
        for page in walk(self.api.connections, params):
            now = self.clock.now()
            records = [self._record(p, label, now) for p in page.connections]
            last = not page.next_page_token
            next_cursor = None
            if last:
                if not page.next_sync_token:
                    raise TransientError("no_sync_token", "the last page carried no sync token")
                next_cursor = SyncCursor(page.next_sync_token).dump()
            yield ChangePage(records=records, cursor=next_cursor, last=last, full_scan=full)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        self._check_stream(stream)
        self._recent = None  # what we create now is not in an earlier scan
        marks = [m.marked for m in mutations if not isinstance(m, Delete)]
        try:
            label = self._label_group(create=any(marks)) if marks else None
        except ConnectorError as exc:
            return [MutationResult(m, ok=False, error=mutation_error(exc)) for m in mutations]
        run = _Run(mutations, label)
        deletes = [(i, m) for i, m in enumerate(mutations) if isinstance(m, Delete)]
        updates = [(i, m) for i, m in enumerate(mutations) if isinstance(m, Update)]
        creates = [(i, m) for i, m in enumerate(mutations) if isinstance(m, Create)]
        for delete_chunk in _chunks(deletes, MAX_BATCH_DELETE):
            self._deletes(delete_chunk, run)
        for update_chunk in _unique_chunks(updates, MAX_BATCH_WRITE):
            self._updates(update_chunk, run)
        for create_chunk in _chunks(creates, MAX_BATCH_WRITE):
            self._creates(create_chunk, run)
        return run.results()

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        """The person a lost create made, by the hub id stamped in its clientData, among the
        people modified in the last ``find_created_hours`` (newest first). One scan (ids
        only, light fields) serves every lookup of the next minute: a lost batch leaves many
        creates to find."""
        self._check_stream(stream)
        now = self.clock.now()
        scan = self._recent
        if scan is None or (now - scan.at).total_seconds() > RECENT_SCAN_SECONDS:
            scan = self._scan_recent(now)
            self._recent = scan
        name = scan.found.get(hub_id)
        if name is None:
            return None
        person = self._people([name]).get(name)
        if person is None or person.hub_id() != hub_id:
            return None
        return self._record(person, self._label_group(create=False), now)

    # ---- reading --------------------------------------------------------------------------

    def _record(self, person: RawPerson, label: str | None, now: datetime) -> RemoteRecord:
        return to_record(person, label=label, region=self.config.default_region, fallback_time=now)

    def _scan_recent(self, now: datetime) -> _RecentScan:
        horizon = now - timedelta(hours=self.config.find_created_hours)
        found: dict[str, str] = {}
        params = {"sortOrder": "LAST_MODIFIED_DESCENDING", "personFields": "clientData,metadata"}
        for page in walk(self.api.connections, params):
            for person in page.connections:
                updated = person.updated_at()
                if updated is not None and updated < horizon:
                    return _RecentScan(now, found)
                hub_id = person.hub_id()
                if hub_id and hub_id not in found:
                    found[hub_id] = person.resource_name
        return _RecentScan(now, found)

    def _label_group(self, *, create: bool) -> str | None:
        """The sync label's resource name (None when the user has none and ``create`` is
        False: a read marks nothing then). Looked up afresh by every read and apply (one
        contact-group read, a quota of its own): the user may delete or recreate the label
        at any time, and a remembered one would mark nothing or fail every create."""
        found = self.api.find_group(self.config.label)
        if found is None and create:
            try:
                found = self.api.create_group(self.config.label).resource_name
            except AlreadyExists:
                found = self.api.find_group(self.config.label)
            if found is None:
                raise TransientError("label_unavailable", "the sync label could not be made")
        return found

    def _people(self, names: Sequence[str]) -> dict[str, RawPerson]:
        """The stored people by resource name (the missing ones absent)."""
        found: dict[str, RawPerson] = {}
        for chunk in _chunks(names, MAX_BATCH_GET):
            for answer in self.api.batch_get(chunk):
                if answer.person is not None and answer.requested_resource_name:
                    found[answer.requested_resource_name] = answer.person
        return found

    # ---- deletes --------------------------------------------------------------------------

    def _deletes(self, items: list[tuple[int, Delete]], run: _Run) -> None:
        indexes = [i for i, _ in items]
        if run.skipped(indexes):
            return
        names = list(
            dict.fromkeys(m.remote_id for _, m in items if _PERSON_NAME.fullmatch(m.remote_id))
        )
        try:
            self._delete(names)
        except ConnectorError as exc:
            run.failed_call(indexes, exc)
            return
        for i, mutation in items:
            # Gone, whether by us or before us: the wanted state holds.
            run.done(i, MutationResult(mutation, ok=True, remote_id=mutation.remote_id))

    def _delete(self, names: list[str]) -> None:
        """One name Google does not know fails the whole batch (404) without saying which:
        then only the people that still exist are deleted."""
        if not names:
            return
        try:
            self.api.batch_delete(names)
        except RemoteNotFound:
            existing = list(self._people(names))
            if existing:
                self.api.batch_delete(existing)

    # ---- updates --------------------------------------------------------------------------

    def _updates(self, items: list[tuple[int, Update]], run: _Run) -> None:
        if run.skipped(i for i, _ in items):
            return
        wanted: dict[str, tuple[int, Update]] = {}
        for i, mutation in items:
            if _PERSON_NAME.fullmatch(mutation.remote_id):
                wanted[mutation.remote_id] = (i, mutation)
            else:
                run.fail(i, _NOT_FOUND)
        try:
            current = self._people(list(wanted))
        except ConnectorError as exc:
            run.failed_call((i for i, _ in wanted.values()), exc)
            return
        rebased: set[str] = set()
        for _ in range(MAX_UPDATE_ROUNDS):
            plans = self._plan_updates(wanted, current, rebased, run)
            if not plans:
                return
            try:
                self._send_updates(plans, wanted, rebased, run)
                return
            except StaleEtag:
                # The batch failed whole without naming anyone: all of it is stale.
                stale = self._stale([*plans], wanted, rebased, run)
            except BatchRejected as exc:
                stale = self._rejected_updates(exc, wanted, rebased, run)
            except ConnectorError as exc:
                run.failed_call((wanted[n][0] for n in plans), exc)
                return
            if stale:
                try:
                    fresh = self._people(stale)
                except ConnectorError as exc:
                    run.failed_call((i for i, _ in wanted.values()), exc)
                    return
                for name in stale:
                    current.pop(name, None)
                current.update(fresh)
                rebased.update(stale)
        for i, _ in wanted.values():
            run.fail(i, MutationError("transient", "not_applied", "its batch kept failing"))

    def _plan_updates(
        self,
        wanted: dict[str, tuple[int, Update]],
        current: Mapping[str, RawPerson],
        rebased: set[str],
        run: _Run,
    ) -> dict[str, PersonUpdate]:
        """Each remaining person's update; the ones already as wanted (or gone) are settled
        here and leave ``wanted``."""
        plans: dict[str, PersonUpdate] = {}
        for name, (i, mutation) in list(wanted.items()):
            person = current.get(name)
            if person is None:
                run.fail(i, _NOT_FOUND)
                del wanted[name]
                continue
            if mutation.version is None or mutation.version != person.etag:
                rebased.add(name)
            plan = plan_update(
                person, mutation.fields, mutation.marked, run.label, self.config.default_region
            )
            if not plan.changes:
                run.done(i, self._updated(mutation, person, name in rebased, run))
                del wanted[name]
                continue
            plans[name] = plan
        return plans

    def _send_updates(
        self,
        plans: dict[str, PersonUpdate],
        wanted: dict[str, tuple[int, Update]],
        rebased: set[str],
        run: _Run,
    ) -> None:
        mask = sorted({name for plan in plans.values() for name in plan.changes})
        answers = self.api.batch_update({n: p.body(mask) for n, p in plans.items()}, mask)
        for name in plans:
            i, mutation = wanted.pop(name)
            answer = answers.get(name)
            if answer is None or answer.person is None:
                run.done(i, MutationResult(mutation, ok=True, remote_id=name))
            else:
                run.done(i, self._updated(mutation, answer.person, name in rebased, run))

    @classmethod
    def _rejected_updates(
        cls,
        exc: BatchRejected,
        wanted: dict[str, tuple[int, Update]],
        rebased: set[str],
        run: _Run,
    ) -> list[str]:
        """Settles the people a failed batch named, except stale etags seen for the first time:
        those are returned, to be re-read. The people it did not name stay in ``wanted`` and
        are sent again, without the offenders."""
        named = sorted(exc.items.keys() & wanted.keys())
        if not named:
            # Nothing we sent was named: sending the same batch again would fail the same way.
            for i, _ in wanted.values():
                run.fail(i, mutation_error(exc))
            wanted.clear()
            return []
        conflicts = [n for n in named if exc.items[n].kind == "conflict"]
        for name in named:
            if name not in conflicts:
                i, _ = wanted.pop(name)
                run.fail(i, exc.items[name])
        return cls._stale(conflicts, wanted, rebased, run)

    @staticmethod
    def _stale(
        names: list[str], wanted: dict[str, tuple[int, Update]], rebased: set[str], run: _Run
    ) -> list[str]:
        """The stale people to re-read: each gets one retry; stale again after being re-read
        (it keeps changing in Google), it is reported as a conflict."""
        again = [n for n in names if n in rebased and n in wanted]
        for name in again:
            i, _ = wanted.pop(name)
            run.fail(i, MutationError("conflict", "etag_mismatch", "changed again in Google"))
        return [n for n in names if n not in rebased and n in wanted]

    def _updated(
        self, mutation: Update, person: RawPerson, rebased: bool, run: _Run
    ) -> MutationResult:
        """Success. A rebased update carries no record: the person holds someone else's change
        too, which must not be taken for ours (it reaches the hub on the next read)."""
        record = None if rebased else self._record(person, run.label, self.clock.now())
        return MutationResult(
            mutation, ok=True, remote_id=person.resource_name, version=person.etag, record=record
        )

    # ---- creates --------------------------------------------------------------------------

    def _creates(self, items: list[tuple[int, Create]], run: _Run) -> None:
        if run.skipped(i for i, _ in items):
            return
        region = self.config.default_region
        bodies = {
            i: create_body(m.hub_id, m.fields, run.label if m.marked else None, region)
            for i, m in items
        }
        self._create_batch([i for i, _ in items], bodies, run, retry=True)

    def _create_batch(
        self, indexes: list[int], bodies: Mapping[int, dict[str, Any]], run: _Run, *, retry: bool
    ) -> None:
        if run.skipped(indexes):
            return
        if run.full:
            for i in indexes:
                run.fail(i, contact_limit())
            return
        try:
            created = self.api.batch_create([bodies[i] for i in indexes])
        except ContactLimitExceeded:
            self._over_limit(indexes, bodies, run, retry=retry)
            return
        except BatchRejected as exc:
            self._rejected_creates(exc, indexes, bodies, run, retry=retry)
            return
        except StaleEtag as exc:
            # A precondition without a reason we know: no etag goes with a create, so it is
            # no conflict to retry; the data or the account must change first.
            for i in indexes:
                run.fail(i, MutationError("invalid", "failed_precondition", str(exc)[:200]))
            return
        except ConnectorError as exc:
            run.failed_call(indexes, exc)
            return
        if len(created) != len(indexes):
            error = MutationError("uncertain", "unexpected_answer", "created people not listed")
            for i in indexes:
                run.fail(i, error)
            return
        now = self.clock.now()
        for i, answer in zip(indexes, created, strict=True):
            mutation = run.mutations[i]
            person = answer.person
            if person is None:
                run.fail(i, MutationError("uncertain", "unexpected_answer", "no person"))
                continue
            run.done(
                i,
                MutationResult(
                    mutation,
                    ok=True,
                    remote_id=person.resource_name,
                    version=person.etag,
                    record=self._record(person, run.label, now),
                ),
            )

    def _over_limit(
        self, indexes: list[int], bodies: Mapping[int, dict[str, Any]], run: _Run, *, retry: bool
    ) -> None:
        """The batch does not fit under the contact cap; some of it may: halve until the
        ones that fit are in (the first single create that does not fit closes the book)."""
        if len(indexes) == 1:
            run.full = True
            run.fail(indexes[0], contact_limit())
            return
        half = len(indexes) // 2
        self._create_batch(indexes[:half], bodies, run, retry=retry)
        self._create_batch(indexes[half:], bodies, run, retry=retry)

    def _rejected_creates(
        self,
        exc: BatchRejected,
        indexes: list[int],
        bodies: Mapping[int, dict[str, Any]],
        run: _Run,
        *,
        retry: bool,
    ) -> None:
        """The contacts a failed batch named (by index) fail; the others are sent again, once."""
        rest: list[int] = []
        for position, i in enumerate(indexes):
            error = exc.items.get(str(position))
            if error is None:
                rest.append(i)
            else:
                run.fail(i, error)
        if rest and retry and len(rest) < len(indexes):
            self._create_batch(rest, bodies, run, retry=False)
            return
        for i in rest:
            run.fail(i, mutation_error(exc))

    @staticmethod
    def _check_stream(stream: str) -> None:
        if stream != STREAM:
            raise InvalidRequest("unknown_stream", f"Google has one stream, {STREAM!r}")
