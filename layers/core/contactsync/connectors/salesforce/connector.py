"""The Salesforce connector: one org's Contacts, Leads and Person Accounts, one stream each
(named by the sObject: a record's ``object_type`` is its stream).

Reads (``paging.py`` explains the cursor): a full read when there is no cursor, through a Bulk
API 2.0 query job when the scope holds more than ``bulk_threshold`` records (CSV result sets
streamed one locator at a time), else the REST query; an incremental read takes
``SystemModstamp >= since ORDER BY SystemModstamp, Id`` (boundary ids deduplicated) plus
getDeleted for the deletes since the last read. When getDeleted no longer reaches back that
far (its window is 15 days; purged deletes move ``earliestDateAvailable``) the read raises
CursorExpired and the engine reads everything again and reconciles.

Writes: sObject Collections, 200 records a call, ``allOrNone`` false, one result per record.
Creates are upserts on the external id field that holds the hub contact id (a retried create
updates the record the lost one made instead of adding a twin; ``find_created`` looks it up
by that field); updates are collection PATCHes of the changed fields only; deletes a
collection DELETE (a record already gone counts as deleted). A Contact's company is written
by linking an Account (``accounts.py``, seed 003); a Lead's is its Company field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from simple_salesforce.format import format_soql

from contactsync.connectors.base import (
    AuthError,
    ChangePage,
    Connector,
    ConnectorError,
    ConnectorStats,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    InvalidRequest,
    Mutation,
    MutationError,
    MutationResult,
    RemoteRecord,
    TransientError,
    Update,
)
from contactsync.connectors.http import Clock, SystemClock
from contactsync.connectors.salesforce.accounts import AccountLinker, company_key
from contactsync.connectors.salesforce.client import (
    JSON,
    Credentials,
    SalesforceApi,
    SalesforceConfig,
    SecretsCallback,
)
from contactsync.connectors.salesforce.errors import (
    RemoteNotFound,
    ReplicationWindowPassed,
    as_item_error,
    item_error,
)
from contactsync.connectors.salesforce.models import (
    ACCOUNT,
    CONTACT,
    LEAD,
    SPECS,
    ObjectSpec,
    RawRecord,
    ReadContext,
    deleted_record,
    from_csv,
    from_rest,
    parse_datetime,
    representable,
    required_last_name,
    select_fields,
    spec_for,
    to_payload,
    to_record,
)
from contactsync.connectors.salesforce.models import default_mapping as mapping_for
from contactsync.connectors.salesforce.paging import (
    BulkPosition,
    CursorState,
    Position,
    Scope,
    list_view_parts,
    ordered_pages,
    select,
    where,
)
from contactsync.domain.accounts import Provider
from contactsync.domain.sync import FieldRule, ObjectChoice, ScopeKind, SyncSettings

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200
USER_CHUNK = 200
SIGNPOST_LOOKBACK = timedelta(minutes=2)
# After one of these a batch's remaining chunks are not attempted: they would fail the same
# way, and more requests into a limit only make it worse.
_STOP_KINDS = frozenset({"throttled", "auth", "quota"})
T = TypeVar("T")


@dataclass(frozen=True)
class FieldInfo:
    """One field of an sObject as ``describe`` reports it (for the field mapping studio)."""

    name: str
    label: str
    type: str
    length: int
    createable: bool
    updateable: bool
    nillable: bool
    external_id: bool
    reference_to: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> FieldInfo:
        return cls(
            name=str(raw["name"]),
            label=str(raw.get("label") or raw["name"]),
            type=str(raw.get("type") or "string"),
            length=int(raw.get("length") or 0),
            createable=bool(raw.get("createable")),
            updateable=bool(raw.get("updateable")),
            nillable=bool(raw.get("nillable", True)),
            external_id=bool(raw.get("externalId")),
            reference_to=tuple(str(r) for r in raw.get("referenceTo") or ()),
        )


@dataclass(frozen=True)
class ObjectInfo:
    """What ``describe`` told us about one stream's sObject in this org."""

    fields: tuple[FieldInfo, ...]
    names: frozenset[str]
    external_id: str | None  # our external id field, when the org has it on this object
    person_accounts: bool  # the org has Person Accounts (IsPersonAccount exists)
    person_record_type: str | None


class BulkUnavailable(Exception):
    """A Bulk API 2.0 job could not be made or failed before yielding anything."""


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class SalesforceConnector(Connector):
    provider = Provider.SALESFORCE

    def __init__(
        self,
        config: SalesforceConfig,
        credentials: Credentials,
        *,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        on_secret_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.stats = ConnectorStats()
        self._streams = config.stream_names()
        self.api = SalesforceApi(
            config,
            credentials,
            session=session,
            clock=self.clock,
            stats=self.stats,
            on_rotated=on_secret_rotated,
        )
        self._infos: dict[str, ObjectInfo] = {}
        self._owners: dict[str, str] = {}  # OwnerId -> email ("" for queues and the unknown)
        self._linker: AccountLinker | None = None

    # ---- the contract ---------------------------------------------------------------------

    def streams(self) -> Sequence[str]:
        return list(self._streams)

    def default_mapping(self, stream: str) -> list[FieldRule]:
        self._check(stream)
        return mapping_for(stream)

    def configure(self, settings: SyncSettings) -> None:
        """Seed 004's objects (contacts, leads or both) become the streams, and the scope (all,
        only my records, a list view) the query condition; a changed scope makes stored
        cursors raise CursorExpired("scope_changed"), so the next read is a full one."""
        objects = {
            ObjectChoice.CONTACTS: [CONTACT],
            ObjectChoice.LEADS: [LEAD],
            ObjectChoice.BOTH: [CONTACT, LEAD],
        }[settings.objects]
        if self.config.person_accounts:
            objects.append(ACCOUNT)
        kind = settings.scope.kind
        scope = kind.value if kind in (ScopeKind.MINE, ScopeKind.LIST_VIEW) else "all"
        self.config = self.config.model_copy(
            update={"scope": scope, "list_view_id": settings.scope.list_view_id}
        )
        self._streams = objects

    def representable(self, fields: ContactFields) -> ContactFields:
        """What a Contact (the object most records are) holds of ``fields``."""
        return self.representable_as(CONTACT, fields)

    def representable_as(self, object_type: str, fields: ContactFields) -> ContactFields:
        spec = SPECS.get(object_type)
        if spec is None:
            return fields
        return representable(spec, fields, self.config.default_region)

    def prepare(self) -> None:
        """Checks the connection and each stream's object (describe); idempotent. An org
        without our external id field still syncs, with plain inserts for creates."""
        for stream in self._streams:
            info = self._info(stream)
            if stream == ACCOUNT and not info.person_accounts:
                raise InvalidRequest("person_accounts_disabled", "the org has no Person Accounts")
            if self.config.external_id_field and info.external_id is None:
                log.warning(
                    "external id field missing; creates are plain inserts",
                    extra={"sobject": stream, "field": self.config.external_id_field},
                )

    def describe_fields(self, stream: str) -> list[FieldInfo]:
        """The object's fields in this org, for the field mapping studio (issue 6)."""
        self._check(stream)
        return list(self._info(stream).fields)

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        spec = self._check(stream)
        state = CursorState.load(cursor) if cursor is not None else None
        info = self._info(stream)
        scope = self._scope(spec, info)
        if state is not None and state.scope != scope.key:
            raise CursorExpired("scope_changed", "the scope changed since the cursor was made")
        if state is None:
            yield from self._full_read(spec, info, scope)
        elif state.bulk is not None:
            yield from self._bulk_pages(spec, info, scope, state, full_scan=False)
        else:
            yield from self._incremental(spec, info, scope, state)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        spec = self._check(stream)
        info = self._info(stream)
        results: list[MutationResult | None] = [None] * len(mutations)
        indexed: list[tuple[int, Mutation]] = list(enumerate(mutations))
        groups: list[list[tuple[int, Mutation]]] = [
            [(i, m) for i, m in indexed if isinstance(m, kind)] for kind in (Create, Update, Delete)
        ]
        stopped: ConnectorError | None = None
        for group in groups:
            for chunk in _chunks(group, COLLECTION_SIZE):
                if stopped is not None:
                    for i, m in chunk:
                        results[i] = MutationResult(m, ok=False, error=as_item_error(stopped))
                    continue
                try:
                    for i, result in self._apply_chunk(spec, info, chunk):
                        results[i] = result
                except ConnectorError as exc:
                    for i, m in chunk:
                        results[i] = MutationResult(m, ok=False, error=as_item_error(exc))
                    if exc.kind in _STOP_KINDS:
                        stopped = exc
        done = [r for r in results if r is not None]
        assert len(done) == len(mutations)
        return done

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        """The record an uncertain create made: by the external id that holds the hub id, or
        (an org without the field) the newest record with the same email and last name."""
        spec = self._check(stream)
        info = self._info(stream)
        if info.external_id:
            condition = format_soql(f"{info.external_id} = {{}}", hub_id)
        elif fields.emails:
            condition = format_soql(
                f"{spec.email} = {{}} AND {spec.last_name} = {{}}",
                fields.emails[0].address,
                required_last_name(fields),
            )
        else:
            return None
        soql = select(
            ", ".join(select_fields(spec, info.names, info.external_id)),
            spec.name,
            where(condition, self._person_condition(spec, info)),
            " ORDER BY CreatedDate DESC LIMIT 1",
        )
        rows = [from_rest(spec.name, r) for r in self.api.query(soql).get("records", [])]
        if not rows:
            return None
        return self._records(spec, info, rows, Scope.make("any", None))[0]

    # ---- what the org has -------------------------------------------------------------------

    def _check(self, stream: str) -> ObjectSpec:
        if stream not in self._streams:
            raise InvalidRequest("unknown_stream", f"this account syncs {', '.join(self._streams)}")
        return spec_for(stream)

    def _info(self, stream: str) -> ObjectInfo:
        if stream not in self._infos:
            body = self.api.describe(stream)
            fields = tuple(FieldInfo.parse(f) for f in body.get("fields", []))
            names = frozenset(f.name for f in fields)
            wanted = self.config.external_id_field
            external = next((f.name for f in fields if f.name == wanted and f.external_id), None)
            record_type = next(
                (
                    str(rt["recordTypeId"])
                    for rt in body.get("recordTypeInfos", [])
                    if rt.get("developerName") == "PersonAccount"
                ),
                None,
            )
            self._infos[stream] = ObjectInfo(
                fields, names, external, "IsPersonAccount" in names, record_type
            )
        return self._infos[stream]

    def _person_condition(self, spec: ObjectSpec, info: ObjectInfo) -> str | None:
        if spec.name == ACCOUNT:
            if not info.person_accounts:
                raise InvalidRequest("person_accounts_disabled", "the org has no Person Accounts")
            return spec.person_condition
        return spec.person_condition if info.person_accounts else None

    def _scope(self, spec: ObjectSpec, info: ObjectInfo) -> Scope:
        kind = self.config.scope
        if kind == "all":
            return Scope.make("all", None)
        if kind == "mine":
            return Scope.make("mine", format_soql("OwnerId = {}", self.api.connected_user_id()))
        view_id = str(self.config.list_view_id)
        try:
            described = self.api.list_view_describe(spec.name, view_id)
        except RemoteNotFound:
            return Scope.make("all", None)  # a view of another object: this one reads all
        condition, mine = list_view_parts(str(described.get("query") or ""))
        parts = [condition]
        if mine:
            parts.append(format_soql("OwnerId = {}", self.api.connected_user_id()))
        combined = where(*parts).removeprefix(" WHERE ") or None
        return Scope.make(f"listview:{view_id}", combined, frozenset({f"listview:{view_id}"}))

    def _soql(
        self,
        spec: ObjectSpec,
        info: ObjectInfo,
        scope: Scope,
        since: int | None,
        *,
        ordered: bool = True,
    ) -> str:
        modstamp = format_soql("SystemModstamp >= {}", _at(since)) if since is not None else None
        conditions = where(modstamp, self._person_condition(spec, info), scope.condition)
        names = ", ".join(select_fields(spec, info.names, info.external_id))
        order = " ORDER BY SystemModstamp ASC, Id ASC" if ordered else ""
        return select(names, spec.name, conditions, order)

    # ---- reading --------------------------------------------------------------------------

    def _signpost(self, spec: ObjectSpec) -> int:
        """The server's clock, to the minute: getDeleted's latestDateCovered for the last two
        minutes (our clock only frames the question)."""
        now = self.clock.now()
        body = self.api.deleted(spec.name, now - SIGNPOST_LOOKBACK, now)
        return _epoch(parse_datetime(str(body["latestDateCovered"])))

    def _full_read(self, spec: ObjectSpec, info: ObjectInfo, scope: Scope) -> Iterator[ChangePage]:
        signpost = self._signpost(spec)
        if self._count(spec, info, scope) > self.config.bulk_threshold:
            try:
                job_id = self._bulk_job(spec, info, scope)
            except BulkUnavailable:
                log.info("bulk query unavailable; reading by REST", extra={"sobject": spec.name})
            else:
                state = CursorState(signpost, (), signpost, scope.key, BulkPosition(job_id, ""))
                yield from self._bulk_pages(spec, info, scope, state, full_scan=True)
                return
        pages = ordered_pages(
            spec.name,
            lambda since: self._soql(spec, info, scope, since),
            Position(None),
            signpost,
            self.api.query,
            self.api.query_more,
        )
        for rows, position in pages:
            checkpoint = position.checkpoint()
            cursor = None
            if checkpoint is not None and checkpoint[0] is not None:
                cursor = CursorState(checkpoint[0], checkpoint[1], signpost, scope.key).dump()
            yield ChangePage(
                self._records(spec, info, rows, scope), cursor, last=False, full_scan=True
            )
        final = CursorState(signpost, (), signpost, scope.key)
        yield ChangePage([], final.dump(), last=True, full_scan=True)

    def _count(self, spec: ObjectSpec, info: ObjectInfo, scope: Scope) -> int:
        conditions = where(self._person_condition(spec, info), scope.condition)
        body = self.api.query(select("COUNT()", spec.name, conditions))
        return int(body.get("totalSize") or 0)

    def _incremental(
        self, spec: ObjectSpec, info: ObjectInfo, scope: Scope, state: CursorState
    ) -> Iterator[ChangePage]:
        start = _at(state.deleted_from)
        end = max(self.clock.now(), start + timedelta(minutes=1))
        try:
            body = self.api.deleted(spec.name, start, end)
        except ReplicationWindowPassed as exc:
            raise CursorExpired("deleted_window_passed", "getDeleted reaches back 15 days") from exc
        if parse_datetime(str(body["earliestDateAvailable"])) > start:
            raise CursorExpired("deletes_purged", "deletes since the cursor were purged")
        signpost = _epoch(parse_datetime(str(body["latestDateCovered"])))
        # Deletes come last, minus records seen alive meanwhile (undeleted): the engine
        # applies deletes at the end of the pull, after everything read alive.
        pending: dict[str, datetime] = {}
        for item in body.get("deletedRecords") or []:
            pending[str(item["id"])] = parse_datetime(str(item["deletedDate"]))
        pages = ordered_pages(
            spec.name,
            lambda since: self._soql(spec, info, scope, since),
            Position(state.since, set(state.seen)),
            signpost,
            self.api.query,
            self.api.query_more,
        )
        for rows, position in pages:
            for raw in rows:
                pending.pop(raw.id, None)
            checkpoint = position.checkpoint()
            cursor = None
            if checkpoint is not None:
                since, seen = checkpoint
                cursor = CursorState(since, seen, state.deleted_from, scope.key).dump()
            yield ChangePage(self._records(spec, info, rows, scope), cursor, last=False)
        deletes = [deleted_record(spec.name, rid, when) for rid, when in sorted(pending.items())]
        final = CursorState(max(signpost, state.since or 0), (), signpost, scope.key)
        yield ChangePage(deletes, final.dump(), last=True)

    # ---- Bulk API 2.0 -----------------------------------------------------------------------

    def _bulk_job(self, spec: ObjectSpec, info: ObjectInfo, scope: Scope) -> str:
        """A query job run to completion; its id. The job polls on our clock."""
        soql = self._soql(spec, info, scope, None, ordered=False)
        try:
            job = self.api.bulk_query_create(spec.name, soql)
        except (InvalidRequest, AuthError) as exc:
            # LIMIT_EXCEEDED (10,000 query jobs a day), a query Bulk refuses, an org or user
            # without the Bulk API: the REST query reads the same records.
            raise BulkUnavailable(exc.code) from exc
        job_id = str(job["id"])
        waited = 0.0
        while True:
            state = str(self.api.bulk_query_job(spec.name, job_id).get("state"))
            if state == "JobComplete":
                return job_id
            if state in ("Failed", "Aborted"):
                raise BulkUnavailable(state)
            if waited >= self.config.bulk_max_wait_seconds:
                raise TransientError("bulk_timeout", "the bulk query job did not complete")
            pause = self.config.bulk_poll_seconds
            self.stats.slept_seconds += pause
            self.clock.sleep(pause)
            waited += pause

    def _bulk_pages(
        self,
        spec: ObjectSpec,
        info: ObjectInfo,
        scope: Scope,
        state: CursorState,
        *,
        full_scan: bool,
    ) -> Iterator[ChangePage]:
        """The job's result sets, one page each; the cursor after each names the next
        locator, so a stopped read resumes there (not as a full scan: what it read before is
        not in this run's view)."""
        assert state.bulk is not None
        job_id, locator = state.bulk.job_id, state.bulk.locator
        while True:
            try:
                text, next_locator = self.api.bulk_query_results(
                    spec.name, job_id, locator, self.config.bulk_max_records
                )
            except (RemoteNotFound, InvalidRequest) as exc:
                if full_scan:
                    raise
                raise CursorExpired("bulk_job_gone", "the bulk job's results are gone") from exc
            rows = list(from_csv(spec.name, text))
            done = not next_locator
            after = CursorState(
                state.since,
                (),
                state.deleted_from,
                scope.key,
                None if done else BulkPosition(job_id, next_locator),
            )
            yield ChangePage(
                self._records(spec, info, rows, scope),
                after.dump(),
                last=done,
                full_scan=full_scan,
            )
            if done:
                return
            locator = next_locator

    # ---- translation ------------------------------------------------------------------------

    def _records(
        self, spec: ObjectSpec, info: ObjectInfo, rows: list[RawRecord], scope: Scope
    ) -> list[RemoteRecord]:
        self._resolve_owners({r.owner_id for r in rows if r.owner_id})
        ctx = ReadContext(
            region=self.config.default_region,
            external_id_field=info.external_id,
            owners=self._owners,
            tags=scope.tags,
        )
        return [to_record(raw, ctx) for raw in rows]

    def _resolve_owners(self, owner_ids: set[str]) -> None:
        """Owner emails (scope "only my contacts" in the mailboxes compares them), one User
        query for the ids not yet known; queues and other non-users have none."""
        unknown = sorted(i for i in owner_ids if i not in self._owners)
        users = [i for i in unknown if i.startswith("005")]
        for i in unknown:
            self._owners[i] = ""
        for chunk in _chunks(users, USER_CHUNK):
            body = self.api.query(format_soql("SELECT Id, Email FROM User WHERE Id IN {}", chunk))
            for row in body.get("records", []):
                self._owners[str(row["Id"])] = str(row.get("Email") or "")

    # ---- writing --------------------------------------------------------------------------

    def _apply_chunk(
        self, spec: ObjectSpec, info: ObjectInfo, chunk: Sequence[tuple[int, Mutation]]
    ) -> list[tuple[int, MutationResult]]:
        first = chunk[0][1]
        if isinstance(first, Create):
            return self._creates(spec, info, chunk)
        if isinstance(first, Update):
            return self._updates(spec, info, chunk)
        return self._deletes(spec, chunk)

    def _linker_for(self, info: ObjectInfo) -> AccountLinker:
        if self._linker is None:
            self._linker = AccountLinker(
                self.api,
                self.clock,
                self.config.account_cache_seconds,
                business_only=info.person_accounts,
            )
        return self._linker

    def _accounts(
        self, spec: ObjectSpec, info: ObjectInfo, mutations: Sequence[Create | Update]
    ) -> dict[str, str | None]:
        if not spec.links_accounts or "AccountId" not in info.names:
            return {}
        companies = [m.fields.company for m in mutations if m.fields.company]
        if not companies:
            return {}
        return self._linker_for(info).resolve(c for c in companies if c)

    def _body(
        self,
        spec: ObjectSpec,
        info: ObjectInfo,
        mutation: Create | Update,
        accounts: Mapping[str, str | None],
    ) -> dict[str, Any]:
        creating = isinstance(mutation, Create)
        values = to_payload(spec, mutation.fields, creating=creating)
        body: dict[str, Any] = {k: v for k, v in values.items() if k in info.names}
        if spec.links_accounts and "AccountId" in info.names:
            account = mutation.company_ref
            if account is None and mutation.fields.company:
                account = accounts.get(company_key(mutation.fields.company))
            if account is not None:
                # Linked when an Account is found; never unlinked by a company name that
                # matches none (the Account stays the authority for the contact's company).
                body["AccountId"] = account
        return {"attributes": {"type": spec.name}, **body}

    def _creates(
        self, spec: ObjectSpec, info: ObjectInfo, chunk: Sequence[tuple[int, Mutation]]
    ) -> list[tuple[int, MutationResult]]:
        creates = [(i, m) for i, m in chunk if isinstance(m, Create)]
        accounts = self._accounts(spec, info, [m for _, m in creates])
        out: list[tuple[int, MutationResult]] = []
        sendable: list[tuple[int, Create, dict[str, Any]]] = []
        for i, m in creates:
            body = self._body(spec, info, m, accounts)
            if spec.name == ACCOUNT:
                if info.person_record_type is None:
                    out.append((i, _failed(m, "invalid", "NO_PERSON_ACCOUNT_RECORD_TYPE")))
                    continue
                body["RecordTypeId"] = info.person_record_type
            if info.external_id:
                body[info.external_id] = m.hub_id
            sendable.append((i, m, body))
        if not sendable:
            return out
        records = [body for _, _, body in sendable]
        payload = {"allOrNone": False, "records": records}
        if info.external_id:
            # Upsert on the hub id: a create retried after a lost answer updates the record
            # the first one made. The answer itself may still be lost: "uncertain".
            answer = self.api.collection(
                "PATCH",
                f"composite/sobjects/{spec.name}/{info.external_id}",
                endpoint="composite.upsert",
                idempotent=False,
                json=payload,
            )
        else:
            answer = self.api.collection(
                "POST",
                "composite/sobjects",
                endpoint="composite.create",
                idempotent=False,
                json=payload,
            )
        for (i, m, _), item in zip(sendable, _items(answer, len(sendable)), strict=True):
            out.append((i, _result(m, item)))
        return out

    def _updates(
        self, spec: ObjectSpec, info: ObjectInfo, chunk: Sequence[tuple[int, Mutation]]
    ) -> list[tuple[int, MutationResult]]:
        updates = [(i, m) for i, m in chunk if isinstance(m, Update)]
        accounts = self._accounts(spec, info, [m for _, m in updates])
        out: list[tuple[int, MutationResult]] = []
        sendable: list[tuple[int, Update, dict[str, Any]]] = []
        for i, m in updates:
            body = self._body(spec, info, m, accounts)
            if len(body) == 1:  # only "attributes": nothing Salesforce holds changed
                out.append((i, MutationResult(m, ok=True, remote_id=m.remote_id)))
                continue
            sendable.append((i, m, {**body, "Id": m.remote_id}))
        if not sendable:
            return out
        answer = self.api.collection(
            "PATCH",
            "composite/sobjects",
            endpoint="composite.update",
            json={"allOrNone": False, "records": [body for _, _, body in sendable]},
        )
        for (i, m, _), item in zip(sendable, _items(answer, len(sendable)), strict=True):
            out.append((i, _result(m, item)))
        return out

    def _deletes(
        self, spec: ObjectSpec, chunk: Sequence[tuple[int, Mutation]]
    ) -> list[tuple[int, MutationResult]]:
        deletes = [(i, m) for i, m in chunk if isinstance(m, Delete)]
        answer = self.api.collection(
            "DELETE",
            "composite/sobjects",
            endpoint="composite.delete",
            params={"ids": ",".join(m.remote_id for _, m in deletes), "allOrNone": "false"},
        )
        out: list[tuple[int, MutationResult]] = []
        for (i, m), item in zip(deletes, _items(answer, len(deletes)), strict=True):
            result = _result(m, item)
            if result.error is not None and result.error.kind == "not_found":
                # Already gone (deleted, purged, never there): the wanted state holds.
                result = MutationResult(m, ok=True, remote_id=m.remote_id)
            out.append((i, result))
        return out


def _items(answer: JSON, expected: int) -> list[Mapping[str, Any]]:
    if not isinstance(answer, list) or len(answer) != expected:
        raise TransientError("bad_response", "a collection answer without one result per record")
    return [item if isinstance(item, Mapping) else {} for item in answer]


def _result(mutation: Mutation, item: Mapping[str, Any]) -> MutationResult:
    if item.get("success") is True and item.get("id"):
        return MutationResult(mutation, ok=True, remote_id=str(item["id"]))
    return MutationResult(mutation, ok=False, error=item_error(item))


def _failed(mutation: Mutation, kind: Any, code: str) -> MutationResult:
    return MutationResult(mutation, ok=False, error=MutationError(kind=kind, code=code))
