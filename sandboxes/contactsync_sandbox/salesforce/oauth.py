"""Salesforce's OAuth 2.0 web server flow: ``/services/oauth2/authorize`` and the
``authorization_code`` grant of ``/services/oauth2/token``.

The authorize endpoint consents at once for the user ``login_hint`` names (a username; the org's
admin without a hint), as if they logged in and clicked "Allow". Before that it checks the
connected app as Salesforce does:

- an unknown ``client_id``, a missing callback, or one that matches no callback URL of the
  connected app never goes back to the client: Salesforce shows its error page (the
  ``RemoteAccessErrorPage``) reading ``error=redirect_uri_mismatch&error_description=redirect_uri
  %20must%20match%20configuration``; here that page is served directly, with status 400;
- other errors go back to the callback as ``error`` and ``error_description`` (and ``state``):
  ``unsupported_response_type``, ``invalid_scope`` for a scope the connected app does not
  grant, ``access_denied`` for a ``login_hint`` naming no user of the org;
- success goes back with ``code`` and ``state``.

The connected app grants ``api``, ``id`` (with ``profile``, ``email``, ``address``, ``phone``)
and ``refresh_token`` (alias ``offline_access``); without ``scope`` it grants all of them. The
exchange needs the consumer secret ("Require Secret for Web Server Flow", on by default) and the
``code_verifier`` when the authorization sent a ``code_challenge`` (S256, the only method
Salesforce knows). A refresh token comes back only when ``refresh_token`` or ``offline_access``
was granted; it then works with the ``refresh_token`` grant like the seeded one. Codes are
single use and expire after 15 minutes of the virtual clock.

Error descriptions are Salesforce's as quoted in public threads, except where the docs and
observed answers differ: the docs say a wrong ``code_verifier`` fails with ``invalid_request``,
the observed answer is ``invalid_grant`` / ``invalid code verifier``, which is what this gives.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from werkzeug.datastructures import Authorization

from contactsync_sandbox.core.app import ProviderError, Response
from contactsync_sandbox.core.oauth import RedirectUris, pkce_matches, with_query
from contactsync_sandbox.salesforce.auth import User
from contactsync_sandbox.salesforce.exceptions import OAuthError
from contactsync_sandbox.salesforce.models import Org

AUTHORIZE_PATH = "/services/oauth2/authorize"
CODE_TTL_SECONDS = 900
# The connected app's selected OAuth scopes, and what "scope" says when none is requested.
APP_SCOPES = frozenset(
    {"api", "id", "profile", "email", "address", "phone", "refresh_token", "offline_access"}
)
DEFAULT_SCOPES = ("refresh_token", "api", "id")
REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})
_TOKEN_CHARS = string.ascii_letters + string.digits + "._"


@dataclass
class AuthorizationCode:
    user_id: str
    redirect_uri: str
    scopes: list[str]
    challenge: str | None
    expires_at: float
    used: bool = False


def error_page(error: str, description: str) -> Response:
    """Salesforce's RemoteAccessErrorPage: the error as a query string, for the user to read."""
    text = f"error={error}&error_description={quote(description)}"
    body = (
        "<!DOCTYPE html>\n<html>\n<head><meta charset=utf-8>"
        "<title>Remote Access Application Authorization Error</title></head>\n"
        f"<body>{escape(text)}</body>\n</html>\n"
    )
    return Response(body, status=400, content_type="text/html; charset=utf-8")


def _page(error: str, description: str) -> ProviderError:
    return ProviderError(error_page(error, description))


def _redirect(location: str) -> Response:
    return Response(b"", status=302, headers={"Location": location})


class SalesforceOAuth:
    """The web server flow of the org's one connected app."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.redirect_uris = RedirectUris()
        self.codes: dict[str, AuthorizationCode] = {}

    def reset(self) -> None:
        self.redirect_uris = RedirectUris()
        self.codes.clear()

    # ---- the authorize endpoint ----------------------------------------------------------------

    def authorize(self, query: Mapping[str, str]) -> Response:
        """A 302 to the callback (a code, or an error), or Salesforce's error page."""
        if query.get("client_id") != self.org.credentials.client_id:
            raise _page("invalid_client_id", "client identifier invalid")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            raise _page("redirect_uri_missing", "redirect_uri not provided")
        if not self.redirect_uris.allows(redirect_uri):
            raise _page("redirect_uri_mismatch", "redirect_uri must match configuration")
        state = {"state": query["state"]} if "state" in query else {}

        def error(code: str, description: str) -> Response:
            params = {"error": code, "error_description": description, **state}
            return _redirect(with_query(redirect_uri, params))

        if query.get("response_type") != "code":  # the sandbox serves the web server flow only
            return error("unsupported_response_type", "response type not supported")
        requested = list(dict.fromkeys(query.get("scope", "").split()))
        if any(s not in APP_SCOPES for s in requested):
            return error("invalid_scope", "the requested scope is not allowed")
        user = self._user(query.get("login_hint"))
        if user is None:
            return error("access_denied", "end-user denied authorization")
        now = self.org.clock.timestamp()
        self.codes = {c: g for c, g in self.codes.items() if g.expires_at > now}
        code = "aPrx" + base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()
        self.codes[code] = AuthorizationCode(
            user.id,
            redirect_uri,
            requested or list(DEFAULT_SCOPES),
            query.get("code_challenge") or None,
            now + CODE_TTL_SECONDS,
        )
        return _redirect(with_query(redirect_uri, {"code": code, **state}))

    def _user(self, hint: str | None) -> User | None:
        credentials = self.org.credentials
        return credentials.user_by_name(hint.strip()) if hint else credentials.admin

    # ---- the authorization_code grant ----------------------------------------------------------

    def exchange(
        self, form: Mapping[str, str], auth: Authorization | None, base_url: str
    ) -> dict[str, Any]:
        """``grant_type=authorization_code``: a session, and a refresh token when granted. The
        client authenticates in the form or with HTTP Basic, as for the refresh token grant."""
        credentials = self.org.credentials
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username or "", auth.password or ""
        if client_id != credentials.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not secret or not hmac.compare_digest(secret, credentials.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")
        grant = self.codes.get(form.get("code", ""))
        if grant is None or grant.used:
            raise OAuthError("invalid_grant", "authentication failure")
        if self.org.clock.timestamp() >= grant.expires_at:
            raise OAuthError("invalid_grant", "expired authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        if grant.challenge is not None and not pkce_matches(
            form.get("code_verifier", ""), grant.challenge, "S256"
        ):
            raise OAuthError("invalid_grant", "invalid code verifier")
        grant.used = True
        return self._tokens(grant, base_url)

    def _tokens(self, grant: AuthorizationCode, base_url: str) -> dict[str, Any]:
        credentials = self.org.credentials
        base = base_url.rstrip("/")
        issued_at = str(int(self.org.clock.timestamp() * 1000))
        identity = f"{base}/id/{credentials.org_id}/{grant.user_id}"
        body: dict[str, Any] = {"access_token": self.org.sessions.issue(grant.user_id)}
        if REFRESH_SCOPES & set(grant.scopes):
            refresh = "5Aep861" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(80))
            self.org.refresh_tokens[refresh] = grant.user_id
            body["refresh_token"] = refresh
        body.update(
            {
                "signature": credentials.signature(identity, issued_at),
                "scope": " ".join(grant.scopes),
                "instance_url": base,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )
        return body

    # ---- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            **self.redirect_uris.to_json(),
            "codes": {c: asdict(g) for c, g in self.codes.items()},
        }

    def load(self, raw: Mapping[str, Any]) -> None:
        self.reset()
        self.redirect_uris.load(raw)
        self.codes = {c: AuthorizationCode(**g) for c, g in raw.get("codes", {}).items()}
