"""Who is calling. In the cloud, API Gateway's JWT authorizer has verified the token and hands
us its claims; locally, `contactsync token` mints HMAC-signed bearer tokens with the home's
``token_key``. Either way the caller is a stored, active user of one organisation, and every
request is scoped to that organisation. The effective role is the lower of the token's and the
stored user's (a demoted admin's old token is a user token)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactsync.api.problems import Forbidden, Unauthorized
from contactsync.api.settings import ApiSettings, Mode
from contactsync.app.gallery import Actor
from contactsync.domain.org import Role, User
from contactsync.store.base import Store

TOKEN_PREFIX = "cs1"
_MAX_TOKEN = 4096


@dataclass(frozen=True)
class Caller:
    org_id: str
    user: User
    role: Role

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(self.org_id, self.user.id, self.role)

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This needs the admin role.", code="admin_only")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, message: str) -> str:
    return _b64(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest())


def issue_local_token(
    key: str, org_id: str, user_id: str, role: Role, now: datetime, ttl_seconds: int
) -> str:
    """``cs1.<claims>.<HMAC-SHA256>``: org, user, role, issued and expiry (UNIX seconds)."""
    issued = int(now.timestamp())
    claims = {
        "org": org_id,
        "sub": user_id,
        "role": role.value,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    message = f"{TOKEN_PREFIX}.{body}"
    return f"{message}.{_sign(key, message)}"


def verify_local_token(key: str, token: str, now: datetime) -> dict[str, Any]:
    """The token's claims, or Unauthorized (forged, malformed, expired)."""
    if len(token) > _MAX_TOKEN or token.count(".") != 2:
        raise Unauthorized("The bearer token is malformed.", code="malformed_token")
    prefix, body, signature = token.split(".")
    if prefix != TOKEN_PREFIX:
        raise Unauthorized("The bearer token is malformed.", code="malformed_token")
    expected = _sign(key, f"{prefix}.{body}")
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("The bearer token's signature does not verify.", code="bad_signature")
    try:
        claims = json.loads(_unb64(body))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized("The bearer token is malformed.", code="malformed_token") from exc
    if not isinstance(claims, dict) or not all(
        isinstance(claims.get(k), str) for k in ("org", "sub", "role")
    ):
        raise Unauthorized("The bearer token is malformed.", code="malformed_token")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        raise Unauthorized("The bearer token has expired.", code="expired_token")
    return claims


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send a bearer token in the Authorization header.", code="no_token")
    return token.strip()


def _role(value: object) -> Role:
    return Role.ADMIN if value == Role.ADMIN.value else Role.USER


def _jwt_claims(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not isinstance(claims, dict):
        raise Unauthorized("No verified token reached the API.", code="no_token")
    return claims


def _cloud_identity(settings: ApiSettings, store: Store, event: dict[str, Any]) -> Caller:
    claims = _jwt_claims(event)
    names = settings.claims
    org_id = claims.get(names.org)
    if not isinstance(org_id, str) or not org_id:
        raise Forbidden("The token names no organisation.", code="no_organisation")
    user: User | None = None
    user_id = claims.get(names.user)
    if isinstance(user_id, str) and user_id:
        user = store.find(User, org_id, user_id)
    else:
        email = claims.get(names.email)
        if isinstance(email, str) and email:
            found = store.lookup(User, org_id, "email", email.lower(), limit=1)
            user = found[0] if found else None
    groups = claims.get(names.groups)
    admin_group = "admin" in (groups if isinstance(groups, list) else str(groups or "").split())
    token_role = Role.ADMIN if claims.get(names.role) == "admin" or admin_group else Role.USER
    return _caller(org_id, user, token_role)


def _caller(org_id: str, user: User | None, token_role: Role) -> Caller:
    if user is None or not user.active:
        raise Forbidden("This user has no access to the organisation.", code="unknown_user")
    role = Role.ADMIN if token_role is Role.ADMIN and user.role is Role.ADMIN else Role.USER
    return Caller(org_id, user, role)


def authenticate(
    settings: ApiSettings,
    store: Store,
    event: dict[str, Any],
    headers: dict[str, str],
    now: datetime,
) -> Caller:
    """The caller of one request (headers lower-cased)."""
    if settings.mode is Mode.CLOUD:
        return _cloud_identity(settings, store, event)
    if settings.token_key is None:
        raise Unauthorized("Local tokens are not configured.", code="no_token_key")
    claims = verify_local_token(settings.token_key, _bearer(headers), now)
    return _caller(
        claims["org"], store.find(User, claims["org"], claims["sub"]), _role(claims["role"])
    )
