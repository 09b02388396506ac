"""Who may call the sandbox: the company's API keys (HTTP Basic ``api_id:api_token``) and the
OAuth access tokens of installed partner apps (Bearer).

Credentials derive from the sandbox seed, so a sandbox restarted with the same seed accepts the
same keys. OAuth follows Aircall's flow: an admin consents on the dashboard
(``/oauth/authorize`` here, answered at once as if the admin clicked "Install"), the app
exchanges the one-time ``code`` at ``POST /v1/oauth/token`` with its client id, secret and the
same ``redirect_uri``, and receives an access token that never expires (no refresh token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

from contactsync_sandbox.aircall.exceptions import OAuthError

CODE_TTL_SECONDS = 600  # authorization codes (unconfirmed for Aircall; the OAuth norm)


def _derive(seed: int, name: str, length: int = 32) -> str:
    return hashlib.sha256(f"aircall-sandbox:{seed}:{name}".encode()).hexdigest()[:length]


@dataclass(frozen=True)
class ApiKey:
    api_id: str
    api_token: str

    def to_json(self) -> dict[str, str]:
        return {"api_id": self.api_id, "api_token": self.api_token}


@dataclass(frozen=True)
class Principal:
    """Who sent a request. Webhooks are visible to their owner only: every API key of the
    company is one owner ("api_key"), each OAuth installation is its own."""

    kind: Literal["api_key", "oauth"]
    owner: str


@dataclass
class _Code:
    redirect_uri: str
    expires_at: float


@dataclass
class AuthState:
    seed: int
    api_keys: tuple[ApiKey, ...] = field(init=False)
    client_id: str = field(init=False)
    client_secret: str = field(init=False)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> integration id
    issued: int = 0  # secrets handed out so far: each one derives from the seed and this count

    def __post_init__(self) -> None:
        # Several keys per company: a company gives each integration its own key, and all of
        # them share the company's rate limit.
        self.api_keys = tuple(
            ApiKey(_derive(self.seed, f"api_id:{i}"), _derive(self.seed, f"api_token:{i}"))
            for i in range(2)
        )
        self.client_id = _derive(self.seed, "client_id")
        self.client_secret = _derive(self.seed, "client_secret", 48)

    def authenticate(self, authorization: str | None) -> Principal | Literal[False] | None:
        """The principal, ``None`` when no credentials were sent, ``False`` when they are not
        accepted."""
        if not authorization or not authorization.strip():
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            return self._basic(credentials.strip())
        if scheme.lower() == "bearer":
            integration = self.tokens.get(credentials.strip())
            return Principal("oauth", integration) if integration else False
        return False

    def _basic(self, credentials: str) -> Principal | Literal[False]:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        api_id, _, api_token = decoded.partition(":")
        for key in self.api_keys:
            if hmac.compare_digest(key.api_id, api_id) and hmac.compare_digest(
                key.api_token, api_token
            ):
                return Principal("api_key", "api_key")
        return False

    # ---- OAuth -----------------------------------------------------------------------------

    def _secret(self, length: int = 48) -> str:
        self.issued += 1
        return _derive(self.seed, f"secret:{self.issued}", length)

    def authorize(self, client_id: str, redirect_uri: str, now: float) -> str:
        """The admin's consent: a one-time code bound to ``redirect_uri``."""
        if not hmac.compare_digest(client_id, self.client_id):
            raise OAuthError("invalid_client", "Unknown client_id.", 401)
        if not redirect_uri.startswith("https://"):
            raise OAuthError("invalid_request", "redirect_uri must be an https URL.")
        code = self._secret(32)
        self.codes[code] = _Code(redirect_uri, now + CODE_TTL_SECONDS)
        return code

    def exchange(self, params: dict[str, str], now: float) -> dict[str, Any]:
        """``grant_type=authorization_code``: a non-expiring access token, no refresh token."""
        if params.get("grant_type") != "authorization_code":
            raise OAuthError(
                "unsupported_grant_type", "Only grant_type=authorization_code is supported."
            )
        client_ok = hmac.compare_digest(params.get("client_id", ""), self.client_id)
        secret_ok = hmac.compare_digest(params.get("client_secret", ""), self.client_secret)
        if not (client_ok and secret_ok):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        code = self.codes.pop(params.get("code", ""), None)  # one use, even when it fails
        if code is None or code.expires_at <= now:
            raise OAuthError("invalid_grant", "The authorization code is invalid or expired.")
        if params.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization.")
        token = self._secret()
        self.tokens[token] = f"integration-{len(self.tokens) + 1}"
        return {
            "access_token": token,
            "token_type": "Bearer",
            "scope": "public_api",
            "created_at": int(now),
        }

    def state(self) -> dict[str, Any]:
        return {
            "codes": {c: [v.redirect_uri, v.expires_at] for c, v in self.codes.items()},
            "tokens": dict(self.tokens),
            "issued": self.issued,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.codes = {c: _Code(uri, exp) for c, (uri, exp) in state["codes"].items()}
        self.tokens = dict(state["tokens"])
        self.issued = state["issued"]

    def clear(self) -> None:
        self.codes.clear()
        self.tokens.clear()  # ``issued`` goes on: a forgotten token is never handed out again
