"""Where connected accounts' credentials live: never in the table, never in logs.

The cloud keeps them in Secrets Manager (one secret per account, KMS-encrypted); the local
runtime in a file readable by its owner only. Both behind this protocol."""

from __future__ import annotations

from typing import Protocol


class SecretStore(Protocol):
    def get(self, ref: str) -> dict[str, str]:
        """The secret's values; KeyError if there is none."""
        ...

    def put(self, ref: str, values: dict[str, str]) -> None:
        """Creates or replaces the secret (rotated refresh tokens are written back this way)."""
        ...

    def delete(self, ref: str) -> None: ...


def secret_ref(org_id: str, account_id: str) -> str:
    return f"contactsync/{org_id}/{account_id}"
