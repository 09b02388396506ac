"""The Google connector against the Google People sandbox, in-process, on the virtual clock,
through google-auth's AuthorizedSession (unpatched).

The conformance suite first, then what is Google's own: sync tokens (cursor only on the last
page, tombstones, expiry matched by ErrorInfo reason), batches that fail whole, etag conflicts
resolved by re-reading, the sync label, the hub id in clientData, 429s without Retry-After,
the 25,000-contact cap, token refresh and rotation, and the error table.

Each test reads Given / When / Then. Time only moves through the sandbox's virtual clock.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials
from pydantic import ValidationError
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from contactsync.connectors.base import (
    AuthError,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    InvalidRequest,
    QuotaExhausted,
    RemoteRecord,
    Throttled,
    TransientError,
    Update,
)
from contactsync.connectors.google import HUB_ID_KEY, STREAM, GoogleConnector, from_account
from contactsync.connectors.google.errors import (
    Backoff,
    BatchRejected,
    ContactLimitExceeded,
    RemoteNotFound,
    StaleEtag,
    classify,
)
from contactsync.connectors.google.models import PERSON_FIELDS_MASK
from contactsync.connectors.google.paging import SyncCursor
from contactsync.domain import ConnectedAccount, EmailAddress, PhoneNumber, PostalAddress, Provider
from contactsync.local.cli import sandbox_account
from contactsync.local.connectors import connector_factory
from contactsync.local.secrets import LocalSecretStore
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.google import App
from tests.connectors.conformance import ConnectorConformance, Harness, new_fields, read_all

BASE = "https://google.sandbox.test/"
WEEK = 7 * 86_400
MISSING = "people/c1234567890123456789"
_n = itertools.count(1)


# ---- factories --------------------------------------------------------------------------------


def a_person(**overrides: Any) -> dict[str, Any]:
    """A People API Person as a Google user has it (a new name each call)."""
    n = next(_n)
    body: dict[str, Any] = {
        "names": [{"givenName": f"Zoë{n}", "familyName": "Åkesson"}],
        "emailAddresses": [{"value": f"zoe.{n}@vance-refrigeration.com", "type": "work"}],
        "phoneNumbers": [{"value": f"(212) 555-{n % 10_000:04d}", "type": "mobile"}],
        "organizations": [{"name": "Vance Refrigeration", "title": "Buyer", "type": "work"}],
    }
    body.update(overrides)
    return body


def account(**config: str) -> ConnectedAccount:
    return ConnectedAccount(
        org_id="org-a",
        id="acc-g",
        provider=Provider.GOOGLE,
        owner_user_id="u-1",
        address="rep@example.com",
        config=config,
    )


Hook = Callable[[requests.PreparedRequest], None]


class Interceptor(BaseAdapter):
    """Wraps the in-process transport: runs ``before`` hooks (a user acting in Google at that
    moment) and ``after`` hooks (rewriting an answer) for requests whose URL contains a key."""

    def __init__(self, inner: BaseAdapter) -> None:
        super().__init__()
        self.inner = inner
        self.before: dict[str, Hook] = {}
        self.after: dict[str, Callable[[requests.Response], requests.Response]] = {}
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        self.urls.append(url)
        for key, hook in list(self.before.items()):
            if key in url:
                hook(request)
        response: requests.Response = self.inner.send(request, **kwargs)
        for key, rewrite in list(self.after.items()):
            if key in url:
                response = rewrite(response)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Env:
    """The sandbox, our connector on it (rep@example.com's account), and the same user acting
    in Google Contacts (another client of the same API, not intercepted)."""

    app: App
    clock: VirtualClock
    connector: GoogleConnector
    user: AuthorizedSession
    wire: Interceptor
    rotated: list[dict[str, str]] = field(default_factory=list)

    @property
    def admin(self) -> str:
        return BASE + "_sandbox/"

    def call_admin(self, call: str, body: dict[str, Any]) -> Any:
        response = self.user.post(self.admin + call, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def seed(self, people: list[dict[str, Any]], user: str | None = None) -> list[str]:
        body: dict[str, Any] = {"records": people}
        if user:
            body["user"] = user
        created: list[str] = self.call_admin("seed", body)["created"]
        return created

    def seed_n(self, n: int) -> list[str]:
        return self.seed([a_person() for _ in range(n)])

    def faults(self, *rules: dict[str, Any]) -> None:
        self.call_admin("faults", {"rules": list(rules)})

    def quotas(self, **quotas: Any) -> None:
        self.call_admin("faults", {"rules": [], "quotas": quotas})

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def person(self, name: str) -> dict[str, Any]:
        response = self.user.get(BASE + "v1/" + name, params={"personFields": PERSON_FIELDS_MASK})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def edit(self, name: str, **fields: Any) -> dict[str, Any]:
        """Replaces whole People API fields of a person, as the user saving it in Google."""
        current = self.person(name)
        body = {"etag": current["etag"], **fields}
        response = self.user.patch(
            BASE + "v1/" + name + ":updateContact",
            params={"updatePersonFields": ",".join(fields), "personFields": "names,metadata"},
            json=body,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def delete(self, name: str) -> None:
        response = self.user.delete(BASE + "v1/" + name + ":deleteContact")
        assert response.status_code == 200, response.text

    def create_label(self, label: str = "Salesforce") -> str:
        response = self.user.post(BASE + "v1/contactGroups", json={"contactGroup": {"name": label}})
        assert response.status_code == 200, response.text
        resource: str = response.json()["resourceName"]
        return resource

    def add_to(self, group: str, *names: str) -> None:
        response = self.user.post(
            BASE + "v1/" + group + "/members:modify", json={"resourceNamesToAdd": list(names)}
        )
        assert response.status_code == 200, response.text

    def count(self) -> int:
        return int(self.app.backend.book("rep@example.com").live)

    def rebuild(self, **config: str) -> GoogleConnector:
        self.connector = connect(self.app, self.clock, self.wire, self.rotated, **config)
        return self.connector


def secrets_of(app: App) -> dict[str, str]:
    config = app.client_config()
    return {
        "client_id": config["client_id"],
        "client_secret": config["client_secret"],
        "refresh_token": config["refresh_token"],
    }


def connect(
    app: App,
    clock: VirtualClock,
    wire: Interceptor,
    rotated: list[dict[str, str]],
    **config: str,
) -> GoogleConnector:
    transport = requests.Session()
    transport.mount(BASE, wire)
    client = app.client_config()
    settings = {"api_base": client["api_base"], "token_uri": client["token_uri"], **config}
    return from_account(
        account(**settings),
        {**secrets_of(app), **(rotated[-1] if rotated else {})},
        session=transport,
        clock=clock,
        on_secret_rotated=rotated.append,
    )


def user_session(app: App) -> AuthorizedSession:
    config = app.client_config()
    plain = mount_sandbox(requests.Session(), BASE, app)
    credentials = Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=config["refresh_token"],
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
    )
    refresher = GoogleAuthRequest(plain)
    session = AuthorizedSession(credentials, auth_request=refresher)  # type: ignore[no-untyped-call]
    return mount_sandbox(session, BASE, app)  # type: ignore[return-value]


def make_env(*, quotas: bool = False, **config: str) -> Env:
    clock = VirtualClock()
    app = App(clock, seed=11)
    if not quotas:
        app.configure_quotas({"enabled": False})
    plain = mount_sandbox(requests.Session(), BASE, app)
    wire = Interceptor(plain.get_adapter(BASE))
    rotated: list[dict[str, str]] = []
    connector = connect(app, clock, wire, rotated, **config)
    return Env(app, clock, connector, user_session(app), wire, rotated)


@pytest.fixture
def env() -> Env:
    return make_env()


def by_id(records: list[RemoteRecord]) -> dict[str, RemoteRecord]:
    return {r.remote_id: r for r in records}


def calls(env: Env, endpoint: str) -> int:
    return env.connector.stats.by_endpoint.get(endpoint, 0)


# ---- the conformance suite ----------------------------------------------------------------------


class TestGoogleConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self, env: Env) -> Harness:
        def seed(n: int) -> list[str]:
            return env.seed_n(n)

        def edit(name: str, value: str) -> None:
            organizations = env.person(name).get("organizations", [{}])
            first = {k: v for k, v in organizations[0].items() if k != "metadata"}
            env.edit(name, organizations=[{**first, "title": value}])

        return Harness(
            connector=env.connector,
            stream=STREAM,
            app=env.app,
            clock=env.clock,
            admin_session=env.user,
            admin=env.admin,
            seed=seed,
            edit=edit,
            delete=env.delete,
            throttle_rule={"kind": "throttle", "path": "/v1/people/me/connections", "times": 1},
            drop_create_rule={
                "kind": "drop_after_commit",
                "path": "/v1/people:batchCreateContacts",
                "times": 1,
            },
            cursor_expiry_seconds=WEEK,
            edit_field="title",
            extra={"missing_id": MISSING},
        )


# ---- reading ------------------------------------------------------------------------------------


def test_full_sync_pages_carry_no_cursor_until_the_last() -> None:
    # Given five people and pages of two
    env = make_env(page_size="2")
    env.seed_n(5)
    # When the connector reads from no cursor
    _records, cursor, pages = read_all(env.connector, STREAM, None)
    # Then three full-scan pages, only the last with a cursor (the sync token)
    assert [len(p.records) for p in pages] == [2, 2, 1]
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert [p.last for p in pages] == [False, False, True]
    assert all(p.full_scan for p in pages)
    assert cursor is not None
    assert SyncCursor.load(cursor).sync_token
    # and every page asked for a sync token with the same fields and size
    listed = [u for u in env.wire.urls if "people/me/connections" in u]
    assert len(listed) == 3
    assert all("requestSyncToken=true" in u and "pageSize=2" in u for u in listed)
    assert all("personFields=names%2CemailAddresses" in u for u in listed)


def test_read_is_lazy() -> None:
    # Given four people in pages of two
    env = make_env(page_size="2")
    env.seed_n(4)
    # When only the first page is taken
    pages = env.connector.read(STREAM, None)
    first = next(pages)
    # Then only one page was requested
    assert len(first.records) == 2
    assert calls(env, "people.connections.list") == 1


def test_a_person_maps_to_hub_fields(env: Env) -> None:
    # Given a person with every field we map, in the sync label, stamped by us
    label = env.create_label()
    [name] = env.seed(
        [
            {
                "names": [
                    {
                        "honorificPrefix": "Dr.",
                        "givenName": "Zoë",
                        "middleName": "Ann",
                        "familyName": "Åkesson",
                    }
                ],
                "emailAddresses": [
                    {"value": "Zoe@Example.COM", "type": "work"},
                    {"value": "not an email", "type": "home"},
                ],
                "phoneNumbers": [
                    {"value": "(212) 555-0142", "type": "mobile"},
                    {"value": "+44 20 7946 0958", "type": "work"},
                ],
                "organizations": [
                    {"name": "Dunder Mifflin", "title": "Buyer", "department": "Paper"}
                ],
                "addresses": [
                    {
                        "streetAddress": "1725 Slough Ave",
                        "city": "Scranton",
                        "region": "PA",
                        "postalCode": "18503",
                        "countryCode": "US",
                        "type": "work",
                    }
                ],
                "biographies": [{"value": "Met at the trade show", "contentType": "TEXT_PLAIN"}],
                "clientData": [{"key": HUB_ID_KEY, "value": "c-hub-42"}],
                "memberships": [
                    {"contactGroupMembership": {"contactGroupResourceName": label}},
                ],
            }
        ]
    )
    # When it is read
    [record], _, _ = read_all(env.connector, STREAM, None)
    # Then
    assert record.remote_id == name
    assert record.object_type == STREAM
    assert record.version == env.person(name)["etag"]
    assert record.marked is True
    assert record.hub_id == "c-hub-42"
    assert record.modified_at == env.clock.now()
    assert record.fields == ContactFields(
        given_name="Zoë",
        middle_name="Ann",
        family_name="Åkesson",
        emails=(EmailAddress(address="Zoe@Example.COM", label="work"),),
        phones=(
            PhoneNumber(raw="(212) 555-0142", e164="+12125550142", label="mobile"),
            PhoneNumber(raw="+44 20 7946 0958", e164="+442079460958", label="work"),
        ),
        company="Dunder Mifflin",
        title="Buyer",
        department="Paper",
        addresses=(
            PostalAddress(
                street="1725 Slough Ave",
                city="Scranton",
                region="PA",
                postal_code="18503",
                country="United States",
                label="work",
            ),
        ),
        notes="Met at the trade show",
    )


def test_an_empty_person_provides_empty_fields(env: Env) -> None:
    # Given a person with only a phone number
    env.seed([{"phoneNumbers": [{"value": "+1 212 555 0100"}]}])
    [record], _, _ = read_all(env.connector, STREAM, None)
    # Then every other field is provided, and empty (the hub sees it cleared, not unknown)
    fields = record.fields
    assert (fields.given_name, fields.company, fields.notes) == ("", "", "")
    assert fields.emails == ()
    assert fields.addresses == ()
    assert record.marked is False
    assert record.hub_id is None


def test_incremental_read_reports_a_delete_as_a_deleted_record(env: Env) -> None:
    # Given a synced person
    [name, other] = env.seed_n(2)
    _, cursor, _ = read_all(env.connector, STREAM, None)
    # When the user deletes one in Google
    env.advance(10)
    env.delete(name)
    env.advance(10)
    records, next_cursor, pages = read_all(env.connector, STREAM, cursor)
    # Then the incremental read returns it as deleted (no fields), and nothing else
    assert [(r.remote_id, r.deleted) for r in records] == [(name, True)]
    assert not any(p.full_scan for p in pages)
    assert next_cursor is not None
    assert next_cursor != cursor
    assert other not in by_id(records)


def test_own_writes_reach_incremental_syncs_a_few_seconds_later(env: Env) -> None:
    # Given a sync token, then a contact we create
    _, cursor, _ = read_all(env.connector, STREAM, None)
    [result] = env.connector.apply(
        STREAM, [Create(hub_id="c-echo", fields=new_fields(1), object_type=STREAM)]
    )
    # When reading straight away
    soon, cursor_soon, _ = read_all(env.connector, STREAM, cursor)
    # Then Google has not published it yet; five seconds later it comes back (the engine
    # recognises it by fingerprint)
    assert soon == []
    env.advance(6)
    later, _, _ = read_all(env.connector, STREAM, cursor_soon)
    assert [r.remote_id for r in later] == [result.remote_id]
    assert later[0].hub_id == "c-echo"
    assert result.record is not None
    assert later[0].fields == result.record.fields


@pytest.mark.parametrize("status", ["FAILED_PRECONDITION", "INVALID_ARGUMENT"])
def test_an_expired_sync_token_is_recognised_by_its_reason(env: Env, status: str) -> None:
    # Given a sync token, and a Google that words the expiry's status either way
    env.quotas(expired_sync_token_status=status)
    env.seed_n(1)
    _, cursor, _ = read_all(env.connector, STREAM, None)
    # When it is used eight days later
    env.advance(WEEK + 86_400)
    # Then CursorExpired (the engine then reads everything again)
    with pytest.raises(CursorExpired) as raised:
        read_all(env.connector, STREAM, cursor)
    assert raised.value.code == "expired_sync_token"


def test_a_cursor_we_cannot_read_asks_for_a_full_sync(env: Env) -> None:
    for cursor in ("not json", '{"v": 99, "sync": "x"}', '{"v": 1}'):
        with pytest.raises(CursorExpired):
            read_all(env.connector, STREAM, cursor)


def test_a_5xx_on_a_read_is_retried(env: Env) -> None:
    # Given Google failing twice
    env.seed_n(2)
    env.faults({"kind": "error", "status": 503, "path": "/v1/people/me/connections", "times": 2})
    # When reading
    records, _, _ = read_all(env.connector, STREAM, None)
    # Then the third try succeeds
    assert len(records) == 2
    assert calls(env, "people.connections.list") == 3


# ---- quotas -------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=2.0, maximum=20.0)
    assert [backoff.next() for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    backoff.reset()
    assert backoff.next() == 2.0


def test_per_minute_quota_is_waited_out_on_the_clock() -> None:
    # Given Google's real quotas, with only three reads a minute, and six pages to read
    env = make_env(quotas=True, page_size="1")
    env.seed_n(6)
    env.quotas(critical_read_requests=3)
    started = env.clock.now()
    # When reading everything
    records, cursor, _ = read_all(env.connector, STREAM, None)
    # Then the 429s (no Retry-After) were waited out by backing off on the virtual clock
    assert len(records) == 6
    assert cursor is not None
    stats = env.connector.stats
    assert stats.throttled >= 1
    assert stats.slept_seconds >= 2.0
    # six reads at three a minute need a second quota window (Google's are per minute)
    assert env.clock.now().replace(second=0) > started.replace(second=0)


def test_no_request_is_sent_before_the_backoff_expires(env: Env) -> None:
    # Given two throttled answers in a row
    env.seed_n(1)
    env.faults({"kind": "throttle", "path": "/v1/people/me/connections", "times": 2})
    sent: list[float] = []
    env.wire.before["people/me/connections"] = lambda _: sent.append(env.clock.timestamp())
    # When reading
    read_all(env.connector, STREAM, None)
    # Then the retries came 2 s and then 4 s later
    assert [b - a for a, b in itertools.pairwise(sent)] == [2.0, 4.0]


def test_a_daily_quota_stops_the_writes(env: Env) -> None:
    # Given a daily contact-write quota already spent
    env.quotas(enabled=True, daily_contact_writes=1)
    mutations = [
        Create(hub_id=f"c-day-{i}", fields=new_fields(i), object_type=STREAM) for i in range(2)
    ]
    # When creating
    results = env.connector.apply(STREAM, mutations)
    # Then each item says "quota" (the push stops this spoke until tomorrow), without waiting
    assert [r.error.kind if r.error else None for r in results] == ["quota", "quota"]
    assert env.connector.stats.throttled == 0


# ---- writes -------------------------------------------------------------------------------------


def test_a_create_is_stamped_labelled_and_returned(env: Env) -> None:
    # Given no label yet
    # When a marked contact is created
    [result] = env.connector.apply(
        STREAM, [Create(hub_id="c-hub-1", fields=new_fields(1), object_type=STREAM, marked=True)]
    )
    # Then the label was made, the person is in it and in myContacts, with our hub id
    assert result.ok
    assert result.remote_id
    stored = env.person(result.remote_id)
    groups = [
        m["contactGroupMembership"]["contactGroupResourceName"] for m in stored["memberships"]
    ]
    assert "contactGroups/myContacts" in groups
    label = env.connector.api.find_group("Salesforce")
    assert label in groups
    assert [(d["key"], d["value"]) for d in stored["clientData"]] == [(HUB_ID_KEY, "c-hub-1")]
    # and the result carries the stored record (for the link's fingerprint)
    assert result.record is not None
    assert result.record.marked is True
    assert result.record.hub_id == "c-hub-1"
    assert result.version == stored["etag"]


def test_hub_labels_become_google_types(env: Env) -> None:
    # Given hub labels spelled as other systems spell them
    fields = ContactFields(
        given_name="Kevin",
        emails=(EmailAddress(address="kevin@dundermifflin.com", label="Work"),),
        phones=(
            PhoneNumber.parse("+1 570 555 0101", "US", "Mobile"),
            PhoneNumber.parse("+1 570 555 0102", "US", "work mobile"),
            PhoneNumber.parse("+1 570 555 0103", "US", "Assistant"),
        ),
    )
    # When created in Google
    [result] = env.connector.apply(
        STREAM, [Create(hub_id="c-types", fields=fields, object_type=STREAM)]
    )
    # Then Google's own types where they match, a custom type otherwise
    stored = env.person(str(result.remote_id))
    assert [e["type"] for e in stored["emailAddresses"]] == ["work"]
    assert [p["type"] for p in stored["phoneNumbers"]] == ["mobile", "workMobile", "Assistant"]


def test_creates_go_in_batches_of_two_hundred(env: Env) -> None:
    mutations = [
        Create(hub_id=f"c-bulk-{i}", fields=new_fields(i), object_type=STREAM) for i in range(450)
    ]
    results = env.connector.apply(STREAM, mutations)
    assert all(r.ok for r in results)
    assert len({r.remote_id for r in results}) == 450
    assert calls(env, "people.batchCreateContacts") == 3
    assert env.count() == 450


def test_an_update_replaces_only_the_fields_that_changed(env: Env) -> None:
    # Given a person with details the hub does not hold
    [name] = env.seed(
        [
            a_person(
                names=[{"honorificPrefix": "Dr.", "givenName": "Jan", "familyName": "Levinson"}],
                organizations=[
                    {
                        "name": "Dunder Mifflin",
                        "title": "VP",
                        "department": "Sales",
                        "location": "NYC",
                        "type": "work",
                    }
                ],
                phoneNumbers=[{"value": "(212) 555-0142", "type": "mobile"}],
                emailAddresses=[
                    {"value": "jan@dundermifflin.com", "type": "work"},
                    {"value": "jan at home", "type": "home"},
                ],
            )
        ]
    )
    [record], _, _ = read_all(env.connector, STREAM, None)
    # When the hub changes the title, the family name, and adds a phone number
    phones = (*(record.fields.phones or ()), PhoneNumber.parse("+1 570 555 0199", "US", "work"))
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=name,
                fields=ContactFields(title="CFO", family_name="Wallace", phones=phones),
                object_type=STREAM,
                version=record.version,
            )
        ],
    )
    # Then only those changed; Google's own details (prefix, location, formatting, the email
    # the hub could not read) are as they were
    assert result.ok
    assert result.record is not None
    stored = env.person(name)
    [person_name] = stored["names"]
    assert (person_name["honorificPrefix"], person_name["givenName"]) == ("Dr.", "Jan")
    assert person_name["familyName"] == "Wallace"
    [org] = stored["organizations"]
    assert (org["name"], org["title"], org["department"], org["location"]) == (
        "Dunder Mifflin",
        "CFO",
        "Sales",
        "NYC",
    )
    assert [p["value"] for p in stored["phoneNumbers"]] == ["(212) 555-0142", "+15705550199"]
    assert [e["value"] for e in stored["emailAddresses"]] == [
        "jan@dundermifflin.com",
        "jan at home",
    ]
    assert result.record.fields.title == "CFO"


def test_an_update_that_changes_nothing_sends_nothing(env: Env) -> None:
    [name] = env.seed_n(1)
    [record], _, _ = read_all(env.connector, STREAM, None)
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=name,
                fields=record.fields.only({"given_name", "emails"}),
                object_type=STREAM,
                version=record.version,
            )
        ],
    )
    assert result.ok
    assert result.version == record.version
    assert calls(env, "people.batchUpdateContacts") == 0


def test_an_update_over_a_concurrent_edit_is_rebased(env: Env) -> None:
    # Given a person the engine last saw at some version
    [name] = env.seed_n(1)
    [record], _, _ = read_all(env.connector, STREAM, None)
    # and the user changed the company in Google since
    env.advance(2)
    organizations = env.person(name)["organizations"]
    env.edit(name, organizations=[{**organizations[0], "name": "Vance Refrigeration II"}])
    # When the hub's title change is pushed with the old version
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=name,
                fields=ContactFields(title="CFO"),
                object_type=STREAM,
                version=record.version,
            )
        ],
    )
    # Then both changes are in Google: ours replaced only our field
    assert result.ok
    [org] = env.person(name)["organizations"]
    assert (org["name"], org["title"]) == ("Vance Refrigeration II", "CFO")
    # and the result has no record: the user's company must still reach the hub, not be taken
    # for our own write
    assert result.record is None
    assert result.version == env.person(name)["etag"]


def test_a_stale_etag_in_the_batch_is_re_read_and_retried_once(env: Env) -> None:
    # Given a person the user edits just before our batch lands (after we read it)
    [name] = env.seed_n(1)
    [record], _, _ = read_all(env.connector, STREAM, None)

    def user_edits(_: requests.PreparedRequest) -> None:
        env.wire.before.pop("batchUpdateContacts")
        env.edit(name, biographies=[{"value": "Call after 4pm"}])

    env.wire.before["batchUpdateContacts"] = user_edits
    # When the hub's change is pushed
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=name,
                fields=ContactFields(title="CFO"),
                object_type=STREAM,
                version=record.version,
            )
        ],
    )
    # Then the first batch failed on the etag, the person was re-read and ours re-applied
    assert result.ok
    assert result.record is None
    assert calls(env, "people.batchUpdateContacts") == 2
    stored = env.person(name)
    assert stored["organizations"][0]["title"] == "CFO"
    assert stored["biographies"][0]["value"] == "Call after 4pm"


def test_a_person_that_keeps_changing_is_a_conflict(env: Env) -> None:
    # Given a user who edits the person before every batch of ours
    [name, other] = env.seed_n(2)
    records, _, _ = read_all(env.connector, STREAM, None)
    versions = {r.remote_id: r.version for r in records}
    edits = itertools.count()

    def user_edits(_: requests.PreparedRequest) -> None:
        env.edit(name, biographies=[{"value": f"edit {next(edits)}"}])

    env.wire.before["batchUpdateContacts"] = user_edits
    # When two updates are pushed in one batch
    results = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=n,
                fields=ContactFields(title="CFO"),
                object_type=STREAM,
                version=versions[n],
            )
            for n in (name, other)
        ],
    )
    # Then the other one went through; this one is reported as a conflict after one retry
    assert results[0].error is not None
    assert (results[0].error.kind, results[0].error.code) == ("conflict", "etag_mismatch")
    assert results[1].ok
    assert env.person(other)["organizations"][0]["title"] == "CFO"
    assert calls(env, "people.batchUpdateContacts") == 3


def test_a_person_deleted_under_a_batch_fails_alone(env: Env) -> None:
    # Given two people, one deleted by the user just before our batch
    [gone, kept] = env.seed_n(2)
    records, _, _ = read_all(env.connector, STREAM, None)
    versions = {r.remote_id: r.version for r in records}

    def user_deletes(_: requests.PreparedRequest) -> None:
        env.wire.before.pop("batchUpdateContacts")
        env.delete(gone)

    env.wire.before["batchUpdateContacts"] = user_deletes
    results = env.connector.apply(
        STREAM,
        [
            Update(remote_id=n, fields=ContactFields(title="CFO"), object_type=STREAM, version=v)
            for n, v in versions.items()
            if n in (gone, kept)
        ],
    )
    by_name = {getattr(r.mutation, "remote_id", ""): r for r in results}
    error = by_name[gone].error
    assert error is not None
    assert error.kind == "not_found"
    assert by_name[kept].ok
    assert env.person(kept)["organizations"][0]["title"] == "CFO"


def test_a_lost_update_answer_is_retried_and_recognised(env: Env) -> None:
    # Given the answer to our batch update is lost after Google applied it
    [name] = env.seed_n(1)
    [record], _, _ = read_all(env.connector, STREAM, None)
    env.faults({"kind": "drop_after_commit", "path": "/v1/people:batchUpdateContacts", "times": 1})
    # When pushing a change
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=name,
                fields=ContactFields(title="CFO"),
                object_type=STREAM,
                version=record.version,
            )
        ],
    )
    # Then the retry met our own applied write (a stale etag), re-read it and found nothing
    # left to do
    assert result.ok
    assert env.person(name)["organizations"][0]["title"] == "CFO"
    assert calls(env, "people.batchUpdateContacts") == 2  # lost, then stale: nothing to resend


def test_an_update_of_a_missing_or_malformed_name_is_not_found(env: Env) -> None:
    results = env.connector.apply(
        STREAM,
        [
            Update(remote_id=MISSING, fields=ContactFields(title="x"), object_type=STREAM),
            Update(remote_id="people/../me", fields=ContactFields(title="x"), object_type=STREAM),
        ],
    )
    assert [r.error.kind if r.error else None for r in results] == ["not_found", "not_found"]


def test_the_label_is_added_or_removed_on_update(env: Env) -> None:
    [name] = env.seed_n(1)
    env.connector.prepare()
    label = env.connector.api.find_group("Salesforce")
    [record], _, _ = read_all(env.connector, STREAM, None)
    assert record.marked is False
    [added] = env.connector.apply(
        STREAM,
        [Update(remote_id=name, fields=ContactFields(), object_type=STREAM, marked=True)],
    )
    assert added.ok
    groups = [
        m["contactGroupMembership"]["contactGroupResourceName"]
        for m in env.person(name)["memberships"]
    ]
    assert label in groups
    assert "contactGroups/myContacts" in groups
    [removed] = env.connector.apply(
        STREAM,
        [Update(remote_id=name, fields=ContactFields(), object_type=STREAM, marked=False)],
    )
    assert removed.ok
    groups = [
        m["contactGroupMembership"]["contactGroupResourceName"]
        for m in env.person(name)["memberships"]
    ]
    assert groups == ["contactGroups/myContacts"]


def test_deletes_go_in_batches_and_tolerate_the_already_gone(env: Env) -> None:
    # Given three people, one of which the user already deleted
    names = env.seed_n(3)
    env.delete(names[0])
    # When all three are deleted (one twice)
    results = env.connector.apply(
        STREAM, [Delete(remote_id=n, object_type=STREAM) for n in [*names, names[1]]]
    )
    # Then all report success and Google holds none of them
    assert all(r.ok for r in results)
    assert env.count() == 0
    assert calls(env, "people.batchDeleteContacts") == 2  # the 404, then the ones that exist


def test_the_contact_cap_fails_only_the_creates_that_do_not_fit(env: Env) -> None:
    # Given an address book three contacts short of its cap
    env.seed_n(7)
    env.quotas(max_contacts_per_user=10)
    mutations = [
        Create(hub_id=f"c-cap-{i}", fields=new_fields(i), object_type=STREAM) for i in range(5)
    ]
    # When five are created
    results = env.connector.apply(STREAM, mutations)
    # Then three fit, and the others are "invalid" with a clear code
    assert [r.ok for r in results].count(True) == 3
    errors = [r.error for r in results if r.error is not None]
    assert [(e.kind, e.code) for e in errors] == [("invalid", "contact_limit_exceeded")] * 2
    assert "25,000" in errors[0].message
    assert env.count() == 10


def test_a_create_refused_on_an_unknown_precondition_is_invalid_not_a_conflict(env: Env) -> None:
    # Given Google refusing a create with FAILED_PRECONDITION and no reason we know (its real
    # wording for a full address book is unpublished)
    def refuse(response: requests.Response) -> requests.Response:
        return _error(400, "FAILED_PRECONDITION")

    env.wire.after["batchCreateContacts"] = refuse
    [result] = env.connector.apply(
        STREAM, [Create(hub_id="c-pre", fields=new_fields(1), object_type=STREAM)]
    )
    # Then it is "invalid" (no etag goes with a create: retrying would loop)
    assert result.error is not None
    assert (result.error.kind, result.error.code) == ("invalid", "failed_precondition")


def test_a_batch_naming_bad_contacts_sends_the_others_again(env: Env) -> None:
    # Given the sync label, deleted by the user just before our batch of creates lands
    env.connector.prepare()
    label = env.connector.api.find_group("Salesforce")
    assert label is not None

    def user_deletes_label(_: requests.PreparedRequest) -> None:
        env.wire.before.pop("batchCreateContacts")
        assert env.user.delete(BASE + "v1/" + label).status_code == 200

    env.wire.before["batchCreateContacts"] = user_deletes_label
    # When a marked and an unmarked contact are created in one batch
    results = env.connector.apply(
        STREAM,
        [
            Create(hub_id="c-m", fields=new_fields(1), object_type=STREAM, marked=True),
            Create(hub_id="c-u", fields=new_fields(2), object_type=STREAM),
        ],
    )
    # Then the batch named the marked one (its group is gone); the other was sent again alone
    assert results[0].error is not None
    assert results[0].error.kind == "invalid"
    assert results[1].ok
    assert env.count() == 1
    assert calls(env, "people.batchCreateContacts") == 2
    # and the next marked create makes the label again
    [again] = env.connector.apply(
        STREAM, [Create(hub_id="c-m", fields=new_fields(1), object_type=STREAM, marked=True)]
    )
    assert again.ok
    assert again.record is not None
    assert again.record.marked is True
    assert env.connector.api.find_group("Salesforce") not in (None, label)


def test_after_a_stop_the_rest_is_not_attempted(env: Env) -> None:
    # Given Google throttling every write for good
    env.faults({"kind": "throttle", "path": "/v1/people:batch"})
    names = env.seed_n(1)
    results = env.connector.apply(
        STREAM,
        [
            Delete(remote_id=names[0], object_type=STREAM),
            Create(hub_id="c-x", fields=new_fields(1), object_type=STREAM),
        ],
    )
    # Then after the retries the delete is throttled, and the create was never sent
    assert [r.error.kind if r.error else None for r in results] == ["throttled", "throttled"]
    assert calls(env, "people.batchCreateContacts") == 0


def test_mixed_mutations_keep_their_order_in_the_results(env: Env) -> None:
    [a, b] = env.seed_n(2)
    mutations: list[Create | Update | Delete] = [
        Create(hub_id="c-1", fields=new_fields(1), object_type=STREAM),
        Delete(remote_id=a, object_type=STREAM),
        Update(remote_id=b, fields=ContactFields(title="CFO"), object_type=STREAM),
        Update(remote_id=b, fields=ContactFields(department="Sales"), object_type=STREAM),
    ]
    results = env.connector.apply(STREAM, mutations)
    assert [r.mutation for r in results] == mutations
    assert all(r.ok for r in results)
    org = env.person(b)["organizations"][0]
    assert (org["title"], org["department"]) == ("CFO", "Sales")


# ---- find_created -------------------------------------------------------------------------------


def test_find_created_finds_only_recent_stamped_people(env: Env) -> None:
    # Given an old stamped person and a new one
    env.seed([a_person(clientData=[{"key": HUB_ID_KEY, "value": "c-old"}])])
    env.advance(2 * 86_400)
    env.seed([a_person(clientData=[{"key": HUB_ID_KEY, "value": "c-new"}])])
    env.seed_n(3)
    # When looking for either
    found = env.connector.find_created(STREAM, "c-new", ContactFields())
    old = env.connector.find_created(STREAM, "c-old", ContactFields())
    missing = env.connector.find_created(STREAM, "c-none", ContactFields())
    # Then the new one is found; the old is beyond the window; one scan served all three
    assert found is not None
    assert found.hub_id == "c-new"
    assert old is None
    assert missing is None
    assert calls(env, "people.connections.list") == 1


# ---- the label ----------------------------------------------------------------------------------


def test_prepare_creates_the_label_once(env: Env) -> None:
    env.connector.prepare()
    env.connector.prepare()
    env.rebuild().prepare()
    assert calls(env, "contactGroups.create") == 0  # the rebuilt connector found it
    groups = env.user.get(BASE + "v1/contactGroups", params={"pageSize": 100}).json()
    names = [g.get("name") for g in groups["contactGroups"]]
    assert names.count("Salesforce") == 1


def test_prepare_uses_a_label_made_meanwhile(env: Env) -> None:
    # Given the user makes the label between our look-up and our create
    def user_makes_label(request: requests.PreparedRequest) -> None:
        if request.method == "POST":
            env.wire.before.pop("v1/contactGroups")
            env.create_label()

    env.wire.before["v1/contactGroups"] = user_makes_label
    # When preparing
    env.connector.prepare()
    # Then the 409 led to the user's label
    label = env.connector.api.find_group("Salesforce")
    assert label is not None
    [name] = env.seed_n(1)
    env.add_to(label, name)
    [record], _, _ = read_all(env.connector, STREAM, None)
    assert record.marked is True


def test_a_custom_label_name(env: Env) -> None:
    connector = env.rebuild(label="CRM")
    connector.prepare()
    assert connector.api.find_group("CRM") is not None
    assert connector.api.find_group("Salesforce") is None


def test_a_label_removed_in_google_is_read_as_unmarked(env: Env) -> None:
    label = env.create_label()
    [name] = env.seed_n(1)
    env.add_to(label, name)
    [record], cursor, _ = read_all(env.connector, STREAM, None)
    assert record.marked is True
    env.advance(10)
    response = env.user.post(
        BASE + "v1/" + label + "/members:modify", json={"resourceNamesToRemove": [name]}
    )
    assert response.status_code == 200
    env.advance(10)
    [changed], _, _ = read_all(env.connector, STREAM, cursor)
    assert changed.marked is False


# ---- credentials --------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed(env: Env) -> None:
    env.seed_n(1)
    read_all(env.connector, STREAM, None)
    tokens = [u for u in env.wire.urls if u.endswith("/token")]
    env.advance(2 * 3600)
    records, _, _ = read_all(env.connector, STREAM, None)
    assert len(records) == 1
    assert len([u for u in env.wire.urls if u.endswith("/token")]) == len(tokens) + 1


def test_a_revoked_grant_is_an_auth_error(env: Env) -> None:
    # Given the user revoked our access
    token = secrets_of(env.app)["refresh_token"]
    assert env.user.post(BASE + "revoke", params={"token": token}).status_code == 200
    # When reading
    with pytest.raises(AuthError) as raised:
        read_all(env.connector, STREAM, None)
    # Then the account needs reconnecting
    assert raised.value.kind == "auth"
    assert raised.value.code == "invalid_grant"


def test_a_rotated_refresh_token_is_reported() -> None:
    env = make_env()

    def rotate(response: requests.Response) -> requests.Response:
        body = json.loads(response.content)
        body["refresh_token"] = "1//rotated"
        response._content = json.dumps(body).encode()
        return response

    env.wire.after["/token"] = rotate
    env.seed_n(1)
    read_all(env.connector, STREAM, None)
    assert env.rotated == [{"refresh_token": "1//rotated"}]
    read_all(env.connector, STREAM, None)
    assert len(env.rotated) == 1  # once per new value


def test_from_account_checks_its_inputs() -> None:
    env = make_env()
    with pytest.raises(AuthError):
        from_account(account(), {"client_id": "x"})
    with pytest.raises(ValueError, match="Google"):
        from_account(account().model_copy(update={"provider": Provider.AIRCALL}), {})
    with pytest.raises(ValidationError):
        from_account(account(api_base="http://plain.example/"), secrets_of(env.app))
    connector = from_account(account(), secrets_of(env.app))
    assert connector.config.api_base == "https://people.googleapis.com/"
    assert "refresh" not in repr(connector.config)


def test_a_ca_bundle_is_trusted_for_the_api_and_the_token_endpoint(tmp_path: Any) -> None:
    env = make_env()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    connector = from_account(account(ca_bundle=str(ca)), secrets_of(env.app))
    assert connector.session.verify == str(ca)
    assert connector.session.trust_env is False


def test_the_local_runtime_connects_over_https(tmp_path: Path) -> None:
    # Given the sandbox served over HTTPS behind a throw-away CA, and an account set up the way
    # ``contactsync init`` does it (config and secrets split from sandbox.json, the CA pinned)
    authority = CertificateAuthority.create(tmp_path)
    app = App(VirtualClock(), seed=11)
    app.configure_quotas({"enabled": False})
    server = HTTPSSandboxServer(app, authority, timeout_seconds=0.2).start()
    try:
        config, credentials, address = sandbox_account(Provider.GOOGLE, app.client_config())
        config["ca_bundle"] = str(authority.ca_path)
        store = LocalSecretStore(tmp_path / "secrets.json")
        store.put("local:google", credentials)
        built = connector_factory(store, clock=app.clock)(
            account(**config).model_copy(update={"secret_ref": "local:google", "address": address})
        )
        app.seed({"count": 3, "seed": 1})
        # When the connector built by the runtime reads and writes
        records, cursor, _ = read_all(built, STREAM, None)
        [created] = built.apply(
            STREAM, [Create(hub_id="c-tls", fields=new_fields(1), object_type=STREAM)]
        )
    finally:
        server.stop()
    # Then it went through the pinned CA, token refresh included
    assert len(records) == 3
    assert cursor is not None
    assert created.ok
    assert address == "rep@example.com"


# ---- the error table ---------------------------------------------------------------------------


def _response(status: int, body: Any, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict({"Content-Type": content_type})
    response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return response


def _error(
    status: int, google: str, *details: dict[str, Any], message: str = "m"
) -> requests.Response:
    body: dict[str, Any] = {"code": status, "message": message, "status": google}
    if details:
        body["details"] = list(details)
    return _response(status, {"error": body})


def _info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "metadata": metadata,
    }


def test_the_error_table() -> None:
    backoff = Backoff()
    assert classify(_response(200, {}), backoff) is None
    per_minute = "CriticalReadRequestsPerMinutePerProjectPerUser"
    per_day = "DailyContactWritesPerDayPerProjectPerUser"
    stale = "FAILED_PRECONDITION"
    cases: list[tuple[requests.Response, type[Exception], str]] = [
        (_error(400, stale, _info("EXPIRED_SYNC_TOKEN")), CursorExpired, "expired_sync_token"),
        (
            _error(400, "INVALID_ARGUMENT", _info("EXPIRED_SYNC_TOKEN")),
            CursorExpired,
            "expired_sync_token",
        ),
        (
            _error(400, stale, _info("CONTACT_LIMIT_EXCEEDED")),
            ContactLimitExceeded,
            "contact_limit_exceeded",
        ),
        (_error(400, stale), StaleEtag, "etag_mismatch"),
        (_error(400, "INVALID_ARGUMENT"), InvalidRequest, "invalid_argument"),
        (_error(401, "UNAUTHENTICATED"), AuthError, "unauthenticated"),
        (
            _error(403, "PERMISSION_DENIED", _info("SERVICE_DISABLED")),
            AuthError,
            "permission_denied",
        ),
        (_error(404, "NOT_FOUND"), RemoteNotFound, "not_found"),
        (
            _error(429, "RESOURCE_EXHAUSTED", _info("RATE_LIMIT_EXCEEDED", quota_limit=per_minute)),
            Throttled,
            "rate_limit_exceeded",
        ),
        (
            _error(429, "RESOURCE_EXHAUSTED", _info("RATE_LIMIT_EXCEEDED", quota_limit=per_day)),
            QuotaExhausted,
            "daily_quota_exhausted",
        ),
        (_error(503, "UNAVAILABLE"), TransientError, "http_503"),
        (_response(502, "<html>502</html>", "text/html"), TransientError, "http_502"),
    ]
    for response, kind, code in cases:
        error = classify(response, backoff)
        assert isinstance(error, kind), (response.status_code, error)
        assert error.code == code


def test_errors_never_carry_google_messages_or_contact_data() -> None:
    # Given an error whose message quotes what we sent
    response = _error(
        400,
        "INVALID_ARGUMENT",
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "person.email_addresses", "description": "zoe@x"}],
        },
        message="Invalid value at 'person.email_addresses' (TYPE_STRING), \"zoe@example.com\"",
    )
    error = classify(response, Backoff())
    assert error is not None
    assert "zoe" not in str(error)
    assert "person.email_addresses" in str(error)


def test_a_failed_batch_maps_each_named_contact() -> None:
    details = {
        "@type": "type.googleapis.com/google.apps.people.v1.BatchUpdateContactsErrorDetails",
        "contactErrors": {
            "people/c1": {"code": 9, "message": "etag"},
            "people/c2": {"code": 5, "message": "gone"},
            "people/c3": {"code": 3, "message": "bad"},
            "people/c4": {"code": 9, "details": [_info("CONTACT_LIMIT_EXCEEDED")]},
        },
    }
    error = classify(_error(400, "FAILED_PRECONDITION", details), Backoff())
    assert isinstance(error, BatchRejected)
    assert {k: (v.kind, v.code) for k, v in error.items.items()} == {
        "people/c1": ("conflict", "etag_mismatch"),
        "people/c2": ("not_found", "not_found"),
        "people/c3": ("invalid", "invalid_argument"),
        "people/c4": ("invalid", "contact_limit_exceeded"),
    }


def test_a_429_backs_off_longer_each_time_in_a_row() -> None:
    backoff = Backoff(initial=2.0, maximum=64.0)
    throttled = _error(429, "RESOURCE_EXHAUSTED", _info("RATE_LIMIT_EXCEEDED"))
    waits = [classify(throttled, backoff) for _ in range(3)]
    assert [w.retry_after for w in waits if w is not None] == [2.0, 4.0, 8.0]
    classify(_response(200, {}), backoff)
    again = classify(throttled, backoff)
    assert again is not None
    assert again.retry_after == 2.0


def test_a_retry_after_google_might_send_is_a_floor() -> None:
    throttled = _error(429, "RESOURCE_EXHAUSTED", _info("RATE_LIMIT_EXCEEDED"))
    throttled.headers["Retry-After"] = "30"
    error = classify(throttled, Backoff(initial=2.0))
    assert error is not None
    assert error.retry_after == 30.0


@pytest.mark.slow
def test_a_full_address_book_under_real_quotas() -> None:
    # Given a full address book (25,000 contacts) and Google's default per-minute quotas
    env = make_env(quotas=True)
    env.call_admin("seed", {"count": 25_000, "seed": 5})
    # When it is read in full, then incrementally after one edit
    records, cursor, pages = read_all(env.connector, STREAM, None)
    name = records[0].remote_id
    env.advance(60)
    env.edit(name, biographies=[{"value": "edited"}])
    env.advance(60)
    before = env.connector.stats.requests
    changed, _, _ = read_all(env.connector, STREAM, cursor)
    # Then every contact arrived once, in 25 pages, and the incremental read cost one request
    assert len({r.remote_id for r in records}) == 25_000
    assert len(pages) == 25
    assert [r.remote_id for r in changed] == [name]
    assert env.connector.stats.requests - before == 2  # the label look-up and one page
    # and a create beyond the cap is refused with a clear code
    [refused] = env.connector.apply(
        STREAM, [Create(hub_id="c-full", fields=new_fields(1), object_type=STREAM)]
    )
    assert refused.error is not None
    assert refused.error.code == "contact_limit_exceeded"
