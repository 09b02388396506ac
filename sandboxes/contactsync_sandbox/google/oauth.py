"""Google's OAuth 2.0 for web server applications: the authorization endpoint
(``https://accounts.google.com/o/oauth2/v2/auth``, here ``/o/oauth2/v2/auth`` on the sandbox's
own base) and the ``authorization_code`` grant of the token endpoint, with the refresh tokens it
hands out.

The endpoint consents at once for the user ``login_hint`` names (email address or ``sub``; the
first user without a hint), as if they signed in and clicked "Allow". Before that it checks what
Google checks, and answers as Google does:

- a bad client or redirect URI, or a malformed request, never goes back to the client: the user
  sees Google's "Authorization Error" page (``Error 400: redirect_uri_mismatch``,
  ``Error 401: invalid_client``...), served here as HTML with that status;
- everything else goes back to ``redirect_uri`` with ``code`` (and ``state``, ``scope``,
  ``authuser``, ``prompt``), or with ``error`` (``access_denied`` for a hint naming no user of
  the sandbox, ``consent_required`` for ``prompt=none`` when consent is needed).

Refresh tokens follow Google's rule: one is issued only when the consent screen was shown with
``access_type=offline``, that is the first time the user grants these scopes to the client, or
again with ``prompt=consent``; the seeded refresh tokens of sandbox.json count as an earlier
grant of the contacts scopes. A user keeps at most 100 live refresh tokens per client (the
oldest stops working). Revoking any token of a user revokes the whole grant; a revoked refresh
token then answers ``invalid_grant`` "Token has been expired or revoked.".

Codes are single use, bound to the client and the redirect URI, and expire after 10 minutes of
the virtual clock; PKCE (S256 or plain) is checked at the exchange. A failed exchange does not
use the code up. ID tokens carry Google's claims but are signed HS256 with a sandbox key, not
with Google's RS256 keys: read them, do not verify them against Google's JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html import escape
from typing import Any

import jwt

from contactsync_sandbox.core.app import ProviderError, Response
from contactsync_sandbox.core.oauth import PKCE_VALUE, RedirectUris, pkce_matches, with_query
from contactsync_sandbox.google import exceptions as err
from contactsync_sandbox.google.models import GRANTED_SCOPES, GoogleBackend, UserAccount

AUTH_PATH = "/o/oauth2/v2/auth"
ISSUER = "https://accounts.google.com"
CODE_TTL_SECONDS = 600
ID_TOKEN_TTL_SECONDS = 3600
MAX_REFRESH_TOKENS = 100  # per account and client; the oldest stops working past it
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
# Google grants the short identity scopes under their full names (and says so in "scope").
SCOPE_ALIASES = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}
KNOWN_SCOPES = frozenset({*GRANTED_SCOPES, "openid", EMAIL_SCOPE, PROFILE_SCOPE})
PROMPTS = frozenset({"none", "consent", "select_account"})

# (verbatim) the "Authorization Error" page's texts.
POLICY = "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy."
REGISTER_REDIRECT = (
    "If you're the app developer, register the redirect URI in the Google Cloud Console."
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class AuthorizationCode:
    email: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    challenge: str | None
    challenge_method: str | None
    offline: bool  # the exchange hands out a refresh token
    expires_at: float
    used: bool = False


@dataclass
class RefreshGrant:
    email: str
    scopes: list[str]
    issued_at: float
    revoked: bool = False


def error_page(status: int, error: str, lines: list[str], details: Mapping[str, str]) -> Response:
    """Google's "Authorization Error" page: what the user sees instead of a redirect."""
    items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in details.items())
    text = "".join(f"<p>{escape(line)}</p>" for line in lines)
    body = (
        "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
        "<title>Sign in - Google Accounts</title>\n"
        f"<h1>Access blocked: Authorization Error</h1>\n{text}\n"
        f"<p>Error {status}: {escape(error)}</p>\n"
        f"<h2>Request details</h2>\n<ul>{items}</ul>\n"
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _page(status: int, error: str, *lines: str, **details: str) -> ProviderError:
    return ProviderError(error_page(status, error, list(lines), details))


def _redirect(location: str) -> Response:
    return Response(b"", status=302, headers={"Location": location})


class GoogleOAuth:
    """The authorization endpoint and the grants it leads to, for one sandbox's OAuth client."""

    def __init__(self, backend: GoogleBackend) -> None:
        self.backend = backend
        self.redirect_uris = RedirectUris()
        self.codes: dict[str, AuthorizationCode] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.consented: dict[str, set[str]] = {}  # scopes each user granted through this flow
        self._key = hashlib.sha256(b"id-token:" + backend.secret).digest()

    def reset(self) -> None:
        self.redirect_uris = RedirectUris()
        self.codes.clear()
        self.refresh_tokens.clear()
        self.consented.clear()

    # ---- the authorization endpoint -----------------------------------------------------------

    def authorize(self, query: Mapping[str, str]) -> Response:
        """A 302 to ``redirect_uri`` (a code, or an error), or Google's error page."""
        client_id = query.get("client_id", "")
        if not client_id:
            raise _page(400, "invalid_request", "Missing required parameter: client_id")
        if client_id != self.backend.client.client_id:
            raise _page(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            raise _page(400, "invalid_request", "Missing required parameter: redirect_uri")
        if not self.redirect_uris.allows(redirect_uri):
            raise _page(
                400, "redirect_uri_mismatch", POLICY, REGISTER_REDIRECT, redirect_uri=redirect_uri
            )
        scopes, access_type, prompt, challenge, method = self._check_request(query)
        state = {"state": query["state"]} if "state" in query else {}
        user = self._user(query.get("login_hint"))
        if user is None:
            return _redirect(with_query(redirect_uri, {"error": "access_denied", **state}))
        consent = "consent" in prompt or not set(scopes) <= self.granted(user)
        if consent and "none" in prompt:
            return _redirect(with_query(redirect_uri, {"error": "consent_required", **state}))
        if consent:
            self.consented.setdefault(user.email, set()).update(scopes)
        now = self.backend.clock.timestamp()
        self.codes = {c: g for c, g in self.codes.items() if g.expires_at > now}
        code = "4/0A" + _b64(secrets.token_bytes(54))
        self.codes[code] = AuthorizationCode(
            user.email,
            client_id,
            redirect_uri,
            scopes,
            query.get("nonce"),
            challenge,
            method,
            consent and access_type == "offline",
            now + CODE_TTL_SECONDS,
        )
        params = {
            "code": code,
            **state,
            "scope": " ".join(scopes),
            "authuser": str(user.index),
            "prompt": "consent" if consent else "none",
        }
        return _redirect(with_query(redirect_uri, params))

    def _check_request(
        self, query: Mapping[str, str]
    ) -> tuple[list[str], str, set[str], str | None, str | None]:
        """The parameters Google checks before the sign-in page (its error page otherwise)."""
        response_type = query.get("response_type", "")
        if not response_type:
            raise _page(400, "invalid_request", "Required parameter is missing: response_type")
        if response_type != "code":  # the sandbox serves the web server flow only
            raise _page(400, "unsupported_response_type", f"Invalid response_type: {response_type}")
        requested = [SCOPE_ALIASES.get(s, s) for s in query.get("scope", "").split()]
        if not requested:
            raise _page(400, "invalid_request", "Missing required parameter: scope")
        invalid = [s for s in requested if s not in KNOWN_SCOPES]
        if invalid:
            valid = [s for s in requested if s in KNOWN_SCOPES]
            raise _page(
                400,
                "invalid_scope",
                "Some requested scopes were invalid. "
                f"{{valid=[{', '.join(valid)}], invalid=[{', '.join(invalid)}]}}",
            )
        access_type = query.get("access_type", "online")
        if access_type not in ("online", "offline"):
            raise _page(400, "invalid_request", f"Invalid access_type: {access_type}")
        prompt = set(query.get("prompt", "").split())
        if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
            raise _page(400, "invalid_request", f"Invalid prompt: {query.get('prompt')}")
        challenge = query.get("code_challenge") or None
        method = query.get("code_challenge_method") or None
        if challenge is None and method is not None:
            raise _page(400, "invalid_request", "Missing required parameter: code_challenge")
        if challenge is not None:
            method = method or "plain"
            if method not in ("S256", "plain"):
                raise _page(400, "invalid_request", f"Invalid code_challenge_method: {method}")
            if not PKCE_VALUE.match(challenge):
                raise _page(400, "invalid_request", "Invalid code_challenge.")
        return list(dict.fromkeys(requested)), access_type, prompt, challenge, method

    def _user(self, hint: str | None) -> UserAccount | None:
        if not hint:
            return self.backend.default_user
        wanted = hint.strip().lower()
        return next(
            (u for u in self.backend.users if wanted in (u.email.lower(), u.profile_id)), None
        )

    def granted(self, user: UserAccount) -> set[str]:
        """The scopes ``user`` has granted this client so far (the seeded grant included)."""
        seeded = set() if user.refresh_token in self.backend.revoked else set(GRANTED_SCOPES)
        return seeded | self.consented.get(user.email, set())

    # ---- the token endpoint ------------------------------------------------------------------

    def grant(
        self, form: Mapping[str, str], basic: tuple[str, str] | None
    ) -> dict[str, Any] | None:
        """The token endpoint's answer for the grants this flow owns: ``authorization_code``,
        and ``refresh_token`` for the refresh tokens it issued; ``None`` for the others."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form, basic)
        if grant_type == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
            return self._refresh(form, basic)
        return None

    def _client(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> str:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if not client_id:
            raise err.oauth_error(
                400, "invalid_request", "Could not determine client ID from request."
            )
        if client_id != self.backend.client.client_id:
            raise err.oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if not secret:
            raise err.oauth_error(400, "invalid_request", "client_secret is missing.")
        if not hmac.compare_digest(secret.encode(), self.backend.client.client_secret.encode()):
            raise err.oauth_error(401, "invalid_client", "Unauthorized")
        return client_id

    def _exchange(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id = self._client(form, basic)
        code = form.get("code", "")
        if not code:
            raise err.oauth_error(400, "invalid_request", "Missing required parameter: code")
        grant = self.codes.get(code)
        if grant is None and not code.startswith("4/"):
            raise err.oauth_error(400, "invalid_grant", "Malformed auth code.")
        now = self.backend.clock.timestamp()
        if grant is None or grant.used or now >= grant.expires_at or grant.client_id != client_id:
            raise err.oauth_error(400, "invalid_grant", "Bad Request")
        redirect_uri = form.get("redirect_uri", "")
        if not redirect_uri:
            raise err.oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
        if redirect_uri != grant.redirect_uri:
            raise err.oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        verifier = form.get("code_verifier", "")
        if grant.challenge is None:
            if verifier:
                raise err.oauth_error(
                    400, "invalid_grant", "code_verifier or verifier is not needed."
                )
        elif not verifier:
            raise err.oauth_error(400, "invalid_grant", "Missing code verifier.")
        elif not pkce_matches(verifier, grant.challenge, grant.challenge_method or "plain"):
            raise err.oauth_error(400, "invalid_grant", "Invalid code verifier.")
        grant.used = True
        user = self.backend.by_email[grant.email]
        return self._tokens(user, grant.scopes, grant.nonce, refresh=grant.offline)

    def _refresh(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        self._client(form, basic)
        grant = self.refresh_tokens[form["refresh_token"]]
        if grant.revoked:
            raise err.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        requested = [SCOPE_ALIASES.get(s, s) for s in form.get("scope", "").split()]
        if any(s not in grant.scopes for s in requested):
            raise err.oauth_error(400, "invalid_scope", "Bad Request")
        user = self.backend.by_email[grant.email]
        return self._tokens(user, requested or grant.scopes, None, refresh=False)

    def _tokens(
        self, user: UserAccount, scopes: list[str], nonce: str | None, *, refresh: bool
    ) -> dict[str, Any]:
        ttl = self.backend.settings.access_token_ttl_seconds
        scope = " ".join(scopes)
        issued = self.backend.tokens.issue(user.email, scope=scope, ttl_seconds=ttl)
        body: dict[str, Any] = {"access_token": issued.token, "expires_in": max(ttl - 1, 0)}
        if refresh:
            body["refresh_token"] = self._new_refresh_token(user, scopes)
        body.update({"scope": scope, "token_type": "Bearer"})
        if "openid" in scopes:
            body["id_token"] = self._id_token(user, scopes, nonce, issued.token)
        return body

    def _new_refresh_token(self, user: UserAccount, scopes: list[str]) -> str:
        live = [g for g in self.refresh_tokens.values() if g.email == user.email and not g.revoked]
        for oldest in live[: max(len(live) - MAX_REFRESH_TOKENS + 1, 0)]:
            oldest.revoked = True
        token = "1//0" + _b64(secrets.token_bytes(72))
        self.refresh_tokens[token] = RefreshGrant(
            user.email, list(scopes), self.backend.clock.timestamp()
        )
        return token

    def _id_token(
        self, user: UserAccount, scopes: list[str], nonce: str | None, access_token: str
    ) -> str:
        now = int(self.backend.clock.timestamp())
        client_id = self.backend.client.client_id
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "azp": client_id,
            "aud": client_id,
            "sub": user.profile_id,
        }
        if EMAIL_SCOPE in scopes:
            claims.update({"email": user.email, "email_verified": True})
        claims["at_hash"] = _b64(digest[:16])
        if nonce is not None:
            claims["nonce"] = nonce
        if PROFILE_SCOPE in scopes:
            claims.update(
                {
                    "name": f"{user.given_name} {user.family_name}",
                    "given_name": user.given_name,
                    "family_name": user.family_name,
                }
            )
        claims.update({"iat": now, "exp": now + ID_TOKEN_TTL_SECONDS})
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"kid": "sandbox"})

    # ---- revocation ----------------------------------------------------------------------------

    def revoke(self, token: str) -> bool:
        """``/revoke`` with any token of a user (refresh or access, issued here or seeded):
        Google removes the whole grant, so every token of that user for this client stops."""
        grant = self.refresh_tokens.get(token)
        seeded = self.backend.by_refresh_token.get(token)
        if grant is not None:
            if grant.revoked:
                return False
            email = grant.email
        elif seeded is not None:
            email = seeded.email
        else:
            state, issued = self.backend.tokens.check(token)
            if issued is None or state != "valid":
                return False
            email = issued.subject
        self.backend.revoke(self.backend.by_email[email].refresh_token)
        for other in self.refresh_tokens.values():
            if other.email == email:
                other.revoked = True
        self.consented.pop(email, None)
        return True

    # ---- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            **self.redirect_uris.to_json(),
            "codes": {c: asdict(g) for c, g in self.codes.items()},
            "refresh_tokens": {t: asdict(g) for t, g in self.refresh_tokens.items()},
            "consented": {e: sorted(s) for e, s in self.consented.items()},
        }

    def load(self, raw: Mapping[str, Any]) -> None:
        self.reset()
        self.redirect_uris.load(raw)
        self.codes = {c: AuthorizationCode(**g) for c, g in raw.get("codes", {}).items()}
        self.refresh_tokens = {
            t: RefreshGrant(**g)
            for t, g in raw.get("refresh_tokens", {}).items()
            if g["email"] in self.backend.by_email
        }
        self.consented = {
            e: set(s) for e, s in raw.get("consented", {}).items() if e in self.backend.by_email
        }
