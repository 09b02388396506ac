"""Merge suggestions: fuzzy name + company matches are never merged automatically."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow


class SuggestionStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class MergeSuggestion(Entity):
    kind = "merge_suggestion"
    list_buckets = 4

    contact_ids: Annotated[list[Id], Field(min_length=2, max_length=2)]
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=10
    )
    status: SuggestionStatus = SuggestionStatus.OPEN
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if self.contact_ids[0] == self.contact_ids[1]:
            raise ValueError("a merge suggestion needs two different contacts")
        self.__dict__["contact_ids"] = sorted(self.contact_ids)
        return self

    @staticmethod
    def make_id(a: str, b: str) -> str:
        first, second = sorted((a, b))
        return "m-" + hashlib.sha256(f"{first}\x00{second}".encode()).hexdigest()[:40]

    def index_entries(self) -> Iterable[tuple[str, str]]:
        for contact_id in self.contact_ids:
            yield "contact", contact_id
        yield "status", self.status.value
