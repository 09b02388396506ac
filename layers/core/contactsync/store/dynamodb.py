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

Conditional writes give optimistic concurrency (``v = :expected`` / ``attribute_not_exists``) and
fencing for cursors (a ConditionCheck on the lease item in the same transaction).
"""

from __future__ import annotations

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


class StoreUnavailable(ContactsyncError):
    """DynamoDB kept refusing a batch (UnprocessedItems) beyond the retry budget."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


class DynamoStore(Store):
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_batch_attempts: int = 12,
    ) -> None:
        # The client is injected (built at the edge, typed with mypy-boto3 stubs).
        self._db = client
        self.table = table_name
        self._sleep = sleep
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

    def _entity_item(self, entity: Entity) -> dict[str, Any]:
        kind = type(entity)
        item: dict[str, Any] = {
            "PK": _s(self.entity_pk(entity.org_id, kind.kind, entity.id)),
            "SK": _s(ENTITY_SK),
            "GSI1PK": _s(self.list_pk(entity.org_id, kind.kind, bucket_of(kind, entity.id))),
            "GSI1SK": _s(entity.id),
            "body": _s(entity.model_dump_json(exclude={"version"}, warnings="error")),
            "v": _n(entity.version),
        }
        expires = entity.expires_at()
        if expires is not None:
            item["ttl"] = _n(int(expires.timestamp()))
        return item

    def _index_items(self, entity: Entity, entries: set[tuple[str, str]]) -> list[dict[str, Any]]:
        kind = type(entity).kind
        return [
            {"PK": _s(self.index_pk(entity.org_id, kind, name, value)), "SK": _s(entity.id)}
            for name, value in sorted(entries)
        ]

    @staticmethod
    def _load(kind: type[E], item: dict[str, Any]) -> E:
        entity = kind.model_validate_json(item["body"]["S"], context=STORED)
        entity.__dict__["version"] = int(item["v"]["N"])
        return entity

    # ---- reads ---------------------------------------------------------------------------------

    def find(self, kind: type[E], org_id: str, entity_id: str) -> E | None:
        self.stats.count("reads", kind.kind)
        response = self._db.get_item(
            TableName=self.table,
            Key={"PK": _s(self.entity_pk(org_id, kind.kind, entity_id)), "SK": _s(ENTITY_SK)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else self._load(kind, item)

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
        ids: list[str] = []
        start_key = None
        while True:
            params: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {
                    ":pk": _s(self.index_pk(org_id, kind.kind, index, value))
                },
                "ConsistentRead": True,
                "ProjectionExpression": "SK",
            }
            if start_key:
                params["ExclusiveStartKey"] = start_key
            self.stats.count("queries", kind.kind)
            response = self._db.query(**params)
            ids.extend(item["SK"]["S"] for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return ids

    # ---- writes --------------------------------------------------------------------------------

    def transact(self, writes: Sequence[Write]) -> list[Entity]:
        if not writes:
            return []
        if len(writes) > MAX_TRANSACT_ITEMS:
            raise ValueError(f"at most {MAX_TRANSACT_ITEMS} writes in one transaction")
        olds: list[Entity | None] = self._current(writes)
        stored = [w.stored() for w in writes]
        # 1. New index items first: an entity is never visible without its index entries.
        additions = [
            item
            for new, old in zip(stored, olds, strict=True)
            for item in self._index_items(new, index_set(new) - index_set(old))
        ]
        self._batch_write([{"PutRequest": {"Item": i}} for i in additions])
        # 2. The entities, conditionally, all or nothing.
        items = [self._conditional_put(w, new) for w, new in zip(writes, stored, strict=True)]
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
        # 3. Stale index items last.
        removals = [
            {"DeleteRequest": {"Key": item}}
            for new, old in zip(stored, olds, strict=True)
            for item in self._index_items(new, index_set(old) - index_set(new))
        ]
        self._batch_write(removals)
        return stored

    def _current(self, writes: Sequence[Write]) -> list[Entity | None]:
        olds: list[Entity | None] = []
        for write in writes:
            if write.expected_version == 0:
                olds.append(None)  # must not exist: nothing to diff against
            else:
                entity = write.entity
                olds.append(self.find(type(entity), entity.org_id, entity.id))
        return olds

    def _conditional_put(self, write: Write, new: Entity) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": self._entity_item(new)}
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
        stored = [e.model_copy(update={"version": e.version + 1}) for e in entities]
        index_items = [item for e in stored for item in self._index_items(e, index_set(e))]
        self._batch_write([{"PutRequest": {"Item": i}} for i in index_items])
        self._batch_write([{"PutRequest": {"Item": self._entity_item(e)}} for e in stored])
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
        current = self.find(kind, org_id, entity_id)
        if current is None:
            return
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
        self._batch_write(
            [
                {"DeleteRequest": {"Key": item}}
                for item in self._index_items(current, index_set(current))
            ]
        )

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
        put = {"TableName": self.table, "Item": self._entity_item(stored)}
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
