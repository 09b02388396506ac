"""The Microsoft identity platform (v2.0 endpoints) and Graph's token validation.

Access tokens are JWTs as Entra issues them (``aud``, ``iss``, ``tid``, ``appid``, ``roles`` for
app-only tokens, ``scp`` for delegated ones, ``exp``), HMAC-signed with a key derived from the
seed: Graph validates them statelessly, so they survive a sandbox restart like real tokens.
Refresh tokens rotate on every use; the old one stays valid until it expires or is revoked, as
Entra does. Authorization codes are single use, expire after 10 minutes and honour PKCE.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.models import Directory, User, derive, derive_uuid
from contactsync_sandbox.microsoft.settings import Limits

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Mail.Read and Calendars.Read serve activity capture (mail.py).
APP_ROLES = (
    "Contacts.ReadWrite",
    "MailboxSettings.ReadWrite",
    "User.Read.All",
    "Mail.Read",
    "Calendars.Read",
)
DELEGATED_SCOPES = (
    "Contacts.ReadWrite",
    "MailboxSettings.ReadWrite",
    "User.Read",
    "Mail.Read",
    "Calendars.Read",
)
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
CLOCK_SKEW_SECONDS = 300  # what Microsoft.IdentityModel allows past ``exp``


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))


@dataclass(frozen=True)
class Principal:
    """Who a validated access token speaks for."""

    kind: Literal["app", "user"]
    app_id: str
    user_id: str | None


@dataclass
class RefreshGrant:
    user_id: str
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False


@dataclass
class AuthorizationCode:
    user_id: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    challenge: str | None
    challenge_method: str | None
    expires_at: float
    used: bool = False


class Identity:
    def __init__(self, directory: Directory, clock: VirtualClock, limits: Limits) -> None:
        self.directory = directory
        self.clock = clock
        self.limits = limits
        self._key = derive(directory.seed, "token-signing-key", size=32)
        # Tokens whose signature checked out, with their claims: a $batch of 20 carries one
        # token 21 times. Lifetime and audience are still checked on every use.
        self._signed: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.service_principal_id = derive_uuid(directory.seed, "service-principal")
        self.reset()

    def reset(self) -> None:
        self.refresh_tokens.clear()
        self.codes.clear()
        for user in self.directory.users:
            self.refresh_tokens[self.seeded_refresh_token(user)] = RefreshGrant(
                user.id, self.directory.client_id, " ".join(DELEGATED_SCOPES), float("inf")
            )

    def seeded_refresh_token(self, user: User) -> str:
        """A delegated refresh token for ``user`` that sandbox.json can carry (stable per seed)."""
        return "0.A" + _b64(derive(self.directory.seed, "seeded-refresh-token", user.id, size=96))

    def _opaque(self, kind: str, size: int) -> str:
        self.counter += 1
        return _b64(derive(self.directory.seed, kind, self.counter, size=size))

    # ---- discovery ---------------------------------------------------------------------------

    def check_tenant(self, tenant: str, error: str = "invalid_request") -> None:
        if not (self.directory.is_tenant(tenant) or tenant.lower() in ("common", "organizations")):
            raise err.tenant_not_found(tenant, error)

    def openid_configuration(self, base_url: str, tenant: str) -> dict[str, Any]:
        self.check_tenant(tenant, "invalid_tenant")
        tid = self.directory.tenant_id
        return {
            "token_endpoint": f"{base_url}{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base_url}{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base_url}{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base_url}{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base_url}{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base_url}{tid}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email",
            ],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }  # fmt: skip

    # ---- the authorize endpoint (auto-consent: the sandbox has no sign-in page) --------------

    def authorize(self, tenant: str, query: Mapping[str, str]) -> str:
        """The URL the browser is redirected to: ``redirect_uri`` with a code, or an error."""
        self.check_tenant(tenant)
        client_id = query.get("client_id", "")
        if client_id != self.directory.client_id:
            raise err.unknown_client(client_id, tenant)
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            raise err.missing_parameter("redirect_uri")
        state = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            return _with_query(redirect_uri, {"error": "unsupported_response_type", **state})
        hint = query.get("login_hint")
        user = self.directory.find_user(hint) if hint else self.directory.users[0]
        if user is None:
            description = (
                f"AADSTS50034: The user account {hint} does not exist in the tenant directory."
            )
            return _with_query(
                redirect_uri, {"error": "access_denied", "error_description": description, **state}
            )
        code = "1.A" + self._opaque("authorization-code", 90)
        self.codes[code] = AuthorizationCode(
            user.id,
            client_id,
            redirect_uri,
            query.get("scope", ""),
            query.get("nonce"),
            query.get("code_challenge"),
            query.get("code_challenge_method", "plain") if "code_challenge" in query else None,
            self.clock.timestamp() + self.limits.authorization_code_ttl_seconds,
        )
        return _with_query(
            redirect_uri, {"code": code, **state, "session_state": derive_uuid(0, code)}
        )

    # ---- the token endpoint ------------------------------------------------------------------

    def token(
        self, tenant: str, form: Mapping[str, str], basic: tuple[str, str] | None, base_url: str
    ) -> dict[str, Any]:
        self.check_tenant(tenant)
        client_id = form.get("client_id") or (basic[0] if basic else "")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise err.missing_parameter("grant_type")
        if not client_id:
            raise err.missing_parameter("client_id")
        if client_id != self.directory.client_id:
            raise err.unknown_client(client_id, tenant)
        if grant_type not in ("client_credentials", "authorization_code", "refresh_token"):
            raise err.unsupported_grant(grant_type)
        secret = form.get("client_secret") or (basic[1] if basic else None)
        if secret is None:
            raise err.missing_client_secret()
        if not hmac.compare_digest(secret.encode(), self.directory.client_secret.encode()):
            raise err.invalid_client_secret(client_id)
        if grant_type == "client_credentials":
            return self._client_credentials(form)
        if grant_type == "authorization_code":
            return self._authorization_code(form, base_url)
        return self._refresh(form, base_url)

    def _client_credentials(self, form: Mapping[str, str]) -> dict[str, Any]:
        scope = form.get("scope")
        if not scope:
            raise err.missing_parameter("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise err.client_credentials_scope(scope)
        resource = scopes[0].removesuffix("/.default")
        if resource not in (GRAPH_AUDIENCE, GRAPH_AUDIENCE + "/", GRAPH_APP_ID):
            raise err.AADError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.directory.tenant_id}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
            )
        ttl = self.limits.access_token_ttl_seconds
        return {
            "token_type": "Bearer",
            "expires_in": ttl,
            "ext_expires_in": ttl,
            "access_token": self.issue_access_token(None),
        }

    def _authorization_code(self, form: Mapping[str, str], base_url: str) -> dict[str, Any]:
        code = form.get("code")
        if not code:
            raise err.missing_parameter("code")
        grant = self.codes.get(code)
        now = self.clock.timestamp()
        if grant is None or grant.client_id != form.get("client_id", grant.client_id):
            raise err.invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        if grant.used:
            raise err.invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if now > grant.expires_at:
            raise err.invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if form.get("redirect_uri") != grant.redirect_uri:
            raise err.reply_address_mismatch()
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            expected = (
                _b64(hashlib.sha256(verifier.encode()).digest())
                if grant.challenge_method == "S256"
                else verifier
            )
            if not hmac.compare_digest(expected.encode(), grant.challenge.encode()):
                raise err.pkce_mismatch()
        grant.used = True
        return self._user_tokens(
            grant.user_id, grant.scope or form.get("scope", ""), grant.nonce, form, base_url
        )

    def _refresh(self, form: Mapping[str, str], base_url: str) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise err.missing_parameter("refresh_token")
        grant = self.refresh_tokens.get(token)
        if grant is None or grant.client_id != self.directory.client_id:
            raise err.invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        if grant.revoked:
            raise err.invalid_grant(
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        if self.clock.timestamp() > grant.expires_at:
            raise err.invalid_grant(
                700082,
                "The refresh token has expired due to inactivity. The token was issued on a "
                "date older than the allowed inactivity period.",
            )
        scope = form.get("scope") or grant.scope
        return self._user_tokens(grant.user_id, scope, None, form, base_url, offline=True)

    def _user_tokens(
        self,
        user_id: str,
        scope: str,
        nonce: str | None,
        form: Mapping[str, str],
        base_url: str,
        *,
        offline: bool = False,
    ) -> dict[str, Any]:
        requested = set(scope.split())
        ttl = self.limits.access_token_ttl_seconds
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in (*DELEGATED_SCOPES, *sorted(requested & OIDC_SCOPES))),
            "expires_in": ttl,
            "ext_expires_in": ttl,
            "access_token": self.issue_access_token(user_id),
        }
        if offline or "offline_access" in requested:
            refresh = "0.A" + self._opaque("refresh-token", 96)
            self.refresh_tokens[refresh] = RefreshGrant(
                user_id,
                self.directory.client_id,
                scope,
                self.clock.timestamp() + self.limits.refresh_token_ttl_seconds,
            )
            body["refresh_token"] = refresh
        if "openid" in requested:
            body["id_token"] = self._id_token(user_id, nonce, base_url)
        if form.get("client_info") == "1":
            info = {"uid": user_id, "utid": self.directory.tenant_id}
            body["client_info"] = _b64(json.dumps(info).encode())
        return body

    def revoke(self, user_id: str) -> int:
        """What an admin's "revoke sessions" does: every refresh token of the user stops working."""
        revoked = 0
        for grant in self.refresh_tokens.values():
            if grant.user_id == user_id and not grant.revoked:
                grant.revoked = True
                revoked += 1
        return revoked

    # ---- JWTs --------------------------------------------------------------------------------

    def _sign(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        head = _b64(json.dumps(header, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def issue_access_token(self, user_id: str | None) -> str:
        now = int(self.clock.timestamp())
        tid = self.directory.tenant_id
        payload: dict[str, Any] = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.limits.access_token_ttl_seconds,
            "app_displayname": self.directory.app_name,
            "appid": self.directory.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tid}/",
            "tid": tid,
            "uti": self._opaque("uti", 16),
            "ver": "1.0",
        }
        if user_id is None:
            payload.update(
                idtyp="app",
                oid=self.service_principal_id,
                sub=self.service_principal_id,
                roles=list(APP_ROLES),
            )
        else:
            user = next(u for u in self.directory.users if u.id == user_id)
            payload.update(
                idtyp="user",
                oid=user.id,
                sub=user.id,
                scp=" ".join(DELEGATED_SCOPES),
                upn=user.user_principal_name,
                unique_name=user.user_principal_name,
                name=user.display_name,
            )
        return self._sign({"typ": "JWT", "alg": "HS256", "kid": "sandbox"}, payload)

    def _id_token(self, user_id: str, nonce: str | None, base_url: str) -> str:
        user = next(u for u in self.directory.users if u.id == user_id)
        now = int(self.clock.timestamp())
        payload: dict[str, Any] = {
            "aud": self.directory.client_id,
            "iss": f"{base_url}{self.directory.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": user.id,
            "tid": self.directory.tenant_id,
            "ver": "2.0",
        }
        if nonce is not None:
            payload["nonce"] = nonce
        return self._sign({"typ": "JWT", "alg": "HS256", "kid": "sandbox"}, payload)

    @staticmethod
    def claims(token: str) -> dict[str, Any] | None:
        """The payload of a JWT without checking it (for routing and throttling keys)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            return None
        return claims if isinstance(claims, dict) else None

    def verify(self, authorization: str | None) -> Principal:
        """Graph's check of the ``Authorization`` header (401 InvalidAuthenticationToken)."""
        if not authorization or not authorization.strip():
            raise err.invalid_token("Access token is empty.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise err.invalid_token("Access token is empty.")
        claims = self._signed.get(token) or self._check_signature(token)
        if claims.get("aud") not in (GRAPH_AUDIENCE, GRAPH_APP_ID):
            raise err.invalid_token("Access token validation failure. Invalid audience.")
        if self.clock.timestamp() > float(claims["exp"]) + CLOCK_SKEW_SECONDS:
            raise err.invalid_token("Lifetime validation failed, the token is expired.")
        if claims.get("idtyp") == "app":
            return Principal("app", str(claims["appid"]), None)
        return Principal("user", str(claims["appid"]), str(claims["oid"]))

    def _check_signature(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise err.invalid_token("CompactToken parsing failed with error code: 80049217")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
        except (binascii.Error, ValueError) as exc:
            raise err.invalid_token("IDX10511: Signature validation failed.") from exc
        claims = self.claims(token)
        if claims is None or not hmac.compare_digest(signature, expected):
            raise err.invalid_token("IDX10511: Signature validation failed.")
        if len(self._signed) >= 256:
            self._signed.clear()
        self._signed[token] = claims
        return claims

    # ---- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "counter": self.counter,
            "refresh_tokens": {
                t: {
                    **asdict(g),
                    "expires_at": None if g.expires_at == float("inf") else g.expires_at,
                }
                for t, g in self.refresh_tokens.items()
            },
            "codes": {c: asdict(g) for c, g in self.codes.items()},
        }

    def load_json(self, raw: Mapping[str, Any]) -> None:
        self.counter = int(raw["counter"])
        self.refresh_tokens = {
            t: RefreshGrant(
                **{**g, "expires_at": float("inf") if g["expires_at"] is None else g["expires_at"]}
            )
            for t, g in raw["refresh_tokens"].items()
        }
        self.codes = {c: AuthorizationCode(**g) for c, g in raw["codes"].items()}


def _with_query(url: str, params: Mapping[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(params)}"
