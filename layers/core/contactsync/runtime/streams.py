"""Reading the table's stream: which entity an item is, and the entity in its old and new
images. The key layout is the store's (store/dynamodb.py): an entity item is
``PK = {org}#{kind}#{id}``, ``SK = "E"``, its body as JSON in ``body`` and its version in ``v``;
index and lease items have other sort keys and are not entities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from contactsync.domain.base import Entity
from contactsync.store.dynamodb import ENTITY_SK

E = TypeVar("E", bound=Entity)
EventName = Literal["INSERT", "MODIFY", "REMOVE"]


@dataclass(frozen=True)
class EntityChange:
    event: EventName
    org_id: str
    kind: str
    entity_id: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    def entity(self, cls: type[E], *, image: Literal["old", "new"] = "new") -> E | None:
        """The entity as the image holds it (None when the image is absent)."""
        if cls.kind != self.kind:
            raise ValueError(f"a {self.kind} item is not a {cls.kind}")
        item = self.new if image == "new" else self.old
        if item is None:
            return None
        entity = cls.model_validate_json(str(item["body"]))
        entity.__dict__["version"] = int(item["v"])
        return entity


def entity_change(
    event: str,
    keys: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
) -> EntityChange | None:
    """The change of one stream record with deserialised keys and images (Powertools'
    ``DynamoDBRecord``); None for items that are not entities."""
    if keys.get("SK") != ENTITY_SK or event not in ("INSERT", "MODIFY", "REMOVE"):
        return None
    parts = str(keys.get("PK", "")).split("#", 2)
    if len(parts) != 3 or not all(parts):
        return None
    org_id, kind, entity_id = parts
    # An image the record does not carry may come as an empty mapping.
    return EntityChange(cast(EventName, event), org_id, kind, entity_id, old or None, new or None)


def change_of(record: DynamoDBRecord) -> EntityChange | None:
    """The change a stream record (as Powertools parses it for a handler) carries."""
    stream = record.dynamodb
    if stream is None or record.event_name is None:
        return None
    return entity_change(
        record.event_name.name, stream.keys or {}, stream.old_image, stream.new_image
    )
