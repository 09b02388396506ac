"""The API's configuration: one pydantic model validated once at start-up (the Lambda handler
builds it from its environment and secrets, `contactsync serve` from the local home). Core code
never reads ``os.environ``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, HttpUrl, StringConstraints

from contactsync.domain.accounts import Provider
from contactsync.domain.base import Model

Secret = Annotated[str, StringConstraints(min_length=16, max_length=512)]


class Mode(StrEnum):
    LOCAL = "local"  # HMAC-signed bearer tokens (contactsync token), Swagger UI
    CLOUD = "cloud"  # API Gateway's JWT authorizer has verified the token; we read its claims


class ProviderOAuth(Model):
    """One provider's OAuth client (the deployment's app registration, not a user's tokens)."""

    client_id: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    client_secret: Annotated[str, StringConstraints(max_length=2048)] = ""
    authorize_url: HttpUrl
    token_url: HttpUrl
    scopes: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        default_factory=list, max_length=30
    )
    # Extra authorize parameters (Google: access_type=offline, prompt=consent).
    authorize_params: dict[str, str] = Field(default_factory=dict, max_length=10)
    # Non-secret settings every account connected through this client gets in its config
    # (graph_base, api_base, instance_url, ca_bundle...).
    account_config: dict[str, str] = Field(default_factory=dict, max_length=24)
    # Credentials every account gets besides its tokens (the client id and secret, for refresh).
    account_credentials: dict[str, str] = Field(default_factory=dict, max_length=8)


class JwtClaims(Model):
    """Which JWT claims (cloud mode) name the caller's organisation, user and role."""

    org: str = "custom:org_id"
    user: str = "custom:user_id"
    email: str = "email"
    role: str = "custom:role"
    groups: str = "cognito:groups"


class ApiSettings(Model):
    mode: Mode = Mode.LOCAL
    # Where providers reach our public routes (webhooks, OAuth callback), without a trailing /.
    public_base_url: Annotated[str, StringConstraints(min_length=1, max_length=500)] = (
        "http://127.0.0.1:8080"
    )
    # Signs local bearer tokens (local mode only).
    token_key: Secret | None = None
    # Derives the per-account webhook secrets (Graph clientState, Salesforce endpoint key).
    webhook_key: Secret
    claims: JwtClaims = Field(default_factory=JwtClaims)
    oauth: dict[Provider, ProviderOAuth] = Field(default_factory=dict)
    # Aircall's API base for API-key connects (the key is checked with GET /ping).
    aircall_api_base: str = "https://api.aircall.io/v1"
    aircall_account_config: dict[str, str] = Field(default_factory=dict, max_length=24)
    swagger: bool = False
    # Webhook limits: bodies above this are refused before parsing (413).
    max_webhook_bytes: int = Field(default=1_048_576, ge=1024, le=6_291_456)
    # Aircall deliveries older than this are refused as stale (Aircall retries for ~11 h).
    aircall_max_age_seconds: int = Field(default=86_400, ge=60)
    # How long a delivery id is remembered for deduplication.
    receipt_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    # OAuth connect attempts expire after this.
    oauth_attempt_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    local_token_ttl_seconds: int = Field(default=86_400, ge=60)
    http_timeout_seconds: float = Field(default=20.0, gt=0, le=60)

    @property
    def callback_url(self) -> str:
        return f"{self.public_base_url}/oauth/callback"
