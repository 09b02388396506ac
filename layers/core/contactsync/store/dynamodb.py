"""The cloud store: one DynamoDB table (defined in template.yaml).

Key design (every key starts with the organisation; ``#`` never occurs in ids):

    entity   PK = {org}#{kind}#{id}                 SK = "E"      body (JSON), v, ttl
             GSI1PK = {org}#{kind}#{bucket}         GSI1SK = {id}   (listing; hot keys spread
             over ``list_buckets`` partitions so 100,000 contacts never share one)
    index    PK = {org}#{kind}#ix#{name}#{value}    SK = {id}       (lookups by email, phone...)
    lease    PK = {org}#lease#{name}                SK = "L"      owner, expires, token

Each entity has its own partition, so writes spread naturally. Lookups read index items with
strongly consistent queries and verify against the entities (``Store.lookup``), so index items
need no transaction: new ones are written before the entity, stale ones removed after it. A crash
in between leaves an extra index item that verification ignores, never a missing one.

Removing after the write races with other writers: between our write and our removal, another
writer may read our version and put back an entry we are about to remove (an email merged back),
or delete-and-create the entity anew. So an index item names the entity's generation (``g``: a
random id an entity keeps from its creation to its delete) and the version whose write put it
(``v``), and a removal is conditional: only items of this generation put for an older version
go. Extra items (a crash, a write that lost a version conflict after putting its entries) are
dropped by the lookups that meet them, once older than ``LEFTOVER_AGE`` (``t``: when put): no
write is still in flight by then (a Lambda runs 15 minutes at most).

Conditional writes give optimistic concurrency (``v = :expected`` / ``attribute_not_exists``) and
fencing for cursors (a ConditionCheck on the lease item in the same transaction).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from contactsync.domain.base import STORED, Entity
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.errors import ContactsyncError, LeaseHeld, LeaseLost, VersionConflict
from contactsync.store.base import (
    E,
    Page,
    Store,
    StoreStats,
    Write,
    bucket_of,
    check_limit,
    decode_token,
    encode_token,
    index_set,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ENTITY_SK = "E"
LEASE_SK = "L"
GSI1 = "GSI1"
MAX_TRANSACT_ITEMS = 100
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
# An index item its entity does not name, this old, is a leftover, not a write in flight.
LEFTOVER_AGE = timedelta(minutes=30)


class StoreUnavailable(ContactsyncError):
    """DynamoDB kept refusing a batch (UnprocessedItems) beyond the retry budget."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _generation() -> str:
    return secrets.token_hex(8)


class DynamoStore(Store):
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_batch_attempts: int = 12,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The client is injected (built at the edge, typed with mypy-boto3 stubs).
        self._db = client
        self.table = table_name
        self._sleep = sleep
        self._clock = clock  # UNIX seconds: when index items are put, and which are leftovers
        self._max_batch_attempts = max_batch_attempts
        self.stats = StoreStats()

    # ---- keys --------------------------------------------------------------------------------

    @staticmethod
    def entity_pk(org_id: str, kind: str, entity_id: str) -> str:
        return f"{org_id}#{kind}#{entity_id}"

    @staticmethod
    def index_pk(org_id: str, kind: str, name: str, value: str) -> str:
        return f"{org_id}#{kind}#ix#{name}#{value}"

    @staticmethod
    def list_pk(org_id: str, kind: str, bucket: int) -> str:
        return f"{org_id}#{kind}#{bucket}"

    @staticmethod
    def lease_pk(org_id: str, name: str) -> str:
        return f"{org_id}#lease#{name}"

    def _entity_item(self, entity: Entity, generation: str) -> dict[str, Any]:
        kind = type(entity)
        item: dict[str, Any] = {
            "PK": _s(self.entity_pk(entity.org_id, kind.kind, entity.id)),
            "SK": _s(ENTITY_SK),
            "GSI1PK": _s(self.list_pk(entity.org_id, kind.kind, bucket_of(kind, entity.id))),
            "GSI1SK": _s(entity.id),
            "body": _s(entity.model_dump_json(exclude={"version"}, warnings="error")),
            "v": _n(entity.version),
            "g": _s(generation),
        }
        expires = entity.expires_at()
        if expires is not None:
            item["ttl"] = _n(int(expires.timestamp()))
        return item

    def _index_key(self, entity: Entity, name: str, value: str) -> dict[str, Any]:
        pk = self.index_pk(entity.org_id, type(entity).kind, name, value)
        return {"PK": _s(pk), "SK": _s(entity.id)}

    def _index_items(
        self, entity: Entity, entries: set[tuple[str, str]], generation: str
    ) -> list[dict[str, Any]]:
        """The items to put for ``entries`` of ``entity`` (at the version being written)."""
        stamp = {"g": _s(generation), "v": _n(entity.version), "t": _n(int(self._clock()))}
        return [{**self._index_key(entity, n, v), **stamp} for n, v in sorted(entries)]

    def _remove_entries(
        self, entity: Entity, entries: set[tuple[str, str]], generation: str | None, below: int
    ) -> None:
        """Removes the index items of ``entries`` that this generation of the entity put for a
        version under ``below``; one put meanwhile by a newer write, or by the entity's next
        generation, stays (see the module docstring)."""
        for name, value in sorted(entries):
            condition = "attribute_not_exists(g)"
            values: dict[str, Any] = {}
            if generation is not None:
                condition += " OR (g = :g AND v < :v)"
                values = {":g": _s(generation), ":v": _n(below)}
            params: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._index_key(entity, name, value),
                "ConditionExpression": condition,
            }
            if values:
                params["ExpressionAttributeValues"] = values
            try:
                self._db.delete_item(**params)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    @staticmethod
    def _load(kind: type[E], item: dict[str, Any]) -> E:
        entity = kind.model_validate_json(item["body"]["S"], context=STORED)
        entity.__dict__["version"] = int(item["v"]["N"])
        return entity

    # ---- reads ---------------------------------------------------------------------------------

    def find(self, kind: type[E], org_id: str, entity_id: str) -> E | None:
        found = self._find(kind, org_id, entity_id)
        return None if found is None else found[0]

    def _find(self, kind: type[E], org_id: str, entity_id: str) -> tuple[E, str | None] | None:
        """The entity and its generation (None: written before generations were kept)."""
        self.stats.count("reads", kind.kind)
        response = self._db.get_item(
            TableName=self.table,
            Key={"PK": _s(self.entity_pk(org_id, kind.kind, entity_id)), "SK": _s(ENTITY_SK)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return self._load(kind, item), item.get("g", {}).get("S")

    def get_many(self, kind: type[E], org_id: str, entity_ids: Sequence[str]) -> dict[str, E]:
        ids = list(dict.fromkeys(entity_ids))
        result: dict[str, E] = {}
        self.stats.count("reads", kind.kind, len(ids))
        for start in range(0, len(ids), BATCH_GET_MAX):
            keys = [
                {"PK": _s(self.entity_pk(org_id, kind.kind, i)), "SK": _s(ENTITY_SK)}
                for i in ids[start : start + BATCH_GET_MAX]
            ]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            stalled = 0
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                got = response.get("Responses", {}).get(self.table, [])
                for item in got:
                    entity = self._load(kind, item)
                    result[entity.id] = entity
                request = dict(response.get("UnprocessedKeys") or {})
                if request:
                    stalled = 0 if got else stalled + 1
                    self._backoff(stalled, "BatchGetItem kept returning UnprocessedKeys")
        return result

    def page(
        self, kind: type[E], org_id: str, *, limit: int = 100, page_token: str | None = None
    ) -> Page[E]:
        """Walks the buckets in order; the token holds the bucket and DynamoDB's position."""
        check_limit(limit)
        bucket, start_key = 0, None
        if page_token is not None:
            data = decode_token(page_token, org_id, kind.kind)
            bucket = int(data.get("b", 0))
            start_key = data.get("lek")
            if not 0 <= bucket < kind.list_buckets:
                raise ValueError("page token bucket out of range")
        items: list[E] = []
        while bucket < kind.list_buckets:
            params: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": GSI1,
                "KeyConditionExpression": "GSI1PK = :pk",
                "ExpressionAttributeValues": {":pk": _s(self.list_pk(org_id, kind.kind, bucket))},
                "Limit": limit - len(items),
            }
            if start_key:
                params["ExclusiveStartKey"] = start_key
            self.stats.count("queries", kind.kind)
            response = self._db.query(**params)
            items.extend(self._load(kind, item) for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                bucket += 1
            if len(items) >= limit:
                break
        if bucket >= kind.list_buckets:
            return Page(items, None)
        token = encode_token({"o": org_id, "k": kind.kind, "b": bucket, "lek": start_key})
        return Page(items, token)

    def lookup_ids(self, kind: type[Entity], org_id: str, index: str, value: str) -> list[str]:
        return [entity_id for entity_id, _ in self._index_query(kind, org_id, index, value)]

    def _index_query(
        self, kind: type[Entity], org_id: str, index: str, value: str
    ) -> list[tuple[str, int | None]]:
        """The ids under (index, value), each with when its item was put (None: not kept)."""
        found: list[tuple[str, int | None]] = []
        start_key = None
        while True:
            params: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {
                    ":pk": _s(self.index_pk(org_id, kind.kind, index, value))
                },
                "ConsistentRead": True,
                "ProjectionExpression": "SK, t",
            }
            if start_key:
                params["ExclusiveStartKey"] = start_key
            self.stats.count("queries", kind.kind)
            response = self._db.query(**params)
            for item in response.get("Items", []):
                put_at = item.get("t", {}).get("N")
                found.append((item["SK"]["S"], None if put_at is None else int(put_at)))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return found

    def lookup(
        self, kind: type[E], org_id: str, index: str, value: str, *, limit: int = 100
    ) -> list[E]:
        """``Store.lookup``, dropping on the way the leftover index items it meets: those whose
        entity is gone or no longer names the entry, put longer than ``LEFTOVER_AGE`` ago."""
        check_limit(limit)
        under = sorted(self._index_query(kind, org_id, index, value))[: limit * 2]
        found = self.get_many(kind, org_id, [i for i, _ in under]) if under else {}
        result: list[E] = []
        cutoff = int(self._clock() - LEFTOVER_AGE.total_seconds())
        for entity_id, put_at in under:
            entity = found.get(entity_id)
            if entity is not None and (index, value) in set(entity.index_entries()):
                result.append(entity)
            elif put_at is None or put_at < cutoff:
                self._drop_leftover(kind, org_id, index, value, entity_id, cutoff)
        return result[:limit]

    def _drop_leftover(
        self, kind: type[Entity], org_id: str, index: str, value: str, entity_id: str, cutoff: int
    ) -> None:
        """Deletes the item unless a write put it again since (its ``t`` is then recent)."""
        try:
            self._db.delete_item(
                TableName=self.table,
                Key={"PK": _s(self.index_pk(org_id, kind.kind, index, value)), "SK": _s(entity_id)},
                ConditionExpression="attribute_not_exists(t) OR t < :cutoff",
                ExpressionAttributeValues={":cutoff": _n(cutoff)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ---- writes --------------------------------------------------------------------------------

    def transact(self, writes: Sequence[Write]) -> list[Entity]:
        if not writes:
            return []
        if len(writes) > MAX_TRANSACT_ITEMS:
            raise ValueError(f"at most {MAX_TRANSACT_ITEMS} writes in one transaction")
        currents = self._current(writes)
        olds = [c[0] if c is not None else None for c in currents]
        # An entity keeps its generation; a new one (or one stored without) starts its own.
        generations = [c[1] if c is not None and c[1] else _generation() for c in currents]
        stored = [w.stored() for w in writes]
        # 1. New index items first: an entity is never visible without its index entries.
        additions = [
            item
            for new, old, gen in zip(stored, olds, generations, strict=True)
            for item in self._index_items(new, index_set(new) - index_set(old), gen)
        ]
        self._batch_write([{"PutRequest": {"Item": i}} for i in additions])
        # 2. The entities, conditionally, all or nothing.
        items = [
            self._conditional_put(w, new, gen)
            for w, new, gen in zip(writes, stored, generations, strict=True)
        ]
        self.stats.count("writes", type(writes[0].entity).kind, len(items))
        if len(items) == 1:
            put = items[0]["Put"]
            try:
                self._db.put_item(**put)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    raise self._conflict(writes[0]) from exc
                raise
        else:
            try:
                self._db.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            except ClientError as exc:
                raise self._transaction_error(exc, writes) from exc
        # 3. Stale index items last, those put for an older version than ours only.
        for new, old, current in zip(stored, olds, currents, strict=True):
            stale = index_set(old) - index_set(new)
            if stale:
                self._remove_entries(new, stale, current[1] if current else None, new.version)
        return stored

    def _current(self, writes: Sequence[Write]) -> list[tuple[Entity, str | None] | None]:
        currents: list[tuple[Entity, str | None] | None] = []
        for write in writes:
            if write.expected_version == 0:
                currents.append(None)  # must not exist: nothing to diff against
            else:
                entity = write.entity
                currents.append(self._find(type(entity), entity.org_id, entity.id))
        return currents

    def _conditional_put(self, write: Write, new: Entity, generation: str) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": self._entity_item(new, generation)}
        if write.expected_version == 0:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        elif write.expected_version is not None:
            put["ConditionExpression"] = "v = :expected"
            put["ExpressionAttributeValues"] = {":expected": _n(write.expected_version)}
        return {"Put": put}

    def _conflict(self, write: Write) -> VersionConflict:
        entity = write.entity
        current = self.find(type(entity), entity.org_id, entity.id)
        return VersionConflict(
            type(entity).kind,
            entity.id,
            write.expected_version or 0,
            None if current is None else current.version,
        )

    def _transaction_error(self, exc: ClientError, writes: Sequence[Write]) -> Exception:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            return exc
        reasons = exc.response.get("CancellationReasons", [])
        for write, reason in zip(writes, reasons, strict=False):
            if reason.get("Code") == "ConditionalCheckFailed":
                return self._conflict(write)
        return exc

    def bulk_put(self, entities: Sequence[Entity]) -> None:
        if not entities:
            return
        stored = [
            (e.model_copy(update={"version": e.version + 1}), _generation()) for e in entities
        ]
        index_items = [item for e, g in stored for item in self._index_items(e, index_set(e), g)]
        self._batch_write([{"PutRequest": {"Item": i}} for i in index_items])
        self._batch_write([{"PutRequest": {"Item": self._entity_item(e, g)}} for e, g in stored])
        self.stats.count("writes", type(entities[0]).kind, len(stored))

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25, retrying UnprocessedItems with backoff until written."""
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self.table: requests[start : start + BATCH_WRITE_MAX]}
            stalled = 0
            while pending:
                before = len(pending[self.table])
                response = self._db.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
                if pending:
                    progressed = len(pending[self.table]) < before
                    stalled = 0 if progressed else stalled + 1
                    self._backoff(stalled, "BatchWriteItem kept returning UnprocessedItems")

    def _backoff(self, stalled: int, message: str) -> None:
        """Exponential backoff while DynamoDB makes no progress; gives up after a budget of
        fruitless attempts (progress resets it, so large batches under throttling complete)."""
        if stalled > self._max_batch_attempts:
            raise StoreUnavailable(message)
        self._sleep(min(0.05 * 2**stalled, 5.0))

    def delete(
        self,
        kind: type[Entity],
        org_id: str,
        entity_id: str,
        *,
        expected_version: int | None = None,
    ) -> None:
        found = self._find(kind, org_id, entity_id)
        if found is None:
            return
        current, generation = found
        self.stats.count("writes", kind.kind)
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"PK": _s(self.entity_pk(org_id, kind.kind, entity_id)), "SK": _s(ENTITY_SK)},
        }
        if expected_version is not None:
            params["ConditionExpression"] = "v = :expected"
            params["ExpressionAttributeValues"] = {":expected": _n(expected_version)}
        try:
            self._db.delete_item(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                latest = self.find(kind, org_id, entity_id)
                raise VersionConflict(
                    kind.kind, entity_id, expected_version or 0, latest.version if latest else None
                ) from exc
            raise
        # The entity's next generation (created meanwhile) keeps what it put.
        self._remove_entries(current, index_set(current), generation, current.version + 1)

    # ---- leases and cursors ----------------------------------------------------------------
    #
    # Timeline of the race the conditions close: worker A holds the lease, stalls past expiry;
    # worker B acquires (token n+1) and saves cursors; A wakes and tries to save its cursor with
    # token n: the ConditionCheck (owner = A AND token = n) fails, A gets LeaseLost and stops.

    def acquire_lease(
        self, org_id: str, name: str, owner: str, ttl: timedelta, now: datetime
    ) -> Lease:
        key = {"PK": _s(self.lease_pk(org_id, name)), "SK": _s(LEASE_SK)}
        current = self._db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        expires = now + ttl
        if current is None:
            token, condition, values = 1, "attribute_not_exists(PK)", {}
        else:
            held_by = current["owner"]["S"]
            held_until = float(current["expires"]["N"])
            old_token = int(current["token"]["N"])
            if held_by == owner and held_until > now.timestamp():
                token = old_token
            elif held_by and held_until > now.timestamp():
                raise LeaseHeld(name, held_by, datetime.fromtimestamp(held_until, now.tzinfo))
            else:
                token = old_token + 1
            condition = "#t = :old_token AND #o = :old_owner"
            values = {":old_token": _n(old_token), ":old_owner": _s(held_by)}
        try:
            params: dict[str, Any] = {
                "TableName": self.table,
                "Item": {
                    **key,
                    "owner": _s(owner),
                    "expires": _n(expires.timestamp()),
                    "token": _n(token),
                },
                "ConditionExpression": condition,
            }
            if values:
                params["ExpressionAttributeValues"] = values
                params["ExpressionAttributeNames"] = {"#t": "token", "#o": "owner"}
            self._db.put_item(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                # Someone acquired it between our read and our write.
                raise LeaseHeld(name, "another worker", expires) from exc
            raise
        return Lease(name=name, owner=owner, expires_at=expires, token=token)

    def _lease_condition(self, lease: Lease) -> dict[str, Any]:
        return {
            "ConditionExpression": "#o = :owner AND #t = :token",
            "ExpressionAttributeNames": {"#o": "owner", "#t": "token"},
            "ExpressionAttributeValues": {":owner": _s(lease.owner), ":token": _n(lease.token)},
        }

    def renew_lease(self, org_id: str, lease: Lease, ttl: timedelta, now: datetime) -> Lease:
        expires = now + ttl
        condition = self._lease_condition(lease)
        condition["ExpressionAttributeValues"][":expires"] = _n(expires.timestamp())
        try:
            self._db.update_item(
                TableName=self.table,
                Key={"PK": _s(self.lease_pk(org_id, lease.name)), "SK": _s(LEASE_SK)},
                UpdateExpression="SET expires = :expires",
                **condition,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLost(lease.name) from exc
            raise
        return lease.model_copy(update={"expires_at": expires})

    def release_lease(self, org_id: str, lease: Lease) -> None:
        condition = self._lease_condition(lease)
        condition["ExpressionAttributeValues"][":empty"] = _s("")
        condition["ExpressionAttributeValues"][":zero"] = _n(0)
        try:
            # Keep the item and its token, so the next holder's token is larger.
            self._db.update_item(
                TableName=self.table,
                Key={"PK": _s(self.lease_pk(org_id, lease.name)), "SK": _s(LEASE_SK)},
                UpdateExpression="SET #o = :empty, expires = :zero",
                **condition,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def save_cursor(self, cursor: Cursor, lease: Lease) -> Cursor:
        if lease.name != cursor.id:
            raise LeaseLost(lease.name)
        stored = cursor.model_copy(update={"version": cursor.version + 1})
        check = {
            "TableName": self.table,
            "Key": {"PK": _s(self.lease_pk(cursor.org_id, lease.name)), "SK": _s(LEASE_SK)},
            **self._lease_condition(lease),
        }
        # A cursor has no index entries: its generation guards nothing.
        put = {"TableName": self.table, "Item": self._entity_item(stored, _generation())}
        try:
            self._db.transact_write_items(
                TransactItems=[{"ConditionCheck": check}, {"Put": put}]  # type: ignore[typeddict-item]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise LeaseLost(lease.name) from exc
            raise
        self.stats.count("writes", Cursor.kind)
        return stored
