"""The org's state and its rules: records per sObject with a SystemModstamp index, the recycle bin
and delete log, field validation and duplicate rules, SOQL execution with server-side cursors,
replication windows, sessions and the daily API allocation.

Every record change goes through ``Org._put``: it keeps the SystemModstamp index and the
recycle-bin set right and journals the old value, so an ``allOrNone`` collection can roll back.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.salesforce import exceptions as err
from contactsync_sandbox.salesforce import ids, soql
from contactsync_sandbox.salesforce.auth import Credentials, Sessions
from contactsync_sandbox.salesforce.exceptions import SalesforceError
from contactsync_sandbox.salesforce.schema import (
    OBJECTS,
    PERSON_CONTACT_MAP,
    PERSON_ONLY_FIELDS,
    Field,
    SObject,
    get_object,
)

Record = dict[str, Any]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY = 86_400
UNABLE_TO_WRITE = (
    "Unable to create/update fields: {names}. Please check the security settings of this field and"
    " verify that it is read/write for your profile or permission set."
)
DUPLICATE_MESSAGE = (
    "You're creating a duplicate record. We recommend you use an existing record instead."
)


@functools.lru_cache(maxsize=200_000)
def format_datetime(ts: int) -> str:
    """REST form: ``2024-05-01T10:20:30.000+0000``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@functools.lru_cache(maxsize=200_000)
def format_datetime_z(ts: int) -> str:
    """Bulk API CSV form: ``2024-05-01T10:20:30.000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Settings:
    """Quotas and retention, set through ``POST /_sandbox/faults {"quotas": {...}}``."""

    enabled: bool = True
    daily_api_requests: int = 100_000
    bulk_query_jobs_per_day: int = 10_000
    session_ttl_seconds: int = 7200
    query_cursor_ttl_seconds: int = 900
    max_open_cursors: int = 10
    recycle_bin_days: int = 15
    updated_window_days: int = 30
    deleted_window_days: int = 15
    replication_id_limit: int = 600_000
    bulk_polls_to_complete: int = 2
    bulk_default_max_records: int = 50_000

    def update(self, raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown Salesforce quota {key!r}")
            current = getattr(self, key)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        for key, value in raw.items():
            setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Table:
    """The records of one sObject, live and recycled, and the (SystemModstamp, Id) index."""

    def __init__(self, sobject: SObject) -> None:
        self.sobject = sobject
        self.records: dict[str, Record] = {}
        self.index: list[tuple[int, str]] = []
        self.deleted: set[str] = set()

    def index_remove(self, rec: Record) -> None:
        key = (rec["SystemModstamp"], rec["Id"])
        i = bisect.bisect_left(self.index, key)
        if i < len(self.index) and self.index[i] == key:
            del self.index[i]

    def index_add(self, rec: Record) -> None:
        key = (rec["SystemModstamp"], rec["Id"])
        if not self.index or self.index[-1] < key:
            self.index.append(key)
        else:
            bisect.insort(self.index, key)

    def rebuild(self) -> None:
        self.index = sorted((r["SystemModstamp"], r["Id"]) for r in self.records.values())
        self.deleted = {i for i, r in self.records.items() if r.get("IsDeleted")}

    def modstamp_range(
        self, lo: float | None, lo_incl: bool, hi: float | None, hi_incl: bool
    ) -> list[tuple[int, str]]:
        """The index entries whose SystemModstamp lies in the range (stamps are whole seconds)."""
        index = self.index
        start = 0
        if lo is not None:
            first = math.ceil(lo) if lo_incl else math.floor(lo) + 1
            start = bisect.bisect_left(index, (first, ""))
        end = len(index)
        if hi is not None:
            after = math.floor(hi) + 1 if hi_incl else math.ceil(hi)
            end = bisect.bisect_left(index, (after, ""))
        return index[start:end]


@dataclass
class Cursor:
    id: str
    sobject: str
    ids: list[str]
    columns: list[soql.Column]
    include_deleted: bool
    user_id: str
    expires_at: float
    batch: int = 2000


@dataclass
class ListView:
    id: str
    sobject: str
    label: str
    developer_name: str
    columns: list[str]
    where: str | None
    order_by: list[tuple[str, bool]]  # (field, descending)
    scope: str = "everything"


@dataclass
class DuplicateRule:
    sobject: str
    field: str
    action: str  # "block" or "allow" (an alert the client may override with allowSave=true)


@dataclass
class WriteContext:
    user_id: str
    allow_save: bool = False  # Sforce-Duplicate-Rule-Header: allowSave=true
    system: bool = False  # seeding: system fields may be set, rules are skipped


class Org:
    def __init__(self, clock: VirtualClock, seed: int = 0) -> None:
        self.clock = clock
        self.seed_value = seed
        self.credentials = Credentials.from_seed(seed)
        self.settings = Settings()
        self.sessions = Sessions(clock, self.credentials.org_id, self.settings.session_ttl_seconds)
        self.on_change: list[Callable[[str, Record, bool], None]] = []
        self.reset()

    # ---- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        self.seq = ids.IdSequence(start=1_000)
        self.tables = {name: Table(o) for name, o in OBJECTS.items()}
        self.delete_log: dict[str, deque[tuple[int, str]]] = {n: deque() for n in OBJECTS}
        self.earliest_available: dict[str, int] = {}
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self.list_views: dict[str, ListView] = {}
        self.duplicate_rules: list[DuplicateRule] = []
        self.api_buckets: deque[list[int]] = deque()
        self.api_used = 0
        self.journal: list[tuple[Table, str, Record | None, int]] | None = None
        self.sessions.tokens.clear()
        self.refresh_tokens = {self.credentials.refresh_token: self.credentials.admin.id}
        self.created_at = self.now()
        self.seeded = 0
        self._add_users()
        self._default_list_views()

    def now(self) -> int:
        return int(self.clock.timestamp())

    def _add_users(self) -> None:
        table = self.tables["User"]
        for user in self.credentials.users:
            rec = {
                "Id": user.id,
                "Username": user.username,
                "FirstName": user.first_name,
                "LastName": user.last_name,
                "Name": f"{user.first_name} {user.last_name}",
                "Alias": user.alias,
                "Email": user.email,
                "IsActive": True,
                "CreatedDate": self.created_at - 365 * DAY,
                "LastModifiedDate": self.created_at - 365 * DAY,
                "SystemModstamp": self.created_at - 365 * DAY,
            }
            table.records[user.id] = rec
        table.rebuild()

    def _default_list_views(self) -> None:
        self.add_list_view(
            "Contact",
            "All Contacts",
            "AllContacts",
            None,
            ["Name", "Account.Name", "Title", "Phone", "Email", "Owner.Alias"],
            [("Name", False)],
            "everything",
        )
        self.add_list_view(
            "Contact",
            "My Contacts",
            "MyContacts",
            None,
            ["Name", "Account.Name", "Phone", "Email", "Owner.Alias"],
            [("Name", False)],
            "mine",
        )
        self.add_list_view(
            "Lead",
            "All Open Leads",
            "AllOpenLeads",
            "IsConverted = false",
            ["Name", "Company", "Email", "Status", "Owner.Alias"],
            [("Name", False)],
            "everything",
        )

    # ---- the one place records change -------------------------------------------------------

    def _put(self, table: Table, rid: str, new: Record | None) -> None:
        old = table.records.get(rid)
        if self.journal is not None:
            self.journal.append(
                (
                    table,
                    rid,
                    dict(old) if old is not None else None,
                    len(self.delete_log[table.sobject.name]),
                )
            )
        if old is not None:
            table.index_remove(old)
            table.deleted.discard(rid)
        if new is None:
            table.records.pop(rid, None)
            return
        table.records[rid] = new
        table.index_add(new)
        if new.get("IsDeleted"):
            table.deleted.add(rid)

    def begin(self) -> None:
        self.journal = []

    def commit(self) -> None:
        self.journal = None

    def rollback(self) -> None:
        journal, self.journal = self.journal or [], None
        for table, rid, old, log_len in reversed(journal):
            self._put(table, rid, old)
            log = self.delete_log[table.sobject.name]
            while len(log) > log_len:
                log.pop()

    # ---- lookups -----------------------------------------------------------------------------

    def table(self, name: str) -> Table:
        sobject = get_object(name)
        if sobject is None:
            raise err.not_found()
        return self.tables[sobject.name]

    def lookup(self, sobject: str, record_id: str | None) -> Record | None:
        if record_id is None:
            return None
        return self.tables[sobject].records.get(record_id)

    def get_record(self, name: str, raw_id: str) -> tuple[Table, Record]:
        table = self.table(name)
        rid = ids.normalize(raw_id)
        if rid is None:
            raise err.not_found(
                f"Provided external ID field does not exist or is not accessible: {raw_id}"
            )
        rec = table.records.get(rid)
        if rec is None:
            raise err.not_found()
        if rec.get("IsDeleted"):
            raise err.entity_is_deleted()
        return table, rec

    # ---- validation --------------------------------------------------------------------------

    def coerce(
        self, sobject: SObject, data: dict[str, Any], creating: bool, ctx: WriteContext
    ) -> Record:
        """The JSON body as stored values, or the first error Salesforce would give."""
        unknown = [k for k in data if k != "attributes" and sobject.field(k) is None]
        if unknown:
            raise err.bad_request(
                "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject.name}"
            )
        out: Record = {}
        readonly = []
        for key, value in data.items():
            if key == "attributes":
                continue
            f = sobject.field(key)
            assert f is not None
            writable = f.createable if creating else f.updateable
            if not writable and not ctx.system:
                readonly.append(f.name)
                continue
            out[f.name] = self._coerce_value(f, value)
        if readonly:
            raise err.bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                UNABLE_TO_WRITE.format(names=", ".join(readonly)),
                readonly,
            )
        return out

    def _coerce_value(self, f: Field, value: Any) -> Any:
        if value is None or value == "":
            return None
        kind = f.type
        try:
            if f.is_string:
                if isinstance(value, bool | dict | list):
                    raise TypeError
                text = str(value)
                if kind in ("reference", "id"):
                    return self._coerce_id(f, text)
                return text
            if kind == "boolean":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    return value.lower() == "true"
                raise TypeError
            if kind == "datetime":
                return int(soql.parse_datetime(str(value)))
            if kind == "date":
                if not isinstance(value, str) or not DATE.match(value):
                    raise TypeError
                datetime.strptime(value, "%Y-%m-%d")
                return value
            if kind == "int":
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise TypeError
                return int(value)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError
            return float(value)
        except (TypeError, ValueError) as exc:
            raise err.json_parser_error(
                f"Cannot deserialize instance of {soql.TYPE_NAMES.get(kind, kind)} from"
                f" {type(value).__name__.upper()} value {value} or request may be missing a"
                f" required field at [line:1, column:1]"
            ) from exc

    @staticmethod
    def _coerce_id(f: Field, text: str) -> str:
        normal = ids.normalize(text)
        target = OBJECTS.get(f.reference_to[0]) if f.reference_to else None
        if normal is None or (target is not None and normal[:3] != target.key_prefix):
            raise SalesforceError(
                400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {text}", [f.name]
            )
        return normal

    def check(
        self, sobject: SObject, merged: Record, changed: Iterable[str], ctx: WriteContext
    ) -> None:
        """Business rules on the record as it would be saved."""
        missing = [
            f.name
            for f in sobject.fields
            if f.required and merged.get(f.name) is None and self._required_here(sobject, f, merged)
        ]
        if missing:
            raise err.bad_request(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for name in changed:
            f = sobject.by_name[name]
            value = merged.get(name)
            if value is None:
                continue
            if f.is_string and f.length and len(value) > f.length:
                raise err.bad_request(
                    "STRING_TOO_LONG",
                    f"{f.label}: data value too large: {value} (max length={f.length})",
                    [name],
                )
            if f.type == "email" and not EMAIL.match(value):
                raise err.bad_request(
                    "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [name]
                )
            if f.restricted and value not in f.picklist:
                raise err.bad_request(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {value}",
                    [name],
                )
            if f.type == "reference" and f.reference_to and f.reference_to[0] in self.tables:
                target = self.tables[f.reference_to[0]].records.get(value)
                if target is None or target.get("IsDeleted"):
                    raise err.bad_request(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"{f.label}: id value of incorrect type: {value}",
                        [name],
                    )

    @staticmethod
    def _required_here(sobject: SObject, f: Field, merged: Record) -> bool:
        if sobject.name == "Account":
            person = bool(merged.get("IsPersonAccount"))
            if f.name == "Name":
                return not person
        return True

    def check_duplicates(
        self, sobject: SObject, merged: Record, rid: str | None, ctx: WriteContext
    ) -> None:
        for rule in self.duplicate_rules:
            if rule.sobject != sobject.name or ctx.system:
                continue
            value = merged.get(rule.field)
            if value is None or (rule.action == "allow" and ctx.allow_save):
                continue
            folded = value.casefold()
            matches = [
                r["Id"]
                for r in self.tables[sobject.name].records.values()
                if not r.get("IsDeleted")
                and r["Id"] != rid
                and (r.get(rule.field) or "").casefold() == folded
            ]
            if matches:
                raise SalesforceError(
                    400,
                    "DUPLICATES_DETECTED",
                    DUPLICATE_MESSAGE,
                    [],
                    {"duplicateResult": self._duplicate_result(sobject.name, rule, matches)},
                )

    def _duplicate_result(
        self, name: str, rule: DuplicateRule, matches: list[str]
    ) -> dict[str, Any]:
        return {
            "allowSave": rule.action == "allow",
            "duplicateRule": f"Standard_{name}_Duplicate_Rule",
            "duplicateRuleEntityType": name,
            "errorMessage": DUPLICATE_MESSAGE,
            "matchResults": [
                {
                    "entityType": name,
                    "errors": [],
                    "matchEngine": "ExactMatchEngine",
                    "matchRecords": [
                        {
                            "additionalInformation": [],
                            "fieldDiffs": [],
                            "matchConfidence": 100.0,
                            "record": {
                                "attributes": {
                                    "type": name,
                                    "url": f"/services/data/v59.0/sobjects/{name}/{m}",
                                },
                                "Id": m,
                            },
                        }
                        for m in matches[:100]
                    ],
                    "rule": f"Standard_{name}_Match_Rule_v1_1",
                    "size": len(matches),
                    "success": True,
                }
            ],
        }

    # ---- DML ---------------------------------------------------------------------------------

    def create(self, name: str, data: dict[str, Any], ctx: WriteContext) -> str:
        sobject = get_object(name)
        if sobject is None or not sobject.writable:
            raise (
                err.not_found()
                if sobject is None
                else err.bad_request(
                    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                    f"{name}: insufficient access rights on object",
                )
            )
        if "Id" in data and not ctx.system:
            raise err.bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
            )
        values = self.coerce(sobject, data, True, ctx)
        rec: Record = {
            f.name: (f.default if f.type == "boolean" or f.defaulted_on_create else None)
            for f in sobject.fields
        }
        for f in sobject.fields:
            if f.type == "boolean" and rec[f.name] is None:
                rec[f.name] = False
        rec.update(values)
        now = self.now()
        if sobject.name == "Account":
            self._account_kind(rec, values, creating=True)
        self._compute_name(sobject, rec)
        self.check(sobject, rec, values.keys(), ctx)
        self.check_duplicates(sobject, rec, None, ctx)
        rid = values.get("Id") or self.seq.next(sobject.key_prefix)
        rec["Id"] = rid
        rec["IsDeleted"] = bool(values.get("IsDeleted", False))
        rec["OwnerId"] = rec.get("OwnerId") or ctx.user_id
        for key in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            rec[key] = values.get(key) or now
        rec["CreatedById"] = values.get("CreatedById") or ctx.user_id
        rec["LastModifiedById"] = values.get("LastModifiedById") or ctx.user_id
        table = self.tables[sobject.name]
        self._put(table, rid, rec)
        if sobject.name == "Account" and rec.get("IsPersonAccount"):
            self._sync_person_contact(rec, ctx)
        self._changed(sobject.name, rec, True)
        return str(rid)

    def update(self, name: str, raw_id: str, data: dict[str, Any], ctx: WriteContext) -> Record:
        table, old = self.get_record(name, raw_id)
        sobject = table.sobject
        if not sobject.writable:
            raise err.bad_request(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                f"{name}: insufficient access rights on object",
            )
        if sobject.name == "Contact" and old.get("IsPersonAccount") and not ctx.system:
            raise err.bad_request(
                "INVALID_PERSON_ACCOUNT_OPERATION",
                "Person account contacts can't be edited through the Contact object:"
                " update the Account",
            )
        body = {k: v for k, v in data.items() if k != "Id"}
        values = self.coerce(sobject, body, False, ctx)
        rec = dict(old)
        rec.update(values)
        if sobject.name == "Account":
            self._account_kind(rec, values, creating=False)
        self._compute_name(sobject, rec)
        self.check(sobject, rec, values.keys(), ctx)
        self.check_duplicates(sobject, rec, rec["Id"], ctx)
        now = self.now()
        rec["LastModifiedDate"] = values.get("LastModifiedDate") or now
        rec["SystemModstamp"] = values.get("SystemModstamp") or now
        rec["LastModifiedById"] = ctx.user_id
        self._put(table, rec["Id"], rec)
        if sobject.name == "Account" and rec.get("IsPersonAccount"):
            self._sync_person_contact(rec, ctx)
        self._changed(sobject.name, rec, False)
        return rec

    def delete(self, name: str, raw_id: str, ctx: WriteContext) -> None:
        table, old = self.get_record(name, raw_id)
        sobject = table.sobject
        if not sobject.writable:
            raise err.bad_request(
                "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
            )
        if sobject.name == "Contact" and old.get("IsPersonAccount"):
            raise err.bad_request(
                "INVALID_PERSON_ACCOUNT_OPERATION",
                "Person account contacts can't be deleted through the Contact object:"
                " delete the Account",
            )
        self._soft_delete(table, old)
        if sobject.name == "Account":
            contacts = self.tables["Contact"]
            for contact in [
                r
                for r in contacts.records.values()
                if r.get("AccountId") == old["Id"] and not r.get("IsDeleted")
            ]:
                self._soft_delete(contacts, contact)  # Salesforce deletes an account's contacts too

    def _soft_delete(self, table: Table, old: Record) -> None:
        now = self.now()
        rec = dict(old)
        rec["IsDeleted"] = True
        rec["SystemModstamp"] = now
        self._put(table, rec["Id"], rec)
        self.delete_log[table.sobject.name].append((now, rec["Id"]))

    def hard_delete(self, name: str, raw_id: str) -> None:
        """Skips the recycle bin (Bulk API hardDelete); the delete log still has the entry."""
        table = self.table(name)
        rid = ids.normalize(raw_id)
        if rid is not None and rid in table.records:
            self._put(table, rid, None)

    def undelete(self, name: str, raw_id: str) -> None:
        table = self.table(name)
        rid = ids.normalize(raw_id)
        rec = table.records.get(rid or "")
        if rec is None or not rec.get("IsDeleted"):
            raise err.bad_request("UNDELETE_FAILED", "Entity is not in the recycle bin")
        new = dict(rec)
        new["IsDeleted"] = False
        new["SystemModstamp"] = self.now()
        self._put(table, new["Id"], new)

    def _account_kind(self, rec: Record, values: Record, creating: bool) -> None:
        person_type = self.record_type_id(person=True)
        if creating:
            rt = values.get("RecordTypeId") or self.record_type_id(person=False)
            if rt not in (person_type, self.record_type_id(person=False)):
                raise err.bad_request(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "Record Type ID: this ID value isn't valid for the user: " + rt,
                    ["RecordTypeId"],
                )
            rec["RecordTypeId"] = rt
            rec["IsPersonAccount"] = rt == person_type
        elif "RecordTypeId" in values and values["RecordTypeId"] != rec.get("RecordTypeId"):
            raise err.bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                UNABLE_TO_WRITE.format(names="RecordTypeId"),
                ["RecordTypeId"],
            )
        if rec["IsPersonAccount"]:
            if "Name" in values:
                raise err.bad_request(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    UNABLE_TO_WRITE.format(names="Name"),
                    ["Name"],
                )
        else:
            bad = sorted(k for k in values if k in PERSON_ONLY_FIELDS)
            if bad:
                raise err.bad_request(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    UNABLE_TO_WRITE.format(names=", ".join(bad)),
                    bad,
                )

    def record_type_id(self, person: bool) -> str:
        return ids.make_id("012", 2 if person else 1)

    @staticmethod
    def _compute_name(sobject: SObject, rec: Record) -> None:
        if sobject.name in ("Contact", "Lead") or (
            sobject.name == "Account" and rec.get("IsPersonAccount")
        ):
            rec["Name"] = (
                " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or None
            )

    def _sync_person_contact(self, account: Record, ctx: WriteContext) -> None:
        contacts = self.tables["Contact"]
        cid = account.get("PersonContactId")
        old = contacts.records.get(cid) if cid else None
        contact: Record = dict(old) if old else {f.name: None for f in contacts.sobject.fields}
        for src, dst in PERSON_CONTACT_MAP.items():
            contact[dst] = account.get(src)
        now = self.now()
        if old is None:
            cid = self.seq.next("003")
            contact.update(
                Id=cid,
                CreatedDate=now,
                CreatedById=ctx.user_id,
                HasOptedOutOfEmail=False,
                DoNotCall=False,
            )
            account["PersonContactId"] = cid  # the stored Account record itself
        contact.update(
            AccountId=account["Id"],
            IsPersonAccount=True,
            IsDeleted=bool(account.get("IsDeleted")),
            LastModifiedDate=account["LastModifiedDate"],
            SystemModstamp=account["SystemModstamp"] or now,
            LastModifiedById=ctx.user_id,
        )
        self._compute_name(contacts.sobject, contact)
        self._put(contacts, str(cid), contact)

    def _changed(self, name: str, rec: Record, created: bool) -> None:
        for listener in self.on_change:
            listener(name, rec, created)

    # ---- upsert by external id --------------------------------------------------------------

    def find_by_external(
        self, name: str, field_name: str, value: str
    ) -> tuple[SObject, Field, list[Record]]:
        table = self.table(name)
        f = table.sobject.field(field_name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise err.not_found(
                f"Provided external ID field does not exist or is not accessible: {field_name}"
            )
        if f.name == "Id":
            rid = ids.normalize(value)
            rec = table.records.get(rid or "")
            return table.sobject, f, [rec] if rec and not rec.get("IsDeleted") else []
        folded = value.casefold()
        found = [
            r
            for r in table.records.values()
            if not r.get("IsDeleted") and (r.get(f.name) or "").casefold() == folded
        ]
        return table.sobject, f, found

    def upsert(
        self, name: str, field_name: str, value: str, data: dict[str, Any], ctx: WriteContext
    ) -> tuple[str, bool]:
        """(id, created); raises a 300 with the matching URLs when the value is not unique."""
        sobject, f, found = self.find_by_external(name, field_name, value)
        if len(found) > 1:
            raise SalesforceError(300, "MULTIPLE_CHOICES", "multiple matches")
        if f.name in data and str(data[f.name]) != value:
            raise err.bad_request(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {f.name} in entity"
                f" {sobject.name}",
            )
        if found:
            self.update(
                sobject.name, found[0]["Id"], {k: v for k, v in data.items() if k != f.name}, ctx
            )
            return found[0]["Id"], False
        body = dict(data)
        if f.name != "Id":
            body[f.name] = value
        return self.create(sobject.name, body, ctx), True

    # ---- housekeeping ------------------------------------------------------------------------

    def purge_recycle_bin(self, everything: bool = False) -> int:
        """Hard-deletes what has been in the recycle bin longer than the retention (or all)."""
        cutoff = self.now() - self.settings.recycle_bin_days * DAY
        purged = 0
        for name, log in self.delete_log.items():
            table = self.tables[name]
            while log and (everything or log[0][0] < cutoff):
                when, rid = log.popleft()
                rec = table.records.get(rid)
                if rec is not None and rec.get("IsDeleted"):
                    self._put(table, rid, None)
                    purged += 1
                self.earliest_available[name] = max(self.earliest_available.get(name, 0), when)
        return purged

    def count_api_request(self) -> None:
        minute = self.now() // 60
        buckets = self.api_buckets
        while buckets and buckets[0][0] <= minute - 1440:
            self.api_used -= buckets.popleft()[1]
        if self.settings.enabled and self.api_used >= self.settings.daily_api_requests:
            raise err.request_limit_exceeded()
        if buckets and buckets[-1][0] == minute:
            buckets[-1][1] += 1
        else:
            buckets.append([minute, 1])
        self.api_used += 1

    def limit_info(self) -> str:
        return f"api-usage={self.api_used}/{self.settings.daily_api_requests}"

    # ---- SOQL ----------------------------------------------------------------------------------

    def compile(self, text: str) -> soql.Compiled:
        try:
            return soql.compile_query(text, self)
        except soql.SoqlError as exc:
            raise err.bad_request(exc.code, exc.message) from exc

    def now_datetime(self) -> datetime:
        return self.clock.now()

    def select_ids(self, q: soql.Compiled, include_deleted: bool, user_id: str) -> list[str]:
        """The ids the query matches, in its order, with LIMIT and OFFSET applied."""
        table = self.tables[q.sobject.name]
        recs = table.records
        if q.modstamp_range is not None or q.modstamp_order is not None:
            keys = table.modstamp_range(*(q.modstamp_range or (None, True, None, True)))
            cand: list[str] = [k[1] for k in keys]
            if q.modstamp_order == "desc":
                cand.reverse()
            pred = q.residual
            ordered = q.modstamp_order is not None or not q.order
        else:
            cand = list(recs)
            pred = q.predicate
            ordered = not q.order
        if not include_deleted and table.deleted:
            deleted = table.deleted
            cand = [i for i in cand if i not in deleted]
        if q.scope == "mine" and q.sobject.field("OwnerId") is not None:
            cand = [i for i in cand if recs[i].get("OwnerId") == user_id]
        if pred is not None:
            cand = [i for i in cand if pred(recs[i])]
        if not ordered:
            for key in reversed(q.order):
                cand.sort(key=_sort_key(key, recs), reverse=key.descending)
        if q.offset:
            cand = cand[q.offset :]
        if q.limit is not None:
            cand = cand[: q.limit]
        return cand

    def open_cursor(
        self, q: soql.Compiled, found: list[str], include_deleted: bool, user_id: str
    ) -> Cursor:
        now = self.clock.timestamp()
        for cid in [c for c, cur in self.cursors.items() if cur.expires_at <= now]:
            del self.cursors[cid]
        mine = [c for c, cur in self.cursors.items() if cur.user_id == user_id]
        while len(mine) >= max(1, self.settings.max_open_cursors):
            del self.cursors[mine.pop(0)]
        cursor = Cursor(
            self.seq.next("01g"),
            q.sobject.name,
            found,
            q.columns,
            include_deleted,
            user_id,
            now + self.settings.query_cursor_ttl_seconds,
        )
        self.cursors[cursor.id] = cursor
        return cursor

    def cursor(self, locator: str) -> tuple[Cursor, int]:
        cid, _, pos = locator.partition("-")
        cursor = self.cursors.get(cid)
        if cursor is None or cursor.expires_at <= self.clock.timestamp() or not pos.isdigit():
            self.cursors.pop(cid, None)
            raise err.invalid_query_locator()
        position = int(pos)
        if position > len(cursor.ids):
            raise err.invalid_query_locator()
        cursor.expires_at = self.clock.timestamp() + self.settings.query_cursor_ttl_seconds
        return cursor, position

    def close_cursor(self, cursor: Cursor) -> None:
        self.cursors.pop(cursor.id, None)

    # ---- replication --------------------------------------------------------------------------

    def _window(self, start: str | None, end: str | None, days: int) -> tuple[int, int]:
        if not start or not end:
            missing = "start" if not start else "end"
            raise err.bad_request("MISSING_ARGUMENT", f"Missing argument: {missing}")
        try:
            lo = int(_parse_param_datetime(start)) // 60 * 60
            hi = int(_parse_param_datetime(end)) // 60 * 60
        except ValueError as exc:
            raise err.bad_request(
                "INVALID_REPLICATION_DATE", f"Invalid date/time: {start} - {end}"
            ) from exc
        now = self.now()
        if hi < lo:
            raise err.bad_request("INVALID_REPLICATION_DATE", "EndDate can not be before StartDate")
        if lo < now - days * DAY:
            raise err.bad_request(
                "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago"
            )
        return lo, min(hi, now // 60 * 60)

    def updated(self, name: str, start: str | None, end: str | None) -> dict[str, Any]:
        table = self.table(name)
        lo, covered = self._window(start, end, self.settings.updated_window_days)
        keys = table.modstamp_range(lo, True, covered, False)
        found = [rid for _, rid in keys if rid not in table.deleted]
        if len(found) > self.settings.replication_id_limit:
            raise err.exceeded_id_limit(
                "Too many ids. Narrow the time window: the limit is 600,000 ids"
            )
        return {"ids": found, "latestDateCovered": format_datetime(covered)}

    def deleted(self, name: str, start: str | None, end: str | None) -> dict[str, Any]:
        table = self.table(name)
        self.purge_recycle_bin()
        lo, covered = self._window(start, end, self.settings.deleted_window_days)
        log = self.delete_log[table.sobject.name]
        entries = [(when, rid) for when, rid in log if lo <= when < covered]
        if len(entries) > self.settings.replication_id_limit:
            raise err.exceeded_id_limit(
                "Too many ids. Narrow the time window: the limit is 600,000 ids"
            )
        earliest = self.earliest_available.get(table.sobject.name, self.created_at - 30 * DAY)
        return {
            "deletedRecords": [
                {"id": rid, "deletedDate": format_datetime(when)} for when, rid in entries
            ],
            "earliestDateAvailable": format_datetime(earliest // 60 * 60),
            "latestDateCovered": format_datetime(covered),
        }

    # ---- list views ------------------------------------------------------------------------------

    def add_list_view(
        self,
        sobject: str,
        label: str,
        developer_name: str,
        where: str | None,
        columns: list[str],
        order_by: list[tuple[str, bool]],
        scope: str,
    ) -> ListView:
        obj = get_object(sobject)
        if obj is None:
            raise ValueError(f"unknown sObject {sobject!r}")
        if scope not in ("everything", "mine"):
            raise ValueError("scope must be everything or mine")
        view = ListView(
            self.seq.next("00B"), obj.name, label, developer_name, columns, where, order_by, scope
        )
        self.compile(self.list_view_query(view))  # refuses what the API would not run
        self.list_views[view.id] = view
        return view

    def list_view_query(self, view: ListView) -> str:
        fields = [*view.columns]
        for extra in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if extra.lower() not in (f.lower() for f in fields):
                fields.append(extra)
        text = f"SELECT {', '.join(fields)} FROM {view.sobject}"
        if view.scope == "mine":
            text += " USING SCOPE mine"
        if view.where:
            text += f" WHERE {view.where}"
        order = [f"{f} {'DESC NULLS LAST' if d else 'ASC NULLS FIRST'}" for f, d in view.order_by]
        order.append(
            "Id ASC NULLS FIRST"
            if not any(d for _, d in view.order_by[:1])
            else "Id DESC NULLS LAST"
        )
        return text + " ORDER BY " + ", ".join(order)

    # ---- persistence -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "records": {n: list(t.records.values()) for n, t in self.tables.items()},
            "id_counters": self.seq.counters,
            "delete_log": {n: [list(e) for e in log] for n, log in self.delete_log.items()},
            "earliest_available": self.earliest_available,
            "cursors": {
                c.id: {
                    "sobject": c.sobject,
                    "ids": c.ids,
                    "columns": [col.header for col in c.columns],
                    "include_deleted": c.include_deleted,
                    "user_id": c.user_id,
                    "expires_at": c.expires_at,
                }
                for c in self.cursors.values()
            },
            "list_views": [dict(v.__dict__) for v in self.list_views.values()],
            "duplicate_rules": [dict(r.__dict__) for r in self.duplicate_rules],
            "api_buckets": [list(b) for b in self.api_buckets],
            "sessions": self.sessions.to_json(),
            "refresh_tokens": self.refresh_tokens,
            "settings": self.settings.to_json(),
            "created_at": self.created_at,
            "seeded": self.seeded,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.reset()
        self.settings = Settings()
        self.settings.update(state.get("settings", {}))
        self.sessions.ttl = self.settings.session_ttl_seconds
        for name, rows in state["records"].items():
            table = self.tables[name]
            table.records = {r["Id"]: r for r in rows}
            table.rebuild()
        self.seq.counters = {k: int(v) for k, v in state.get("id_counters", {}).items()}
        self.delete_log = {
            n: deque((int(a), b) for a, b in state.get("delete_log", {}).get(n, []))
            for n in OBJECTS
        }
        self.earliest_available = {
            k: int(v) for k, v in state.get("earliest_available", {}).items()
        }
        self.cursors = OrderedDict()
        for cid, raw in state.get("cursors", {}).items():
            q = self.compile(f"SELECT {', '.join(raw['columns'])} FROM {raw['sobject']}")
            self.cursors[cid] = Cursor(
                cid,
                raw["sobject"],
                raw["ids"],
                q.columns,
                raw["include_deleted"],
                raw["user_id"],
                float(raw["expires_at"]),
            )
        self.list_views = {}
        for raw in state.get("list_views", []):
            raw = dict(raw)
            raw["order_by"] = [tuple(x) for x in raw["order_by"]]
            view = ListView(**raw)
            self.list_views[view.id] = view
        self.duplicate_rules = [DuplicateRule(**r) for r in state.get("duplicate_rules", [])]
        self.api_buckets = deque([int(a), int(b)] for a, b in state.get("api_buckets", []))
        self.api_used = sum(b for _, b in self.api_buckets)
        self.sessions.load(state.get("sessions", {}))
        self.refresh_tokens = dict(state.get("refresh_tokens", self.refresh_tokens))
        self.created_at = int(state.get("created_at", self.created_at))
        self.seeded = int(state.get("seeded", 0))


def _sort_key(key: soql.SortKey, recs: dict[str, Record]) -> Callable[[str], Any]:
    get = key.getter
    # nulls sort as a rank of their own: before (0) or after (2) every value (1)
    null_rank = 0 if key.nulls_first != key.descending else 2
    fold = key.field.is_string and key.field.type not in ("id", "reference")

    def sort_key(rid: str) -> Any:
        value = get(recs[rid])
        if value is None:
            return (null_rank, 0)
        return (1, value.casefold() if fold else value)

    return sort_key


def _parse_param_datetime(text: str) -> float:
    t = text.strip().replace(" ", "+")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?", t):
        t += "Z"
    return soql.parse_datetime(t)


__all__ = ["Org", "Record", "Settings", "WriteContext", "format_datetime"]
