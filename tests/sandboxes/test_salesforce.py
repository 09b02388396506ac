"""Conformance of the Salesforce sandbox, driven through the unpatched simple-salesforce client
(in-process; one module-level test goes over real HTTPS). Each test is Given / When / Then."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer
from contactsync_sandbox.core.transport import WSGITransport
from contactsync_sandbox.salesforce import SalesforceSandbox, ids
from contactsync_sandbox.salesforce.auth import Credentials
from tests.sandboxes.salesforce.fixtures import (
    BASE,
    INSTANCE,
    START,
    app,
    clock,
    collection_item,
    contact,
    error_of,
    seeded,
    session,
    sf,
)

__all__ = ["app", "clock", "seeded", "session", "sf"]  # fixtures used by name

SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000\+0000$")
NEXT_URL = re.compile(r"^/services/data/v59\.0/query/01g[0-9A-Za-z]{15}-(\d+)$")


# ---- queries and paging --------------------------------------------------------------------------


def test_query_pages_of_2000_with_next_records_url(sf: Salesforce, seeded: list[str]) -> None:
    # Given 4,500 seeded contacts
    # When the client queries them all
    first = sf.query("SELECT Id, Name, Email, SystemModstamp FROM Contact")
    # Then the first page has 2,000 records and a nextRecordsUrl with the offset
    assert first["totalSize"] == 4500
    assert first["done"] is False
    assert len(first["records"]) == 2000
    match = NEXT_URL.match(first["nextRecordsUrl"])
    assert match
    assert match.group(1) == "2000"
    record = first["records"][0]
    assert record["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v59.0/sobjects/Contact/{record['Id']}",
    }
    assert SF_DATETIME.match(record["SystemModstamp"])
    # And the following pages come from query_more with the URL
    second = sf.query_more(first["nextRecordsUrl"], True)
    assert len(second["records"]) == 2000
    assert second["done"] is False
    third = sf.query_more(second["nextRecordsUrl"], True)
    assert len(third["records"]) == 500
    assert third["done"] is True
    assert "nextRecordsUrl" not in third
    seen = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert sorted(seen) == sorted(seeded)


def test_query_all_iter_reads_every_record_once(sf: Salesforce, seeded: list[str]) -> None:
    records = list(
        sf.query_all_iter("SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id")
    )
    assert len(records) == 4500
    assert {r["Id"] for r in records} == set(seeded)
    keys = [(r["SystemModstamp"], r["Id"]) for r in records]
    assert keys == sorted(keys)


def test_batch_size_header_sets_the_page_size(sf: Salesforce, seeded: list[str]) -> None:
    page = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(page["records"]) == 500
    assert page["nextRecordsUrl"].endswith("-500")
    tiny = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(tiny["records"]) == 200  # Salesforce's minimum batch


def test_query_cursor_expires_after_15_idle_minutes(
    sf: Salesforce, seeded: list[str], clock: VirtualClock
) -> None:
    first = sf.query("SELECT Id FROM Contact")
    clock.advance(16 * 60)
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more(first["nextRecordsUrl"], True)
    assert caught.value.status == 400
    assert error_of(caught.value) == {
        "message": "invalid query locator",
        "errorCode": "INVALID_QUERY_LOCATOR",
    }


def test_cursor_ends_with_the_last_page(sf: Salesforce, seeded: list[str]) -> None:
    first = sf.query("SELECT Id FROM Contact LIMIT 2500")
    last = sf.query_more(first["nextRecordsUrl"], True)
    assert last["done"] is True
    assert len(last["records"]) == 500
    with pytest.raises(SalesforceMalformedRequest):
        sf.query_more(first["nextRecordsUrl"], True)


def test_query_all_includes_deleted_rows(sf: Salesforce) -> None:
    # Given one live and one deleted contact
    keep = sf.Contact.create(contact())["id"]
    gone = sf.Contact.create(contact())["id"]
    assert sf.Contact.delete(gone) == 204
    # When the client queries with and without deleted rows
    live = sf.query("SELECT Id, IsDeleted FROM Contact")
    everything = sf.query_all("SELECT Id, IsDeleted FROM Contact", include_deleted=True)
    # Then only queryAll returns the deleted one, flagged IsDeleted
    assert [(r["Id"], r["IsDeleted"]) for r in live["records"]] == [(keep, False)]
    assert {(r["Id"], r["IsDeleted"]) for r in everything["records"]} == {
        (keep, False),
        (gone, True),
    }
    assert sf.query("SELECT Id FROM Contact WHERE IsDeleted = true")["totalSize"] == 0


def test_query_all_next_records_url_stays_on_query_all(sf: Salesforce, seeded: list[str]) -> None:
    sf.Contact.delete(seeded[0])
    first = sf.query("SELECT Id, IsDeleted FROM Contact", include_deleted=True)
    assert "/queryAll/" in first["nextRecordsUrl"]
    rows = list(sf.query_all_iter("SELECT Id, IsDeleted FROM Contact", include_deleted=True))
    assert len(rows) == 4500
    assert [r["Id"] for r in rows if r["IsDeleted"]] == [seeded[0]]


def test_relationship_fields_and_count(sf: Salesforce) -> None:
    account = sf.Account.create({"Name": "Société Générale Conseil"})["id"]
    sf.Contact.create(contact(LastName="Lefèvre", AccountId=account))
    sf.Contact.create(contact(LastName="Orphan"))
    rows = sf.query("SELECT LastName, Account.Name, Owner.Username FROM Contact ORDER BY LastName")[
        "records"
    ]
    assert rows[0]["Account"]["Name"] == "Société Générale Conseil"
    assert rows[0]["Account"]["attributes"]["type"] == "Account"
    assert rows[0]["Owner"]["Username"] == "admin@example.com"
    assert rows[1]["Account"] is None
    counted = sf.query("SELECT COUNT() FROM Contact WHERE Account.Name LIKE 'Soci%'")
    assert counted == {"totalSize": 1, "done": True, "records": []}
    aggregate = sf.query("SELECT COUNT(Id) FROM Contact")["records"][0]
    assert aggregate["expr0"] == 2
    assert aggregate["attributes"]["type"] == "AggregateResult"


def test_soql_filters_order_limit_offset(sf: Salesforce) -> None:
    # Given contacts with a mix of names, emails and nulls
    for last, first, email in [
        ("O'Connor", "Aoife", "aoife@example.ie"),
        ("García", "José", None),
        ("Smith", "John", "JOHN@EXAMPLE.COM"),
        ("smith", None, "j.smith@example.com"),
        ("Núñez", "Lucía", "lucia@example.es"),
    ]:
        sf.Contact.create(contact(LastName=last, FirstName=first, Email=email))

    def names(where: str, tail: str = "ORDER BY LastName, FirstName NULLS FIRST") -> list[str]:
        q = f"SELECT LastName FROM Contact WHERE {where} {tail}"
        return [r["LastName"] for r in sf.query(q)["records"]]

    # Then string comparison is case-insensitive, != keeps nulls, escapes work
    assert names("Email = 'john@example.com'") == ["Smith"]
    assert names("LastName = 'O\\'Connor'") == ["O'Connor"]
    assert names("Email = null") == ["García"]
    assert names("Email != 'john@example.com'") == ["García", "Núñez", "O'Connor", "smith"]
    assert names("LastName LIKE 'sm_th'") == ["smith", "Smith"]
    assert names("Email LIKE '%.__'") == ["Núñez", "O'Connor"]
    assert names("LastName IN ('Smith', 'García')") == ["García", "smith", "Smith"]
    assert names("LastName NOT IN ('Smith', 'García')") == ["Núñez", "O'Connor"]
    assert names("(FirstName = 'John' OR FirstName = null) AND NOT Email LIKE '%example.com'") == []
    assert names("NOT (FirstName = 'John' OR FirstName = null)") == ["García", "Núñez", "O'Connor"]
    assert names("CreatedDate = TODAY AND CreatedDate = LAST_N_DAYS:3") == [
        "García",
        "Núñez",
        "O'Connor",
        "smith",
        "Smith",
    ]
    assert names("CreatedDate < YESTERDAY") == []
    # And ORDER BY honours direction and NULLS, LIMIT and OFFSET slice
    ordered = sf.query(
        "SELECT FirstName FROM Contact ORDER BY FirstName DESC NULLS FIRST LIMIT 3 OFFSET 1"
    )["records"]
    assert [r["FirstName"] for r in ordered] == ["Lucía", "José", "John"]


@pytest.mark.parametrize(
    ("soql", "code", "message_end"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FORM Contact", "MALFORMED_QUERY", "unexpected token: 'FORM'"),
        (
            "SELECT Id FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Title = 'c'",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        (
            "SELECT Id, Shoe_Size__c FROM Contact",
            "INVALID_FIELD",
            "No such column 'Shoe_Size__c' on entity 'Contact'. If you are attempting to use a"
            " custom field, be sure to append the '__c' after the custom field name. Please"
            " reference your WSDL or the describe call for the appropriate names.",
        ),
        (
            "SELECT Id FROM Contactz",
            "INVALID_TYPE",
            "sObject type 'Contactz' is not supported. If you are attempting to use a custom"
            " object, be sure to append the '__c' after the entity name. Please reference your"
            " WSDL or the describe call for the appropriate names.",
        ),
        (
            "SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01'",
            "INVALID_FIELD",
            "value of filter criterion for field 'CreatedDate' must be of type dateTime and"
            " should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Contact OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "offset allowed is 2000",
        ),
    ],
)
def test_invalid_soql_is_refused_like_salesforce(
    sf: Salesforce, soql: str, code: str, message_end: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    error = error_of(caught.value)
    assert caught.value.status == 400
    assert error["errorCode"] == code
    assert error["message"].endswith(message_end)


def test_error_message_points_at_the_column(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, Foo FROM Contact")
    message = error_of(caught.value)["message"]
    assert message.startswith(
        "\nSELECT Id, Foo FROM Contact\n           ^\nERROR at Row:1:Column:12\n"
    )


def test_systemmodstamp_sync_query_with_shared_seconds(
    sf: Salesforce, app: SalesforceSandbox, clock: VirtualClock
) -> None:
    # Given three contacts written in the same second and one a second later
    same = [sf.Contact.create(contact())["id"] for _ in range(3)]
    clock.advance(1)
    later = sf.Contact.create(contact())["id"]
    stamp = sf.Contact.get(same[0])["SystemModstamp"].replace(".000+0000", "Z")
    # When a sync resumes with >= on the shared second
    rows = sf.query(
        f"SELECT Id FROM Contact WHERE SystemModstamp >= {stamp} ORDER BY SystemModstamp, Id"
    )["records"]
    # Then every record of that second comes back (dedupe is the client's job), in order
    assert [r["Id"] for r in rows] == [*sorted(same), later]
    after = sf.query(f"SELECT Id FROM Contact WHERE SystemModstamp > {stamp}")["records"]
    assert [r["Id"] for r in after] == [later]
    newest = sf.query("SELECT Id FROM Contact ORDER BY SystemModstamp DESC, Id DESC LIMIT 1")
    assert newest["records"][0]["Id"] == later


# ---- sObject rows -------------------------------------------------------------------------------


def test_create_read_update_delete(sf: Salesforce, clock: VirtualClock) -> None:
    created = sf.Contact.create(contact(LastName="Brzęczyszczykiewicz", FirstName="Łukasz"))
    assert created == {"id": created["id"], "success": True, "errors": []}
    rid = created["id"]
    assert len(rid) == 18
    assert rid.startswith("003")
    assert ids.normalize(rid[:15]) == rid
    row = sf.Contact.get(rid)
    assert row["Name"] == "Łukasz Brzęczyszczykiewicz"
    assert row["IsPersonAccount"] is False
    assert row["OwnerId"] == row["CreatedById"]
    clock.advance(60)
    assert sf.Contact.update(rid, {"Title": "CFO"}) == 204
    updated = sf.Contact.get(rid[:15])  # a 15-character id works too
    assert updated["Title"] == "CFO"
    assert updated["SystemModstamp"] > row["SystemModstamp"]
    assert updated["CreatedDate"] == row["CreatedDate"]
    assert sf.Contact.delete(rid) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Contact.get(rid)
    assert error_of(caught.value)["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as again:
        sf.Contact.delete(rid)
    assert error_of(again.value)["errorCode"] == "ENTITY_IS_DELETED"


def test_unknown_ids_are_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Contact.get(ids.make_id("003", 999_999))
    assert error_of(caught.value) == {
        "message": "The requested resource does not exist",
        "errorCode": "NOT_FOUND",
    }
    with pytest.raises(SalesforceResourceNotFound) as bad:
        sf.Contact.get("not-an-id")
    assert "Provided external ID field does not exist" in error_of(bad.value)["message"]


@pytest.mark.parametrize(
    ("body", "code", "fields", "message"),
    [
        (
            {"FirstName": "No"},
            "REQUIRED_FIELD_MISSING",
            ["LastName"],
            "Required fields are missing: [LastName]",
        ),
        (
            contact(Shoe_Size__c=44),
            "INVALID_FIELD",
            None,
            "No such column 'Shoe_Size__c' on sobject of type Contact",
        ),
        (contact(Email="x" * 75 + "@ex.com"), "STRING_TOO_LONG", ["Email"], None),
        (
            contact(Email="not-an-email"),
            "INVALID_EMAIL_ADDRESS",
            ["Email"],
            "Email: invalid email address: not-an-email",
        ),
        (contact(Name="Computed"), "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"], None),
        (contact(AccountId="0035g00000000G8AAI"), "MALFORMED_ID", ["AccountId"], None),
    ],
)
def test_field_validation_errors(
    sf: Salesforce, body: dict[str, Any], code: str, fields: list[str] | None, message: str | None
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.create(body)
    error = error_of(caught.value)
    assert error["errorCode"] == code
    assert error.get("fields") == fields
    if message:
        assert error["message"] == message


def test_duplicate_rule_blocks_then_allow_save(sf: Salesforce, session: requests.Session) -> None:
    # Given an alerting duplicate rule on Contact.Email and an existing contact
    response = session.post(
        BASE + "_sandbox/duplicate_rules",
        json={"sobject": "Contact", "field": "Email", "action": "allow"},
    )
    assert response.status_code == 200
    first = sf.Contact.create(contact(Email="jim@dundermifflin.com"))["id"]
    # When another contact uses the same address in another case
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.create(contact(Email="JIM@dundermifflin.com"))
    # Then the save is refused with the duplicateResult naming the match
    error = error_of(caught.value)
    assert error["errorCode"] == "DUPLICATES_DETECTED"
    match = error["duplicateResult"]["matchResults"][0]
    assert match["matchRecords"][0]["record"]["Id"] == first
    assert error["duplicateResult"]["allowSave"] is True
    # And the client may override an alerting rule
    allowed = sf.Contact.create(
        contact(Email="JIM@dundermifflin.com"),
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert allowed["success"] is True


def test_upsert_by_external_id(
    sf: Salesforce, session: requests.Session, app: SalesforceSandbox
) -> None:
    # Created: 201
    assert sf.Contact.upsert("Contactsync_Id__c/hub-1", contact()) == 201
    # Updated: 200 with created false since API 46.0
    response = sf.Contact.upsert(
        "Contactsync_Id__c/hub-1", {"Title": "VP Sales"}, raw_response=True
    )
    assert response.status_code == 200
    assert response.json()["created"] is False
    assert sf.Contact.get_by_custom_id("Contactsync_Id__c", "hub-1")["Title"] == "VP Sales"
    # Older API versions answer 204
    old = Salesforce(
        session_id=app.issue_session(), instance_url=INSTANCE, session=session, version="45.0"
    )
    assert old.Contact.upsert("Contactsync_Id__c/hub-1", {"Title": "CTO"}) == 204
    # Several matches: 300 with the matching records' URLs
    sf.Contact.create(contact(Contactsync_Id__c="hub-2"))
    sf.Contact.create(contact(Contactsync_Id__c="HUB-2"))
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        sf.Contact.upsert("Contactsync_Id__c/hub-2", {"Title": "x"})
    assert caught.value.status == 300
    assert all(
        u.startswith("/services/data/v59.0/sobjects/Contact/003") for u in caught.value.content
    )


def test_conditional_update_refuses_stale_writes(sf: Salesforce, clock: VirtualClock) -> None:
    rid = sf.Contact.create(contact())["id"]
    read_at = "Mon, 02 Mar 2026 09:00:00 GMT"
    clock.advance(120)
    sf.Contact.update(rid, {"Title": "CTO"})
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.Contact.update(rid, {"Title": "CFO"}, headers={"If-Unmodified-Since": read_at})
    assert caught.value.status == 412
    assert error_of(caught.value)["errorCode"] == "PRECONDITION_FAILED"
    assert sf.Contact.get(rid)["Title"] == "CTO"


# ---- collections --------------------------------------------------------------------------------


def test_collection_create_with_per_item_errors_under_200(sf: Salesforce) -> None:
    records = [collection_item(**contact()) for _ in range(199)] + [collection_item(FirstName="x")]
    results = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert len(results) == 200
    assert all(r["success"] for r in results[:199])
    assert results[199] == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 199


def test_collection_over_200_records_is_refused(sf: Salesforce) -> None:
    records = [collection_item(**contact()) for _ in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert error_of(caught.value) == {
        "message": "record limit reached. cannot submit more than 200 records into this call",
        "errorCode": "EXCEEDED_ID_LIMIT",
    }


def test_collection_all_or_none_rolls_back(sf: Salesforce) -> None:
    existing = sf.Contact.create(contact(Title="before"))["id"]
    records = [
        collection_item(Id=existing, Title="after"),
        collection_item(Id=existing, Email="broken"),
    ]
    results = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records}
    )
    assert results[0]["success"] is False
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert sf.Contact.get(existing)["Title"] == "before"
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": True, "records": [collection_item(**contact()), collection_item()]},
    )
    assert [r["success"] for r in created] == [False, False]
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1


def test_collection_delete_and_retrieve(sf: Salesforce) -> None:
    a, b = (sf.Contact.create(contact())["id"] for _ in range(2))
    got = sf.restful(
        "composite/sobjects/Contact", params={"ids": f"{a},{b}", "fields": "Id,LastName"}
    )
    assert [r["Id"] for r in got] == [a, b]
    results = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{a},{b},{a}"})
    assert [r["success"] for r in results] == [True, True, False]
    assert results[2]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


# ---- replication: getUpdated / getDeleted -------------------------------------------------------


def test_get_updated_and_deleted_windows(sf: Salesforce, clock: VirtualClock) -> None:
    # Given a contact created, one updated and one deleted an hour later
    created = sf.Contact.create(contact())["id"]
    doomed = sf.Contact.create(contact())["id"]
    clock.advance(3600)
    sf.Contact.update(created, {"Title": "CTO"})
    sf.Contact.delete(doomed)
    clock.advance(120)
    now = START + timedelta(seconds=3720)
    # When the client asks for the last 30 minutes
    updated = sf.Contact.updated(now - timedelta(minutes=30), now)
    deleted = sf.Contact.deleted(now - timedelta(minutes=30), now)
    # Then it sees the update and the delete, with the covered dates
    assert updated == {"ids": [created], "latestDateCovered": "2026-03-02T10:02:00.000+0000"}
    assert deleted["deletedRecords"] == [
        {"id": doomed, "deletedDate": "2026-03-02T10:00:00.000+0000"}
    ]
    assert SF_DATETIME.match(deleted["earliestDateAvailable"])
    assert deleted["latestDateCovered"] == "2026-03-02T10:02:00.000+0000"


def test_replication_windows_too_far_back(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.updated(START - timedelta(days=31), START)
    assert error_of(caught.value)["errorCode"] == "INVALID_REPLICATION_DATE"
    sf.Contact.updated(START - timedelta(days=29), START)
    with pytest.raises(SalesforceMalformedRequest) as deleted:
        sf.Contact.deleted(START - timedelta(days=16), START)
    assert error_of(deleted.value)["errorCode"] == "INVALID_REPLICATION_DATE"


def fresh_client(app: SalesforceSandbox, session: requests.Session) -> Salesforce:
    """A client with a new session, for tests that move the clock past the session timeout."""
    return Salesforce(session_id=app.issue_session(), instance_url=INSTANCE, session=session)


def test_recycle_bin_is_purged_after_15_days(
    sf: Salesforce, clock: VirtualClock, app: SalesforceSandbox, session: requests.Session
) -> None:
    gone = sf.Contact.create(contact())["id"]
    sf.Contact.delete(gone)
    deleted_at = clock.now()
    clock.advance(16 * 86400)
    now = clock.now()
    sf = fresh_client(app, session)
    assert sf.query_all("SELECT Id FROM Contact", include_deleted=True)["totalSize"] == 0
    result = sf.Contact.deleted(now - timedelta(days=14), now)
    assert result["deletedRecords"] == []
    # earliestDateAvailable moved past the purged delete: a client whose cursor is older resyncs
    assert result["earliestDateAvailable"] == deleted_at.strftime("%Y-%m-%dT%H:%M:00.000+0000")


def test_replication_id_limit(
    sf: Salesforce, session: requests.Session, clock: VirtualClock
) -> None:
    session.post(
        BASE + "_sandbox/faults", json={"rules": [], "quotas": {"replication_id_limit": 2}}
    )
    for _ in range(3):
        sf.Contact.create(contact())
    clock.advance(120)  # latestDateCovered trails the clock to the whole minute
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.updated(START - timedelta(days=1), START + timedelta(minutes=5))
    assert error_of(caught.value)["errorCode"] == "EXCEEDED_ID_LIMIT"


# ---- Bulk API 2.0 -------------------------------------------------------------------------------


def test_bulk2_query_csv_with_locators(sf: Salesforce, seeded: list[str], tmp_path: Path) -> None:
    # When the client runs a Bulk 2.0 query in sets of 2,000
    chunks = list(
        sf.bulk2.Contact.query(
            "SELECT Id, LastName, Account.Name, SystemModstamp FROM Contact",
            max_records=2000,
            wait=0,
        )
    )
    # Then it gets three CSV sets whose columns follow the SELECT order
    assert len(chunks) == 3
    header = chunks[0].splitlines()[0]
    assert header == '"Id","LastName","Account.Name","SystemModstamp"'
    rows = [line for chunk in chunks for line in chunk.splitlines()[1:]]
    assert len(rows) == 4500
    assert re.search(r'"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z"$', rows[0])
    # And download() writes the same sets to files
    files = sf.bulk2.Contact.download(
        "SELECT Id FROM Contact", str(tmp_path), max_records=2000, wait=0
    )
    assert [f["number_of_records"] for f in files] == [2000, 2000, 500]
    assert files[-1]["locator"] == ""


def test_bulk2_result_headers_and_parallel_locators(
    sf: Salesforce, seeded: list[str], session: requests.Session
) -> None:
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    jobs = f"{INSTANCE}/services/data/v59.0/jobs/query"
    job = session.post(
        jobs, json={"operation": "query", "query": "SELECT Id FROM Contact"}, headers=headers
    ).json()
    assert job["state"] == "UploadComplete"
    assert job["id"].startswith("750")
    states = [session.get(f"{jobs}/{job['id']}", headers=headers).json()["state"] for _ in range(2)]
    assert states == ["InProgress", "JobComplete"]
    first = session.get(f"{jobs}/{job['id']}/results", params={"maxRecords": 2000}, headers=headers)
    assert first.headers["Sforce-NumberOfRecords"] == "2000"
    locator = first.headers["Sforce-Locator"]
    assert locator != "null"
    # Locators are plain offsets: the third set can be read before the second, twice over
    third_locator = "NDAwMA"  # base64("4000"), as Salesforce's own locators are
    third = session.get(
        f"{jobs}/{job['id']}/results",
        params={"maxRecords": 2000, "locator": third_locator},
        headers=headers,
    )
    assert third.headers["Sforce-NumberOfRecords"] == "500"
    assert third.headers["Sforce-Locator"] == "null"
    second = session.get(
        f"{jobs}/{job['id']}/results",
        params={"maxRecords": 2000, "locator": locator},
        headers=headers,
    )
    assert second.headers["Sforce-Locator"] == third_locator
    all_ids = {line.strip('"') for r in (first, second, third) for line in r.text.splitlines()[1:]}
    assert all_ids == set(seeded)


def test_bulk2_query_job_limit(sf: Salesforce, session: requests.Session) -> None:
    session.post(
        BASE + "_sandbox/faults", json={"rules": [], "quotas": {"bulk_query_jobs_per_day": 1}}
    )
    list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0))
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0))
    assert error_of(caught.value)["errorCode"] == "LIMIT_EXCEEDED"


def test_bulk2_ingest_with_failed_and_unprocessed_results(sf: Salesforce) -> None:
    records = [contact() for _ in range(3)] + [
        {"FirstName": "NoLastName", "LastName": "", "Email": "a@b.co", "Phone": "", "Title": ""}
    ]
    results = sf.bulk2.Contact.insert(records=records, wait=0)
    assert results[0]["numberRecordsProcessed"] == 4
    assert results[0]["numberRecordsFailed"] == 1
    job_id = results[0]["job_id"]
    failed = sf.bulk2.Contact.get_failed_records(job_id)
    assert "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --" in failed
    successful = sf.bulk2.Contact.get_successful_records(job_id)
    assert successful.splitlines()[0].startswith('"sf__Id","sf__Created"')
    assert len(successful.splitlines()) == 4
    # the unprocessedrecords path is matched case-insensitively; nothing was left unprocessed
    assert len(sf.bulk2.Contact.get_unprocessed_records(job_id).splitlines()) == 1
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 3


def test_bulk2_ingest_unknown_column_fails_the_job(sf: Salesforce) -> None:
    from simple_salesforce.exceptions import SalesforceOperationError

    with pytest.raises(
        SalesforceOperationError, match="InvalidBatch : Field name not found : Shoe"
    ):
        sf.bulk2.Contact.insert(records=[{"LastName": "x", "Shoe": "44"}], wait=0)


# ---- list views, users ---------------------------------------------------------------------------


def test_list_view_describe_returns_its_soql(sf: Salesforce, session: requests.Session) -> None:
    # Given a list view made on the admin surface from a WHERE clause
    made = session.post(
        BASE + "_sandbox/listviews",
        json={
            "sobject": "Contact",
            "label": "Buyers",
            "where": "Title LIKE '%Buyer%'",
            "columns": ["Name", "Email", "Title"],
        },
    )
    assert made.status_code == 200, made.text
    sf.Contact.create(contact(Title="Senior Buyer"))
    sf.Contact.create(contact(Title="CTO"))
    # When the client lists and describes the views
    views = sf.restful("sobjects/Contact/listviews")
    buyers = next(v for v in views["listviews"] if v["label"] == "Buyers")
    described = sf.restful(f"sobjects/Contact/listviews/{buyers['id']}/describe")
    # Then the describe carries the view's SOQL, columns, order and condition
    assert described["query"].startswith("SELECT Name, Email, Title, Id, CreatedDate")
    assert (
        "WHERE Title LIKE '%Buyer%' ORDER BY Name ASC NULLS FIRST, Id ASC NULLS FIRST"
        in described["query"]
    )
    assert described["whereCondition"] == {
        "field": "Title",
        "operator": "like",
        "values": ["'%Buyer%'"],
    }
    assert [c["fieldNameOrPath"] for c in described["columns"] if not c["hidden"]] == [
        "Name",
        "Email",
        "Title",
    ]
    # And that SOQL runs as is
    assert [r["Title"] for r in sf.query(described["query"])["records"]] == ["Senior Buyer"]


def test_my_contacts_view_uses_scope_mine_and_userinfo(
    sf: Salesforce, app: SalesforceSandbox, session: requests.Session
) -> None:
    rep = Salesforce(
        session_id=app.issue_session("rep@example.com"), instance_url=INSTANCE, session=session
    )
    mine = sf.Contact.create(contact())["id"]
    rep.Contact.create(contact())
    me = sf.oauth2("userinfo")
    assert me["user_id"] == app.org.credentials.admin.id
    views = sf.restful("sobjects/Contact/listviews")["listviews"]
    my_view = next(v for v in views if v["developerName"] == "MyContacts")
    described = sf.restful(f"sobjects/Contact/listviews/{my_view['id']}/describe")
    assert "USING SCOPE mine" in described["query"]
    assert described["scope"] == "mine"
    assert [r["Id"] for r in sf.query(described["query"])["records"]] == [mine]
    rows = sf.query(f"SELECT Id FROM Contact WHERE OwnerId = '{me['user_id']}'")["records"]
    assert [r["Id"] for r in rows] == [mine]


# ---- sessions, limits, throttling ---------------------------------------------------------------


def test_expired_session_is_a_401_json_array(sf: Salesforce, clock: VirtualClock) -> None:
    sf.query("SELECT Id FROM Contact")
    clock.advance(2 * 3600 + 1)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Contact")
    assert caught.value.status == 401
    assert caught.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_session_stays_alive_while_used(sf: Salesforce, clock: VirtualClock) -> None:
    for _ in range(6):
        clock.advance(3600 + 600)  # past the half-life each time: the session is extended
        sf.query("SELECT Id FROM Contact")


def test_daily_api_limit_403_and_rolling_reset(
    sf: Salesforce, session: requests.Session, clock: VirtualClock, app: SalesforceSandbox
) -> None:
    session.post(BASE + "_sandbox/faults", json={"rules": [], "quotas": {"daily_api_requests": 3}})
    for _ in range(3):
        sf.query("SELECT Id FROM Contact")
    assert sf.api_usage["api-usage"].used == 3
    assert sf.api_usage["api-usage"].total == 3
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Contact")
    assert caught.value.status == 403
    assert caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    clock.advance(24 * 3600)
    sf = fresh_client(app, session)
    sf.query("SELECT Id FROM Contact")  # the rolling 24 hours have passed
    session.post(BASE + "_sandbox/faults", json={"rules": [], "quotas": {"enabled": False}})
    for _ in range(5):
        sf.query("SELECT Id FROM Contact")


def test_limits_resource(sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert limits["DailyApiRequests"]["Remaining"] == 100_000 - 1
    assert limits["DailyBulkV2QueryJobs"]["Max"] == 10_000


def test_throttle_fault_is_the_403(sf: Salesforce, session: requests.Session) -> None:
    session.post(BASE + "_sandbox/faults", json={"rules": [{"kind": "throttle", "times": 1}]})
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Contact")
    assert error_of(caught.value)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    session.post(
        BASE + "_sandbox/faults", json={"rules": [{"kind": "error", "status": 503, "times": 1}]}
    )
    response = session.get(
        f"{INSTANCE}/services/data/v59.0/limits/",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


# ---- OAuth --------------------------------------------------------------------------------------


def token(session: requests.Session, **form: str) -> requests.Response:
    return session.post(f"{INSTANCE}/services/oauth2/token", data=form)


def test_refresh_token_grant_and_its_failures(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    cfg = app.client_config()
    good = {
        "grant_type": "refresh_token",
        "client_id": cfg["client_id"],
        "client_secret": cfg["client_secret"],
        "refresh_token": cfg["refresh_token"],
    }
    response = token(session, **good)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == INSTANCE
    assert body["issued_at"].isdigit()
    assert body["id"].endswith(f"/id/{cfg['organization_id']}/{cfg['user_id']}")
    sf = Salesforce(
        session_id=body["access_token"], instance_url=body["instance_url"], session=session
    )
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    for change, error, description in [
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
        ({"refresh_token": "nope"}, "invalid_grant", "expired access/refresh token"),
        ({"grant_type": "password"}, "unsupported_grant_type", "grant type not supported"),
    ]:
        bad = token(session, **{**good, **change})
        assert bad.status_code == 400
        assert bad.json() == {"error": error, "error_description": description}


def test_jwt_bearer_through_simple_salesforce(
    app: SalesforceSandbox, session: requests.Session
) -> None:
    cfg = app.client_config()
    # simple-salesforce posts the assertion to login.salesforce.com: route that host here too
    session.mount("https://login.salesforce.com/", WSGITransport(app))
    sf = Salesforce(
        username=cfg["username"],
        consumer_key=cfg["client_id"],
        privatekey=cfg["jwt_private_key"],
        session=session,
    )
    assert sf.sf_instance == "salesforce.sandbox.test"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_jwt_bearer_failures(app: SalesforceSandbox, session: requests.Session) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    cfg = app.client_config()
    session.mount("https://login.salesforce.com/", WSGITransport(app))
    other_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SalesforceAuthenticationFailed) as wrong_key:
        Salesforce(
            username=cfg["username"],
            consumer_key=cfg["client_id"],
            privatekey=other_key,
            session=session,
        )
    assert (wrong_key.value.code, wrong_key.value.auth_message) == (
        "invalid_grant",
        "invalid assertion",
    )
    with pytest.raises(SalesforceAuthenticationFailed) as wrong_app:
        Salesforce(
            username=cfg["username"],
            consumer_key="3MVG9other",
            privatekey=cfg["jwt_private_key"],
            session=session,
        )
    assert wrong_app.value.code == "invalid_client_id"
    with (
        pytest.warns(UserWarning, match="self-authorize"),
        pytest.raises(SalesforceAuthenticationFailed) as unapproved,
    ):
        Salesforce(
            username="rep@example.com",
            consumer_key=cfg["client_id"],
            privatekey=cfg["jwt_private_key"],
            session=session,
        )
    assert unapproved.value.auth_message == "user hasn't approved this consumer"


# ---- objects, ids, person accounts --------------------------------------------------------------


def test_describe_and_describe_global(sf: Salesforce) -> None:
    described = sf.Contact.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert described["keyPrefix"] == "003"
    assert {
        k: fields["LastName"][k]
        for k in ("type", "label", "length", "nillable", "createable", "updateable")
    } == {
        "type": "string",
        "label": "Last Name",
        "length": 80,
        "nillable": False,
        "createable": True,
        "updateable": True,
    }
    assert fields["Name"]["createable"] is False
    assert fields["IsPersonAccount"]["updateable"] is False
    assert fields["Email"]["type"] == "email"
    assert fields["Contactsync_Id__c"]["externalId"] is True
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    names = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert names == {"Account": "001", "Contact": "003", "Lead": "00Q", "User": "005"}
    lead = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert lead["Status"]["defaultValue"] == "Open - Not Contacted"


def test_ids_have_valid_case_safe_suffixes() -> None:
    assert ids.suffix("001A0000006Vm9r") == "IAC"  # a documented example id
    rid = ids.make_id("00Q", 123456)
    assert len(rid) == 18
    assert ids.normalize(rid[:15]) == rid
    assert ids.normalize(rid.lower()) is None or ids.normalize(rid[:15] + rid[15:].lower()) == rid


def test_lead_defaults_and_restricted_picklist(sf: Salesforce) -> None:
    rid = sf.Lead.create({"LastName": "Vance", "Company": "Vance Refrigeration"})["id"]
    assert rid.startswith("00Q")
    assert sf.Lead.get(rid)["Status"] == "Open - Not Contacted"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.create({"LastName": "Vance", "Company": "VR", "Status": "Hot"})
    assert error_of(caught.value)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Lead.create({"LastName": "Vance"})
    assert error_of(missing.value)["fields"] == ["Company"]


def test_person_accounts_appear_as_read_only_contacts(sf: Salesforce) -> None:
    types = {
        r["developerName"]: r["recordTypeId"] for r in sf.Account.describe()["recordTypeInfos"]
    }
    account = sf.Account.create(
        {
            "RecordTypeId": types["PersonAccount"],
            "FirstName": "Søren",
            "LastName": "Kierkegård",
            "PersonEmail": "soren@example.dk",
            "PersonMobilePhone": "+45 20 12 34 56",
        }
    )["id"]
    row = sf.query("SELECT Id, Name, Email, MobilePhone, IsPersonAccount, AccountId FROM Contact")[
        "records"
    ][0]
    assert (row["Name"], row["Email"], row["IsPersonAccount"], row["AccountId"]) == (
        "Søren Kierkegård",
        "soren@example.dk",
        True,
        account,
    )
    assert sf.Account.get(account)["PersonContactId"] == row["Id"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.update(row["Id"], {"Title": "Philosopher"})
    assert error_of(caught.value)["errorCode"] == "INVALID_PERSON_ACCOUNT_OPERATION"
    sf.Account.update(account, {"PersonEmail": "s.kierkegaard@example.dk"})
    assert sf.Contact.get(row["Id"])["Email"] == "s.kierkegaard@example.dk"
    with pytest.raises(SalesforceMalformedRequest) as business:
        sf.Account.create({"Name": "Initech", "PersonEmail": "x@initech.example"})
    assert error_of(business.value)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_a_person_accounts_mailing_address_and_title_are_its_person_fields(
    sf: Salesforce,
) -> None:
    # Given a person account with a billing address and a personal mailing address
    types = {
        r["developerName"]: r["recordTypeId"] for r in sf.Account.describe()["recordTypeInfos"]
    }
    account = sf.Account.create(
        {
            "RecordTypeId": types["PersonAccount"],
            "LastName": "Kierkegård",
            "PersonTitle": "Philosopher",
            "PersonDepartment": "Ethics",
            "PersonOtherPhone": "+45 33 12 34 56",
            "PersonMailingCity": "København",
            "BillingCity": "Aarhus",
        }
    )["id"]
    # Then its read-only contact twin shows the Person* values, as in a real org
    row = sf.query(
        "SELECT Title, Department, OtherPhone, MailingCity FROM Contact WHERE AccountId = "
        f"'{account}'"
    )["records"][0]
    assert (row["Title"], row["Department"], row["OtherPhone"], row["MailingCity"]) == (
        "Philosopher",
        "Ethics",
        "+45 33 12 34 56",
        "København",
    )
    # and a business account cannot take them
    with pytest.raises(SalesforceMalformedRequest) as business:
        sf.Account.create({"Name": "Initech", "PersonTitle": "CEO"})
    assert error_of(business.value)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_deleting_an_account_deletes_its_contacts(sf: Salesforce) -> None:
    account = sf.Account.create({"Name": "Dunder Mifflin"})["id"]
    rid = sf.Contact.create(contact(AccountId=account))["id"]
    sf.Account.delete(account)
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(rid)


# ---- outbound messages --------------------------------------------------------------------------


class Receiver:
    """A SOAP endpoint that refuses the first delivery, then acknowledges."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(environ["wsgi.input"].read(size).decode())
        if len(self.bodies) == 1:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"busy"]
        start_response("200 OK", [("Content-Type", "text/xml")])
        from contactsync_sandbox.salesforce.outbound import ACK

        return [ACK.encode()]


def test_outbound_message_delivery_is_retried_until_acked(
    sf: Salesforce, app: SalesforceSandbox, session: requests.Session, clock: VirtualClock
) -> None:
    from werkzeug.test import Client

    receiver = Receiver()

    class ReceiverAdapter(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
            client = Client(receiver)
            result = client.post("/", data=request.body, headers=dict(request.headers))
            response = requests.Response()
            response.status_code = result.status_code
            response._content = result.get_data()
            return response

        def close(self) -> None:
            return None

    app.dispatcher.session.mount("https://hub.example/", ReceiverAdapter())
    made = session.post(
        BASE + "_sandbox/outbound_messages",
        json={
            "sobject": "Contact",
            "fields": ["Email", "LastName"],
            "endpoint": "https://hub.example/sf",
        },
    )
    assert made.status_code == 200
    rid = sf.Contact.create(contact(Email="pam@dundermifflin.com"))["id"]
    first = session.post(BASE + "_sandbox/outbound_messages/deliver").json()
    assert first == {"enqueued": 1, "acked": 0, "pending": 1}
    clock.advance(15)
    second = session.post(BASE + "_sandbox/outbound_messages/deliver").json()
    assert second["acked"] == 1
    assert second["pending"] == 0
    body = receiver.bodies[1]
    assert body == receiver.bodies[0]  # the same notification again: dedupe by its Id
    assert f"<OrganizationId>{app.org.credentials.org_id}</OrganizationId>" in body
    assert '<SessionId xsi:nil="true"/>' in body
    assert f"<sf:Id>{rid}</sf:Id>" in body
    assert "<sf:Email>pam@dundermifflin.com</sf:Email>" in body
    assert re.search(r"<Notification><Id>04l[0-9A-Za-z]{15}</Id>", body)


# ---- admin surface, state -----------------------------------------------------------------------


def test_seed_generates_realistic_contacts(sf: Salesforce, session: requests.Session) -> None:
    summary = session.post(
        BASE + "_sandbox/seed", json={"count": 50, "seed": 11, "overlap": 0.5}
    ).json()
    assert summary["count"] == 50
    assert len(summary["created"]["Contact"]) == 50
    rows = sf.query("SELECT Name, Email, Phone, Account.Name, SystemModstamp FROM Contact")[
        "records"
    ]
    assert len(rows) == 50
    assert all(r["Account"]["Name"] for r in rows)
    assert any(r["Phone"].startswith("+") for r in rows)
    assert any("(" in r["Phone"] for r in rows)
    assert len({r["SystemModstamp"] for r in rows}) < 50  # bulk-loaded: seconds are shared
    explicit = session.post(
        BASE + "_sandbox/seed",
        json={"records": [{"attributes": {"type": "Lead"}, "LastName": "Palmer", "Company": "DM"}]},
    ).json()
    assert explicit["created"]["Lead"][0].startswith("00Q")
    refused = session.post(BASE + "_sandbox/seed", json={"records": [{"FirstName": "x"}]})
    assert refused.status_code == 400
    assert "REQUIRED_FIELD_MISSING" in refused.json()["error"]


def test_state_round_trips_through_json(
    sf: Salesforce, app: SalesforceSandbox, tmp_path: Path, clock: VirtualClock, seeded: list[str]
) -> None:
    sf.Contact.delete(seeded[0])
    page = sf.query("SELECT Id FROM Contact")
    app.save(tmp_path / "sf.json")
    other = SalesforceSandbox(clock, seed=7)
    other.restore(tmp_path / "sf.json")
    assert other.dump_state() == app.dump_state()
    s2 = mount_sandbox(requests.Session(), BASE, other)
    sf2 = Salesforce(session_id=sf.session_id, instance_url=INSTANCE, session=s2)
    assert len(sf2.query_more(page["nextRecordsUrl"], True)["records"]) == 2000
    assert sf2.query_all("SELECT Id FROM Contact", include_deleted=True)["totalSize"] == 4500


def test_client_config_and_reset(app: SalesforceSandbox, session: requests.Session) -> None:
    cfg = app.client_config()
    assert cfg["instance_url"] == INSTANCE
    assert cfg["token_url"] == f"{INSTANCE}/services/oauth2/token"
    assert cfg["api_version"] == "59.0"
    assert cfg["admin"] == f"{INSTANCE}/_sandbox/"
    assert (
        cfg["client_id"] == SalesforceSandbox(VirtualClock(), seed=7).client_config()["client_id"]
    )
    assert cfg["client_id"] != Credentials.from_seed(8).client_id
    assert cfg["jwt_private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    session.post(BASE + "_sandbox/seed", json={"count": 3})
    assert session.post(BASE + "_sandbox/reset").status_code == 200
    assert app.org.tables["Contact"].records == {}


# ---- over real HTTPS ----------------------------------------------------------------------------


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[SalesforceSandbox, Path]]:
    authority = CertificateAuthority.create(tmp_path)
    served = SalesforceSandbox(VirtualClock(START), seed=7)
    server = HTTPSSandboxServer(served, authority, timeout_seconds=0.5).start()
    try:
        yield served, authority.ca_path
    finally:
        server.stop()


def test_over_https_with_refresh_token_and_queries(
    https_app: tuple[SalesforceSandbox, Path],
) -> None:
    served, ca = https_app
    cfg = served.client_config()
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    http.verify = str(ca)
    grant = http.post(
        cfg["token_url"],
        data={
            "grant_type": "refresh_token",
            "client_id": cfg["client_id"],
            "client_secret": cfg["client_secret"],
            "refresh_token": cfg["refresh_token"],
        },
        timeout=10,
    ).json()
    sf = Salesforce(
        session_id=grant["access_token"], instance_url=grant["instance_url"], session=http
    )
    assert sf.sf_instance == cfg["instance_url"].removeprefix("https://")
    http.post(cfg["admin"] + "seed", json={"count": 2100}, timeout=30)
    rows = list(sf.query_all_iter("SELECT Id, Email FROM Contact"))
    assert len(rows) == 2100
    assert sf.api_usage["api-usage"].used == 2
