"""Connected accounts (seed 001): a user's mailbox, CRM or phone system linked to the hub."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from contactsync.domain.base import AwareDatetime, Entity, Id, utcnow


class Provider(StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    EXCHANGE = "exchange"
    SALESFORCE = "salesforce"
    AIRCALL = "aircall"


class AccountStatus(StrEnum):
    CONNECTED = "connected"
    DISABLED = "disabled"
    NEEDS_RECONNECT = "needs_reconnect"
    DELETED = "deleted"


# Seed 001: how far back email history is pulled when an account connects.
MAIL_HISTORY_DAYS = {
    Provider.GOOGLE: 182,  # Gmail: six months
    Provider.EXCHANGE: 365,  # Exchange: one year
    Provider.MICROSOFT: 730,  # Office 365: two years
    Provider.SALESFORCE: 0,
    Provider.AIRCALL: 182,  # Aircall keeps about six months of calls
}
# Providers whose contacts live in one person's address book (personal until shared).
ADDRESS_BOOKS = frozenset({Provider.GOOGLE, Provider.MICROSOFT, Provider.EXCHANGE})


class ConnectedAccount(Entity):
    kind = "connected_account"

    provider: Provider
    owner_user_id: Id
    # The mailbox address, CRM username or phone-system company this account is.
    address: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    status: AccountStatus = AccountStatus.CONNECTED
    status_reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    # Where the OAuth tokens or API key are kept (Secrets Manager ARN, or a local secret id):
    # never the secret itself.
    secret_ref: Annotated[str, StringConstraints(max_length=2048)] | None = None
    mail_history_days: int = Field(default=-1, ge=-1, le=3650)
    # Provider endpoints and identifiers that are not secret (instance URL, tenant, user id).
    config: dict[str, str] = Field(default_factory=dict, max_length=32)
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.mail_history_days == -1:
            self.__dict__["mail_history_days"] = MAIL_HISTORY_DAYS[self.provider]
        if self.status is AccountStatus.NEEDS_RECONNECT and not self.status_reason:
            raise ValueError("status needs_reconnect needs a status_reason saying why")
        for key, value in self.config.items():
            if len(key) > 64 or len(value) > 2048:
                raise ValueError("config keys have at most 64 characters and values 2048")
        return self

    @property
    def is_address_book(self) -> bool:
        return self.provider in ADDRESS_BOOKS

    @property
    def active(self) -> bool:
        return self.status is AccountStatus.CONNECTED

    def index_entries(self) -> Iterable[tuple[str, str]]:
        yield "owner", self.owner_user_id
        yield "address", f"{self.provider.value}:{self.address.lower()}"
