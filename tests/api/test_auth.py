"""Authentication and authorization: local tokens (forged, expired, malformed, unknown or
removed users, role capping) and the cloud's JWT-authorizer claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contactsync.api import ApiSettings, Mode, build_app
from contactsync.api.auth import issue_local_token, verify_local_token
from contactsync.api.problems import Unauthorized
from contactsync.domain.org import Role
from tests.api.conftest import TOKEN_KEY, WEBHOOK_KEY, Client, Env


def test_no_token_is_401_with_a_problem(env: Env) -> None:
    response = env.anonymous.get("/me")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "no_token"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic abc", "no_token"),
        ("Bearer not-a-token", "malformed_token"),
        ("Bearer cs1.e30.c2ln", "bad_signature"),
        ("Bearer xx1.e30.c2ln", "malformed_token"),
    ],
)
def test_bad_tokens_are_401(env: Env, header: str, code: str) -> None:
    response = env.anonymous.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == code


def test_a_token_signed_with_another_key_is_refused(env: Env) -> None:
    forged = issue_local_token(
        "x" * 43, env.org.id, env.admin.id, Role.ADMIN, datetime.now(UTC), 60
    )
    response = env.anonymous.get("/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"


def test_a_tampered_claim_breaks_the_signature(env: Env) -> None:
    token = env.token(env.rep)
    prefix, body, signature = token.split(".")
    claims = json.loads(__import__("base64").urlsafe_b64decode(body + "=="))
    claims["role"] = "admin"
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    tampered = __import__("base64").urlsafe_b64encode(raw).decode().rstrip("=")
    response = env.anonymous.get(
        "/me", headers={"Authorization": f"Bearer {prefix}.{tampered}.{signature}"}
    )
    assert response.status_code == 401


def test_expired_tokens_are_refused() -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    token = issue_local_token(TOKEN_KEY, "org-1", "u-1", Role.USER, issued, 60)
    assert verify_local_token(TOKEN_KEY, token, issued + timedelta(seconds=59))["sub"] == "u-1"
    with pytest.raises(Unauthorized):
        verify_local_token(TOKEN_KEY, token, issued + timedelta(seconds=60))


def test_unknown_and_removed_users_are_403(env: Env) -> None:
    ghost = issue_local_token(TOKEN_KEY, env.org.id, "u-ghost", Role.USER, datetime.now(UTC), 60)
    assert env.anonymous.get("/me", headers={"Authorization": f"Bearer {ghost}"}).status_code == 403
    # Given Pam was removed from the organisation (seed 002)
    env.store.update(env.rep.model_copy(update={"active": False}))
    assert env.as_rep.get("/me").status_code == 403


def test_role_is_the_lower_of_token_and_user(env: Env) -> None:
    # A user's token claiming admin is a user token; an admin may use a user-role token.
    assert env.client(env.rep, Role.ADMIN).get("/me").json()["role"] == "user"
    assert env.client(env.admin, Role.USER).get("/me").json()["role"] == "user"
    assert env.as_admin.get("/me").json()["role"] == "admin"


def test_a_token_of_one_organisation_never_reaches_another(env: Env) -> None:
    # Given a contact in the other organisation
    other = env.as_other.post("/contacts", json={"given_name": "Bob", "family_name": "Vance"})
    assert other.status_code == 201
    contact_id = other.json()["id"]
    # Then nobody in Dunder Mifflin sees it, reads it, edits it or archives it
    assert env.as_admin.get(f"/contacts/{contact_id}").status_code == 404
    assert (
        env.as_admin.patch(f"/contacts/{contact_id}", json={"version": 1, "title": "x"}).status_code
        == 404
    )
    assert env.as_admin.post(f"/contacts/{contact_id}/archive").status_code == 404
    assert env.as_admin.get("/contacts", params={"q": "vance"}).json()["items"] == []


def _cloud_event(claims: dict[str, Any] | None, path: str = "/me") -> dict[str, Any]:
    context: dict[str, Any] = {
        "http": {"method": "GET", "path": path, "sourceIp": "1.2.3.4"},
        "requestId": "r",
        "stage": "$default",
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def test_cloud_mode_reads_the_jwt_authorizer_claims(env: Env) -> None:
    settings = ApiSettings(mode=Mode.CLOUD, webhook_key=WEBHOOK_KEY)
    ctx = env.ctx.__class__(
        settings=settings, store=env.store, secrets=env.secrets, inbox=env.ctx.inbox
    )
    app = build_app(ctx)
    # By user id, with an admin group
    result = app.resolve(
        _cloud_event(
            {
                "custom:org_id": env.org.id,
                "custom:user_id": env.admin.id,
                "cognito:groups": "[admin]",
                "custom:role": "admin",
            }
        ),
        None,
    )
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["role"] == "admin"
    # By email, without a role claim: a user
    result = app.resolve(
        _cloud_event({"custom:org_id": env.org.id, "email": "MICHAEL@dundermifflin.com"}), None
    )
    assert json.loads(result["body"])["role"] == "user"
    # No claims at all (the authorizer was bypassed), or no organisation, or a stranger
    assert app.resolve(_cloud_event(None), None)["statusCode"] == 401
    assert (
        app.resolve(_cloud_event({"email": "michael@dundermifflin.com"}), None)["statusCode"] == 403
    )
    stranger = {"custom:org_id": env.org.id, "email": "bob@vance.example"}
    assert app.resolve(_cloud_event(stranger), None)["statusCode"] == 403


def test_public_routes_need_no_token(env: Env) -> None:
    assert env.anonymous.get("/openapi.json").status_code == 200
    assert env.anonymous.get("/health").status_code == 200
    assert env.anonymous.get("/no/such/route").status_code == 404


def test_clients_are_typed(env: Env) -> None:
    assert isinstance(env.as_admin, Client)
