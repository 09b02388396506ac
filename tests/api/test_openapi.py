"""The generated OpenAPI document, and schemathesis against it: generated requests on every
operation (bounded: a few examples each, so the suite stays fast) must never meet a 5xx, and
every answer must match the document (status, content type, schema)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from contactsync.api import ApiContext, ApiSettings, build_app, openapi_document
from contactsync.api.queue import LocalPullQueue, PullInbox
from contactsync.local.secrets import LocalSecretStore
from contactsync.store.sqlite import SQLiteStore
from tests.api.conftest import API, TOKEN_KEY, WEBHOOK_KEY, Env


def _document() -> dict[str, Any]:
    store = SQLiteStore(":memory:")
    ctx = ApiContext(
        ApiSettings(webhook_key=WEBHOOK_KEY, token_key=TOKEN_KEY),
        store,
        LocalSecretStore(Path("/nonexistent/secrets.json")),
        PullInbox(store, LocalPullQueue()),
    )
    return openapi_document(build_app(ctx))


# A few examples per operation keep the suite fast; API_FUZZ_EXAMPLES=200 for a deep run.
FUZZ_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "6"))
DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_document_describes_every_route(env: Env) -> None:
    served = env.anonymous.get("/openapi.json").json()
    assert served == DOCUMENT
    assert served["openapi"].startswith("3.")
    paths = served["paths"]
    assert "/webhooks/microsoft/{org_id}/{account_id}" in paths
    assert "/syncs/{sync_id}/delete-and-revert" in paths
    problem = served["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["properties"])
    for path, item in paths.items():
        for method, operation in item.items():
            assert "default" in operation["responses"], (path, method)
            assert "422" not in operation["responses"]
            private = not path.startswith(("/webhooks/", "/oauth/"))
            assert bool(operation.get("security")) == private, (path, method)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_document(case: schemathesis.Case, env: Env) -> None:
    headers = {"Authorization": f"Bearer {env.token(env.admin)}"}
    case.call_and_validate(
        base_url=API,
        session=env.session,
        headers=headers,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_routes_are_problems(env: Env, method: str) -> None:
    answer = env.as_admin.call(method, "/nowhere")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
