"""The Microsoft Graph connector against the Microsoft sandbox, in-process, on the virtual
clock, through the real msal and requests.

The conformance suite first, then what is Outlook's own: the two folders (address book and
"Salesforce Contacts"), the category and the folder as markers, moves in and out of the folder,
delta quirks (empty pages, repeated items, @removed, expired tokens), $batch with per-item
throttling and results, PATCH merge semantics with etags and displayName, Outlook's slots and
caps, token expiry, setup and subscriptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from contactsync.connectors.base import (
    AuthError,
    ConnectorError,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    InvalidRequest,
    RemoteRecord,
    Update,
)
from contactsync.connectors.microsoft import STREAM, MicrosoftConnector, from_account
from contactsync.connectors.microsoft.delta import CursorState
from contactsync.connectors.microsoft.errors import item_error
from contactsync.connectors.microsoft.models import assign_slots, phone_properties
from contactsync.domain import ConnectedAccount, EmailAddress, PhoneNumber, PostalAddress, Provider
from contactsync.engine.canonical import snapshot
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.microsoft import App
from tests.connectors.conformance import ConnectorConformance, Harness, read_all

BASE = "https://microsoft.sandbox.test/"
HOOKS = "https://hooks.contactsync.test/"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
FOLDER = "Salesforce Contacts"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def account(**config: str) -> ConnectedAccount:
    return ConnectedAccount(
        org_id="org-a",
        id="acc-ms",
        provider=Provider.MICROSOFT,
        owner_user_id="u-1",
        address="rep@example.com",
        config=config,
    )


def contact_json(n: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "givenName": f"Renée{n}",
        "surname": "Lefèvre",
        "emailAddresses": [{"name": "Renée", "address": f"renee.{n}@sgconseil.fr"}],
        "businessPhones": [f"+33 1 42 68 {n // 100 % 100:02d} {n % 100:02d}"],
        "companyName": "Société Générale Conseil",
        "jobTitle": "Directrice commerciale",
        "categories": [],
    }
    body.update(overrides)
    return body


@dataclass
class Env:
    """The sandbox, our connector on it, and a user of the mailbox acting through Graph (with
    its own token, as Outlook would)."""

    app: App
    clock: VirtualClock
    connector: MicrosoftConnector
    session: requests.Session
    token: str
    rotated: list[dict[str, str]] = field(default_factory=list)
    sent: list[requests.PreparedRequest] = field(default_factory=list)
    _n: int = 0

    def record_requests(self) -> None:
        """Keeps every request the connector sends (to look at bodies and headers)."""

        def keep(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.sent.append(response.request)

        self.connector.session.hooks["response"].append(keep)

    def batch_items(self, method: str | None = None) -> list[dict[str, Any]]:
        items = [
            item
            for request in self.sent
            if (request.url or "").endswith("/$batch")
            for item in json.loads(request.body or b"{}")["requests"]
        ]
        return [i for i in items if method is None or i["method"] == method]

    @property
    def admin(self) -> str:
        return BASE + "_sandbox/"

    @property
    def graph(self) -> str:
        return BASE + "v1.0/users/rep@example.com"

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = path if path.startswith("https://") else f"{self.graph}/{path}"
        return self.session.request(method, url, json=body, headers=headers)

    def folder_id(self) -> str:
        return self.connector.synced_folder_id()

    def seed(self, count: int, folder: str | None = None, **overrides: Any) -> list[str]:
        records = []
        for _ in range(count):
            self._n += 1
            records.append(contact_json(self._n, **overrides))
        body: dict[str, Any] = {"records": records}
        if folder is not None:
            body["folder"] = folder
        response = self.session.post(self.admin + "seed", json=body)
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["ids"]
        return ids

    def edit(self, contact_id: str, **body: Any) -> dict[str, Any]:
        response = self.call("PATCH", f"contacts/{contact_id}", body)
        assert response.status_code == 200, response.text
        edited: dict[str, Any] = response.json()
        return edited

    def set_title(self, contact_id: str, title: str) -> None:
        self.edit(contact_id, jobTitle=title)

    def delete(self, contact_id: str) -> None:
        assert self.call("DELETE", f"contacts/{contact_id}").status_code == 204

    def move(self, contact_id: str, folder: str) -> str:
        response = self.session.post(
            self.admin + "move", json={"contact_id": contact_id, "folder": folder}
        )
        assert response.status_code == 200, response.text
        moved: str = response.json()["id"]
        return moved

    def get(self, contact_id: str) -> dict[str, Any] | None:
        response = self.call("GET", f"contacts/{contact_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def folder_contents(self, folder: str) -> list[dict[str, Any]]:
        response = self.call("GET", f"contactFolders/{folder}/contacts?$top=1000")
        assert response.status_code == 200, response.text
        value: list[dict[str, Any]] = response.json()["value"]
        return value

    def faults(self, *rules: dict[str, Any], **quotas: Any) -> None:
        body: dict[str, Any] = {"rules": list(rules)}
        if quotas:
            body["quotas"] = quotas
        response = self.session.post(self.admin + "faults", json=body)
        assert response.status_code == 200, response.text

    def rebuild(self, **config: str) -> MicrosoftConnector:
        self.connector = connect(self.app, self.clock, self.rotated, config)
        return self.connector


def connect(
    app: App,
    clock: VirtualClock,
    rotated: list[dict[str, str]],
    config: dict[str, str] | None = None,
    *,
    secrets: dict[str, str] | None = None,
) -> MicrosoftConnector:
    session = mount_sandbox(requests.Session(), BASE, app)
    sandbox = app.client_config()
    settings = {
        "authority": sandbox["authority"],
        "graph_base": sandbox["graph_base"],
        **(config or {}),
    }
    credentials = secrets or {
        "client_id": sandbox["client_id"],
        "client_secret": sandbox["client_secret"],
    }
    return from_account(
        account(**settings),
        credentials,
        session=session,
        clock=clock,
        on_secret_rotated=rotated.append,
    )


def user_token(app: App, session: requests.Session) -> str:
    import msal

    sandbox = app.client_config()
    client = msal.ConfidentialClientApplication(
        sandbox["client_id"],
        client_credential=sandbox["client_secret"],
        authority=sandbox["authority"],
        instance_discovery=False,
        http_client=session,
    )
    token: str = client.acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"]
    return token


def make_env(**config: str) -> Env:
    clock = VirtualClock(T0)
    app = App(clock, seed=7)
    # The sandbox's random empty pages and repeats stay on (they are Graph's behaviour);
    # throttling is on too (4 concurrent, 10,000 per 10 minutes).
    session = mount_sandbox(requests.Session(), BASE, app)
    rotated: list[dict[str, str]] = []
    connector = connect(app, clock, rotated, config)
    return Env(app, clock, connector, session, user_token(app, session), rotated)


@pytest.fixture
def env() -> Env:
    return make_env()


def live(records: list[RemoteRecord]) -> dict[str, RemoteRecord]:
    return {r.remote_id: r for r in records if not r.deleted}


def fields(n: int, **kw: Any) -> ContactFields:
    values: dict[str, Any] = {
        "given_name": f"Zoë{n}",
        "family_name": "Müller",
        "emails": (EmailAddress(address=f"zoe.mueller.{n}@example.com"),),
        "phones": (PhoneNumber.parse(f"+1 415 555 {1000 + n:04d}", "US", "work"),),
        "company": "Dunder Mifflin",
        "title": "Buyer",
    }
    values.update(kw)
    return ContactFields(**values)


def update_of(remote_id: str, changed: ContactFields, version: str | None = None) -> Update:
    return Update(remote_id=remote_id, fields=changed, object_type=STREAM, version=version)


# ---- the conformance suite ----------------------------------------------------------------------


class TestMicrosoftConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        env = make_env()
        gone = env.seed(1)[0]
        env.delete(gone)  # a well-formed id of a contact that no longer exists
        return Harness(
            connector=env.connector,
            stream=STREAM,
            app=env.app,
            clock=env.clock,
            admin_session=env.session,
            admin=env.admin,
            seed=env.seed,
            edit=lambda remote_id, value: env.set_title(remote_id, value),
            delete=env.delete,
            throttle_rule={
                "kind": "throttle",
                "path": "/contacts/delta$",
                "method": "GET",
                "times": 1,
                "retry_after": 7,
            },
            drop_create_rule={
                "kind": "drop_after_commit",
                "path": r"^/v1\.0/\$batch$",
                "method": "POST",
                "times": 1,
            },
            cursor_expiry_seconds=7 * 86_400,
            tombstones=True,
            edit_field="title",
            extra={"missing_id": gone},
        )


# ---- reading: two folders, delta quirks ---------------------------------------------------------


def test_a_full_read_covers_both_folders_with_their_markers(env: Env) -> None:
    # Given contacts in the address book, one of them categorised, and in the synced folder,
    # one of them without the category
    book = env.seed(2)
    env.edit(book[1], categories=["Salesforce", "Red category"])
    synced = env.seed(2, folder=FOLDER, categories=["Salesforce"])
    env.edit(synced[1], categories=["Blue category"])
    # When everything is read
    records, cursor, pages = read_all(env.connector, STREAM, None)
    # Then each contact comes once with its markers, in pages of a full scan
    by_id = live(records)
    assert set(by_id) == {*book, *synced}
    assert (by_id[book[0]].marked, by_id[book[0]].marker_repair) == (False, False)
    assert (by_id[book[1]].marked, by_id[book[1]].marker_repair) == (True, True)  # a request
    assert (by_id[synced[0]].marked, by_id[synced[0]].marker_repair) == (True, False)
    assert (by_id[synced[1]].marked, by_id[synced[1]].marker_repair) == (True, True)
    assert all(p.full_scan for p in pages)
    assert pages[-1].last
    assert all(r.hub_id is None for r in records)  # no extended properties: nothing stamped
    # and one cursor holds both folders' whole delta links
    assert cursor is not None
    state = CursorState.load(cursor)
    assert state.default.link
    assert "$deltatoken=" in state.default.link
    assert state.synced.link
    assert "$deltatoken=" in state.synced.link
    assert state.synced.folder == env.folder_id()


def test_a_full_read_maps_every_field(env: Env) -> None:
    [cid] = env.seed(
        1,
        middleName="Anne",
        emailAddresses=[
            {"name": "x", "address": "Renee@SGConseil.fr"},
            {"name": "x", "address": "not an address"},
        ],
        businessPhones=["+33 1 42 68 53 00", "+33 1 42 68 53 01"],
        mobilePhone="06 12 34 56 78",
        homePhones=["+33 1 40 00 00 00"],
        department="Sales",
        personalNotes="Met at SaaStr",
        businessAddress={"street": "12 rue de Rivoli", "city": "Paris", "state": "",
                         "countryOrRegion": "France", "postalCode": "75008"},
        homeAddress={"city": "Lyon"},
    )  # fmt: skip
    records, _, _ = read_all(make_env_connector(env, default_region="FR"), STREAM, None)
    got = live(records)[cid].fields
    assert (got.given_name, got.middle_name, got.family_name) == ("Renée1", "Anne", "Lefèvre")
    # (the domain lower-cased by validation; the junk address dropped)
    assert [e.address for e in got.emails or ()] == ["Renee@sgconseil.fr"]
    assert [(p.e164, p.label) for p in got.phones or ()] == [
        ("+33142685300", "work"),
        ("+33142685301", "work"),
        ("+33612345678", "mobile"),
        ("+33140000000", "home"),
    ]
    assert (got.company, got.title, got.department) == (
        "Société Générale Conseil",
        "Directrice commerciale",
        "Sales",
    )
    assert [(a.city, a.label) for a in got.addresses or ()] == [("Paris", "work"), ("Lyon", "home")]
    assert got.notes == "Met at SaaStr"


def make_env_connector(env: Env, **config: str) -> MicrosoftConnector:
    return env.rebuild(**config)


def test_delta_pages_with_empty_pages_and_repeats_give_each_contact_once() -> None:
    # Given a sandbox whose delta pages are often empty and often repeat an item
    env = make_env(page_size="7")
    env.faults(delta_empty_page_rate=0.4, delta_repeat_rate=0.6)
    ids = env.seed(60)
    # When everything is read, 7 a page
    records, _, pages = read_all(env.connector, STREAM, None)
    # Then each contact came once, and empty pages were followed
    seen = [r.remote_id for r in records]
    assert sorted(seen) == sorted(ids)
    assert len(pages) > 60 // 7
    # and every request asked for the page size (Prefer: odata.maxpagesize)
    assert env.connector.stats.by_endpoint["delta"] == len(pages)


def test_incremental_reads_cost_requests_per_change_not_per_contact(env: Env) -> None:
    env.faults(delta_empty_page_rate=0, delta_repeat_rate=0)  # exact counts
    env.record_requests()
    ids = env.seed(450, folder=FOLDER, categories=["Salesforce"])
    _, cursor, _ = read_all(env.connector, STREAM, None)
    # 200 a page: three pages for 450 in the folder, one for the empty address book
    assert env.connector.stats.by_endpoint["delta"] == 4
    assert all(
        r.headers.get("Prefer") == "odata.maxpagesize=200"
        for r in env.sent
        if "/delta" in (r.url or "")
    )
    # When one contact changes and one is deleted
    env.edit(ids[7], jobTitle="CFO")
    env.delete(ids[8])
    before = env.connector.stats.requests
    records, cursor2, pages = read_all(env.connector, STREAM, cursor)
    # Then an incremental read (one delta request per folder) reports exactly those
    assert env.connector.stats.requests - before == 2
    assert {(r.remote_id, r.deleted) for r in records} == {(ids[7], False), (ids[8], True)}
    assert live(records)[ids[7]].fields.title == "CFO"
    assert not any(p.full_scan for p in pages)
    assert [p.cursor is not None for p in pages] == [False] * (len(pages) - 1) + [True]
    # and an idle read reports nothing
    records, _, _ = read_all(env.connector, STREAM, cursor2)
    assert records == []


def test_a_full_read_can_be_resumed_from_any_page(env: Env) -> None:
    ids = env.seed(30) + env.seed(30, folder=FOLDER, categories=["Salesforce"])
    connector = env.rebuild(page_size="10")
    seen: list[str] = []
    cursor = None
    for page in connector.read(STREAM, None):
        seen += [r.remote_id for r in page.records]
        cursor = page.cursor
        if len(seen) >= 20:
            break  # a crash after the second page was committed
    assert cursor is not None
    records, _, pages = read_all(env.rebuild(page_size="10"), STREAM, cursor)
    seen += [r.remote_id for r in records]
    assert sorted(seen) == sorted(ids)
    assert not any(p.full_scan for p in pages)  # a resumed scan cannot tell absence


def test_an_old_delta_link_is_refused_with_cursor_expired(env: Env) -> None:
    env.seed(3)
    _, first, _ = read_all(env.connector, STREAM, None)
    cursor = first
    for _ in range(3):  # Outlook keeps the last three generations of a chain
        env.clock.advance(60)
        _, cursor, _ = read_all(env.connector, STREAM, cursor)
    with pytest.raises(CursorExpired):
        read_all(env.connector, STREAM, first)
    read_all(env.connector, STREAM, cursor)  # the newest still works


def test_a_deleted_folder_or_a_foreign_cursor_means_a_full_resync(env: Env) -> None:
    env.seed(1, folder=FOLDER, categories=["Salesforce"])
    _, cursor, _ = read_all(env.connector, STREAM, None)
    assert cursor is not None
    other = json.loads(cursor) | {"user": "manager@example.com"}
    with pytest.raises(CursorExpired):
        read_all(env.connector, STREAM, json.dumps(other))
    with pytest.raises(CursorExpired):
        read_all(env.connector, STREAM, "not json")
    # When the user deletes the folder
    assert env.call("DELETE", f"contactFolders/{env.folder_id()}").status_code == 204
    with pytest.raises(CursorExpired):
        read_all(env.connector, STREAM, cursor)
    # Then the full resync makes it again
    records, _, _ = read_all(env.connector, STREAM, None)
    assert records == []
    assert env.folder_id() != CursorState.load(cursor).synced.folder


# ---- the markers (seed 003) ---------------------------------------------------------------------


def test_a_contact_moved_out_of_the_folder_loses_the_category(env: Env) -> None:
    [cid] = env.seed(1, folder=FOLDER, categories=["Salesforce", "Red category"])
    _, cursor, _ = read_all(env.connector, STREAM, None)
    # When the user moves it to the address book (a new id) and categorises another contact
    moved = env.move(cid, "contacts")
    env.clock.advance(5)
    [other] = env.seed(1, categories=["Salesforce"])
    records, cursor, _ = read_all(env.connector, STREAM, cursor)
    # Then the folder's record is gone, the moved one is unmarked and lost the category,
    # and the other one is a request to sync
    got = {r.remote_id: r for r in records}
    assert got[cid].deleted
    assert (got[moved].marked, got[moved].marker_repair) == (False, False)
    assert (got[other].marked, got[other].marker_repair) == (True, True)
    stored = env.get(moved)
    assert stored is not None
    assert stored["categories"] == ["Red category"]
    assert got[moved].version == stored["@odata.etag"]
    # and the removal was used up
    assert CursorState.load(cursor or "").removals == []


def test_a_removal_explains_a_move_seen_one_read_later_but_not_after_the_window(
    env: Env,
) -> None:
    env.seed(2, folder=FOLDER, categories=["Salesforce"])
    _, cursor, _ = read_all(env.connector, STREAM, None)
    state = CursorState.load(cursor or "")
    now = env.clock.now().timestamp()
    # Given a read that saw a removal from the folder just now, and one long ago
    state.removals = [now - 3 * 3600, now - 60]
    # When a categorised newcomer turns up in the address book
    [late] = env.seed(1, categories=["Salesforce"])
    records, after, _ = read_all(env.connector, STREAM, state.dump())
    # Then the recent removal explains it (a move seen late), the old one has expired
    assert (live(records)[late].marked, live(records)[late].marker_repair) == (False, False)
    assert CursorState.load(after or "").removals == []
    [next_one] = env.seed(1, categories=["Salesforce"])
    records, _, _ = read_all(env.connector, STREAM, after)
    assert live(records)[next_one].marker_repair


def test_a_repair_puts_the_category_back_on_a_folder_contact(env: Env) -> None:
    [cid] = env.seed(1, folder=FOLDER, categories=["Blue category"])
    records, _, _ = read_all(env.connector, STREAM, None)
    record = live(records)[cid]
    assert record.marker_repair
    env.record_requests()
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=cid,
                fields=ContactFields(),
                object_type=STREAM,
                version=record.version,
                marked=True,
            )
        ],
    )
    assert result.ok
    assert result.remote_id == cid
    assert result.record is not None
    assert not result.record.marker_repair
    stored = env.get(cid)
    assert stored is not None
    assert stored["categories"] == ["Blue category", "Salesforce"]
    [patch] = env.batch_items("PATCH")
    assert patch["body"] == {"categories": ["Blue category", "Salesforce"]}
    assert patch["headers"]["If-Match"] == record.version  # against what was just read


def test_a_repair_moves_a_categorised_contact_into_the_folder(env: Env) -> None:
    [cid] = env.seed(1, nickName="Reni", imAddresses=["renee@im.example"])
    env.edit(cid, categories=["Salesforce"])
    records, _, _ = read_all(env.connector, STREAM, None)
    record = live(records)[cid]
    # When the engine asks for the marker
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=cid,
                fields=ContactFields(),
                object_type=STREAM,
                version=record.version,
                marked=True,
            )
        ],
    )
    # Then the contact was copied into the folder (every property) and the original deleted;
    # the result names the copy
    assert result.ok
    assert result.remote_id != cid
    assert env.get(cid) is None
    [copy] = env.folder_contents(env.folder_id())
    assert copy["id"] == result.remote_id
    assert (copy["nickName"], copy["imAddresses"]) == ("Reni", ["renee@im.example"])
    assert copy["givenName"] == record.fields.given_name
    assert copy["categories"] == ["Salesforce"]
    assert result.record is not None
    assert result.record.marked
    assert not result.record.marker_repair
    assert result.record.fields == record.fields


def test_a_move_repeated_after_a_lost_answer_makes_no_second_copy(env: Env) -> None:
    [cid] = env.seed(1, categories=["Salesforce"])
    repair = Update(remote_id=cid, fields=ContactFields(), object_type=STREAM, marked=True)
    env.connector.synced_folder_id()
    env.faults({"kind": "drop_after_commit", "path": r"\$batch$", "method": "POST", "times": 1})
    [lost] = env.connector.apply(STREAM, [repair])  # the GET's answer is lost: retried
    assert lost.ok
    assert len(env.folder_contents(env.folder_id())) == 1
    env.faults({"kind": "drop_after_commit", "path": r"\$batch$", "method": "POST", "times": 1})
    # The copy's answer lost: uncertain; the next try finds the copy instead of making another
    [cid2] = env.seed(1, categories=["Salesforce"])
    repair2 = Update(remote_id=cid2, fields=ContactFields(), object_type=STREAM, marked=True)
    env.faults()
    calls = {"n": 0}
    batch = env.connector.graph.batch

    def lose_the_copy(items: Any, *, idempotent: bool) -> Any:
        calls["n"] += 1
        if not idempotent and calls["n"] == 2:
            batch(items, idempotent=idempotent)
            from contactsync.connectors.base import Uncertain
            from contactsync.connectors.microsoft.client import BatchAnswer

            return {i.id: BatchAnswer(0, Uncertain("ConnectionError"), {}) for i in items}
        return batch(items, idempotent=idempotent)

    env.connector.graph.batch = lose_the_copy  # type: ignore[method-assign]
    [uncertain] = env.connector.apply(STREAM, [repair2])
    assert uncertain.error is not None
    assert uncertain.error.kind == "uncertain"
    env.connector.graph.batch = batch  # type: ignore[method-assign]
    [done] = env.connector.apply(STREAM, [repair2])
    assert done.ok
    assert env.get(cid2) is None
    assert len(env.folder_contents(env.folder_id())) == 2  # one copy each


def test_a_move_whose_original_changed_meanwhile_is_rolled_back(env: Env) -> None:
    [cid] = env.seed(1, categories=["Salesforce"])
    env.connector.synced_folder_id()
    batch = env.connector.graph.batch

    def user_edits_after_our_copy(items: Any, *, idempotent: bool) -> Any:
        answers = batch(items, idempotent=idempotent)
        if not idempotent:
            env.edit(cid, jobTitle="Changed meanwhile")
        return answers

    env.connector.graph.batch = user_edits_after_our_copy  # type: ignore[method-assign]
    [result] = env.connector.apply(
        STREAM, [Update(remote_id=cid, fields=ContactFields(), object_type=STREAM, marked=True)]
    )
    assert result.error is not None
    assert result.error.kind == "conflict"
    assert env.folder_contents(env.folder_id()) == []  # the copy went again
    assert env.get(cid) is not None  # the original stays


# ---- writing ------------------------------------------------------------------------------------


def test_creates_go_to_the_folder_with_the_category_or_to_the_address_book(env: Env) -> None:
    env.record_requests()
    results = env.connector.apply(
        STREAM,
        [
            Create(hub_id="c-1", fields=fields(1), object_type=STREAM, marked=True),
            Create(hub_id="c-2", fields=fields(2, given_name=""), object_type=STREAM),
        ],
    )
    assert [r.ok for r in results] == [True, True]
    marked = env.get(str(results[0].remote_id))
    plain = env.get(str(results[1].remote_id))
    assert marked is not None
    assert plain is not None
    assert (marked["parentFolderId"], marked["categories"]) == (env.folder_id(), ["Salesforce"])
    assert marked["displayName"] == "Zoë1 Müller"
    assert plain["parentFolderId"] != env.folder_id()
    assert plain["categories"] == []
    assert plain["displayName"] == "Müller"
    assert results[0].record is not None
    assert results[0].record.marked
    assert results[1].record is not None
    assert not results[1].record.marked
    assert results[0].version == marked["@odata.etag"]
    # one $batch for both
    assert env.connector.stats.by_endpoint["batch"] == 1


def test_an_update_sends_only_what_changed_against_the_etag(env: Env) -> None:
    [cid] = env.seed(1, folder=FOLDER, categories=["Salesforce"], nickName="Reni")
    records, _, _ = read_all(env.connector, STREAM, None)
    version = live(records)[cid].version
    env.record_requests()
    [result] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=cid,
                fields=ContactFields(title="CFO", notes="VIP"),
                object_type=STREAM,
                version=version,
                marked=True,
            )
        ],
    )
    assert result.ok
    [patch] = env.batch_items("PATCH")
    assert patch["body"] == {"jobTitle": "CFO", "personalNotes": "VIP"}
    assert patch["headers"]["If-Match"] == version
    assert env.batch_items("GET") == []  # no name change: nothing read first
    stored = env.get(cid)
    assert stored is not None
    assert (stored["jobTitle"], stored["nickName"], stored["categories"]) == (
        "CFO",
        "Reni",
        ["Salesforce"],
    )
    # and a stale etag is a conflict
    [stale] = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=cid,
                fields=ContactFields(title="CEO"),
                object_type=STREAM,
                version=version,
            )
        ],
    )
    assert stale.error is not None
    assert (stale.error.kind, stale.error.code) == ("conflict", "ErrorIrresolvableConflict")


def test_a_name_change_sends_the_display_name_and_keeps_a_chosen_one(env: Env) -> None:
    [plain, chosen] = env.seed(2, folder=FOLDER, categories=["Salesforce"])
    env.edit(chosen, displayName="Renée (SG Conseil)")
    records, _, _ = read_all(env.connector, STREAM, None)
    env.record_requests()
    results = env.connector.apply(
        STREAM,
        [
            Update(
                remote_id=r,
                fields=ContactFields(family_name="Dubois"),
                object_type=STREAM,
                version=live(records)[r].version,
            )
            for r in (plain, chosen)
        ],
    )
    assert [r.ok for r in results] == [True, True]
    assert [p["body"] for p in env.batch_items("PATCH")] == [
        {"surname": "Dubois", "displayName": "Renée1 Dubois"},
        {"surname": "Dubois", "displayName": "Renée (SG Conseil)"},
    ]
    assert len(env.batch_items("GET")) == 2  # read first, in one batch


def test_outlooks_caps_and_slots(env: Env) -> None:
    many = ContactFields(
        given_name="Kevin",
        emails=tuple(EmailAddress(address=f"k{i}@dundermifflin.com") for i in range(5)),
        phones=(
            PhoneNumber.parse("+1 570 555 0101", "US", "mobile"),
            PhoneNumber.parse("+1 570 555 0102", "US", "work"),
            PhoneNumber.parse("+1 570 555 0103", "US", "home"),
            PhoneNumber.parse("+1 570 555 0104", "US", ""),
            PhoneNumber.parse("+1 570 555 0105", "US", "home"),
            PhoneNumber.parse("+1 570 555 0106", "US", "work"),
        ),
        addresses=(
            PostalAddress(city="Scranton", label="home"),
            PostalAddress(city="Nashua", label="work"),
        ),
    )
    [result] = env.connector.apply(STREAM, [Create(hub_id="c-k", fields=many, object_type=STREAM)])
    assert result.ok, result.error
    stored = env.get(str(result.remote_id))
    assert stored is not None
    assert [e["address"] for e in stored["emailAddresses"]] == [
        f"k{i}@dundermifflin.com" for i in range(3)
    ]
    assert result.record is not None
    # five phones fit, in the hub's order (read back in slot order: business, mobile, home)
    assert [p.e164 for p in result.record.fields.phones or ()] == [
        f"+1570555010{i}" for i in range(1, 6)
    ]
    # the home address first, the work one second: order beats labels where both cannot hold
    assert [a.city for a in result.record.fields.addresses or ()] == ["Scranton", "Nashua"]


def test_slot_assignment_keeps_order_and_honours_labels() -> None:
    slots = ("business", "business", "mobile", "home", "home")
    labels = {"work": "business", "mobile": "mobile", "home": "home"}
    assert assign_slots(["work", "mobile", "home"], slots, labels) == [0, 2, 3]
    assert assign_slots(["mobile"], slots, labels) == [2]
    assert assign_slots(["home", "work"], slots, labels) in ([0, 1], [3, 4])
    assert assign_slots(["x"] * 7, slots, labels) == [0, 1, 2, 3, 4]
    assert phone_properties([PhoneNumber.parse("+1 570 555 0101", "US", "mobile")]) == {
        "businessPhones": [],
        "mobilePhone": "+15705550101",
        "homePhones": [],
    }


def test_batches_hold_twenty_and_wait_out_each_items_throttling() -> None:
    # Given a mailbox allowed 30 requests per 10 minutes
    env = make_env()
    env.connector.synced_folder_id()
    env.connector.apply(
        STREAM, [Create(hub_id="c-0", fields=fields(0), object_type=STREAM, marked=True)]
    )
    env.faults(requests_per_window=30)
    env.record_requests()
    before = env.clock.now()
    # When 45 contacts are created
    creates = [
        Create(hub_id=f"c-{i}", fields=fields(i), object_type=STREAM, marked=True)
        for i in range(1, 46)
    ]
    results = env.connector.apply(STREAM, creates)
    # Then every one was created once, in batches of at most 20, the throttled items going
    # again after their Retry-After (the clock moved on), none repeated blindly
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len({r.remote_id for r in results}) == 45
    sizes = [
        len(json.loads(r.body or b"{}")["requests"])
        for r in env.sent
        if (r.url or "").endswith("$batch")
    ]
    assert max(sizes) == 20
    assert sum(sizes) > 45
    assert env.connector.stats.throttled >= 1
    assert (env.clock.now() - before).total_seconds() >= 500
    assert len(env.folder_contents(env.folder_id())) == 46


def test_a_batch_never_runs_more_than_four_requests_at_once(env: Env) -> None:
    # Outlook throttles a mailbox beyond 4 concurrent requests (and Graph runs a batch's items
    # 4 at a time): twenty creates in one batch, and nothing was throttled
    results = env.connector.apply(
        STREAM, [Create(hub_id=f"c-{i}", fields=fields(i), object_type=STREAM) for i in range(20)]
    )
    assert all(r.ok for r in results)
    assert env.connector.stats.throttled == 0


def test_per_item_results_in_one_batch(env: Env) -> None:
    [keep, gone, stale] = env.seed(3)
    env.delete(gone)
    results = env.connector.apply(
        STREAM,
        [
            Update(remote_id=keep, fields=ContactFields(title="CFO"), object_type=STREAM),
            Delete(remote_id=gone, object_type=STREAM),  # already gone: fine
            Update(remote_id=gone, fields=ContactFields(title="x"), object_type=STREAM),
            Update(remote_id="AAMk-not-an-id", fields=ContactFields(title="x"), object_type=STREAM),
            update_of(stale, ContactFields(title="x"), 'W/"EQAAABYAAAAstale"'),
        ],
    )
    assert [r.ok for r in results] == [True, True, False, False, False]
    errors = [r.error for r in results[2:]]
    assert [(e.kind, e.code) for e in errors if e] == [
        ("not_found", "ErrorItemNotFound"),
        ("invalid", "ErrorInvalidIdMalformed"),
        ("conflict", "ErrorIrresolvableConflict"),
    ]
    assert env.connector.stats.by_endpoint["batch"] == 1


def test_error_messages_keep_no_quoted_values() -> None:
    body = {
        "error": {
            "code": "ErrorInvalidUser",
            "message": "The requested user 'renee@sgconseil.fr' is invalid.",
        }
    }
    error = item_error(404, body, {})
    assert (error.kind, error.code) == ("not_found", "ErrorInvalidUser")
    assert "renee" not in error.message
    throttled = item_error(429, {"error": {"code": "ApplicationThrottled"}}, {"Retry-After": "9"})
    assert (throttled.kind, throttled.retry_after) == ("throttled", 9.0)
    assert item_error(410, {"error": {"code": "SyncStateNotFound"}}, {}).kind == "invalid"


def test_a_create_answered_5xx_is_uncertain_and_an_update_is_retried(env: Env) -> None:
    [cid] = env.seed(1)
    env.faults(
        {"kind": "error", "path": "/contacts$", "method": "POST", "status": 503, "times": 1},
        {"kind": "error", "path": "/contacts/", "method": "PATCH", "status": 503, "times": 1},
    )
    results = env.connector.apply(
        STREAM,
        [
            Create(hub_id="c-1", fields=fields(1), object_type=STREAM),
            Update(remote_id=cid, fields=ContactFields(title="CFO"), object_type=STREAM),
        ],
    )
    assert results[0].error is not None
    assert results[0].error.kind == "uncertain"
    assert results[1].ok


def test_a_lost_create_is_found_by_name_without_an_email(env: Env) -> None:
    no_email = fields(3, emails=())
    env.faults({"kind": "drop_after_commit", "path": r"\$batch$", "method": "POST", "times": 1})
    [lost] = env.connector.apply(
        STREAM, [Create(hub_id="c-3", fields=no_email, object_type=STREAM, marked=True)]
    )
    assert lost.error is not None
    assert lost.error.kind == "uncertain"
    found = env.connector.find_created(STREAM, "c-3", no_email)
    assert found is not None
    assert found.marked
    assert found.fields.given_name == "Zoë3"
    assert env.connector.find_created(STREAM, "c-4", fields(4)) is None


# ---- tokens, setup, subscriptions ---------------------------------------------------------------


def test_an_expired_token_is_replaced_once(env: Env) -> None:
    env.seed(1)
    read_all(env.connector, STREAM, None)
    assert env.connector.stats.by_endpoint["token"] == 1
    # When the token expires on the virtual clock (msal's cache still has it)
    env.clock.advance(2 * 3600)
    records, _, _ = read_all(env.connector, STREAM, None)
    # Then the 401 made the connector drop it and fetch another, once
    assert records
    assert env.connector.stats.by_endpoint["token"] == 2


def test_refused_credentials_are_an_auth_error(env: Env) -> None:
    secrets = {"client_id": env.app.client_config()["client_id"], "client_secret": "wrong"}
    connector = connect(env.app, env.clock, [], secrets=secrets)
    with pytest.raises(AuthError) as raised:
        read_all(connector, STREAM, None)
    assert raised.value.code == "invalid_client"
    assert "wrong" not in str(raised.value)
    with pytest.raises(AuthError):
        connect(env.app, env.clock, [], secrets={"client_id": "x"})


def test_a_delegated_token_rotates_its_refresh_token(env: Env) -> None:
    sandbox = env.app.client_config()
    rotated: list[dict[str, str]] = []
    secrets = {
        "client_id": sandbox["client_id"],
        "client_secret": sandbox["client_secret"],
        "refresh_token": sandbox["users"][0]["refresh_token"],
    }
    connector = connect(env.app, env.clock, rotated, secrets=secrets)
    env.seed(2)
    records, _, _ = read_all(connector, STREAM, None)
    assert len(records) == 2
    assert len(rotated) == 1
    assert rotated[0]["refresh_token"] != secrets["refresh_token"]


def test_prepare_makes_the_folder_and_category_once(env: Env) -> None:
    env.connector.prepare()
    env.connector.prepare()
    folders = env.call("GET", "contactFolders").json()["value"]
    assert [f["displayName"] for f in folders] == [FOLDER]
    categories = env.call("GET", "outlook/masterCategories").json()["value"]
    assert [c["displayName"] for c in categories].count("Salesforce") == 1
    # a new connector (a new run) finds them
    connector = env.rebuild()
    connector.prepare()
    assert connector.synced_folder_id() == folders[0]["id"]
    assert connector.stats.by_endpoint.get("folders.create") is None


def test_a_folder_made_meanwhile_is_looked_up_after_409(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = env.connector
    find = connector._find_folder
    calls = {"n": 0}

    def racing() -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:
            assert env.call("POST", "contactFolders", {"displayName": FOLDER}).status_code == 201
            return None
        return find()

    monkeypatch.setattr(connector, "_find_folder", racing)
    folder = connector.synced_folder_id()
    assert [f["id"] for f in env.call("GET", "contactFolders").json()["value"]] == [folder]


def test_subscriptions_for_both_folders(env: Env) -> None:
    received: list[str] = []

    class Receiver(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            from urllib.parse import parse_qs, urlsplit

            received.append(request.url or "")
            token = parse_qs(urlsplit(request.url or "").query).get("validationToken", [""])[0]
            response = requests.Response()
            response.status_code = 200 if token else 202
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
            response._content = token.encode()
            response.request = request
            return response

        def close(self) -> None:
            return None

    env.app.webhooks.session.mount(HOOKS, Receiver())
    connector = env.rebuild(webhook_url=HOOKS + "graph", lifecycle_url=HOOKS + "lifecycle")
    connector._secrets["webhook_client_state"] = "s3cr3t"
    # When prepare runs twice
    connector.prepare()
    connector.prepare()
    # Then each folder has one subscription, validated first
    subs = connector.subscriptions()
    assert sorted(s.resource.rsplit("/", 2)[1] for s in subs) == sorted(
        ["contacts", env.folder_id()]
    )
    assert any("validationToken=" in u for u in received)
    # renewing moves the expiry; a change in the folder is notified
    expiry = subs[0].expires_at
    env.clock.advance(3600)
    renewed = connector.renew_subscription(subs[0].id)
    assert renewed.expires_at > expiry
    connector.reauthorize_webhooks()
    created = env.call("POST", f"contactFolders/{env.folder_id()}/contacts", contact_json(99))
    assert created.status_code == 201
    env.app.deliver_due()
    assert any(u == HOOKS + "graph" for u in received)
    for s in subs:
        connector.delete_subscription(s.id)
    connector.delete_subscription(subs[0].id)  # gone already: fine
    assert connector.subscriptions() == []
    with pytest.raises(InvalidRequest):
        connector.create_subscription("http://insecure.example/", "state")


def test_representable_is_what_a_read_gives_back(env: Env) -> None:
    # Given hub fields beyond Outlook's caps
    many = ContactFields(
        given_name="Kevin",
        emails=tuple(many_emails(5)),
        phones=tuple(PhoneNumber.parse(f"+1 570 555 01{i:02d}", "US", "") for i in range(7)),
        addresses=tuple(PostalAddress(city=c) for c in ("Scranton", "", "Nashua", "Utica", "X")),
    )
    fitted = env.connector.representable(many)
    # When they are written and read back
    [result] = env.connector.apply(STREAM, [Create(hub_id="c-k", fields=many, object_type=STREAM)])
    assert result.record is not None
    # Then the read gives exactly what representable said (the engine compares through it)
    assert snapshot(result.record.fields.only(set(fitted.provided()))) == snapshot(fitted)
    assert len(fitted.emails or ()) == 3
    assert len(fitted.phones or ()) == 5
    assert [a.city for a in fitted.addresses or ()] == ["Scranton", "Nashua", "Utica"]
    assert fitted.given_name == "Kevin"
    assert env.connector.representable(ContactFields(title="x")) == ContactFields(title="x")


def many_emails(n: int) -> list[EmailAddress]:
    return [EmailAddress(address=f"k{i}@dundermifflin.com") for i in range(n)]


def test_a_throttled_token_endpoint_is_not_asked_again_before_retry_after(env: Env) -> None:
    # Given the identity platform answering 429 with Retry-After 30 to a fresh connector
    env.faults({"kind": "throttle", "path": "/oauth2/v2.0/token", "times": 1, "retry_after": 30})
    connector = env.rebuild()
    env.record_requests()
    with pytest.raises(ConnectorError) as raised:
        read_all(connector, STREAM, None)
    assert raised.value.kind == "throttled"
    # When the next run comes at once
    with pytest.raises(ConnectorError):
        read_all(connector, STREAM, None)
    # Then the token endpoint was asked once (msal keeps its 429 for the Retry-After), and
    # Graph calls are held that long too
    tokens = [r for r in env.sent if (r.url or "").endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 1
    assert connector.graph.pacer.stats is connector.stats
    before = env.clock.now()
    connector.graph.pacer.wait()
    assert (env.clock.now() - before).total_seconds() >= 29


@pytest.mark.slow
def test_twenty_thousand_contacts_read_in_pages_then_incrementally() -> None:
    # Given 20,000 generated contacts in the synced folder, Graph's quirks on, throttling off
    env = make_env()
    env.faults(enabled=False)
    folder = env.folder_id()
    response = env.session.post(
        env.admin + "seed", json={"count": 20_000, "seed": 5, "folder": folder}
    )
    assert response.status_code == 200
    # When everything is read, page by page
    seen: set[str] = set()
    cursor = None
    for page in env.connector.read(STREAM, None):
        seen.update(r.remote_id for r in page.records)
        cursor = page.cursor or cursor
        if page.last:
            break
    # Then each came once, 200 a page (plus Graph's empty pages)
    assert len(seen) == 20_000
    assert 100 <= env.connector.stats.by_endpoint["delta"] <= 130
    # and an incremental read after three changes costs two requests
    ids = sorted(seen)[:3]
    for remote_id in ids:
        env.edit(remote_id, jobTitle="CFO")
    before = env.connector.stats.requests
    records, _, _ = read_all(env.connector, STREAM, cursor)
    assert {r.remote_id for r in records} == set(ids)
    assert env.connector.stats.requests - before == 2
