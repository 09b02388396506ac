"""DynamoDB-specific behaviour: key spreading, UnprocessedItems retries, the table definition."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest

from contactsync.domain import HubContact
from contactsync.domain.contact import EmailAddress
from contactsync.domain.errors import VersionConflict
from contactsync.store.base import Write, bucket_of
from contactsync.store.dynamodb import LEFTOVER_AGE, DynamoStore
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


class Interleaved:
    """Forwards to the real (moto) client; runs ``before`` once, just before the first write
    that removes index items: another writer acting between a write's steps."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.before: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _removing(self) -> None:
        if self.before is not None:
            run, self.before = self.before, None
            run()

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        ((_, requests),) = RequestItems.items()
        if any("DeleteRequest" in r for r in requests):
            self._removing()
        return self._client.batch_write_item(RequestItems=RequestItems)  # type: ignore[no-any-return]

    def delete_item(self, **params: Any) -> dict[str, Any]:
        if "#ix#" in params["Key"]["PK"]["S"]:
            self._removing()
        return self._client.delete_item(**params)  # type: ignore[no-any-return]


def _email_store(aws: None) -> tuple[DynamoStore, Interleaved]:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    create_table_from_template(client, "t")
    interleaved = Interleaved(client)
    return DynamoStore(interleaved, "t", sleep=lambda _: None), interleaved  # type: ignore[arg-type]


def test_an_entry_another_writer_adds_back_meanwhile_is_not_removed(aws: None) -> None:
    # Given a contact found by x@example.com
    store, client = _email_store(aws)
    v1 = store.create(f.contact(contact_id="c-1", emails=["x@example.com"]))
    # When writer A replaces x by y, and writer B, reading A's version before A has removed
    # x's index item, adds x back
    v2 = v1.model_copy(update={"emails": [EmailAddress(address="y@example.com")]})

    def writer_b() -> None:
        seen = store.get(HubContact, "org-a", "c-1")
        both = [EmailAddress(address="x@example.com"), EmailAddress(address="y@example.com")]
        store.update(seen.model_copy(update={"emails": both}))

    client.before = writer_b
    store.update(v2)
    # Then the contact holds both, and is found by both
    assert [e.address for e in store.get(HubContact, "org-a", "c-1").emails] == [
        "x@example.com",
        "y@example.com",
    ]
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "x@example.com")] == ["c-1"]
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "y@example.com")] == ["c-1"]


def test_a_re_created_entity_keeps_its_entries_when_the_delete_finishes_late(aws: None) -> None:
    # Given a contact found by x@example.com
    store, client = _email_store(aws)
    store.create(f.contact(contact_id="c-1", emails=["x@example.com"]))

    # When it is deleted, and created again before the delete has removed its index items
    def writer_b() -> None:
        store.create(f.contact(contact_id="c-1", emails=["x@example.com"]))

    client.before = writer_b
    store.delete(HubContact, "org-a", "c-1")
    # Then the new contact is found by its email
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "x@example.com")] == ["c-1"]


def _with_leftover(now: list[float]) -> tuple[DynamoStore, HubContact]:
    """A store on the clock ``now[0]`` holding c-1 (a@example.com), and the index item for
    z@example.com that a write put before it lost a version conflict; with that write's contact."""
    client = boto3.client("dynamodb", region_name="eu-west-1")
    create_table_from_template(client, "t")
    store = DynamoStore(client, "t", sleep=lambda _: None, clock=lambda: now[0])
    v1 = store.create(f.contact(contact_id="c-1", emails=["a@example.com"]))
    late = v1.model_copy(update={"emails": [EmailAddress(address="z@example.com")]})
    with pytest.raises(VersionConflict):
        store.transact([Write(late, expected_version=7)])
    return store, late


def test_lookups_drop_leftover_index_items_once_no_write_can_be_in_flight(aws: None) -> None:
    # Given a write that lost a version conflict after putting its new entry's index item
    now = [1_800_000_000.0]
    store, _ = _with_leftover(now)
    assert store.lookup_ids(HubContact, "org-a", "email", "z@example.com") == ["c-1"]
    # When a lookup meets it soon after: it finds nothing, and keeps the item (a write in flight
    # looks the same)
    assert store.lookup(HubContact, "org-a", "email", "z@example.com") == []
    assert store.lookup_ids(HubContact, "org-a", "email", "z@example.com") == ["c-1"]
    # Then, once older than any write can take, the next lookup drops it
    now[0] += LEFTOVER_AGE.total_seconds() + 1
    assert store.lookup(HubContact, "org-a", "email", "z@example.com") == []
    assert store.lookup_ids(HubContact, "org-a", "email", "z@example.com") == []
    # And what the contact does name is untouched
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "a@example.com")] == ["c-1"]


def test_an_entry_put_again_since_is_not_dropped_as_a_leftover(aws: None) -> None:
    # Given an old leftover item for z@example.com
    now = [1_800_000_000.0]
    store, late = _with_leftover(now)
    now[0] += LEFTOVER_AGE.total_seconds() + 1
    # When a write gives the contact z@example.com (putting the item again) after a lookup read
    # the contact without it, and before that lookup drops the item
    cutoff = int(now[0] - LEFTOVER_AGE.total_seconds())
    store.update(late.model_copy(update={"version": 1}))
    store._drop_leftover(HubContact, "org-a", "email", "z@example.com", "c-1", cutoff)
    # Then the item stays: the contact is found by it
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "z@example.com")] == ["c-1"]
