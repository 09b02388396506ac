"""Conformance of the Aircall sandbox, driven through plain ``requests`` with HTTP Basic auth
(Aircall has no official Python client; our connector is built the same way).

Covers: auth (401 vs 403, several keys, OAuth), contacts (shape, validation, duplicates,
update by POST, phone/email details, delete without tombstone), paging (bounds, meta links,
the 10,000-record cap and creation-date windows, live updated_at ordering), the company rate
limit, calls, seeding and state. Webhooks: tests/sandboxes/aircall/test_aircall_webhooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import phonenumbers
import pytest
import requests

from contactsync_sandbox.aircall import App
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.registry import create
from tests.sandboxes.aircall.helpers import Aircall, client, contact_payload, new_app, phone


@pytest.fixture
def app() -> App:
    return new_app()


@pytest.fixture
def api(app: App) -> Aircall:
    return client(app)


def _rate(response: requests.Response) -> tuple[int, int, int]:
    h = response.headers
    return (
        int(h["X-AircallApi-Limit"]),
        int(h["X-AircallApi-Remaining"]),
        int(h["X-AircallApi-Reset"]),
    )


# ---- auth ----------------------------------------------------------------------------------


def test_ping_with_basic_auth_carries_the_rate_limit_headers(api: Aircall, app: App) -> None:
    # When
    response = api.get("/ping")
    # Then
    assert response.status_code == 200
    assert response.json() == {"ping": "pong"}
    assert _rate(response) == (120, 119, int(app.clock.timestamp()) + 1)


def test_missing_credentials_are_401_and_bad_ones_403_at_the_gateway(app: App) -> None:
    # Given
    anonymous = client(app, auth=None)
    cases = {
        "wrong key": client(app, auth=None),
        "not base64": client(app, auth="Basic %%%"),
        "unknown bearer": client(app, auth="Bearer nope"),
        "other scheme": client(app, auth="Token abc"),
    }
    cases["wrong key"].session.auth = ("someone", "something")
    # When / Then
    missing = anonymous.get("/contacts")
    assert missing.status_code == 401
    assert missing.json() == {"message": "Unauthorized"}
    assert "X-AircallApi-Limit" not in missing.headers
    for name, caller in cases.items():
        refused = caller.get("/contacts")
        assert refused.status_code == 403, name
        assert refused.json() == {"message": "Forbidden"}, name
        assert "X-AircallApi-Remaining" not in refused.headers
    # and none of them counted against the company's limit
    assert _rate(client(app).get("/ping"))[1] == 119


def test_every_api_key_of_the_company_shares_one_rate_limit(app: App) -> None:
    # Given two API keys of the same company
    first, second = client(app, key=0), client(app, key=1)
    # When both call
    assert _rate(first.get("/ping"))[1] == 119
    # Then the second sees the first one's request
    assert _rate(second.get("/ping"))[1] == 118


def test_unknown_routes_and_methods_are_the_gateways_404(api: Aircall) -> None:
    contact = api.create_contact()
    for response in (
        api.get("/nothing"),
        api.put(f"/contacts/{contact['id']}", json={"first_name": "X"}),  # update is a POST
        api.get("/contacts/not-a-number"),
    ):
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}


# ---- OAuth ---------------------------------------------------------------------------------


def _authorize(api: Aircall, redirect_uri: str = "https://app.example.test/cb") -> str:
    oauth = api.config["oauth"]
    response = api.session.get(
        oauth["authorize_url"],
        params={
            "client_id": oauth["client_id"],
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "public_api",
            "state": "xyz",
        },
        allow_redirects=False,
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def _exchange(api: Aircall, code: str, **overrides: str) -> requests.Response:
    oauth = api.config["oauth"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://app.example.test/cb",
        "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"],
        **overrides,
    }
    return requests.Session.post(api.session, oauth["token_url"], data=form, auth=None)


def test_oauth_code_exchange_gives_a_token_that_never_expires(app: App) -> None:
    # Given an admin who installed the app on the dashboard
    anonymous = client(app, auth=None)
    code = _authorize(anonymous)
    # When the app exchanges the code
    response = _exchange(anonymous, code)
    # Then it holds a Bearer token, with no expiry and no refresh token
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "public_api"
    assert "refresh_token" not in token
    assert "expires_in" not in token
    partner = client(app, auth=f"Bearer {token['access_token']}")
    partner.advance(400 * 86_400)
    assert partner.get("/ping").json() == {"ping": "pong"}


def test_oauth_exchange_accepts_a_json_body_too(app: App) -> None:
    anonymous = client(app, auth=None)
    oauth = anonymous.config["oauth"]
    body = {
        "grant_type": "authorization_code",
        "code": _authorize(anonymous),
        "redirect_uri": "https://app.example.test/cb",
        "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"],
    }
    response = anonymous.session.post(oauth["token_url"], json=body)
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_oauth_codes_are_single_use_bound_to_redirect_uri_and_expire(app: App) -> None:
    anonymous = client(app, auth=None)
    # a used code
    code = _authorize(anonymous)
    assert _exchange(anonymous, code).status_code == 200
    reused = _exchange(anonymous, code)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # another redirect_uri
    mismatch = _exchange(anonymous, _authorize(anonymous), redirect_uri="https://evil.test/cb")
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "invalid_grant")
    # a wrong secret
    bad_secret = _exchange(anonymous, _authorize(anonymous), client_secret="guess")
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    # an expired code
    stale = _authorize(anonymous)
    anonymous.advance(601)
    assert _exchange(anonymous, stale).json()["error"] == "invalid_grant"
    # another grant type
    refresh = _exchange(anonymous, "x", grant_type="refresh_token")
    assert refresh.json()["error"] == "unsupported_grant_type"


# ---- contacts ------------------------------------------------------------------------------


def test_create_contact_returns_aircalls_full_shape(api: Aircall, app: App) -> None:
    # Given
    payload = contact_payload(phone_numbers=[{"label": "Mobile", "value": "+33 6 31 00 00 00"}])
    # When
    response = api.post("/contacts", json=payload)
    # Then
    assert response.status_code == 201
    contact = response.json()["contact"]
    now = int(app.clock.timestamp())
    assert contact == {
        "id": contact["id"],
        "direct_link": f"{api.config['api_base']}/contacts/{contact['id']}",
        "first_name": "Zoë",
        "last_name": "Wróbel",
        "company_name": "Müller & Söhne KG",
        "information": "Met at SaaStr",
        "is_shared": True,
        "created_at": now,
        "updated_at": now,
        "emails": [
            {
                "id": contact["emails"][0]["id"],
                "label": "Work",
                "value": payload["emails"][0]["value"],
            }
        ],
        "phone_numbers": [
            {
                "id": contact["phone_numbers"][0]["id"],
                "label": "Mobile",
                "value": "+33 6 31 00 00 00",
            }
        ],
    }
    assert isinstance(contact["id"], int)
    assert api.get(f"/contacts/{contact['id']}").json() == {"contact": contact}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (contact_payload(phone_numbers=[]), "Missing phone_numbers"),
        ({"first_name": "No phone"}, "Missing phone_numbers"),
        (contact_payload(phone_numbers=[{"value": "06 31 00 00 00"}]), "Invalid phone number"),
        (contact_payload(phone_numbers=[{"value": "+1 555"}]), "Invalid phone number"),
        (
            contact_payload(phone_numbers=[{"value": phone()} for _ in range(21)]),
            "Too many phone_numbers",
        ),
        (
            contact_payload(emails=[{"value": f"a{i}@example.com"} for i in range(21)]),
            "Too many emails",
        ),
        (contact_payload(emails=[{"value": "not-an-email"}]), "Invalid email"),
        (contact_payload(first_name="x" * 256), "Invalid first_name"),
        (contact_payload(company_name="x" * 256), "Invalid company_name"),
        (contact_payload(last_name=42), "Invalid last_name"),
    ],
)
def test_invalid_contacts_are_400_with_aircalls_error_body(
    api: Aircall, payload: dict[str, Any], error: str
) -> None:
    response = api.post("/contacts", json=payload)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "troubleshoot"}
    assert body["error"] == error
    assert body["troubleshoot"]


def test_limits_are_inclusive(api: Aircall) -> None:
    # 20 phones, 20 emails and 255-character names are accepted
    payload = contact_payload(
        first_name="x" * 255,
        phone_numbers=[{"value": phone()} for _ in range(20)],
        emails=[{"value": f"a{i}@example.com"} for i in range(20)],
    )
    assert api.post("/contacts", json=payload).status_code == 201


def test_a_body_that_is_not_a_json_object_is_400(api: Aircall) -> None:
    for data in (b"{not json", b"[1, 2]"):
        response = api.post("/contacts", data=data, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"] == "Invalid payload"


def test_nothing_is_unique_the_same_payload_twice_makes_two_contacts(api: Aircall) -> None:
    # Given
    payload = contact_payload(phone_numbers=[{"label": "Work", "value": "+44 20 7946 0123"}])
    # When
    first = api.post("/contacts", json=payload).json()["contact"]
    second = api.post("/contacts", json=payload).json()["contact"]
    # Then
    assert first["id"] != second["id"]
    found = api.get("/contacts/search", params={"phone_number": "+442079460123"}).json()
    assert [c["id"] for c in found["contacts"]] == [first["id"], second["id"]]


def test_update_is_a_post_for_names_and_ignores_phones_and_emails(api: Aircall) -> None:
    # Given
    contact = api.create_contact()
    api.advance(90)
    # When
    response = api.post(
        f"/contacts/{contact['id']}",
        json={
            "first_name": "Anaïs",
            "information": None,
            "phone_numbers": [{"value": phone()}],
            "emails": [],
        },
    )
    # Then
    assert response.status_code == 200
    updated = response.json()["contact"]
    assert updated["first_name"] == "Anaïs"
    assert updated["last_name"] == contact["last_name"]
    assert updated["information"] is None
    assert updated["updated_at"] == contact["updated_at"] + 90
    assert updated["created_at"] == contact["created_at"]
    assert updated["phone_numbers"] == contact["phone_numbers"]
    assert updated["emails"] == contact["emails"]


def test_phone_details_are_a_sub_resource(api: Aircall) -> None:
    # Given
    contact = api.create_contact()
    path = f"/contacts/{contact['id']}/phone_details"
    # When a number is added
    added = api.post(path, json={"label": "Mobile", "value": "+49 151 23456789"})
    # Then
    assert added.status_code == 201
    phones = added.json()["contact"]["phone_numbers"]
    assert [p["value"] for p in phones] == [
        contact["phone_numbers"][0]["value"],
        "+49 151 23456789",
    ]
    new_id = phones[1]["id"]
    # When it changes
    changed = api.put(f"{path}/{new_id}", json={"value": "+49 151 99999999"})
    assert changed.status_code == 200
    assert changed.json()["contact"]["phone_numbers"][1] == {
        "id": new_id,
        "label": "Mobile",
        "value": "+49 151 99999999",
    }
    # Then search follows the new number only
    search = "/contacts/search"
    assert api.get(search, params={"phone_number": "+4915199999999"}).json()["meta"]["total"] == 1
    assert api.get(search, params={"phone_number": "+4915123456789"}).json()["meta"]["total"] == 0
    # When it is deleted
    assert api.delete(f"{path}/{new_id}").status_code == 204
    assert len(api.get(f"/contacts/{contact['id']}").json()["contact"]["phone_numbers"]) == 1


def test_phone_detail_rules(api: Aircall) -> None:
    contact = api.create_contact()
    path = f"/contacts/{contact['id']}/phone_details"
    only = contact["phone_numbers"][0]["id"]
    # the last phone number cannot go
    last = api.delete(f"{path}/{only}")
    assert last.status_code == 422
    assert last.json()["error"] == "Cannot delete the last phone number"
    # numbers are validated
    assert api.post(path, json={"value": "0612345678"}).json()["error"] == "Invalid phone number"
    assert api.put(f"{path}/{only}", json={"value": "12"}).status_code == 400
    # unknown ids
    assert api.put(f"{path}/999", json={"value": phone()}).status_code == 404
    assert api.post("/contacts/999/phone_details", json={"value": phone()}).status_code == 404
    # at most 20
    for _ in range(19):
        assert api.post(path, json={"value": phone()}).status_code == 201
    assert api.post(path, json={"value": phone()}).json()["error"] == "Too many phone numbers"


def test_email_details_are_a_sub_resource(api: Aircall) -> None:
    contact = api.create_contact(emails=[])
    path = f"/contacts/{contact['id']}/email_details"
    api.advance(5)
    added = api.post(path, json={"label": "Work", "value": "Pam@DunderMifflin.com"})
    assert added.status_code == 201
    email = added.json()["contact"]["emails"][0]
    assert added.json()["contact"]["updated_at"] == contact["updated_at"] + 5
    assert api.put(f"{path}/{email['id']}", json={"label": "Personal"}).json()["contact"][
        "emails"
    ] == [{"id": email["id"], "label": "Personal", "value": "Pam@DunderMifflin.com"}]
    assert api.post(path, json={"value": "nope"}).json()["error"] == "Invalid email"
    assert api.delete(f"{path}/{email['id']}").status_code == 204
    assert api.get(f"/contacts/{contact['id']}").json()["contact"]["emails"] == []


def test_search_compares_phones_in_e164_and_emails_case_insensitively(api: Aircall) -> None:
    contact = api.create_contact(
        phone_numbers=[{"value": "+1 (415) 555-0100"}],
        emails=[{"value": "Jim.Halpert@DunderMifflin.com"}],
    )
    for params in (
        {"phone_number": "+14155550100"},
        {"phone_number": "+1 415.555.0100"},
        {"email": "jim.halpert@dundermifflin.com"},
        {"email": "JIM.HALPERT@dundermifflin.com", "phone_number": "+14155550100"},
    ):
        found = api.get("/contacts/search", params=params).json()
        assert [c["id"] for c in found["contacts"]] == [contact["id"]], params
    nobody = api.get("/contacts/search", params={"email": "x@y.z", "phone_number": "+14155550100"})
    assert nobody.json()["meta"]["total"] == 0


def test_deleted_contacts_simply_disappear(api: Aircall) -> None:
    # Given
    keep, gone = api.create_contact(), api.create_contact()
    # When
    response = api.delete(f"/contacts/{gone['id']}")
    # Then: no tombstone anywhere
    assert response.status_code == 204
    assert response.content == b""
    missing = api.get(f"/contacts/{gone['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not found"
    assert [c["id"] for c in api.get("/contacts").json()["contacts"]] == [keep["id"]]
    assert api.delete(f"/contacts/{gone['id']}").status_code == 404
    assert api.post(f"/contacts/{gone['id']}", json={"first_name": "x"}).status_code == 404


# ---- paging --------------------------------------------------------------------------------

BIG = 10_500


@pytest.fixture(scope="module")
def big() -> Aircall:
    """10,500 contacts created over 30 days; rate limit off (read-only tests)."""
    app = new_app(seed=11, enabled=False)
    api = client(app)
    assert api.admin("seed", {"count": BIG, "seed": 11, "spread_days": 30}).ok
    return api


def test_default_paging_and_links_that_lead_on(big: Aircall) -> None:
    # When
    first = big.get("/contacts").json()
    # Then
    assert first["meta"] == {
        "count": 20,
        "total": BIG,
        "current_page": 1,
        "per_page": 20,
        "next_page_link": f"{big.config['api_base']}/contacts?page=2&per_page=20",
        "previous_page_link": None,
    }
    second = big.session.get(first["meta"]["next_page_link"]).json()
    assert second["meta"]["current_page"] == 2
    assert (
        second["meta"]["previous_page_link"]
        == f"{big.config['api_base']}/contacts?page=1&per_page=20"
    )
    created = [c["created_at"] for c in first["contacts"] + second["contacts"]]
    assert created == sorted(created)
    assert not {c["id"] for c in first["contacts"]} & {c["id"] for c in second["contacts"]}


def test_links_keep_the_query(big: Aircall) -> None:
    params = {"order": "desc", "order_by": "updated_at", "from": 0, "per_page": 7, "page": 2}
    meta = big.get("/contacts", params=params).json()["meta"]
    assert parse_qs(urlsplit(meta["next_page_link"]).query) == {
        "order": ["desc"],
        "order_by": ["updated_at"],
        "from": ["0"],
        "page": ["3"],
        "per_page": ["7"],
    }


def test_per_page_is_at_most_50(big: Aircall) -> None:
    # per_page above 50 is served as 50 (the default "clamp")
    clamped = big.get("/contacts", params={"per_page": 200}).json()
    assert (clamped["meta"]["per_page"], clamped["meta"]["count"]) == (50, 50)
    # or refused, when the sandbox is set to
    big.admin("faults", {"rules": [], "quotas": {"per_page_over_max": "error"}})
    try:
        refused = big.get("/contacts", params={"per_page": 51})
        assert refused.status_code == 400
        assert refused.json()["error"] == "Invalid per_page"
    finally:
        big.admin("faults", {"rules": [], "quotas": {"per_page_over_max": "clamp"}})


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"per_page": 0}, "Invalid per_page"),
        ({"page": 0}, "Invalid page"),
        ({"page": "two"}, "Invalid page"),
        ({"order": "sideways"}, "Invalid order"),
        ({"order_by": "last_name"}, "Invalid order_by"),
        ({"from": "yesterday"}, "Invalid from"),
        ({"to": -5}, "Invalid to"),
    ],
)
def test_paging_parameters_are_checked(big: Aircall, params: dict[str, Any], error: str) -> None:
    response = big.get("/contacts", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_no_query_reaches_past_its_10000th_record(big: Aircall) -> None:
    # The last reachable page is full and links nowhere, though more contacts match
    last = big.get("/contacts", params={"per_page": 50, "page": 200}).json()
    assert last["meta"]["count"] == 50
    assert last["meta"]["total"] == BIG
    assert last["meta"]["next_page_link"] is None
    # A page straddling the cap stops at the cap
    straddle = big.get("/contacts", params={"per_page": 30, "page": 334}).json()
    assert straddle["meta"]["count"] == 10  # records 9,991..10,000
    # Past it: refused
    beyond = big.get("/contacts", params={"per_page": 50, "page": 201})
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "Pagination limit reached"
    assert "from" in beyond.json()["troubleshoot"]
    # Descending order reaches the other end, still 10,000 deep at most
    newest = big.get("/contacts", params={"per_page": 50, "page": 200, "order": "desc"}).json()
    assert newest["meta"]["next_page_link"] is None


def _read_all(api: Aircall, params: dict[str, Any]) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    url: str | None = api.url("/contacts")
    query: dict[str, Any] | None = {**params, "per_page": 50}
    while url:
        page = api.session.get(url, params=query).json()
        contacts += page["contacts"]
        url, query = page["meta"]["next_page_link"], None
    return contacts


def test_creation_date_windows_get_around_the_cap(big: Aircall) -> None:
    # Given the creation date of the middle contact
    middle = big.get("/contacts", params={"per_page": 1, "page": BIG // 2}).json()
    split = middle["contacts"][0]["created_at"]
    # When each half is read through its own window (from and to are inclusive)
    older = _read_all(big, {"to": split - 1})
    newer = _read_all(big, {"from": split})
    # Then every contact is read exactly once
    ids = [c["id"] for c in older + newer]
    assert len(ids) == BIG
    assert len(set(ids)) == BIG
    assert max(c["created_at"] for c in older) < split <= min(c["created_at"] for c in newer)


def test_windows_count_only_their_contacts(big: Aircall) -> None:
    first = big.get("/contacts", params={"per_page": 3}).json()["contacts"]
    window = {"from": first[0]["created_at"], "to": first[2]["created_at"]}
    found = big.get("/contacts", params=window).json()
    assert found["meta"]["total"] == len(found["contacts"]) >= 3
    assert [c["id"] for c in found["contacts"]][:3] == [c["id"] for c in first]


def test_order_by_updated_at_is_live_offset_paging(api: Aircall) -> None:
    # Given five contacts updated one after the other
    ids = []
    for _ in range(5):
        ids.append(api.create_contact()["id"])
        api.advance(10)
    newest_first = {"order_by": "updated_at", "order": "desc", "per_page": 2}
    page1 = [c["id"] for c in api.get("/contacts", params=newest_first).json()["contacts"]]
    assert page1 == [ids[4], ids[3]]
    # When the oldest contact is updated while a client pages
    api.post(f"/contacts/{ids[0]}", json={"first_name": "Touched"})
    # Then it jumps to the top and the next page repeats a contact already read
    page2 = [
        c["id"] for c in api.get("/contacts", params={**newest_first, "page": 2}).json()["contacts"]
    ]
    assert page2 == [ids[3], ids[2]]
    # and the incremental reader sees it first next time
    top = api.get("/contacts", params={**newest_first, "per_page": 1}).json()["contacts"][0]
    assert (top["id"], top["first_name"]) == (ids[0], "Touched")


def test_order_by_updated_at_inside_a_creation_window(api: Aircall) -> None:
    a = api.create_contact()
    api.advance(10)
    b = api.create_contact()
    api.advance(10)
    api.post(f"/contacts/{a['id']}", json={"first_name": "Later"})
    params = {
        "order_by": "updated_at",
        "order": "desc",
        "from": a["created_at"],
        "to": b["created_at"],
    }
    assert [c["id"] for c in api.get("/contacts", params=params).json()["contacts"]] == [
        a["id"],
        b["id"],
    ]
    api.post(f"/contacts/{b['id']}", json={"first_name": "Latest"})
    assert [c["id"] for c in api.get("/contacts", params=params).json()["contacts"]] == [
        b["id"],
        a["id"],
    ]


# ---- rate limit ----------------------------------------------------------------------------


def test_the_bucket_holds_120_and_drains_on_the_virtual_clock(api: Aircall, app: App) -> None:
    now = int(app.clock.timestamp())
    # Given 120 requests in the same second
    for i in range(120):
        response = api.get("/ping")
        assert response.status_code == 200
        assert _rate(response)[1] == 119 - i
    # When one more arrives
    refused = api.get("/contacts")
    # Then it is refused, not counted, and told when the bucket is empty again
    assert refused.status_code == 429
    assert refused.json()["error"] == "Rate limit reached"
    assert refused.json()["troubleshoot"]
    assert _rate(refused) == (120, 0, now + 60)
    # After 30 seconds half of it has drained
    api.advance(30)
    assert _rate(api.get("/ping"))[1] == 59
    # Thirty seconds later all of it, except the request made meanwhile
    api.advance(30)
    assert _rate(api.get("/ping"))[1] == 118
    api.advance(1)
    assert _rate(api.get("/ping"))[1] == 119


def test_other_integrations_eat_into_the_shared_budget(app: App) -> None:
    # Given another integration of the company using 90 requests a minute
    api = client(app)
    api.admin("faults", {"rules": [], "quotas": {"background_requests_per_minute": 90}})
    for _ in range(120):
        assert api.get("/ping").status_code == 200
    assert api.get("/ping").status_code == 429
    # When a minute passes
    api.advance(60)
    # Then only the 30 requests the others left are free
    assert _rate(api.get("/ping"))[1] == 29


def test_limit_is_configurable_and_can_be_switched_off(app: App) -> None:
    api = client(app)
    api.admin("faults", {"rules": [], "quotas": {"requests_per_minute": 60}})
    assert _rate(api.get("/ping"))[:2] == (60, 59)
    api.admin("faults", {"rules": [], "quotas": {"enabled": False}})
    assert all(api.get("/ping").status_code == 200 for _ in range(300))
    quotas = api.session.get(api.config["admin"] + "faults").json()["quotas"]
    assert quotas["enabled"] is False
    bad = api.admin("faults", {"rules": [], "quotas": {"requests_per_second": 1}})
    assert bad.status_code == 400


def test_injected_faults_speak_aircall(api: Aircall, app: App) -> None:
    now = int(app.clock.timestamp())
    rules = [
        {"kind": "throttle", "path": "^/v1/contacts$", "retry_after": 17, "times": 1},
        {"kind": "error", "path": "^/v1/ping$", "status": 503, "times": 1},
    ]
    api.admin("faults", {"rules": rules})
    throttled = api.get("/contacts")
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "Rate limit reached"
    assert _rate(throttled) == (120, 0, now + 17)
    failed = api.get("/ping")
    assert failed.status_code == 503
    assert set(failed.json()) == {"error", "troubleshoot"}
    assert api.get("/contacts").status_code == 200


# ---- calls ---------------------------------------------------------------------------------


@pytest.fixture
def calls_api(app: App) -> Aircall:
    api = client(app)
    assert api.admin("seed", {"count": 40, "calls": 60, "seed": 3}).ok
    return api


def test_calls_list_with_paging_and_fields(calls_api: Aircall) -> None:
    page = calls_api.get("/calls", params={"per_page": 50}).json()
    assert page["meta"]["total"] == 60
    assert page["meta"]["count"] == 50
    call = page["calls"][0]
    assert set(call) >= {
        "id",
        "direct_link",
        "direction",
        "status",
        "started_at",
        "answered_at",
        "ended_at",
        "duration",
        "raw_digits",
        "user",
        "contact",
    }
    started = [c["started_at"] for c in page["calls"]]
    assert started == sorted(started)
    for c in page["calls"]:
        assert c["direction"] in ("inbound", "outbound")
        assert c["duration"] == c["ended_at"] - c["started_at"]
        assert phonenumbers.is_valid_number(phonenumbers.parse(c["raw_digits"], None))
        assert c["contact"] is None  # only with fetch_contact=true
    missed = [c for c in page["calls"] if c["answered_at"] is None]
    assert missed
    assert all(c["user"] is None and c["missed_call_reason"] for c in missed)


def test_fetch_contact_brings_the_linked_contact(calls_api: Aircall) -> None:
    page = calls_api.get("/calls", params={"per_page": 50, "fetch_contact": "true"}).json()
    linked = [c for c in page["calls"] if c["contact"] is not None]
    assert linked
    for call in linked:
        numbers = {
            phonenumbers.format_number(phonenumbers.parse(p["value"], None), 0)
            for p in call["contact"]["phone_numbers"]
        }
        assert (
            phonenumbers.format_number(phonenumbers.parse(call["raw_digits"], None), 0) in numbers
        )
    # the next page link does not carry fetch_contact
    assert "fetch_contact" not in page["meta"]["next_page_link"]
    one = calls_api.get(f"/calls/{linked[0]['id']}", params={"fetch_contact": "true"}).json()
    assert one["call"]["contact"]["id"] == linked[0]["contact"]["id"]
    assert calls_api.get("/calls/1").status_code == 404


def test_calls_windows_and_history(calls_api: Aircall) -> None:
    calls = calls_api.get("/calls", params={"per_page": 50, "order": "desc"}).json()["calls"]
    newest = calls[0]["started_at"]
    assert calls_api.get("/calls", params={"from": newest}).json()["meta"]["total"] >= 1
    # calls older than the history Aircall keeps are gone from the list
    calls_api.advance(200 * 86_400)
    assert calls_api.get("/calls").json()["meta"]["total"] == 0


# ---- seeding and state ---------------------------------------------------------------------


def test_generated_contacts_are_realistic_and_international(app: App) -> None:
    api = client(app)
    seeded = api.admin("seed", {"count": 60, "seed": 5}).json()
    assert seeded["created"] == 60
    assert len(seeded["ids"]) == 60
    contacts = api.get("/contacts", params={"per_page": 50}).json()["contacts"]
    values = [p["value"] for c in contacts for p in c["phone_numbers"]]
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(v, None)) for v in values)
    assert any(" " in v for v in values)  # "+1 212-555-0123"
    assert any(v.startswith("+") and v[1:].isdigit() for v in values)  # E.164
    assert any("." in v for v in values)  # "+1.212.555.0123"
    assert any(not c["first_name"].isascii() or not c["last_name"].isascii() for c in contacts)
    assert any(e["value"] != e["value"].lower() for c in contacts for e in c["emails"])


def test_same_seed_same_people_across_providers_in_other_formats(app: App) -> None:
    # The overlapping share of people is drawn from the pool every provider shares
    api = client(app)
    api.admin("seed", {"count": 30, "seed": 9, "overlap": 1.0})
    from contactsync_sandbox.core.people import people_for

    shared = [p.emails[0].address for p in people_for("google", 30, seed=9, overlap=1.0)]
    ours = [
        c["emails"][0]["value"]
        for c in api.get("/contacts", params={"per_page": 30}).json()["contacts"]
    ]
    assert [e.lower() for e in ours] == shared
    assert any(e != e.lower() for e in ours)


def test_seed_records_in_aircalls_own_shape(api: Aircall, app: App) -> None:
    record = contact_payload(created_at=1_600_000_000, updated_at=1_600_000_500)
    seeded = api.admin("seed", {"records": [record]})
    assert seeded.status_code == 200
    contact = api.get(f"/contacts/{seeded.json()['ids'][0]}").json()["contact"]
    assert (contact["created_at"], contact["updated_at"]) == (1_600_000_000, 1_600_000_500)
    invalid = api.admin("seed", {"records": [{"first_name": "no phone"}]})
    assert invalid.status_code == 400
    assert api.admin("seed", {"count": -1}).status_code == 400


def test_state_round_trips_through_a_file(tmp_path: Path, app: App) -> None:
    # Given a sandbox with contacts, calls, a webhook and an OAuth token
    api = client(app)
    api.admin("seed", {"count": 25, "calls": 10})
    webhook = api.create_webhook()
    anonymous = client(app, auth=None)
    token = _exchange(anonymous, _authorize(anonymous)).json()["access_token"]
    api.get("/ping")
    # When it is saved and restored into a new sandbox with the same seed
    app.save(tmp_path / "aircall.json")
    other = create("aircall", seed=7)
    other.restore(tmp_path / "aircall.json")
    again = client(other)
    # Then everything is there and the same credentials work
    assert (
        again.get("/contacts", params={"per_page": 50}).json()
        == api.get("/contacts", params={"per_page": 50}).json()
    )
    assert again.get("/calls").json()["meta"]["total"] == 10
    assert again.get(f"/webhooks/{webhook['webhook_id']}").json()["webhook"] == webhook
    assert client(other, auth=f"Bearer {token}").get("/ping").status_code == 200
    assert again.create_contact()["id"] not in {
        c["id"] for c in api.get("/contacts").json()["contacts"]
    }


def test_reset_empties_the_sandbox(api: Aircall) -> None:
    api.admin("seed", {"count": 5, "calls": 3})
    api.create_webhook()
    assert api.admin("reset").ok
    assert api.get("/contacts").json()["meta"]["total"] == 0
    assert api.get("/calls").json()["meta"]["total"] == 0
    assert api.get("/webhooks").json()["webhooks"] == []


def test_client_config_is_the_sandbox_json_entry(app: App) -> None:
    config = client(app).config
    assert config["api_base"] == "https://aircall.sandbox.test/v1"
    assert config["admin"] == "https://aircall.sandbox.test/_sandbox/"
    assert config["oauth"]["token_url"] == "https://aircall.sandbox.test/v1/oauth/token"
    assert len(config["api_keys"]) == 2
    assert config["api_keys"][0] == {"api_id": config["api_id"], "api_token": config["api_token"]}
    # stable for a seed, different across seeds
    assert App(seed=7).client_config()["api_token"] == config["api_token"]
    assert App(seed=8).client_config()["api_token"] != config["api_token"]


# ---- over real HTTPS -----------------------------------------------------------------------


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[tuple[requests.Session, dict[str, Any]]]:
    authority = CertificateAuthority.create(tmp_path)
    app = new_app()
    server = HTTPSSandboxServer(app, authority, timeout_seconds=0.2).start()
    try:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.verify = str(authority.ca_path)
        yield session, app.client_config()
    finally:
        server.stop()


def test_over_https_with_the_throwaway_ca(
    https_api: tuple[requests.Session, dict[str, Any]],
) -> None:
    session, config = https_api
    assert config["api_base"].startswith("https://127.0.0.1:")
    assert session.get(config["api_base"] + "/ping").status_code == 401
    session.auth = (config["api_id"], config["api_token"])
    created = session.post(config["api_base"] + "/contacts", json=contact_payload())
    assert created.status_code == 201
    listed = session.get(config["api_base"] + "/contacts")
    assert listed.json()["meta"]["total"] == 1
    assert listed.headers["X-AircallApi-Remaining"] == "118"


# ---- at scale ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_scan_of_100000_contacts_through_creation_windows() -> None:
    # Given 100,000 contacts, ten times what one query can reach
    from benchmarks.bench_sandbox_aircall import Scanner

    app = new_app(seed=1, enabled=False)
    api = client(app)
    assert api.admin("seed", {"count": 100_000, "seed": 1}).ok
    # When a scanner splits the creation dates until every window fits under the cap
    scanner = Scanner(api.session, api.config["api_base"])
    scanner.scan(0, int(app.clock.timestamp()))
    # Then it reads every contact, at the price of 2,000 pages plus the window probes
    assert len(scanner.seen) == 100_000
    assert 2_000 < scanner.requests < 2_200
