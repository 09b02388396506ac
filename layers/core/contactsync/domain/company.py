"""Accounts in seed 000's sense: the companies contacts work for."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated

from pydantic import Field, StringConstraints

from contactsync.domain.base import AwareDatetime, Entity, utcnow

_SUFFIXES = re.compile(
    r"\b(inc|incorporated|corp|corporation|co|company|ltd|limited|llc|gmbh|ag|kg|sa|sas|srl|bv|"
    r"nv|plc|ab|as|oy|kk|pty|ltda)\b\.?",
)


def company_key(name: str) -> str:
    """Normalised company name for lookups: case-, accent- and punctuation-insensitive."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    words = re.sub(r"[^a-z0-9]+", " ", folded)
    return " ".join(words.split())


def company_key_loose(name: str) -> str:
    """The key without legal-form suffixes ("Acme Corp" ~ "ACME Corporation")."""
    return " ".join(_SUFFIXES.sub(" ", company_key(name)).split())


class Account(Entity):
    kind = "company"

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    domain: Annotated[str, StringConstraints(max_length=255)] = ""
    archived: bool = False
    created_at: AwareDatetime = Field(default_factory=utcnow)

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "name", company_key(self.name)
        if self.domain:
            yield "domain", self.domain.lower()
