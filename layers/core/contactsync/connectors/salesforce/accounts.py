"""Account linking for contacts that arrive from mail systems and phones (seed 003).

A Contact written with a company is linked to an Account found by that name:

1. an Account whose name equals the company (SOQL compares text case-insensitively); of
   several, the one created first;
2. otherwise the only Account whose name contains the company;
3. otherwise no Account: the Contact is written without one.

Lookups are cached for ``ttl`` seconds of the connector's clock, so a batch of 200 contacts
of one company costs one query, and an Account created meanwhile is found on a later run.
Exact matches for a whole batch go in one ``IN`` query; substring matches one query each
(``LIMIT 2``: a second match already means "not unique").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from simple_salesforce.format import format_soql

from contactsync.connectors.http import Clock
from contactsync.connectors.salesforce.client import SalesforceApi
from contactsync.connectors.salesforce.paging import select, where

IN_CHUNK = 100


def company_key(company: str) -> str:
    return " ".join(company.split()).casefold()


@dataclass
class AccountLinker:
    api: SalesforceApi
    clock: Clock
    ttl: float
    # The org has Person Accounts: only business accounts are companies.
    business_only: bool = False
    _cache: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    def resolve(self, companies: Iterable[str]) -> dict[str, str | None]:
        """Account id (or None) per company key, for every non-empty company given."""
        now = self.clock.now().timestamp()
        wanted = {company_key(c): " ".join(c.split()) for c in companies if c.strip()}
        found: dict[str, str | None] = {}
        missing: dict[str, str] = {}
        for key, name in wanted.items():
            cached = self._cache.get(key)
            if cached is not None and now - cached[1] < self.ttl:
                found[key] = cached[0]
            else:
                missing[key] = name
        exact = self._exact(list(missing.values()))
        for key, name in missing.items():
            account = exact.get(key) or self._unique_substring(name)
            found[key] = account
            self._cache[key] = (account, now)
        return found

    def _business(self) -> str | None:
        return "IsPersonAccount = false" if self.business_only else None

    def _exact(self, names: list[str]) -> dict[str, str]:
        """The earliest-created Account per exact name (case-insensitive)."""
        out: dict[str, str] = {}
        for start in range(0, len(names), IN_CHUNK):
            chunk = names[start : start + IN_CHUNK]
            soql = select(
                "Id, Name, CreatedDate",
                "Account",
                where(format_soql("Name IN {}", chunk), self._business()),
                " ORDER BY CreatedDate ASC, Id ASC",
            )
            for row in self._rows(soql):
                key = company_key(str(row.get("Name") or ""))
                out.setdefault(key, str(row["Id"]))
        return out

    def _unique_substring(self, name: str) -> str | None:
        soql = select(
            "Id",
            "Account",
            where(format_soql("Name LIKE '%{:like}%'", name), self._business()),
            " LIMIT 2",
        )
        rows = list(self._rows(soql))
        return str(rows[0]["Id"]) if len(rows) == 1 else None

    def _rows(self, soql: str) -> Iterable[dict[str, object]]:
        page = self.api.query(soql)
        while True:
            yield from page.get("records", [])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.api.query_more(page["nextRecordsUrl"])
