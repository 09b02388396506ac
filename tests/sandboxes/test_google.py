"""Conformance of the Google People sandbox, driven through google-auth's AuthorizedSession (the
real, unpatched client) in-process, plus one run over real HTTPS.

Each test reads Given / When / Then. Time only moves through the sandbox's virtual clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials

from contactsync_sandbox import registry
from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.core.people import people_for
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.google import App
from contactsync_sandbox.google.models import SyncToken

BASE = "https://google.sandbox.test/"
CONNECTIONS = BASE + "v1/people/me/connections"
SYNC_FIELDS = "names,emailAddresses,phoneNumbers,metadata,memberships"
CONTACTS_SCOPE = "https://www.googleapis.com/auth/contacts"
READONLY_SCOPE = "https://www.googleapis.com/auth/contacts.readonly"
WEEK = 7 * 86_400


# ---- fixtures and factories ------------------------------------------------------------------


@pytest.fixture
def app() -> App:
    """A fresh sandbox, rate limits off unless a test turns them on."""
    sandbox = registry.create("google", seed=11)
    assert isinstance(sandbox, App)
    sandbox.configure_quotas({"enabled": False})
    return sandbox


@pytest.fixture
def transport(app: App) -> requests.Session:
    """A plain session with the sandbox mounted: admin calls and google-auth's token refreshes."""
    session = mount_sandbox(requests.Session(), BASE, app)
    session.calls = []  # type: ignore[attr-defined]
    session.hooks["response"].append(lambda r, *a, **k: session.calls.append(r.request.path_url))  # type: ignore[attr-defined]
    return session


def credentials(app: App, user: str | None = None, scopes: list[str] | None = None) -> Credentials:
    config = app.client_config()
    return Credentials(
        token=None,
        refresh_token=config["users"][user or config["user"]],
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        scopes=scopes,
    )


def authorized(
    app: App, transport: requests.Session, user: str | None = None, scopes: list[str] | None = None
) -> AuthorizedSession:
    """The client as a connector builds it: refreshes go through ``transport`` (which has the
    sandbox mounted); API calls through the AuthorizedSession (mounted too)."""
    session = AuthorizedSession(
        credentials(app, user, scopes), auth_request=GoogleAuthRequest(transport)
    )
    return mount_sandbox(session, BASE, app)  # type: ignore[return-value]


@pytest.fixture
def google(app: App, transport: requests.Session) -> AuthorizedSession:
    return authorized(app, transport)


def admin(transport: requests.Session, call: str, body: dict[str, Any] | None = None) -> Any:
    response = transport.post(BASE + "_sandbox/" + call, json=body or {})
    assert response.status_code == 200, response.text
    return response.json()


def quotas(transport: requests.Session, **settings: Any) -> None:
    admin(transport, "faults", {"rules": [], "quotas": settings})


def advance(transport: requests.Session, seconds: float) -> None:
    admin(transport, "clock", {"advance_seconds": seconds})


def a_person(given: str = "Zoë", family: str = "Åkesson", **extra: Any) -> dict[str, Any]:
    """A People API Person as a client writes it."""
    body: dict[str, Any] = {
        "names": [{"givenName": given, "familyName": family}],
        "emailAddresses": [{"value": f"{given.lower()}@example.org", "type": "work"}],
        "phoneNumbers": [{"value": "(212) 555-0142", "type": "mobile"}],
    }
    body.update(extra)
    return body


def create(
    google: AuthorizedSession, person: dict[str, Any] | None = None, fields: str = SYNC_FIELDS
) -> dict[str, Any]:
    response = google.post(
        BASE + "v1/people:createContact", params={"personFields": fields}, json=person or a_person()
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def seed(transport: requests.Session, count: int, user: str | None = None) -> list[str]:
    body: dict[str, Any] = {"count": count, "seed": 3}
    if user:
        body["user"] = user
    created: list[str] = admin(transport, "seed", body)["created"]
    return created


def list_page(google: AuthorizedSession, **params: Any) -> requests.Response:
    params.setdefault("personFields", SYNC_FIELDS)
    return google.get(CONNECTIONS, params=params)


def full_sync(
    google: AuthorizedSession, page_size: int = 100, **params: Any
) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
    """All pages of a full sync: (people, nextSyncToken, page bodies)."""
    people: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        extra: dict[str, str] = {"pageToken": token} if token else {}
        response = list_page(google, pageSize=page_size, requestSyncToken="true", **params, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        people += body.get("connections", [])
        token = body.get("nextPageToken")
        if not token:
            return people, body.get("nextSyncToken"), pages


def incremental(
    google: AuthorizedSession, sync_token: str, **params: Any
) -> tuple[list[dict[str, Any]], str]:
    people: list[dict[str, Any]] = []
    token = None
    while True:
        extra: dict[str, str] = {"pageToken": token} if token else {}
        response = list_page(google, syncToken=sync_token, **params, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        people += body.get("connections", [])
        token = body.get("nextPageToken")
        if not token:
            assert "nextSyncToken" in body
            return people, body["nextSyncToken"]


def error_of(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def reasons(response: requests.Response) -> list[str]:
    return [d["reason"] for d in error_of(response).get("details", []) if "reason" in d]


# ---- OAuth 2.0 --------------------------------------------------------------------------------


def test_token_endpoint_issues_an_expiring_bearer_token(
    app: App, transport: requests.Session
) -> None:
    # Given the sandbox's client and the default user's refresh token
    config = app.client_config()
    form = {
        "grant_type": "refresh_token",
        "client_id": config["client_id"],
        "client_secret": config["client_secret"],
        "refresh_token": config["refresh_token"],
    }
    # When the client refreshes
    response = transport.post(config["token_uri"], data=form)
    # Then it gets Google's token response
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["access_token"].startswith("ya29.")
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert body["scope"] == CONTACTS_SCOPE


@pytest.mark.parametrize(
    ("change", "status", "error", "description"),
    [
        ({"refresh_token": "1//0-not-a-token"}, 400, "invalid_grant", "Bad Request"),
        ({"client_secret": "GOCSPX-wrong"}, 401, "invalid_client", "Unauthorized"),
        (
            {"client_id": "1-x.apps.googleusercontent.com"},
            401,
            "invalid_client",
            "The OAuth client was not found.",
        ),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "Invalid grant_type: password"),
    ],
)
def test_token_endpoint_rejects_bad_credentials_as_google_does(
    app: App,
    transport: requests.Session,
    change: dict[str, str],
    status: int,
    error: str,
    description: str,
) -> None:
    # Given a token request with one bad part
    config = app.client_config()
    form = {
        "grant_type": "refresh_token",
        "client_id": config["client_id"],
        "client_secret": config["client_secret"],
        "refresh_token": config["refresh_token"],
        **change,
    }
    # When it is sent
    response = transport.post(config["token_uri"], data=form)
    # Then Google's OAuth error comes back
    assert response.status_code == status
    assert response.json() == {"error": error, "error_description": description}


def test_bad_refresh_token_fails_the_real_client_with_invalid_grant(
    app: App, transport: requests.Session
) -> None:
    # Given credentials holding a refresh token the sandbox never issued
    config = app.client_config()
    creds = Credentials(
        token=None,
        refresh_token="1//0-revoked-long-ago",
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
    )
    session = mount_sandbox(
        AuthorizedSession(creds, auth_request=GoogleAuthRequest(transport)), BASE, app
    )
    # When the client makes its first call (which refreshes first)
    with pytest.raises(RefreshError) as failure:
        session.get(CONNECTIONS, params={"personFields": "names"})
    # Then google-auth reports Google's invalid_grant
    assert "invalid_grant: Bad Request" in str(failure.value)


def test_missing_and_unknown_tokens_get_googles_401(transport: requests.Session) -> None:
    # When a call carries no token
    missing = transport.get(CONNECTIONS, params={"personFields": "names"})
    # Then it is UNAUTHENTICATED / CREDENTIALS_MISSING
    assert missing.status_code == 401
    assert error_of(missing)["status"] == "UNAUTHENTICATED"
    assert error_of(missing)["message"].startswith(
        "Request is missing required authentication credential."
    )
    assert reasons(missing) == ["CREDENTIALS_MISSING"]
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="https://accounts.google.com/"'
    # When it carries a token the sandbox never issued
    unknown = transport.get(
        CONNECTIONS,
        params={"personFields": "names"},
        headers={"Authorization": "Bearer ya29.forged"},
    )
    # Then the message is Google's "invalid authentication credentials"
    assert unknown.status_code == 401
    assert error_of(unknown)["message"].startswith(
        "Request had invalid authentication credentials."
    )
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]


def test_expired_access_token_gets_401_then_the_client_refreshes(
    app: App, transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given a client that has a token
    assert list_page(google).status_code == 200
    first_token = google.credentials.token
    # When the access token outlives its hour on the virtual clock
    advance(transport, 3600)
    expired = transport.get(
        CONNECTIONS,
        params={"personFields": "names"},
        headers={"Authorization": f"Bearer {first_token}"},
    )
    response = list_page(google)
    # Then the sandbox answers 401 ACCESS_TOKEN_EXPIRED, and AuthorizedSession refreshes and retries
    assert expired.status_code == 401
    assert reasons(expired) == ["ACCESS_TOKEN_EXPIRED"]
    assert response.status_code == 200
    assert google.credentials.token != first_token
    assert transport.calls.count("/token") == 2  # type: ignore[attr-defined]


def test_default_auth_request_refreshes_through_its_own_session(app: App) -> None:
    # Given an AuthorizedSession built without auth_request: google-auth refreshes through a
    # requests.Session of its own, which has no sandbox mounted until we mount it there too
    session = AuthorizedSession(credentials(app))
    mount_sandbox(session, BASE, app)
    assert session._auth_request_session is not None
    mount_sandbox(session._auth_request_session, BASE, app)
    # When it calls the API
    response = session.get(CONNECTIONS, params={"personFields": "names"})
    # Then the refresh went through that private session and the call succeeded
    assert response.status_code == 200
    assert session.credentials.valid


def test_revoked_grant_cannot_refresh(app: App, transport: requests.Session) -> None:
    # Given the user revoked the app's access
    config = app.client_config()
    assert (
        transport.post(BASE + "revoke", params={"token": config["refresh_token"]}).status_code
        == 200
    )
    session = authorized(app, transport)
    # When the client refreshes
    with pytest.raises(RefreshError) as failure:
        list_page(session)
    # Then Google says the grant is gone
    assert "invalid_grant: Token has been expired or revoked." in str(failure.value)


def test_read_only_scope_cannot_write(app: App, transport: requests.Session) -> None:
    # Given a client that asked only for contacts.readonly
    session = authorized(app, transport, scopes=[READONLY_SCOPE])
    assert list_page(session).status_code == 200
    # When it tries to create a contact
    response = session.post(BASE + "v1/people:createContact", json=a_person())
    # Then 403 PERMISSION_DENIED with ACCESS_TOKEN_SCOPE_INSUFFICIENT
    assert response.status_code == 403
    assert error_of(response)["status"] == "PERMISSION_DENIED"
    assert reasons(response) == ["ACCESS_TOKEN_SCOPE_INSUFFICIENT"]


# ---- people.connections.list ---------------------------------------------------------------------


def test_person_fields_is_required_and_validated(google: AuthorizedSession) -> None:
    # When the mask is missing, or names a field that does not exist
    missing = google.get(CONNECTIONS)
    wrong = google.get(CONNECTIONS, params={"personFields": "names,nope"})
    etag = google.get(CONNECTIONS, params={"personFields": "etag"})
    # Then 400 INVALID_ARGUMENT with Google's messages
    assert missing.status_code == 400
    assert error_of(missing)["status"] == "INVALID_ARGUMENT"
    assert error_of(missing)["message"].startswith("personFields mask is required.")
    assert wrong.status_code == 400
    assert error_of(wrong)["message"].startswith('Invalid personFields mask path: "nope".')
    assert etag.status_code == 400  # etag always comes back, but is not a mask path


def test_only_requested_fields_are_returned(google: AuthorizedSession) -> None:
    # Given a contact with names, emails and phones
    create(google)
    # When listed with personFields=names
    body = list_page(google, personFields="names").json()
    # Then each person has its resource name, etag and names only
    assert set(body["connections"][0]) == {"resourceName", "etag", "names"}


@pytest.mark.parametrize(("size", "expected"), [(None, 100), (0, 100), (1, 1), (1000, 150)])
def test_page_size_defaults_to_100_and_allows_1_to_1000(
    transport: requests.Session, google: AuthorizedSession, size: int | None, expected: int
) -> None:
    # Given 150 contacts
    seed(transport, 150)
    # When the first page is asked for
    params = {} if size is None else {"pageSize": size}
    body = list_page(google, **params).json()
    # Then its size is the requested one (0 or absent: 100)
    assert len(body["connections"]) == expected
    assert body["totalItems"] == body["totalPeople"] == 150


@pytest.mark.parametrize("size", [1001, -1, "ten"])
def test_page_size_out_of_bounds_is_invalid_argument(
    google: AuthorizedSession, size: object
) -> None:
    response = list_page(google, pageSize=size)
    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


def test_paging_returns_every_contact_once_and_the_sync_token_only_on_the_last_page(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given 250 contacts
    created = seed(transport, 250)
    # When a full sync pages through them 100 at a time
    people, sync_token, pages = full_sync(google, page_size=100)
    # Then three pages, each contact once, nextSyncToken on the last page only
    assert [len(p["connections"]) for p in pages] == [100, 100, 50]
    assert sorted(p["resourceName"] for p in people) == sorted(created)
    assert ["nextPageToken" in p for p in pages] == [True, True, False]
    assert ["nextSyncToken" in p for p in pages] == [False, False, True]
    assert sync_token


def test_no_sync_token_unless_requested(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    seed(transport, 3)
    body = list_page(google).json()
    assert "nextSyncToken" not in body
    assert len(body["connections"]) == 3


def test_page_token_with_other_parameters_is_rejected(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given the first page of a listing
    seed(transport, 30)
    first = list_page(google, pageSize=10).json()
    # When the next page is asked for with another personFields, or another pageSize
    other_fields = list_page(
        google, pageSize=10, pageToken=first["nextPageToken"], personFields="names"
    )
    other_size = list_page(google, pageSize=20, pageToken=first["nextPageToken"])
    forged = list_page(google, pageSize=10, pageToken=first["nextPageToken"][:-2] + "xx")
    same = list_page(google, pageSize=10, pageToken=first["nextPageToken"])
    # Then the mismatches are 400 INVALID_ARGUMENT and the faithful call succeeds
    for response in (other_fields, other_size, forged):
        assert response.status_code == 400
        assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert same.status_code == 200


def test_unknown_query_parameter_is_rejected(google: AuthorizedSession) -> None:
    response = google.get(CONNECTIONS, params={"personFields": "names", "personsFields": "names"})
    assert response.status_code == 400
    assert (
        'Unknown name "personsFields": Cannot bind query parameter.'
        in error_of(response)["message"]
    )


def test_sort_orders(google: AuthorizedSession) -> None:
    # Given three contacts created in this order
    for given, family in (("Chloé", "Zuber"), ("Ana-María", "Núñez"), ("Björn", "Abel")):
        create(google, a_person(given, family))

    def order(sort: str) -> list[str]:
        body = list_page(google, personFields="names", sortOrder=sort).json()
        return [p["names"][0]["givenName"] for p in body["connections"]]

    # Then each sort order is honoured
    assert order("LAST_MODIFIED_ASCENDING") == ["Chloé", "Ana-María", "Björn"]
    assert order("LAST_MODIFIED_DESCENDING") == ["Björn", "Ana-María", "Chloé"]
    assert order("FIRST_NAME_ASCENDING") == ["Ana-María", "Björn", "Chloé"]
    assert order("LAST_NAME_ASCENDING") == ["Björn", "Ana-María", "Chloé"]
    bad = list_page(google, sortOrder="NEWEST")
    assert bad.status_code == 400


def test_lists_cap_emails_and_phones_at_100_but_get_does_not(google: AuthorizedSession) -> None:
    # Given a contact with 120 email addresses
    emails = [{"value": f"alias{i}@example.org"} for i in range(120)]
    created = create(google, a_person(emailAddresses=emails))
    # When listed and when read alone
    listed = list_page(google, personFields="emailAddresses").json()["connections"][0]
    alone = google.get(
        BASE + "v1/" + created["resourceName"], params={"personFields": "emailAddresses"}
    ).json()
    # Then the list carries 100, the get all 120
    assert len(listed["emailAddresses"]) == 100
    assert len(alone["emailAddresses"]) == 120


# ---- the Person resource ------------------------------------------------------------------------


def test_created_contact_has_googles_shape(google: AuthorizedSession) -> None:
    # When a contact is created
    body = a_person(
        organizations=[
            {"name": "Müller & Söhne KG", "title": "Einkaufsleiter", "department": "Procurement"}
        ],
        addresses=[
            {
                "streetAddress": "Friedrichstraße 43",
                "city": "Berlin",
                "postalCode": "10115",
                "countryCode": "DE",
            }
        ],
        biographies=[{"value": "Met at SaaStr"}],
        userDefined=[{"key": "crm", "value": "0031"}],
    )
    person = create(
        google,
        body,
        fields="names,emailAddresses,phoneNumbers,organizations,addresses,biographies,memberships,metadata,userDefined",
    )
    # Then it carries Google's identifiers, metadata and computed fields
    assert re.fullmatch(r"people/c\d{19}", person["resourceName"])
    assert person["etag"].startswith("%Eg")
    source = person["metadata"]["sources"][0]
    assert source["type"] == "CONTACT"
    assert int(source["id"], 16) == int(person["resourceName"][len("people/c") :])
    assert source["etag"].startswith("#")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", source["updateTime"])
    name = person["names"][0]
    assert name["displayName"] == "Zoë Åkesson"
    assert name["displayNameLastFirst"] == "Åkesson, Zoë"
    assert name["metadata"]["primary"] is True
    assert name["metadata"]["source"] == {"type": "CONTACT", "id": source["id"]}
    assert person["emailAddresses"][0]["formattedType"] == "Work"
    assert person["phoneNumbers"][0]["canonicalForm"] == "+12125550142"
    assert person["phoneNumbers"][0]["formattedType"] == "Mobile"
    assert person["addresses"][0]["country"] == "Germany"
    assert person["addresses"][0]["formattedValue"] == "Friedrichstraße 43\nBerlin 10115\nGermany"
    assert person["biographies"][0]["contentType"] == "TEXT_PLAIN"
    assert person["organizations"][0]["department"] == "Procurement"
    assert person["userDefined"] == [
        {
            "metadata": {
                "primary": True,
                "sourcePrimary": True,
                "source": {"type": "CONTACT", "id": source["id"]},
            },
            "key": "crm",
            "value": "0031",
        }
    ]
    assert person["memberships"][0]["contactGroupMembership"] == {
        "contactGroupId": "myContacts",
        "contactGroupResourceName": "contactGroups/myContacts",
    }


def test_unparseable_phone_has_no_canonical_form(google: AuthorizedSession) -> None:
    person = create(google, a_person(phoneNumbers=[{"value": "ask reception"}]))
    assert "canonicalForm" not in person["phoneNumbers"][0]


def test_unknown_field_and_second_name_are_rejected(google: AuthorizedSession) -> None:
    unknown = google.post(BASE + "v1/people:createContact", json={**a_person(), "nickname": "Zo"})
    two_names = google.post(
        BASE + "v1/people:createContact",
        json=a_person(names=[{"givenName": "A"}, {"givenName": "B"}]),
    )
    assert unknown.status_code == 400
    assert (
        error_of(unknown)["message"] == 'Invalid JSON payload received. Unknown name "nickname" at '
        "'person': Cannot find field."
    )
    assert two_names.status_code == 400
    assert error_of(two_names)["status"] == "INVALID_ARGUMENT"


def test_get_unknown_contact_is_not_found(google: AuthorizedSession) -> None:
    response = google.get(BASE + "v1/people/c1234567890123456789", params={"personFields": "names"})
    assert response.status_code == 404
    assert error_of(response) == {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
    }


def test_people_me_is_the_users_profile(google: AuthorizedSession) -> None:
    me = google.get(BASE + "v1/people/me", params={"personFields": "names,emailAddresses"}).json()
    assert me["emailAddresses"][0]["value"] == "rep@example.com"
    assert me["resourceName"].startswith("people/")
    assert not me["resourceName"].startswith("people/c")


# ---- writes ------------------------------------------------------------------------------------


def update(
    google: AuthorizedSession, person: dict[str, Any], fields: str, body: dict[str, Any]
) -> requests.Response:
    return google.patch(
        BASE + "v1/" + person["resourceName"] + ":updateContact",
        params={"updatePersonFields": fields, "personFields": SYNC_FIELDS},
        json=body,
    )


def test_update_with_a_stale_etag_is_rejected(google: AuthorizedSession) -> None:
    # Given a contact that changed after we read it
    person = create(google)
    first = update(
        google, person, "names", {"etag": person["etag"], "names": [{"givenName": "Zoe"}]}
    )
    assert first.status_code == 200
    assert first.json()["etag"] != person["etag"]
    # When we write with the etag we read before
    stale = update(
        google, person, "names", {"etag": person["etag"], "names": [{"givenName": "Zoey"}]}
    )
    # Then 400 FAILED_PRECONDITION, in Google's words
    assert stale.status_code == 400
    assert error_of(stale)["status"] == "FAILED_PRECONDITION"
    assert error_of(stale)["message"] == (
        "Request person.etag is different than the current person.etag. "
        "Clear local cache and get the latest person."
    )
    assert error_of(stale)["errors"][0]["reason"] == "failedPrecondition"


def test_update_needs_an_etag_and_an_update_mask(google: AuthorizedSession) -> None:
    person = create(google)
    no_etag = update(google, person, "names", {"names": [{"givenName": "Zoe"}]})
    no_mask = google.patch(
        BASE + "v1/" + person["resourceName"] + ":updateContact", json={"etag": person["etag"]}
    )
    photo = update(google, person, "photos", {"etag": person["etag"]})
    assert no_etag.status_code == 400
    assert error_of(no_etag)["message"] == (
        "Request must set person.etag or person.metadata.sources.etag for the source that is "
        "being updated."
    )
    assert no_mask.status_code == 400
    assert error_of(no_mask)["message"].startswith("updatePersonFields mask is required.")
    assert photo.status_code == 400
    assert error_of(photo)["message"].startswith('Invalid updatePersonFields mask path: "photos".')


def test_update_replaces_listed_fields_wholesale(google: AuthorizedSession) -> None:
    # Given a contact with a name, an email and a phone
    person = create(google)
    # When emails and phones are updated, with only a new email in the body
    response = update(
        google,
        person,
        "emailAddresses,phoneNumbers",
        {"etag": person["etag"], "emailAddresses": [{"value": "zoe@new.example", "type": "home"}]},
    )
    # Then emails are replaced, phones cleared, and the unlisted name kept
    assert response.status_code == 200
    after = response.json()
    assert [e["value"] for e in after["emailAddresses"]] == ["zoe@new.example"]
    assert "phoneNumbers" not in after
    assert after["names"] == person["names"]


def test_update_accepts_the_source_etag(google: AuthorizedSession) -> None:
    person = create(google)
    body = {
        "metadata": {
            "sources": [{"type": "CONTACT", "etag": person["metadata"]["sources"][0]["etag"]}]
        },
        "names": [{"givenName": "Zed"}],
    }
    assert update(google, person, "names", body).status_code == 200
    again = update(google, person, "names", body)
    assert again.status_code == 400
    assert error_of(again)["status"] == "FAILED_PRECONDITION"


def test_delete_returns_empty_and_then_not_found(google: AuthorizedSession) -> None:
    # Given a contact
    person = create(google)
    url = BASE + "v1/" + person["resourceName"]
    # When it is deleted (twice)
    first = google.delete(url + ":deleteContact")
    second = google.delete(url + ":deleteContact")
    # Then {} and afterwards 404, and it is gone from lists
    assert first.status_code == 200
    assert first.json() == {}
    assert second.status_code == 404
    assert error_of(second)["message"] == "Requested entity was not found."
    assert google.get(url, params={"personFields": "names"}).status_code == 404
    assert "connections" not in list_page(google).json()


# ---- batches ------------------------------------------------------------------------------------


def test_batch_create_and_batch_update_shapes(google: AuthorizedSession) -> None:
    # When two contacts are created in a batch
    created = google.post(
        BASE + "v1/people:batchCreateContacts",
        json={
            "contacts": [
                {"contactPerson": a_person("Renée", "Dubois")},
                {"contactPerson": a_person("Søren", "Jónsson")},
            ],
            "readMask": "names",
        },
    )
    # Then each comes back as a PersonResponse
    assert created.status_code == 200
    people = created.json()["createdPeople"]
    assert [p["httpStatusCode"] for p in people] == [200, 200]
    assert [p["person"]["names"][0]["givenName"] for p in people] == ["Renée", "Søren"]
    # When both are updated in a batch
    contacts = {
        p["person"]["resourceName"]: {"etag": p["person"]["etag"], "names": [{"givenName": "X"}]}
        for p in people
    }
    updated = google.post(
        BASE + "v1/people:batchUpdateContacts",
        json={"contacts": contacts, "updateMask": "names", "readMask": "names"},
    )
    # Then updateResult maps each resource name to its new person
    assert updated.status_code == 200
    result = updated.json()["updateResult"]
    assert set(result) == set(contacts)
    assert all(
        r["httpStatusCode"] == 200 and r["person"]["names"][0]["givenName"] == "X"
        for r in result.values()
    )


def test_batch_update_is_all_or_nothing_on_a_stale_etag(google: AuthorizedSession) -> None:
    # Given two contacts, one of which we hold a stale etag for
    fresh, stale = create(google), create(google, a_person("Anaïs", "Lefèvre"))
    update(google, stale, "names", {"etag": stale["etag"], "names": [{"givenName": "Ana"}]})
    contacts = {
        fresh["resourceName"]: {"etag": fresh["etag"], "names": [{"givenName": "Changed"}]},
        stale["resourceName"]: {"etag": stale["etag"], "names": [{"givenName": "Changed"}]},
    }
    # When both are updated in one batch
    response = google.post(
        BASE + "v1/people:batchUpdateContacts",
        json={"contacts": contacts, "updateMask": "names", "readMask": "names"},
    )
    # Then the batch fails, naming the stale contact only, and the fresh one is untouched
    assert response.status_code == 400
    assert error_of(response)["status"] == "FAILED_PRECONDITION"
    [details] = error_of(response)["details"]
    assert details["@type"].endswith("BatchUpdateContactsErrorDetails")
    assert list(details["contactErrors"]) == [stale["resourceName"]]
    assert details["contactErrors"][stale["resourceName"]]["code"] == 9
    after = google.get(
        BASE + "v1/" + fresh["resourceName"], params={"personFields": "names"}
    ).json()
    assert after["etag"] == fresh["etag"]


def test_batch_limits(google: AuthorizedSession, transport: requests.Session) -> None:
    # Given more names than any batch allows
    too_many_creates = [{"contactPerson": {"names": [{"givenName": f"P{i}"}]}} for i in range(201)]
    names = seed(transport, 3)
    # When each batch method is sent one more than its limit
    create_201 = google.post(
        BASE + "v1/people:batchCreateContacts",
        json={"contacts": too_many_creates, "readMask": "names"},
    )
    update_201 = google.post(
        BASE + "v1/people:batchUpdateContacts",
        json={
            "contacts": {f"people/c{10**18 + i}": {"etag": "x"} for i in range(201)},
            "updateMask": "names",
        },
    )
    delete_501 = google.post(
        BASE + "v1/people:batchDeleteContacts", json={"resourceNames": names * 167}
    )
    get_201 = google.get(
        BASE + "v1/people:batchGet", params={"resourceNames": names * 67, "personFields": "names"}
    )
    # Then each is 400 INVALID_ARGUMENT and nothing was created
    for response in (create_201, update_201, delete_501, get_201):
        assert response.status_code == 400, response.text
        assert error_of(response)["status"] == "INVALID_ARGUMENT"
    assert list_page(google).json()["totalItems"] == 3
    # And the limits themselves are accepted
    ok = google.post(
        BASE + "v1/people:batchCreateContacts", json={"contacts": too_many_creates[:200]}
    )
    assert ok.status_code == 200
    assert ok.json() == {}  # no readMask: no post-mutate read
    assert (
        google.get(
            BASE + "v1/people:batchGet",
            params={"resourceNames": names * 66 + names[:2], "personFields": "names"},
        ).status_code
        == 200
    )


def test_batch_create_names_the_invalid_contacts_by_index(google: AuthorizedSession) -> None:
    contacts = [
        {"contactPerson": a_person()},
        {"contactPerson": {"names": [{"givenName": "A"}, {"givenName": "B"}]}},
        {"contactPerson": {"nickname": "x"}},
    ]
    response = google.post(BASE + "v1/people:batchCreateContacts", json={"contacts": contacts})
    assert response.status_code == 400
    [details] = error_of(response)["details"]
    assert details["@type"].endswith("BatchCreateContactsErrorDetails")
    assert sorted(details["contactErrors"]) == ["1", "2"]
    assert "connections" not in list_page(google).json()


def test_batch_get_reports_missing_people_per_item(google: AuthorizedSession) -> None:
    person = create(google)
    missing = "people/c1000000000000000001"
    body = google.get(
        BASE + "v1/people:batchGet",
        params={"resourceNames": [person["resourceName"], missing], "personFields": "names"},
    ).json()
    ok, gone = body["responses"]
    assert ok["httpStatusCode"] == 200
    assert ok["person"]["resourceName"] == person["resourceName"]
    assert gone == {
        "httpStatusCode": 404,
        "requestedResourceName": missing,
        "status": {"code": 5, "message": "Requested entity was not found."},
    }


def test_batch_delete(google: AuthorizedSession, transport: requests.Session) -> None:
    names = seed(transport, 5)
    unknown = google.post(
        BASE + "v1/people:batchDeleteContacts",
        json={"resourceNames": [names[0], "people/c1000000000000000001"]},
    )
    assert unknown.status_code == 404
    done = google.post(BASE + "v1/people:batchDeleteContacts", json={"resourceNames": names[:4]})
    assert done.status_code == 200
    assert done.json() == {}
    assert [p["resourceName"] for p in list_page(google).json()["connections"]] == [names[4]]


# ---- incremental sync ---------------------------------------------------------------------------


def test_incremental_sync_returns_changes_and_tombstones(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given a full sync of three contacts
    kept, changed, deleted = (
        create(google, a_person(n, "Test")) for n in ("Kept", "Changed", "Deleted")
    )
    advance(transport, 10)
    _, token, _ = full_sync(google)
    assert token
    # When one is changed, one deleted, one added, and the propagation delay passes
    update(
        google,
        changed,
        "names",
        {"etag": changed["etag"], "names": [{"givenName": "Changed again"}]},
    )
    google.delete(BASE + "v1/" + deleted["resourceName"] + ":deleteContact")
    added = create(google, a_person("Added", "Test"))
    advance(transport, 10)
    people, _ = incremental(google, token)
    # Then only those three come back, the deleted one as a tombstone
    by_name = {p["resourceName"]: p for p in people}
    assert set(by_name) == {changed["resourceName"], deleted["resourceName"], added["resourceName"]}
    assert by_name[deleted["resourceName"]]["metadata"]["deleted"] is True
    assert "names" not in by_name[deleted["resourceName"]]
    assert by_name[changed["resourceName"]]["names"][0]["givenName"] == "Changed again"
    assert "deleted" not in by_name[added["resourceName"]]["metadata"]
    # And a full listing never shows the deleted contact
    everyone, _, _ = full_sync(google)
    assert deleted["resourceName"] not in {p["resourceName"] for p in everyone}
    assert kept["resourceName"] in {p["resourceName"] for p in everyone}


def test_incremental_sync_without_changes_carries_only_the_token(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    seed(transport, 5)
    _, token, _ = full_sync(google)
    assert token
    body = list_page(google, syncToken=token).json()
    assert set(body) == {"nextSyncToken"}


def test_writes_reach_sync_only_after_the_propagation_delay(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given a one-minute propagation delay and a sync token
    quotas(transport, sync_visibility_delay_seconds=60)
    _, token, _ = full_sync(google)
    assert token
    # When a contact is created
    person = create(google)
    advance(transport, 30)
    early, token_after_early = incremental(google, token)
    advance(transport, 31)
    late, _ = incremental(google, token_after_early)
    # Then it shows in the sync after the delay, and the early token did not skip it
    assert early == []
    assert [p["resourceName"] for p in late] == [person["resourceName"]]


def test_incremental_sync_pages_and_puts_the_token_on_the_last_page(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    _, token, _ = full_sync(google)
    assert token
    seed(transport, 25)
    advance(transport, 10)
    first = list_page(google, syncToken=token, pageSize=10).json()
    assert len(first["connections"]) == 10
    assert "nextSyncToken" not in first
    second = list_page(
        google, syncToken=token, pageSize=10, pageToken=first["nextPageToken"]
    ).json()
    third = list_page(
        google, syncToken=token, pageSize=10, pageToken=second["nextPageToken"]
    ).json()
    assert len(third["connections"]) == 5
    assert "nextSyncToken" in third
    assert "nextPageToken" not in third


def test_sync_token_expires_seven_days_after_the_full_sync(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given a full sync, and incremental syncs that keep the chain going
    seed(transport, 3)
    _, token, _ = full_sync(google)
    assert token
    advance(transport, WEEK - 60)
    _, token = incremental(google, token)
    # When the week since the full sync is over
    advance(transport, 61)
    expired = list_page(google, syncToken=token)
    # Then 400 with Google's message and ErrorInfo reason EXPIRED_SYNC_TOKEN
    assert expired.status_code == 400
    assert error_of(expired) == {
        "code": 400,
        "message": (
            "Sync token is expired. Clear local cache and retry call without the sync token."
        ),
        "status": "FAILED_PRECONDITION",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "EXPIRED_SYNC_TOKEN",
                "domain": "people.googleapis.com",
            }
        ],
    }
    # And a new full sync recovers
    _, fresh, _ = full_sync(google)
    assert list_page(google, syncToken=fresh).status_code == 200


def test_sync_token_expiry_can_count_from_each_token(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    quotas(
        transport, sync_token_expiry_anchor="issued", expired_sync_token_status="INVALID_ARGUMENT"
    )
    _, token, _ = full_sync(google)
    assert token
    advance(transport, WEEK - 60)
    _, token = incremental(google, token)
    advance(transport, 61)
    assert list_page(google, syncToken=token).status_code == 200
    advance(transport, WEEK + 1)
    expired = list_page(google, syncToken=token)
    assert error_of(expired)["status"] == "INVALID_ARGUMENT"
    assert reasons(expired) == ["EXPIRED_SYNC_TOKEN"]


class CountingDict(dict[int, Any]):
    """A contact index that counts lookups, to prove a request's cost."""

    lookups = 0

    def __getitem__(self, key: int) -> Any:
        CountingDict.lookups += 1
        return super().__getitem__(key)

    def get(self, key: int, default: Any = None) -> Any:
        CountingDict.lookups += 1
        return super().get(key, default)


def test_sync_and_later_pages_cost_what_they_return(
    app: App, transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given 600 contacts, a sync token, then 3 changes
    seed(transport, 600)
    first = list_page(google, pageSize=10, requestSyncToken="true").json()
    _, token, _ = full_sync(google, page_size=1000)
    assert token
    book = app.backend.book("rep@example.com")
    people = list_page(google, pageSize=3).json()["connections"]
    for person in people:
        update(google, person, "names", {"etag": person["etag"], "names": [{"givenName": "N"}]})
    advance(transport, 10)
    book.contacts = CountingDict(book.contacts)
    # When the changes are synced, and a later page of a listing is read
    CountingDict.lookups = 0
    changes, _ = incremental(google, token)
    sync_lookups = CountingDict.lookups
    CountingDict.lookups = 0
    page = list_page(google, pageSize=10, requestSyncToken="true", pageToken=first["nextPageToken"])
    page_lookups = CountingDict.lookups
    # Then each looked at what it returned, not at all 600: the sync walks the 3 changes and the
    # one that ends the walk, then renders the 3
    assert len(changes) == 3
    assert sync_lookups == 3 + 1 + 3
    assert len(page.json()["connections"]) == 10
    assert page_lookups == 10


def test_every_sync_token_reads_back(app: App) -> None:
    # Tokens are sealed with a binary MAC: none may fail to read back, whatever its bytes
    codec = app.backend.codec
    for seq in range(3000):
        token = SyncToken(1, 0, "abc123", seq, 1_700_000_000.5 + seq)
        assert codec.read_sync_token(codec.sync_token(token)) == token
    assert codec.read_sync_token(codec.sync_token(token)[:-3]) is None


def test_sync_token_must_be_used_with_the_same_fields(google: AuthorizedSession) -> None:
    _, token, _ = full_sync(google)
    assert token
    other = list_page(google, syncToken=token, personFields="names")
    garbage = list_page(google, syncToken="EPnotatoken")
    assert other.status_code == 400
    assert error_of(other)["status"] == "INVALID_ARGUMENT"
    assert garbage.status_code == 400
    assert error_of(garbage)["status"] == "INVALID_ARGUMENT"


# ---- contact groups ------------------------------------------------------------------------------


def test_system_groups_are_listed(google: AuthorizedSession) -> None:
    body = google.get(BASE + "v1/contactGroups").json()
    groups = {g["resourceName"]: g for g in body["contactGroups"]}
    assert {"contactGroups/myContacts", "contactGroups/starred", "contactGroups/all"} <= set(groups)
    assert groups["contactGroups/myContacts"]["groupType"] == "SYSTEM_CONTACT_GROUP"
    assert groups["contactGroups/myContacts"]["formattedName"] == "My Contacts"
    assert body["totalItems"] == len(groups)
    assert "nextSyncToken" in body


def new_group(google: AuthorizedSession, name: str) -> dict[str, Any]:
    response = google.post(BASE + "v1/contactGroups", json={"contactGroup": {"name": name}})
    assert response.status_code == 200, response.text
    group: dict[str, Any] = response.json()
    return group


def test_groups_are_paged_30_at_a_time(google: AuthorizedSession) -> None:
    for i in range(30):
        new_group(google, f"Label {i:02d}")
    first = google.get(BASE + "v1/contactGroups").json()
    second = google.get(BASE + "v1/contactGroups", params={"pageToken": first["nextPageToken"]})
    assert len(first["contactGroups"]) == 30
    assert "nextSyncToken" not in first
    assert len(second.json()["contactGroups"]) == 8  # 38 groups: 8 system + 30 labels
    assert first["totalItems"] == 38
    assert "nextSyncToken" in second.json()


def test_group_names_are_unique(google: AuthorizedSession) -> None:
    group = new_group(google, "Customers")
    assert group["groupType"] == "USER_CONTACT_GROUP"
    duplicate = google.post(BASE + "v1/contactGroups", json={"contactGroup": {"name": "Customers"}})
    assert duplicate.status_code == 409
    assert error_of(duplicate)["status"] == "ALREADY_EXISTS"


def test_membership_changes_are_contact_changes(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given a contact, a label and a sync token
    person = create(google)
    group = new_group(google, "VIP")
    advance(transport, 10)
    _, token, _ = full_sync(google)
    assert token
    # When the contact is added to the label
    modify = google.post(
        BASE + "v1/" + group["resourceName"] + "/members:modify",
        json={"resourceNamesToAdd": [person["resourceName"]]},
    )
    advance(transport, 10)
    # Then the contact's etag changed, it lists the membership, and sync reports it
    assert modify.status_code == 200
    assert modify.json() == {}
    after = google.get(
        BASE + "v1/" + person["resourceName"], params={"personFields": "memberships"}
    ).json()
    assert after["etag"] != person["etag"]
    assert {
        m["contactGroupMembership"]["contactGroupResourceName"] for m in after["memberships"]
    } == {
        "contactGroups/myContacts",
        group["resourceName"],
    }
    changes, _ = incremental(google, token)
    assert [p["resourceName"] for p in changes] == [person["resourceName"]]
    fetched = google.get(BASE + "v1/" + group["resourceName"], params={"maxMembers": 10}).json()
    assert fetched["memberCount"] == 1
    assert fetched["memberResourceNames"] == [person["resourceName"]]


def test_members_modify_rules(google: AuthorizedSession) -> None:
    person = create(google)
    missing = "people/c1000000000000000001"
    # Members can be added to starred, not to other system groups
    starred = google.post(
        BASE + "v1/contactGroups/starred/members:modify",
        json={"resourceNamesToAdd": [person["resourceName"]]},
    )
    friends = google.post(
        BASE + "v1/contactGroups/friends/members:modify",
        json={"resourceNamesToAdd": [person["resourceName"]]},
    )
    assert starred.status_code == 200
    assert friends.status_code == 400
    # A contact keeps at least one membership; unknown people are reported
    google.post(
        BASE + "v1/contactGroups/myContacts/members:modify",
        json={"resourceNamesToRemove": [person["resourceName"]]},
    )
    last = google.post(
        BASE + "v1/contactGroups/starred/members:modify",
        json={"resourceNamesToRemove": [person["resourceName"], missing]},
    )
    assert last.json() == {
        "notFoundResourceNames": [missing],
        "canNotRemoveLastContactGroupResourceNames": [person["resourceName"]],
    }
    # At most 1000 names per call
    too_many = google.post(
        BASE + "v1/contactGroups/starred/members:modify",
        json={"resourceNamesToAdd": [missing] * 600, "resourceNamesToRemove": [missing] * 401},
    )
    assert too_many.status_code == 400
    assert google.post(BASE + "v1/contactGroups/nope/members:modify", json={}).status_code == 404


def test_memberships_update_needs_one_group(google: AuthorizedSession) -> None:
    person = create(google)
    response = update(google, person, "memberships", {"etag": person["etag"], "memberships": []})
    assert response.status_code == 400
    starred = update(
        google,
        person,
        "memberships",
        {
            "etag": person["etag"],
            "memberships": [
                {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}}
            ],
        },
    )
    assert starred.status_code == 200
    assert [
        m["contactGroupMembership"]["contactGroupId"] for m in starred.json()["memberships"]
    ] == ["starred"]


def test_deleted_group_shows_in_group_sync(google: AuthorizedSession) -> None:
    group = new_group(google, "Temp")
    token = google.get(BASE + "v1/contactGroups").json()["nextSyncToken"]
    assert google.delete(BASE + "v1/" + group["resourceName"]).json() == {}
    changes = google.get(BASE + "v1/contactGroups", params={"syncToken": token}).json()
    assert changes["contactGroups"][0]["metadata"]["deleted"] is True
    assert google.delete(BASE + "v1/contactGroups/myContacts").status_code == 400


# ---- quotas, throttling, faults ------------------------------------------------------------------


def test_read_quota_is_per_minute_per_user(
    transport: requests.Session, google: AuthorizedSession, app: App
) -> None:
    # Given a limit of 3 critical reads a minute
    quotas(transport, enabled=True, critical_read_requests=3, full_sync_requests=None)
    statuses = [list_page(google).status_code for _ in range(4)]
    # Then the 4th read in the minute is 429 RESOURCE_EXHAUSTED / RATE_LIMIT_EXCEEDED
    assert statuses == [200, 200, 200, 429]
    throttled = list_page(google)
    error = error_of(throttled)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"] == (
        "Quota exceeded for quota metric 'Critical read requests (Contact and Profile Reads)' "
        "and limit 'Critical read requests (Contact and Profile Reads) per minute per user' of "
        "service 'people.googleapis.com' for consumer "
        f"'project_number:{app.backend.client.project_number}'."
    )
    info = error["details"][0]
    assert info["reason"] == "RATE_LIMIT_EXCEEDED"
    assert info["metadata"]["quota_limit_value"] == "3"
    # And another user has a quota of their own; the next minute starts afresh
    assert list_page(authorized(app, transport, "manager@example.com")).status_code == 200
    advance(transport, 60)
    assert list_page(google).status_code == 200


def test_a_batch_costs_six_critical_reads_and_writes(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    quotas(transport, enabled=True, critical_write_requests=11, critical_read_requests=100)
    batch = {"contacts": [{"contactPerson": a_person()}] * 3}
    first = google.post(BASE + "v1/people:batchCreateContacts", json=batch)
    second = google.post(BASE + "v1/people:batchCreateContacts", json=batch)
    single = google.post(BASE + "v1/people:createContact", json=a_person())
    assert [first.status_code, second.status_code, single.status_code] == [200, 429, 200]
    assert "Critical write requests" in error_of(second)["message"]


def test_first_page_of_a_full_sync_draws_on_its_own_quota(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    seed(transport, 5)
    quotas(transport, enabled=True, full_sync_requests=2)
    first = list_page(google, pageSize=2)
    list_page(google, pageSize=2)
    third = list_page(google, pageSize=2)
    next_page = list_page(google, pageSize=2, pageToken=first.json()["nextPageToken"])
    assert third.status_code == 429
    assert (
        error_of(third)["details"][0]["metadata"]["quota_metric"]
        == "people.googleapis.com/full_sync_requests"
    )
    assert next_page.status_code == 200


def test_daily_contact_writes(transport: requests.Session, google: AuthorizedSession) -> None:
    quotas(
        transport,
        enabled=True,
        daily_contact_writes=4,
        critical_write_requests=None,
        critical_read_requests=None,
    )
    batch = {"contacts": [{"contactPerson": a_person()}] * 3}
    assert google.post(BASE + "v1/people:batchCreateContacts", json=batch).status_code == 200
    assert google.post(BASE + "v1/people:createContact", json=a_person()).status_code == 200
    over = google.post(BASE + "v1/people:createContact", json=a_person())
    assert over.status_code == 429
    assert (
        error_of(over)["details"][0]["metadata"]["quota_metric"]
        == "people.googleapis.com/daily_contact_writes"
    )
    advance(transport, 86_400)
    assert google.post(BASE + "v1/people:createContact", json=a_person()).status_code == 200


def test_quotas_can_be_turned_off(transport: requests.Session, google: AuthorizedSession) -> None:
    quotas(transport, enabled=True, critical_read_requests=1)
    assert [list_page(google).status_code for _ in range(2)] == [200, 429]
    quotas(transport, enabled=False)
    assert all(list_page(google).status_code == 200 for _ in range(50))


def test_bad_quota_settings_are_refused(transport: requests.Session) -> None:
    for settings in (
        {"critical_reads": 5},
        {"critical_read_requests": -1},
        {"sync_token_expiry_anchor": "never"},
        {"enabled": "yes"},
    ):
        response = transport.post(BASE + "_sandbox/faults", json={"rules": [], "quotas": settings})
        assert response.status_code == 400, settings


def test_per_user_contact_cap(transport: requests.Session, google: AuthorizedSession) -> None:
    # Given a cap of 3 contacts
    quotas(transport, max_contacts_per_user=3)
    seed(transport, 2)
    # When a batch of two would cross it, and then a single create fills it
    batch = google.post(
        BASE + "v1/people:batchCreateContacts",
        json={"contacts": [{"contactPerson": a_person()}] * 2},
    )
    single = google.post(BASE + "v1/people:createContact", json=a_person())
    over = google.post(BASE + "v1/people:createContact", json=a_person())
    # Then the batch fails whole, the single fits, the next fails
    assert batch.status_code == 400
    assert error_of(batch)["status"] == "FAILED_PRECONDITION"
    assert single.status_code == 200
    assert over.status_code == 400
    assert list_page(google).json()["totalItems"] == 3
    refused = transport.post(BASE + "_sandbox/seed", json={"count": 1})
    assert refused.status_code == 400
    assert "max_contacts_per_user" in refused.json()["error"]


def test_throttle_fault_is_googles_429(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    admin(
        transport,
        "faults",
        {"rules": [{"kind": "throttle", "path": "^/v1/people/me/connections$", "times": 1}]},
    )
    throttled = list_page(google)
    assert throttled.status_code == 429
    assert error_of(throttled)["status"] == "RESOURCE_EXHAUSTED"
    assert reasons(throttled) == ["RATE_LIMIT_EXCEEDED"]
    assert list_page(google).status_code == 200


def test_error_faults_are_rendered_as_google_does(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    admin(
        transport,
        "faults",
        {"rules": [{"kind": "error", "status": 503, "times": 1, "path": "^/v1/"}]},
    )
    unavailable = list_page(google)
    admin(
        transport,
        "faults",
        {"rules": [{"kind": "error", "status": 502, "times": 1, "path": "^/v1/"}]},
    )
    bad_gateway = list_page(google)
    assert unavailable.status_code == 503
    assert error_of(unavailable) == {
        "code": 503,
        "message": "The service is currently unavailable.",
        "status": "UNAVAILABLE",
    }
    assert bad_gateway.status_code == 502
    assert bad_gateway.headers["Content-Type"].startswith("text/html")


def test_unknown_path_is_googles_html_404(google: AuthorizedSession) -> None:
    response = google.get(BASE + "v1/people/me/contacts")
    assert response.status_code == 404
    assert "The requested URL <code>/v1/people/me/contacts</code> was not found" in response.text


# ---- users, admin, persistence -------------------------------------------------------------------


def test_each_user_has_an_address_book_of_their_own(
    app: App, transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given contacts seeded for the manager only
    seed(transport, 4, user="manager@example.com")
    manager = authorized(app, transport, "manager@example.com")
    # Then each user sees their own, and a sync token does not cross users
    assert list_page(manager).json()["totalItems"] == 4
    assert "connections" not in list_page(google).json()
    _, token, _ = full_sync(manager)
    assert token
    assert list_page(google, syncToken=token).status_code == 400


def test_seeded_people_are_realistic_and_differ_in_format_from_other_systems(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    # Given 200 generated people
    summary = admin(transport, "seed", {"count": 200, "seed": 5, "overlap": 0.3})
    assert summary["count"] == 200
    assert len(summary["created"]) == 200
    people, _, _ = full_sync(
        google,
        page_size=200,
        personFields="names,emailAddresses,phoneNumbers,organizations,memberships",
    )
    # Then names are international, phones typed in several styles, and labels used
    assert any(not p["names"][0]["givenName"].isascii() for p in people)
    values = [ph["value"] for p in people for ph in p["phoneNumbers"]]
    assert any(v.startswith("+") and " " not in v for v in values)  # E.164 as typed
    assert any(v.startswith("(") for v in values)  # US national format
    assert all(ph["canonicalForm"].startswith("+") for p in people for ph in p["phoneNumbers"])
    groups = {
        m["contactGroupMembership"]["contactGroupId"] for p in people for m in p["memberships"]
    }
    assert "myContacts" in groups
    assert len(groups) > 2
    # And people shared with other systems are written in Google's own styles: the same
    # mailboxes, but some in another case, and phones not always in E.164
    shared = [p for p in people_for("google", 200, seed=5, overlap=0.3) if p.universe_index < 10**7]
    assert shared
    canonical = {e.address for p in shared for e in p.emails}
    google_emails = {e["value"] for p in people for e in p["emailAddresses"]}
    shared_here = {e for e in google_emails if e.lower() in canonical}
    assert {e.lower() for e in shared_here} == canonical
    assert shared_here & canonical  # some as the other systems hold them
    assert shared_here - canonical  # and some in another case


def test_seed_explicit_records(transport: requests.Session, google: AuthorizedSession) -> None:
    summary = admin(
        transport, "seed", {"records": [a_person("Łukasz", "Wróbel"), a_person("Mei", "Wang")]}
    )
    assert len(summary["created"]) == 2
    got = google.get(BASE + "v1/" + summary["created"][0], params={"personFields": "names"}).json()
    assert got["names"][0]["displayName"] == "Łukasz Wróbel"
    bad = transport.post(BASE + "_sandbox/seed", json={"records": [{"nickname": "x"}]})
    assert bad.status_code == 400


def test_state_round_trips_through_json(
    app: App, transport: requests.Session, google: AuthorizedSession, tmp_path: Path
) -> None:
    # Given contacts, a deletion and a sync token
    names = seed(transport, 5)
    google.delete(BASE + "v1/" + names[0] + ":deleteContact")
    advance(transport, 10)
    before, token, _ = full_sync(google)
    assert token
    # When the state is saved and loaded into a new sandbox with the same seed
    app.save(tmp_path / "google.json")
    json.loads((tmp_path / "google.json").read_text(encoding="utf-8"))
    other = registry.create("google", seed=11)
    other.restore(tmp_path / "google.json")
    assert other.clock.now() >= app.clock.now()  # the restored clock caught up with the data
    other_transport = mount_sandbox(requests.Session(), BASE, other)
    assert isinstance(other, App)
    session = authorized(other, other_transport)
    # Then the same people, etags and sync position are there
    after, _, _ = full_sync(session)
    assert [(p["resourceName"], p["etag"]) for p in after] == [
        (p["resourceName"], p["etag"]) for p in before
    ]
    changes, _ = incremental(session, token)
    assert changes == []


def test_reset_empties_the_sandbox_and_expires_old_sync_tokens(
    transport: requests.Session, google: AuthorizedSession
) -> None:
    seed(transport, 3)
    _, token, _ = full_sync(google)
    assert token
    admin(transport, "reset")
    assert "connections" not in list_page(google).json()
    expired = list_page(google, syncToken=token)
    assert expired.status_code == 400
    assert reasons(expired) == ["EXPIRED_SYNC_TOKEN"]


def test_client_config(app: App) -> None:
    config = app.client_config()
    assert config["api_base"] == BASE
    assert config["token_uri"] == BASE + "token"
    assert config["admin"] == BASE + "_sandbox/"
    assert config["user"] == "rep@example.com"
    assert config["users"]["rep@example.com"] == config["refresh_token"]
    assert config["client_id"].endswith(".apps.googleusercontent.com")
    assert config["client_secret"].startswith("GOCSPX-")
    # Stable for a seed, different for another
    assert (
        registry.create("google", seed=11).client_config()["client_secret"]
        == config["client_secret"]
    )
    assert (
        registry.create("google", seed=12).client_config()["client_secret"]
        != config["client_secret"]
    )


# ---- over real HTTPS -----------------------------------------------------------------------------


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[App, str, Path]]:
    authority = CertificateAuthority.create(tmp_path)
    sandbox = registry.create("google", seed=11)
    assert isinstance(sandbox, App)
    server = HTTPSSandboxServer(sandbox, authority, timeout_seconds=0.2).start()
    try:
        yield sandbox, server.base_url, authority.ca_path
    finally:
        server.stop()


def test_full_and_incremental_sync_over_https(
    https_app: tuple[App, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sandbox on 127.0.0.1 behind a throw-away CA, trusted through REQUESTS_CA_BUNDLE
    # (which requests reads for every session, google-auth's private refresh session included)
    sandbox, base, ca = https_app
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    config = sandbox.client_config()
    assert config["token_uri"] == base + "token"
    session = AuthorizedSession(
        Credentials(
            token=None,
            refresh_token=config["refresh_token"],
            token_uri=config["token_uri"],
            client_id=config["client_id"],
            client_secret=config["client_secret"],
        )
    )
    sandbox.seed({"count": 30, "seed": 1})
    # When the real client does a paged full sync with its default auth_request
    people: list[dict[str, Any]] = []
    params: dict[str, Any] = {"personFields": "names", "pageSize": 20, "requestSyncToken": "true"}
    while True:
        body = session.get(
            config["api_base"] + "v1/people/me/connections", params=params, timeout=10
        ).json()
        people += body["connections"]
        if "nextPageToken" not in body:
            break
        params["pageToken"] = body["nextPageToken"]
    # Then every contact arrives and the sync token works
    assert len(people) == 30
    changes = session.get(
        config["api_base"] + "v1/people/me/connections",
        params={"personFields": "names", "syncToken": body["nextSyncToken"]},
        timeout=10,
    )
    assert changes.status_code == 200
    assert set(changes.json()) == {"nextSyncToken"}
    # And a connector that pins the CA itself (trust_env off, so that REQUESTS_CA_BUNDLE cannot
    # override verify) passes an auth_request built on its own session
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    pinned = requests.Session()
    pinned.trust_env = False
    pinned.verify = str(ca)
    explicit = AuthorizedSession(
        credentials(sandbox, "manager@example.com"), auth_request=GoogleAuthRequest(pinned)
    )
    explicit.trust_env = False
    explicit.verify = str(ca)
    me = explicit.get(
        config["api_base"] + "v1/people/me", params={"personFields": "emailAddresses"}
    )
    assert me.json()["emailAddresses"][0]["value"] == "manager@example.com"
    # And a session that does not trust the CA is refused
    untrusting = requests.Session()
    untrusting.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.post(config["token_uri"], timeout=5)


@pytest.mark.slow
def test_a_full_sync_of_25000_contacts(
    app: App, transport: requests.Session, google: AuthorizedSession
) -> None:
    quotas(transport, max_contacts_per_user=None)
    seed(transport, 25_000)
    people, token, pages = full_sync(google, page_size=1000)
    assert len(people) == 25_000
    assert len(pages) == 25
    assert token
