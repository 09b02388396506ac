"""The base of every stored entity: organisation, id, version, and the index keys a store
maintains for it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from contactsync.domain.errors import InvalidInput

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            "must be 1-128 characters of letters, digits, '_', '-', '.', ':' "
            "starting with a letter or digit"
        )
    return value


# Validation context of an entity read back from a store: it was validated before it was
# written, so validators that cost more than they check (parsing every phone number again)
# may trust it. Nothing else passes this context.
STORED: dict[str, bool] = {"stored": True}


# Ids are part of storage keys: no '#', no '/', no whitespace, bounded.
Id = Annotated[str, AfterValidator(_check_id)]
Version = Annotated[int, Field(ge=0)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a timezone")
    return value.astimezone(UTC)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Model(BaseModel):
    """Strict edges: unknown fields are errors, strings are stripped, assignments revalidate."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        validate_assignment=True,
        frozen=False,
        use_enum_values=False,
    )

    @classmethod
    def parse(cls, data: Any, prefix: str = "") -> Self:
        """Validates untrusted input, turning pydantic's error into InvalidInput."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput.from_validation_error(exc, prefix) from exc


class Entity(Model):
    """A stored entity. ``kind`` names its table/key space; ``list_buckets`` spreads a kind that
    can grow to 100,000s per organisation over several DynamoDB partitions."""

    kind: ClassVar[str] = "entity"
    list_buckets: ClassVar[int] = 1

    org_id: Id
    id: Id
    version: Version = 0

    def index_entries(self) -> Iterable[tuple[str, str]]:
        """(index name, value) pairs the store keeps so the entity can be found by them."""
        return ()

    def expires_at(self) -> datetime | None:
        """When the store may drop this entity (DynamoDB TTL); None keeps it."""
        return None
