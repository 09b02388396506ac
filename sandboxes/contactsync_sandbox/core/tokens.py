"""Access tokens with an expiry on the virtual clock, shared by the providers' OAuth endpoints."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from contactsync_sandbox.core.clock import VirtualClock

TokenCheck = Literal["valid", "expired", "unknown"]


@dataclass
class IssuedToken:
    token: str
    subject: str
    expires_at: datetime | None  # None: never expires (Aircall's OAuth tokens)
    scope: str = ""


class TokenStore:
    def __init__(
        self, clock: VirtualClock, ttl_seconds: int | None = 3600, prefix: str = ""
    ) -> None:
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, subject: str, scope: str = "", ttl_seconds: int | None = -1) -> IssuedToken:
        ttl = self.ttl_seconds if ttl_seconds == -1 else ttl_seconds
        expires = None if ttl is None else self.clock.now() + timedelta(seconds=ttl)
        token = IssuedToken(self.prefix + secrets.token_urlsafe(24), subject, expires, scope)
        self._tokens[token.token] = token
        return token

    def check(self, token: str) -> tuple[TokenCheck, IssuedToken | None]:
        issued = self._tokens.get(token)
        if issued is None:
            return "unknown", None
        if issued.expires_at is not None and issued.expires_at <= self.clock.now():
            return "expired", issued
        return "valid", issued

    def revoke_subject(self, subject: str) -> None:
        self._tokens = {k: v for k, v in self._tokens.items() if v.subject != subject}

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "subject": t.subject,
                "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                "scope": t.scope,
            }
            for t in self._tokens.values()
        ]

    def clear(self) -> None:
        self._tokens.clear()
