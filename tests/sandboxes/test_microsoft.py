"""Conformance of the Microsoft sandbox, driven by the real clients: msal for the identity
platform, plain ``requests`` for Graph (as our connector calls it).

Covers: discovery and the client-credentials, authorization-code and refresh-token grants with
AAD's errors; Graph's token validation; contacts CRUD with merge semantics, etags and Outlook's
limits; listing with $select/$filter/$top/$skip; contact folders; master categories; delta
(nextLink, deltaLink, @removed, page caps, expiry and generations, quirks); the "user moves a
contact" admin action; throttling (rate, concurrency, injected faults); seeding, state and
HTTPS. Subscriptions and $batch: tests/sandboxes/microsoft/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msal
import pytest
import requests

from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.microsoft import App
from tests.sandboxes.microsoft.helpers import (
    BASE,
    GRAPH_SCOPE,
    REP,
    Graph,
    contact_payload,
    graph,
    msal_app,
    new_app,
    query_of,
    session_for,
)

CONTACTS = f"users/{REP}/contacts"
FOLDERS = f"users/{REP}/contactFolders"
DEFAULT_DELTA = f"{FOLDERS}/contacts/contacts/delta"
TOKEN_TTL = 3599
CLOCK_SKEW = 300


@pytest.fixture
def app() -> App:
    return new_app()


@pytest.fixture
def session(app: App) -> requests.Session:
    return session_for(app)


@pytest.fixture
def api(app: App, session: requests.Session) -> Graph:
    return graph(app, session)


def _error(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"code", "message", "innerError"}
    assert set(body["innerError"]) == {"date", "request-id", "client-request-id"}
    return body


def _seed(app: App, count: int, **extra: Any) -> list[str]:
    ids: list[str] = app.seed({"count": count, "seed": 11, **extra})["ids"]
    return ids


# ---- the identity platform -------------------------------------------------------------------


def test_msal_discovers_the_tenant_and_gets_an_app_token(
    app: App, session: requests.Session
) -> None:
    # Given a fresh msal client pointed at the sandbox's authority
    client = msal_app(app, session)
    # When it asks for an app-only token
    result = client.acquire_token_for_client(scopes=GRAPH_SCOPE)
    # Then the token is a bearer token for an hour that Graph accepts
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == TOKEN_TTL
    response = Graph(session, result["access_token"]).get(CONTACTS)
    assert response.status_code == 200
    assert response.json()["value"] == []
    assert client.authority.token_endpoint.endswith(f"/{app.directory.tenant_id}/oauth2/v2.0/token")


def test_discovery_document_names_the_endpoints_msal_needs(
    session: requests.Session, app: App
) -> None:
    config = session.get(f"{BASE}example.com/v2.0/.well-known/openid-configuration").json()
    tid = app.directory.tenant_id
    assert config["issuer"] == f"{BASE}{tid}/v2.0"
    assert config["authorization_endpoint"] == f"{BASE}{tid}/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{BASE}{tid}/oauth2/v2.0/token"


def test_a_bad_client_secret_is_refused_with_aadsts7000215(
    app: App, session: requests.Session
) -> None:
    # When msal authenticates with the wrong secret
    result = msal_app(app, session, secret="not-the-secret").acquire_token_for_client(
        scopes=GRAPH_SCOPE
    )
    # Then Entra's answer comes back as msal's error result
    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert "Trace ID:" in result["error_description"]


def test_an_unknown_tenant_fails_discovery_and_the_token_endpoint(
    session: requests.Session,
) -> None:
    # When msal discovers a tenant that does not exist, it refuses the authority
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            "x", client_credential="y", authority=f"{BASE}nonexistent-tenant",
            instance_discovery=False, http_client=session,
        )  # fmt: skip
    # Then discovery answered 400 invalid_tenant, and the token endpoint answers likewise
    discovery = session.get(f"{BASE}nonexistent-tenant/v2.0/.well-known/openid-configuration")
    assert (discovery.status_code, discovery.json()["error"]) == (400, "invalid_tenant")
    assert discovery.json()["error_description"].startswith(
        "AADSTS90002: Tenant 'nonexistent-tenant' not found."
    )
    response = session.post(
        f"{BASE}nonexistent-tenant/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_codes"] == [90002]


def test_unknown_client_and_wrong_scope_are_refused(app: App, session: requests.Session) -> None:
    token_url = f"{BASE}{app.directory.tenant_id}/oauth2/v2.0/token"
    secret = app.directory.client_secret
    stranger = "00000000-0000-0000-0000-0000000000aa"
    unknown = session.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": stranger,
              "client_secret": secret, "scope": GRAPH_SCOPE[0]},
    )  # fmt: skip
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unauthorized_client")
    assert unknown.json()["error_codes"] == [700016]
    wrong_scope = session.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": app.directory.client_id,
              "client_secret": secret, "scope": "Contacts.ReadWrite"},
    )  # fmt: skip
    assert (wrong_scope.status_code, wrong_scope.json()["error"]) == (400, "invalid_scope")
    assert wrong_scope.json()["error_codes"] == [1002012]


def test_access_tokens_expire_on_the_virtual_clock(app: App, session: requests.Session) -> None:
    # Given a valid app token, cached by msal
    client = msal_app(app, session)
    api = Graph(session, client.acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"])
    assert api.get(CONTACTS).status_code == 200
    # When the clock passes its expiry (plus the 5 minutes of clock skew Graph tolerates)
    app.clock.advance(TOKEN_TTL + CLOCK_SKEW - 1)
    assert api.get(CONTACTS).status_code == 200
    app.clock.advance(2)
    expired = api.get(CONTACTS)
    # Then Graph refuses it
    assert expired.status_code == 401
    assert _error(expired)["code"] == "InvalidAuthenticationToken"
    assert _error(expired)["message"] == "Lifetime validation failed, the token is expired."
    assert "WWW-Authenticate" in expired.headers
    # And msal, whose cache runs on the wall clock, still hands out the old token until the
    # client drops it; then it fetches a new one that works
    assert client.acquire_token_for_client(scopes=GRAPH_SCOPE)["token_source"] == "cache"
    client.remove_tokens_for_client()
    fresh = client.acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert fresh["token_source"] == "identity_provider"
    assert Graph(session, fresh["access_token"]).get(CONTACTS).status_code == 200


def test_missing_and_forged_tokens_are_401(api: Graph, session: requests.Session) -> None:
    missing = session.get(f"{BASE}v1.0/{CONTACTS}")
    assert (missing.status_code, _error(missing)["message"]) == (401, "Access token is empty.")
    garbage = Graph(session, "not-a-jwt").get(CONTACTS)
    assert _error(garbage)["message"] == "CompactToken parsing failed with error code: 80049217"
    head, body, _ = api.token.split(".")
    forged = Graph(session, f"{head}.{body}.AAAA").get(CONTACTS)
    assert (forged.status_code, _error(forged)["code"]) == (401, "InvalidAuthenticationToken")


def test_me_is_refused_to_app_only_tokens(api: Graph) -> None:
    response = api.get("me/contacts")
    assert response.status_code == 400
    assert _error(response) | {"innerError": None} == {
        "code": "BadRequest",
        "message": "/me request is only valid with delegated authentication flow.",
        "innerError": None,
    }


def _delegated_login(
    app: App, session: requests.Session, login_hint: str
) -> tuple[msal.ConfidentialClientApplication, dict[str, Any]]:
    client = msal_app(app, session)
    flow = client.initiate_auth_code_flow(
        ["Contacts.ReadWrite"], redirect_uri="http://localhost:8080/callback", login_hint=login_hint
    )
    redirect = session.get(flow["auth_uri"], allow_redirects=False)
    assert redirect.status_code == 302
    auth_response = {
        k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["Location"]).query).items()
    }
    result = client.acquire_token_by_auth_code_flow(flow, auth_response)
    return client, result


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_authorization_code_flow_then_rotating_refresh_tokens(
    app: App, session: requests.Session
) -> None:
    # Given a user who signs in through msal's auth code flow (the sandbox consents at once)
    client, result = _delegated_login(app, session, "manager@example.com")
    assert result["id_token_claims"]["preferred_username"] == "manager@example.com"
    me = Graph(session, result["access_token"])
    # Then the delegated token reaches /me but not another user's mailbox
    assert me.get("me/contacts").status_code == 200
    denied = me.get(CONTACTS)
    assert (denied.status_code, _error(denied)["code"]) == (403, "ErrorAccessDenied")
    # When the refresh token is used it rotates, and the old one keeps working (as Entra does)
    first = result["refresh_token"]
    second = client.acquire_token_by_refresh_token(first, ["Contacts.ReadWrite"])
    assert second["refresh_token"] != first
    assert "access_token" in msal_app(app, session).acquire_token_by_refresh_token(
        first, ["Contacts.ReadWrite"]
    )
    # When an admin revokes the user's sessions, refreshing fails with invalid_grant
    assert (
        session.post(f"{BASE}_sandbox/revoke", json={"user": "manager@example.com"}).json()[
            "revoked"
        ]
        >= 2
    )
    revoked = msal_app(app, session).acquire_token_by_refresh_token(
        second["refresh_token"], ["Contacts.ReadWrite"]
    )
    assert revoked["error"] == "invalid_grant"
    assert revoked["error_codes"] == [50173]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_authorization_codes_are_single_use(app: App, session: requests.Session) -> None:
    client = msal_app(app, session)
    flow = client.initiate_auth_code_flow(
        ["Contacts.ReadWrite"], redirect_uri="http://localhost/cb"
    )
    location = session.get(flow["auth_uri"], allow_redirects=False).headers["Location"]
    code = query_of(location)["code"]
    form = {
        "grant_type": "authorization_code", "client_id": app.directory.client_id,
        "client_secret": app.directory.client_secret, "code": code,
        "redirect_uri": "http://localhost/cb", "code_verifier": flow["code_verifier"],
    }  # fmt: skip
    token_url = f"{BASE}{app.directory.tenant_id}/oauth2/v2.0/token"
    assert session.post(token_url, data=form).status_code == 200
    again = session.post(token_url, data=form)
    assert (again.status_code, again.json()["error_codes"]) == (400, [54005])


def test_sandbox_json_refresh_tokens_work_for_each_user(
    app: App, session: requests.Session
) -> None:
    for user in app.client_config()["users"]:
        result = msal_app(app, session).acquire_token_by_refresh_token(
            user["refresh_token"], ["Contacts.ReadWrite"]
        )
        me = Graph(session, result["access_token"]).get("me")
        assert me.json()["userPrincipalName"] == user["userPrincipalName"]


# ---- contacts --------------------------------------------------------------------------------


def test_create_returns_201_with_outlooks_shape(api: Graph, app: App) -> None:
    # When a contact is created in the default folder
    response = api.post(CONTACTS, contact_payload(givenName="Zoë", surname="Åkesson"))
    # Then Graph answers 201 with every property, read-only ones included
    assert response.status_code == 201
    contact = response.json()
    assert contact["id"].startswith("AAMkA")
    assert len(contact["id"]) > 100
    assert contact["@odata.etag"] == f'W/"{contact["changeKey"]}"'
    assert contact["displayName"] == "Zoë Åkesson"
    assert contact["parentFolderId"] == app.mailboxes[app.directory.users[0].id].default_folder_id
    assert contact["createdDateTime"] == contact["lastModifiedDateTime"]
    assert contact["createdDateTime"].endswith("Z")
    assert contact["homePhones"] == []
    assert contact["middleName"] is None
    assert contact["homeAddress"] == {}
    assert (
        api.get(f"{CONTACTS}/{contact['id']}").json()["emailAddresses"] == contact["emailAddresses"]
    )


def test_patch_merges_and_changes_the_change_key(api: Graph) -> None:
    # Given a contact
    created = api.post(CONTACTS, contact_payload()).json()
    # When only the job title is patched
    patched = api.patch(f"{CONTACTS}/{created['id']}", {"jobTitle": "VP Sales"})
    # Then everything else keeps its value and the version moves on
    assert patched.status_code == 200
    after = patched.json()
    assert after["jobTitle"] == "VP Sales"
    same = {
        k: v
        for k, v in created.items()
        if k not in ("jobTitle", "changeKey", "@odata.etag", "@odata.context")
    }
    assert {k: after[k] for k in same} == same
    assert after["changeKey"] != created["changeKey"]
    # And a whole collection is replaced, not merged
    replaced = api.patch(
        f"{CONTACTS}/{created['id']}", {"emailAddresses": [{"address": "only@x.example"}]}
    )
    assert replaced.json()["emailAddresses"] == [{"address": "only@x.example"}]


def test_a_name_patch_without_display_name_regenerates_it(api: Graph) -> None:
    created = api.post(
        CONTACTS, contact_payload(givenName="Zz", surname="Test", displayName="Zz Test (temp)")
    ).json()
    assert created["displayName"] == "Zz Test (temp)"
    regenerated = api.patch(f"{CONTACTS}/{created['id']}", {"givenName": "Qq"}).json()
    assert regenerated["displayName"] == "Qq Test"
    kept = api.patch(
        f"{CONTACTS}/{created['id']}", {"givenName": "Rr", "displayName": "Keep me"}
    ).json()
    assert kept["displayName"] == "Keep me"


def test_if_match_with_a_stale_etag_is_412(api: Graph) -> None:
    # Given a contact whose etag a client remembered before someone else changed it
    created = api.post(CONTACTS, contact_payload()).json()
    stale = created["@odata.etag"]
    api.patch(f"{CONTACTS}/{created['id']}", {"jobTitle": "Buyer"})
    # When the client writes with the stale etag
    conflict = api.patch(
        f"{CONTACTS}/{created['id']}", {"jobTitle": "CFO"}, headers={"If-Match": stale}
    )
    # Then Exchange refuses the write
    assert conflict.status_code == 412
    assert _error(conflict)["code"] == "ErrorIrresolvableConflict"
    assert api.get(f"{CONTACTS}/{created['id']}").json()["jobTitle"] == "Buyer"
    current = api.get(f"{CONTACTS}/{created['id']}").json()["@odata.etag"]
    ok = api.patch(
        f"{CONTACTS}/{created['id']}", {"jobTitle": "CFO"}, headers={"If-Match": current}
    )
    assert ok.status_code == 200
    assert (
        api.delete(f"{CONTACTS}/{created['id']}", headers={"If-Match": current}).status_code == 412
    )


def test_delete_is_204_then_404(api: Graph) -> None:
    created = api.post(CONTACTS, contact_payload()).json()
    deleted = api.delete(f"{CONTACTS}/{created['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = api.get(f"{CONTACTS}/{created['id']}")
    assert gone.status_code == 404
    assert _error(gone)["code"] == "ErrorItemNotFound"
    assert _error(gone)["message"] == "The specified object was not found in the store."
    assert api.delete(f"{CONTACTS}/{created['id']}").status_code == 404
    malformed = api.get(f"{CONTACTS}/people-c123")
    assert (malformed.status_code, _error(malformed)["code"]) == (400, "ErrorInvalidIdMalformed")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"emailAddresses": [{"address": f"a{i}@x.example"} for i in range(4)]},
            "ErrorInvalidArgument",
            "The multi value property EmailAddresses has 4 entries, that exceeds the max allowed "
            "value of 3",
        ),
        (
            {"businessPhones": ["1", "2", "3"]},
            "ErrorInvalidArgument",
            "BusinessPhones has 3 entries",
        ),
        (
            {"favouriteColour": "blue"},
            "RequestBodyRead",
            "The property 'favouriteColour' does not exist",
        ),
        ({"givenName": 42}, "RequestBodyRead", "Edm.String"),
        ({"id": "AAMkAnything"}, "ErrorInvalidPropertySet", "Set action is invalid for property."),
    ],
)
def test_invalid_contacts_are_400(
    api: Graph, body: dict[str, Any], code: str, message: str
) -> None:
    response = api.post(CONTACTS, contact_payload(**body))
    assert response.status_code == 400
    assert _error(response)["code"] == code
    assert message in _error(response)["message"]


def test_a_contact_cannot_be_moved_through_graph(api: Graph) -> None:
    created = api.post(CONTACTS, contact_payload()).json()
    other = api.post(FOLDERS, {"displayName": "Salesforce Contacts"}).json()
    patched = api.patch(f"{CONTACTS}/{created['id']}", {"parentFolderId": other["id"]})
    assert (patched.status_code, _error(patched)["code"]) == (400, "ErrorInvalidPropertySet")
    move = api.post(f"{CONTACTS}/{created['id']}/move", {"destinationId": other["id"]})
    assert move.status_code == 400
    assert _error(move)["message"] == "Resource not found for the segment 'move'."


def test_bad_json_and_unknown_users(api: Graph) -> None:
    bad = api.call(
        "POST", CONTACTS, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (bad.status_code, _error(bad)["code"]) == (400, "BadRequest")
    nobody = api.get("users/nobody@example.com/contacts")
    assert (nobody.status_code, _error(nobody)["code"]) == (404, "ErrorInvalidUser")


# ---- listing ---------------------------------------------------------------------------------


def test_list_pages_with_top_and_skip(api: Graph, app: App) -> None:
    # Given 25 contacts
    seeded = _seed(app, 25)
    # When the client follows nextLinks from a first page of 10
    first = api.get(CONTACTS, params={"$top": "10", "$select": "displayName,emailAddresses"}).json()
    assert len(first["value"]) == 10
    assert query_of(first["@odata.nextLink"])["$skip"] == "10"
    seen = [c["id"] for c in first["value"]]
    url = first["@odata.nextLink"]
    while url:
        page = api.get(url).json()
        seen += [c["id"] for c in page["value"]]
        url = page.get("@odata.nextLink")
    # Then every contact comes once, with only the selected properties
    assert sorted(seen) == sorted(seeded)
    assert set(first["value"][0]) == {"@odata.etag", "id", "displayName", "emailAddresses"}
    default = api.get(CONTACTS).json()
    assert len(default["value"]) == 10  # Graph's default page size


def test_list_limits_and_unknown_select(api: Graph) -> None:
    too_big = api.get(CONTACTS, params={"$top": "1001"})
    assert (too_big.status_code, _error(too_big)["code"]) == (400, "ErrorInvalidUrlQuery")
    unknown = api.get(CONTACTS, params={"$select": "displayName,shoeSize"})
    assert unknown.status_code == 400
    assert "shoeSize" in _error(unknown)["message"]


def test_filter_on_email_address_and_unsupported_filters(api: Graph) -> None:
    # Given two contacts
    wanted = api.post(
        CONTACTS, contact_payload(emailAddresses=[{"address": "Dwight.Schrute@DunderMifflin.com"}])
    ).json()
    api.post(CONTACTS, contact_payload())
    # When the client filters on an address (Exchange compares case-insensitively)
    query = "emailAddresses/any(a:a/address eq 'dwight.schrute@dundermifflin.com')"
    found = api.get(CONTACTS, params={"$filter": query}).json()["value"]
    # Then only that contact comes back
    assert [c["id"] for c in found] == [wanted["id"]]
    by_name = api.get(CONTACTS, params={"$filter": f"surname eq '{wanted['surname']}'"}).json()[
        "value"
    ]
    assert [c["id"] for c in by_name] == [wanted["id"]]
    unsupported = api.get(CONTACTS, params={"$filter": "contains(displayName,'Dwight')"})
    assert unsupported.status_code == 400
    assert _error(unsupported)["code"] == "ErrorInvalidUrlQueryFilter"


# ---- folders ---------------------------------------------------------------------------------


def test_contact_folders(api: Graph) -> None:
    # Given the default folder, reachable by its well-known name
    default = api.get(f"{FOLDERS}/contacts").json()
    assert default["displayName"] == "Contacts"
    # When a "Salesforce Contacts" folder is created
    created = api.post(FOLDERS, {"displayName": "Salesforce Contacts"})
    assert created.status_code == 201
    folder = created.json()
    # Then it is a child of the default folder, listed (the default folder is not) and unique
    assert folder["parentFolderId"] == default["id"]
    listed = api.get(FOLDERS).json()["value"]
    assert [f["displayName"] for f in listed] == ["Salesforce Contacts"]
    duplicate = api.post(FOLDERS, {"displayName": "salesforce contacts"})
    assert (duplicate.status_code, _error(duplicate)["code"]) == (409, "ErrorFolderExists")
    filtered = api.get(FOLDERS, params={"$filter": "displayName eq 'Salesforce Contacts'"}).json()[
        "value"
    ]
    assert [f["id"] for f in filtered] == [folder["id"]]
    # And contacts created in it are reachable through /contacts/{id} but not the default folder
    contact = api.post(f"{FOLDERS}/{folder['id']}/contacts", contact_payload()).json()
    assert contact["parentFolderId"] == folder["id"]
    assert api.get(f"{CONTACTS}/{contact['id']}").status_code == 200
    assert api.get(f"{FOLDERS}/contacts/contacts/{contact['id']}").status_code == 404
    assert api.get(CONTACTS).json()["value"] == []
    undeletable = api.delete(f"{FOLDERS}/{default['id']}")
    assert undeletable.status_code == 403


def test_deleting_a_folder_deletes_its_contacts(api: Graph) -> None:
    folder = api.post(FOLDERS, {"displayName": "Temp"}).json()
    contact = api.post(f"{FOLDERS}/{folder['id']}/contacts", contact_payload()).json()
    assert api.delete(f"{FOLDERS}/{folder['id']}").status_code == 204
    assert api.get(f"{CONTACTS}/{contact['id']}").status_code == 404
    assert api.get(f"{FOLDERS}/{folder['id']}").status_code == 404


# ---- master categories -----------------------------------------------------------------------


def test_master_categories(api: Graph) -> None:
    path = f"users/{REP}/outlook/masterCategories"
    # Given a mailbox with Outlook's six default categories
    defaults = api.get(path).json()["value"]
    assert {c["displayName"] for c in defaults} >= {"Red category", "Blue category"}
    # When the "Salesforce" category is created
    created = api.post(path, {"displayName": "Salesforce", "color": "preset7"})
    assert created.status_code == 201
    assert created.json()["color"] == "preset7"
    # Then the name is unique, colours are presets, names cannot change
    duplicate = api.post(path, {"displayName": "SALESFORCE", "color": "preset1"})
    assert duplicate.status_code == 409
    bad_colour = api.post(path, {"displayName": "Other", "color": "purple"})
    assert (bad_colour.status_code, _error(bad_colour)["code"]) == (400, "RequestBodyRead")
    rename = api.patch(f"{path}/{created.json()['id']}", {"displayName": "SF"})
    assert rename.status_code == 400
    recolour = api.patch(f"{path}/{created.json()['id']}", {"color": "none"})
    assert recolour.json()["color"] == "none"
    # And contacts carry categories by name, filterable
    tagged = api.post(CONTACTS, contact_payload(categories=["Salesforce"])).json()
    api.post(CONTACTS, contact_payload())
    found = api.get(CONTACTS, params={"$filter": "categories/any(c:c eq 'Salesforce')"}).json()[
        "value"
    ]
    assert [c["id"] for c in found] == [tagged["id"]]


# ---- delta -----------------------------------------------------------------------------------


def test_delta_follows_next_links_to_a_delta_link_then_reports_changes(
    api: Graph, app: App
) -> None:
    # Given 30 contacts
    seeded = set(_seed(app, 30))
    # When a client syncs the default folder with pages of 10
    items, delta_link, pages = api.delta_round(DEFAULT_DELTA, page_size=10)
    # Then every contact arrives (pages may repeat items) and the round ends on a deltaLink
    assert {i["id"] for i in items} == seeded
    assert pages >= 3
    assert "$deltatoken=" in delta_link
    # When one contact is created, one updated and one deleted
    ids = sorted(seeded)
    created = api.post(CONTACTS, contact_payload()).json()
    api.patch(f"{CONTACTS}/{ids[0]}", {"jobTitle": "Founder"})
    api.delete(f"{CONTACTS}/{ids[1]}")
    changes, next_link, _ = api.delta_round(delta_link)
    # Then the next round carries exactly those, the deletion as @removed
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {created["id"], ids[0], ids[1]}
    assert by_id[ids[0]]["jobTitle"] == "Founder"
    assert by_id[ids[1]] == {
        "@odata.type": "#microsoft.graph.contact",
        "id": ids[1],
        "@removed": {"reason": "deleted"},
    }
    # And a round without changes is empty
    quiet, _, _ = api.delta_round(next_link)
    assert quiet == []


def test_delta_select_is_kept_in_the_links(api: Graph, app: App) -> None:
    _seed(app, 5)
    items, _, pages = api.delta_round(f"{DEFAULT_DELTA}?$select=displayName", page_size=2)
    assert pages >= 3
    assert all(set(i) == {"@odata.type", "@odata.etag", "id", "displayName"} for i in items)
    refused = api.get(f"{DEFAULT_DELTA}?$top=5")
    assert (refused.status_code, _error(refused)["code"]) == (400, "ErrorInvalidUrlQuery")


def test_delta_pages_are_capped_at_200(api: Graph, app: App) -> None:
    _seed(app, 450)
    response = api.get(DEFAULT_DELTA, headers={"Prefer": "odata.maxpagesize=500"})
    assert response.status_code == 200
    assert len(response.json()["value"]) <= 200
    assert response.headers["Preference-Applied"] == "odata.track-changes, odata.maxpagesize=200"
    default = api.get(DEFAULT_DELTA).json()
    assert len(default["value"]) <= 10


def test_expired_and_unknown_delta_tokens_are_410(api: Graph, app: App) -> None:
    # Given a delta link and a configured token lifetime of one day
    app.configure_quotas({"delta_token_ttl_seconds": 86_400})
    _, delta_link, _ = api.delta_round(DEFAULT_DELTA)
    # When it is used after the lifetime (with a new access token)
    app.clock.advance(86_401)
    api = graph(app, api.session)
    expired = api.get(delta_link)
    # Then Graph answers 410 Gone, SyncStateNotFound: the client must resync in full
    assert expired.status_code == 410
    assert _error(expired)["code"] == "SyncStateNotFound"
    unknown = api.get(f"{DEFAULT_DELTA}?$deltatoken=bm90aGluZw")
    assert (unknown.status_code, _error(unknown)["code"]) == (410, "SyncStateNotFound")


def test_old_generations_of_a_delta_chain_are_dropped(api: Graph) -> None:
    # Given a delta link that a client saved
    _, saved, _ = api.delta_round(DEFAULT_DELTA)
    # When the chain moves on by three more generations
    link = saved
    for _ in range(3):
        _, link, _ = api.delta_round(link)
    # Then the saved link is gone, with Outlook's generation message, and the latest works
    stale = api.get(saved)
    assert stale.status_code == 410
    assert "The sync state generation is not found; generation=" in _error(stale)["message"]
    assert api.get(link).status_code == 200


def test_delta_pages_may_be_empty_and_items_may_repeat(api: Graph, app: App) -> None:
    # Given a sandbox where the quirks are frequent
    app.configure_quotas({"delta_empty_page_rate": 0.5, "delta_repeat_rate": 0.5})
    seeded = set(_seed(app, 40))
    # When a client syncs with small pages
    empty_pages, items, url = 0, [], DEFAULT_DELTA
    while True:
        body = api.get(url, headers={"Prefer": "odata.maxpagesize=5"}).json()
        empty_pages += not body["value"]
        items += [i["id"] for i in body["value"]]
        if "@odata.deltaLink" in body:
            break
        url = body["@odata.nextLink"]
    # Then some pages were empty yet carried a nextLink, items repeated, and none was lost
    assert empty_pages > 0
    assert len(items) > len(set(items))
    assert set(items) == seeded


def test_a_user_moving_a_contact_in_outlook_changes_its_id(
    api: Graph, session: requests.Session
) -> None:
    # Given a contact in the default folder and a delta link for both folders
    contact = api.post(CONTACTS, contact_payload()).json()
    folder = api.post(FOLDERS, {"displayName": "Salesforce Contacts"}).json()
    _, source_link, _ = api.delta_round(DEFAULT_DELTA)
    _, target_link, _ = api.delta_round(f"{FOLDERS}/{folder['id']}/contacts/delta")
    # When the user drags it into the other folder in Outlook
    moved = session.post(
        f"{BASE}_sandbox/move",
        json={"user": REP, "contact_id": contact["id"], "folder": "Salesforce Contacts"},
    ).json()
    # Then it has a new id; the source folder reports the old id removed, the target the new one
    assert moved["id"] != contact["id"]
    assert api.get(f"{CONTACTS}/{contact['id']}").status_code == 404
    assert api.get(f"{CONTACTS}/{moved['id']}").json()["parentFolderId"] == folder["id"]
    removed, _, _ = api.delta_round(source_link)
    assert removed == [
        {
            "@odata.type": "#microsoft.graph.contact",
            "id": contact["id"],
            "@removed": {"reason": "deleted"},
        }
    ]
    arrived, _, _ = api.delta_round(target_link)
    assert [a["id"] for a in arrived] == [moved["id"]]
    assert arrived[0]["emailAddresses"] == contact["emailAddresses"]


# ---- throttling ------------------------------------------------------------------------------


def test_the_request_rate_limit_answers_429_with_retry_after(api: Graph, app: App) -> None:
    # Given a mailbox limit of 3 requests per 10 minutes
    app.configure_quotas({"requests_per_window": 3, "window_seconds": 600})
    for _ in range(3):
        assert api.get(CONTACTS).status_code == 200
    # When a fourth request comes
    throttled = api.get(CONTACTS)
    # Then Outlook throttles it with a Retry-After in seconds
    assert throttled.status_code == 429
    assert _error(throttled)["code"] == "ApplicationThrottled"
    assert throttled.headers["Retry-After"] == "600"
    # And another mailbox is not affected
    assert api.get("users/manager@example.com/contacts").status_code == 200
    # And after waiting Retry-After (the throttled request counted too) the mailbox answers again
    app.clock.advance(601)
    assert api.get(CONTACTS).status_code == 200
    # And quotas can be switched off for benchmarks
    app.configure_quotas({"enabled": False})
    assert all(api.get(CONTACTS).status_code == 200 for _ in range(10))


def test_more_than_four_concurrent_requests_per_mailbox_are_throttled(api: Graph, app: App) -> None:
    # Given requests that take 300 ms each on the wall clock
    rules = [{"kind": "latency", "path": "/contacts", "latency_ms": 300}]
    api.session.post(f"{BASE}_sandbox/faults", json={"rules": rules})
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = api.get(CONTACTS).status_code
        with lock:
            statuses.append(status)

    # When eight of them run at once against one mailbox
    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then some are throttled for concurrency and at least four got through
    assert statuses.count(429) >= 1
    assert statuses.count(200) >= 4


def test_injected_throttle_fault_is_graphs_429(api: Graph, session: requests.Session) -> None:
    rules = [{"kind": "throttle", "path": "/contacts", "retry_after": 7, "times": 1}]
    session.post(f"{BASE}_sandbox/faults", json={"rules": rules})
    throttled = api.get(CONTACTS)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert _error(throttled)["code"] == "ApplicationThrottled"
    assert api.get(CONTACTS).status_code == 200


def test_injected_errors_on_the_token_endpoint_are_aad_shaped(
    app: App, session: requests.Session
) -> None:
    rules = [
        {"kind": "error", "path": "/oauth2/v2.0/token", "status": 503, "retry_after": 2, "times": 1}
    ]
    session.post(f"{BASE}_sandbox/faults", json={"rules": rules})
    client = msal_app(app, session)
    with pytest.raises(msal.exceptions.MsalServiceError):
        client.acquire_token_for_client(scopes=GRAPH_SCOPE)
    # msal remembers a 5xx for Retry-After seconds on the wall clock: a new client gets through
    assert "access_token" in msal_app(app, session).acquire_token_for_client(scopes=GRAPH_SCOPE)


# ---- admin: seed, state, reset -----------------------------------------------------------------


def test_seed_generates_realistic_contacts_and_accepts_explicit_records(
    app: App, session: requests.Session
) -> None:
    summary = session.post(
        f"{BASE}_sandbox/seed", json={"count": 20, "seed": 5, "overlap": 0.3}
    ).json()
    assert summary["created"] == 20
    assert len(summary["ids"]) == 20
    contacts = [app.mailboxes[app.directory.users[0].id].contacts[i].props for i in summary["ids"]]
    assert all(c["displayName"] and c["emailAddresses"] and c["businessPhones"] for c in contacts)
    assert any(not c["displayName"].isascii() for c in contacts)
    assert all(len(c["emailAddresses"]) <= 3 for c in contacts)
    explicit = session.post(
        f"{BASE}_sandbox/seed",
        json={
            "records": [contact_payload(givenName="Oscar")],
            "user": "manager@example.com",
            "folder": "Clients",
        },
    ).json()
    assert (explicit["created"], explicit["user"]) == (1, "manager@example.com")
    invalid = session.post(f"{BASE}_sandbox/seed", json={"records": [{"shoeSize": 44}]})
    assert invalid.status_code == 400


def test_state_survives_a_save_and_restore(app: App, api: Graph, tmp_path: Path) -> None:
    # Given data, a folder and a delta link
    _seed(app, 12)
    folder = api.post(FOLDERS, {"displayName": "Salesforce Contacts"}).json()
    _, delta_link, _ = api.delta_round(DEFAULT_DELTA)
    created = api.post(CONTACTS, contact_payload()).json()
    # When the sandbox is saved and a new one restored from the file
    app.save(tmp_path / "microsoft.json")
    other = new_app()
    other.restore(tmp_path / "microsoft.json")
    restored = Graph(session_for(other), api.token)
    assert other.dump_state() == app.dump_state()
    # Then the token, the data and the delta link carry on
    assert restored.get(f"{FOLDERS}/{folder['id']}").json()["displayName"] == "Salesforce Contacts"
    changes, _, _ = restored.delta_round(delta_link)
    assert [c["id"] for c in changes] == [created["id"]]


def test_reset_empties_the_mailboxes_but_keeps_the_credentials(
    app: App, api: Graph, session: requests.Session
) -> None:
    _seed(app, 3)
    assert session.post(f"{BASE}_sandbox/reset").json() == {"reset": True}
    assert api.get(CONTACTS).json()["value"] == []
    assert app.client_config()["client_secret"] == new_app().client_config()["client_secret"]


def test_client_config_is_the_sandbox_json_entry(app: App, session: requests.Session) -> None:
    config = app.client_config()
    assert config["authority"] == f"{BASE}{app.directory.tenant_id}"
    assert config["graph_base"] == f"{BASE}v1.0"
    assert config["user_id"] == REP
    assert config["admin"] == f"{BASE}_sandbox/"
    assert config["users"][0]["userPrincipalName"] == REP
    assert new_app(seed=8).client_config()["client_id"] != config["client_id"]


@pytest.mark.slow
def test_a_100000_contact_mailbox_syncs_in_200_item_pages(app: App, api: Graph) -> None:
    # Given a mailbox seeded with 100,000 generated contacts
    app.configure_quotas({"enabled": False, "delta_empty_page_rate": 0.0, "delta_repeat_rate": 0.0})
    seeded = _seed(app, 100_000)
    # When a full delta sync runs with the largest pages
    items, _, pages = api.delta_round(DEFAULT_DELTA, page_size=200)
    # Then every contact arrives once, in 500 pages
    assert pages == 500
    assert sorted(i["id"] for i in items) == sorted(seeded)


# ---- over real HTTPS -------------------------------------------------------------------------


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[App, str, Path]]:
    authority = CertificateAuthority.create(tmp_path)
    app = new_app()
    server = HTTPSSandboxServer(app, authority, timeout_seconds=0.5).start()
    try:
        yield app, server.base_url, authority.ca_path
    finally:
        server.stop()


def test_msal_and_graph_over_https(https_app: tuple[App, str, Path]) -> None:
    # Given the sandbox on 127.0.0.1 behind a throw-away CA
    app, base, ca = https_app
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = str(ca)
    config = app.client_config()
    assert config["authority"].startswith(base)
    # When msal gets a token and Graph is called with it
    client = msal.ConfidentialClientApplication(
        config["client_id"],
        client_credential=config["client_secret"],
        authority=config["authority"],
        instance_discovery=False,
        http_client=session,
    )
    token = client.acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"]
    api = Graph(session, token, base=config["graph_base"])
    created = api.post(CONTACTS, contact_payload())
    # Then it all works over TLS, links included
    assert created.status_code == 201
    items, delta_link, _ = api.delta_round(DEFAULT_DELTA)
    assert [i["id"] for i in items] == [created.json()["id"]]
    assert delta_link.startswith(base)
