"""JSON batching (``POST /v1.0/$batch``): at most 20 requests, dependsOn and 424, responses in
any order, each request counted separately against Outlook's limits."""

from __future__ import annotations

from typing import Any

import requests

from contactsync_sandbox.microsoft import App
from tests.sandboxes.microsoft.helpers import BASE, REP, Graph, contact_payload

CONTACTS = f"/users/{REP}/contacts"


def create_request(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "id": str(n),
        "method": "POST",
        "url": CONTACTS,
        "headers": {"Content-Type": "application/json"},
        "body": contact_payload(**overrides),
    }


def get_request(n: int, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(n), "method": "GET", "url": url, **extra}


def test_a_batch_of_20_creates(api: Graph, app: App) -> None:
    # When 20 contacts are created in one batch
    response = api.post("$batch", {"requests": [create_request(i) for i in range(1, 21)]})
    # Then each has its own 201, in some order, and all exist
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert sorted(int(a["id"]) for a in answers) == list(range(1, 21))
    assert {a["status"] for a in answers} == {201}
    assert [a["id"] for a in answers] != [str(i) for i in range(1, 21)]  # shuffled, seeded
    assert all(a["headers"]["Content-Type"].startswith("application/json") for a in answers)
    ids = {a["body"]["id"] for a in answers}
    listed = api.get(CONTACTS, params={"$top": "50", "$select": "id"}).json()["value"]
    assert {c["id"] for c in listed} == ids


def test_21_requests_are_refused(api: Graph) -> None:
    response = api.post("$batch", {"requests": [create_request(i) for i in range(21)]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert "20" in response.json()["error"]["message"]
    assert api.get(CONTACTS).json()["value"] == []


def test_malformed_batches_are_refused(api: Graph) -> None:
    duplicate = [get_request(1, CONTACTS), get_request(1, CONTACTS)]
    missing_type = [{"id": "1", "method": "POST", "url": CONTACTS, "body": {"givenName": "X"}}]
    cycle = [get_request(1, CONTACTS, dependsOn=["2"]), get_request(2, CONTACTS, dependsOn=["1"])]
    unknown = [get_request(1, CONTACTS, dependsOn=["9"])]
    for requests_ in (duplicate, missing_type, cycle, unknown, []):
        assert api.post("$batch", {"requests": requests_}).status_code == 400, requests_


def test_a_failed_dependency_answers_424(api: Graph) -> None:
    # Given a batch whose first request fails and whose others depend on it, in a chain
    gone = api.post(CONTACTS, contact_payload()).json()["id"]
    api.delete(f"{CONTACTS}/{gone}")
    batch = [
        get_request(1, f"{CONTACTS}/{gone}"),
        {**create_request(2), "dependsOn": ["1"]},
        {**get_request(3, CONTACTS), "dependsOn": ["2"]},
    ]
    # When it runs
    answers = {a["id"]: a for a in api.post("$batch", {"requests": batch}).json()["responses"]}
    # Then the first is 404 and the dependants 424, none executed
    assert answers["1"]["status"] == 404
    assert answers["1"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert answers["2"]["status"] == 424
    assert answers["3"]["status"] == 424
    assert api.get(CONTACTS).json()["value"] == []


def test_dependencies_run_in_order(api: Graph) -> None:
    created = api.post(CONTACTS, contact_payload()).json()
    batch = [
        {**get_request(2, f"{CONTACTS}/{created['id']}?$select=jobTitle"), "dependsOn": ["1"]},
        {"id": "1", "method": "PATCH", "url": f"{CONTACTS}/{created['id']}",
         "headers": {"Content-Type": "application/json"}, "body": {"jobTitle": "Founder"}},
    ]  # fmt: skip
    answers = {a["id"]: a for a in api.post("$batch", {"requests": batch}).json()["responses"]}
    assert answers["1"]["status"] == 200
    assert answers["2"]["body"]["jobTitle"] == "Founder"


def test_each_request_of_a_batch_counts_against_the_mailbox_limit(api: Graph, app: App) -> None:
    # Given a mailbox limit of 5 requests per 10 minutes
    app.configure_quotas({"requests_per_window": 5})
    # When a batch of 8 GETs comes
    answers = api.post("$batch", {"requests": [get_request(i, CONTACTS) for i in range(8)]}).json()
    # Then 5 succeed and 3 are throttled, each with Retry-After
    statuses = sorted(a["status"] for a in answers["responses"])
    assert statuses == [200] * 5 + [429] * 3
    throttled = [a for a in answers["responses"] if a["status"] == 429]
    assert all(a["headers"]["Retry-After"] == "600" for a in throttled)
    assert all(a["body"]["error"]["code"] == "ApplicationThrottled" for a in throttled)


def test_injected_faults_reach_individual_requests(api: Graph, session: requests.Session) -> None:
    rules = [{"kind": "error", "path": "/contacts$", "method": "POST", "status": 503, "times": 2}]
    session.post(f"{BASE}_sandbox/faults", json={"rules": rules})
    answers = api.post("$batch", {"requests": [create_request(i) for i in range(4)]}).json()[
        "responses"
    ]
    assert sorted(a["status"] for a in answers) == [201, 201, 503, 503]


def test_items_need_a_relative_url_and_no_nesting(api: Graph) -> None:
    batch = [
        get_request(1, "https://graph.microsoft.com/v1.0/users"),
        {**create_request(2), "url": "/$batch", "body": {"requests": []}},
        get_request(3, f"users/{REP}/contacts"),  # without a leading slash is fine
    ]  # fmt: skip
    answers = {
        a["id"]: a["status"] for a in api.post("$batch", {"requests": batch}).json()["responses"]
    }
    assert answers == {"1": 400, "2": 400, "3": 200}
