"""DynamoDB-specific behaviour: key spreading, UnprocessedItems retries, the table definition."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3

from contactsync.domain import HubContact
from contactsync.store.base import bucket_of
from contactsync.store.dynamodb import DynamoStore
from tests import factories as f
from tests.support.aws import create_table_from_template, resource


class FlakyBatches:
    """Forwards to the real (moto) client, but like DynamoDB under load, accepts only part of
    each BatchWriteItem / BatchGetItem and hands the rest back as unprocessed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batch_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.batch_calls += 1
        ((table, requests),) = RequestItems.items()
        keep, rest = requests[: (len(requests) + 1) // 2], requests[(len(requests) + 1) // 2 :]
        self._client.batch_write_item(RequestItems={table: keep})
        return {"UnprocessedItems": {table: rest} if rest else {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        first, rest = keys[:1], keys[1:]
        response = self._client.batch_get_item(RequestItems={table: {**request, "Keys": first}})
        unprocessed = {table: {**request, "Keys": rest}} if rest else {}
        return {"Responses": response["Responses"], "UnprocessedKeys": unprocessed}


def test_unprocessed_items_are_retried_until_written(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    create_table_from_template(client, "t")
    flaky = FlakyBatches(client)
    store = DynamoStore(flaky, "t", sleep=lambda _: None)  # type: ignore[arg-type]
    contacts = [f.contact(contact_id=f"c-{i:03d}") for i in range(40)]
    store.bulk_put(contacts)
    assert flaky.batch_calls > 4  # the retries really happened
    found = store.get_many(HubContact, "org-a", [c.id for c in contacts])
    assert len(found) == 40


def test_100000_contacts_never_share_a_partition_key() -> None:
    ids = [f"c-{i:06d}" for i in range(100_000)]
    pks = {DynamoStore.entity_pk("org-a", "contact", i) for i in ids}
    assert len(pks) == 100_000
    buckets = Counter(bucket_of(HubContact, i) for i in ids)
    assert len(buckets) == HubContact.list_buckets
    assert max(buckets.values()) < 100_000 / HubContact.list_buckets * 1.2


def test_every_key_starts_with_the_organisation() -> None:
    for key in (
        DynamoStore.entity_pk("org-a", "contact", "c-1"),
        DynamoStore.index_pk("org-a", "contact", "email", "x@example.com"),
        DynamoStore.list_pk("org-a", "contact", 3),
        DynamoStore.lease_pk("org-a", "acc.Contact"),
    ):
        assert key.startswith("org-a#")


def test_table_definition_meets_the_requirements() -> None:
    props = resource("Table")["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    # Indexes only where a query needs one: the listing index.
    assert [g["IndexName"] for g in props["GlobalSecondaryIndexes"]] == ["GSI1"]


def test_ttl_attribute_is_written_for_expiring_entities(dynamo_store: DynamoStore) -> None:
    entry = dynamo_store.create(f.change(change_id="ch-ttl"))
    item = dynamo_store._db.get_item(
        TableName=dynamo_store.table,
        Key={"PK": {"S": DynamoStore.entity_pk("org-a", "change", "ch-ttl")}, "SK": {"S": "E"}},
    )["Item"]
    expires = entry.expires_at()
    assert expires is not None
    assert int(item["ttl"]["N"]) == int(expires.timestamp())
