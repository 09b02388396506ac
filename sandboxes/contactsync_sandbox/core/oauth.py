"""What the providers' authorization-code flows share: PKCE (RFC 7636), the OAuth client's
registered redirect URIs, and the redirect back to the client.

The sandboxes have no sign-in page: their authorize endpoints consent at once, as if the user
signed in and clicked "Allow". What a real provider checks before it ever shows that page (the
client, the redirect URI, the parameters) they check as the provider does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

# RFC 7636 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier``: BASE64URL(SHA256(ASCII(verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    """Whether ``verifier`` answers ``challenge`` (``method`` S256 or plain)."""
    expected = s256(verifier) if method == "S256" else verifier
    return hmac.compare_digest(expected.encode(), challenge.encode())


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query string (as the providers redirect)."""
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


def is_loopback(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
    except ValueError:
        return False


class RedirectUris:
    """The redirect (callback) URIs registered for a sandbox's OAuth client.

    Unregistered (``None``, the default), the client accepts any absolute ``https`` URI and any
    ``http`` loopback URI, so a test or a local API needs no set-up; registered (the admin call
    ``POST /_sandbox/oauth/redirect_uris {"redirect_uris": [...]}``), only exact matches pass,
    as with the real providers' consoles."""

    def __init__(self) -> None:
        self.registered: list[str] | None = None

    def allows(self, uri: str) -> bool:
        try:
            parts = urlsplit(uri)
        except ValueError:
            return False
        if parts.fragment or not parts.netloc:
            return False
        if self.registered is not None:
            return uri in self.registered
        return parts.scheme == "https" or is_loopback(uri)

    def configure(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The admin call: ``{"redirect_uris": [...]}`` registers, ``null`` opens again."""
        if "redirect_uris" not in body:
            raise ValueError('oauth/redirect_uris needs "redirect_uris": a list of URIs or null')
        raw = body["redirect_uris"]
        if raw is not None and (
            not isinstance(raw, list) or not all(isinstance(u, str) and u for u in raw)
        ):
            raise ValueError("redirect_uris must be a list of non-empty strings, or null")
        self.registered = None if raw is None else list(dict.fromkeys(raw))
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {"redirect_uris": self.registered}

    def load(self, raw: Mapping[str, Any]) -> None:
        uris: Iterable[str] | None = raw.get("redirect_uris")
        self.registered = None if uris is None else list(uris)
