"""The org's credentials, derived from the seed so that they are stable across restarts: the
connected app (consumer key and secret), the refresh token, and the RSA key pair whose public half
verifies JWT bearer assertions. Sessions (access tokens) expire after inactivity on the virtual
clock, as Salesforce sessions do."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import random
import secrets
import string
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.salesforce.ids import make_id

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class User:
    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    alias: str
    approved: bool  # pre-authorised for the connected app (JWT bearer)


@dataclass
class Credentials:
    org_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    users: list[User]
    seed: int

    @classmethod
    def from_seed(cls, seed: int) -> Credentials:
        rng = random.Random(f"salesforce:{seed}:credentials")
        org_id = make_id("00D", 1_000 + rng.randrange(1_000_000))
        client_id = "3MVG9" + "".join(rng.choice(_ALNUM + "._") for _ in range(80))
        client_secret = "".join(rng.choice("0123456789ABCDEF") for _ in range(64))
        refresh_token = "5Aep861" + "".join(rng.choice(_ALNUM + "._") for _ in range(80))
        users = [
            User(
                make_id("005", 1),
                "admin@example.com",
                "Ada",
                "Admin",
                "admin@example.com",
                "aadmin",
                True,
            ),
            User(
                make_id("005", 2),
                "rep@example.com",
                "Pam",
                "Beesly",
                "rep@example.com",
                "pbees",
                False,
            ),
        ]
        return cls(org_id, client_id, client_secret, refresh_token, users, seed)

    @property
    def admin(self) -> User:
        return self.users[0]

    def user_by_name(self, username: str) -> User | None:
        return next((u for u in self.users if u.username.lower() == username.lower()), None)

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def private_key_pem(self) -> str:
        return _key_pair(self.seed)[0]

    def public_key_pem(self) -> str:
        return _key_pair(self.seed)[1]

    def signature(self, identity_url: str, issued_at: str) -> str:
        digest = hmac.new(
            self.client_secret.encode(), (identity_url + issued_at).encode(), hashlib.sha256
        ).digest()
        return base64.b64encode(digest).decode()


# ---- a deterministic RSA key (cryptography has no seeded key generation) -----------------------

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _probable_prime(n: int, rng: random.Random) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if (candidate - 1) % e and _probable_prime(candidate, rng):
            return candidate


@functools.lru_cache(maxsize=8)
def _key_pair(seed: int) -> tuple[str, str]:
    rng = random.Random(f"salesforce:{seed}:rsa")
    e = 65537
    while True:
        p, q = _prime(1024, rng, e), _prime(1024, rng, e)
        if p != q and (p * q).bit_length() == 2048:
            break
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, n),
    )
    key = numbers.private_key()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


# ---- sessions ------------------------------------------------------------------------------------


@dataclass
class Session:
    user_id: str
    expires_at: float
    ttl: int


class Sessions:
    """Access tokens (session ids). A session times out after ``ttl`` seconds of inactivity; use
    in the second half of its life pushes the expiry out again, as Salesforce does."""

    def __init__(self, clock: VirtualClock, org_id: str, ttl: int = 7200) -> None:
        self.clock = clock
        self.org_id = org_id
        self.ttl = ttl
        self.tokens: dict[str, Session] = {}

    def issue(self, user_id: str) -> str:
        token = f"{self.org_id[:15]}!" + "".join(secrets.choice(_ALNUM + "._") for _ in range(96))
        self.tokens[token] = Session(user_id, self.clock.timestamp() + self.ttl, self.ttl)
        return token

    def check(self, token: str) -> Session | None:
        session = self.tokens.get(token)
        if session is None:
            return None
        now = self.clock.timestamp()
        if session.expires_at <= now:
            del self.tokens[token]
            return None
        if session.expires_at - now < session.ttl / 2:
            session.expires_at = now + session.ttl
        return session

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def to_json(self) -> dict[str, Any]:
        return {t: [s.user_id, s.expires_at, s.ttl] for t, s in self.tokens.items()}

    def load(self, raw: dict[str, Any]) -> None:
        self.tokens = {t: Session(v[0], float(v[1]), int(v[2])) for t, v in raw.items()}
