"""Organisations and their users."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

import phonenumbers
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from contactsync.domain.base import AwareDatetime, Entity, Model, utcnow
from contactsync.domain.contact import EmailAddress


def _region(value: str) -> str:
    value = value.upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("must be an ISO 3166-1 alpha-2 region code, e.g. US, GB, DE")
    return value


Region = Annotated[str, AfterValidator(_region)]


class Organisation(Entity):
    """A tenant. Its id is also its org_id: every key in the store starts with it."""

    kind = "org"

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # Phone numbers typed without a country code are read as numbers of this region.
    default_region: Region = "US"
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _self_scoped(self) -> Self:
        if self.id != self.org_id:
            raise ValueError("an organisation's id must equal its org_id")
        return self


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class SharingSettings(Model):
    """Seed 002: everything is off until the user turns it on."""

    # Share the contacts I add with the organisation (seed 000's Email Contact Sync).
    email_contact_sync: bool = False
    # Teammates see that an activity happened (not its content); off hides it entirely.
    share_activity: bool = False
    # Share content automatically for contacts I add.
    auto_share_content: bool = False


class User(Entity):
    kind = "user"

    email: EmailAddress
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    role: Role = Role.USER
    sharing: SharingSettings = Field(default_factory=SharingSettings)
    active: bool = True
    removed_at: AwareDatetime | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "email", self.email.key
