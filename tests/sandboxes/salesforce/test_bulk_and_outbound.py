"""Bulk API 2.0 job lifecycle edges and Outbound Message batching, through simple-salesforce
where it has a call for it and through the same requests session otherwise."""

from __future__ import annotations

import requests
from simple_salesforce import Salesforce

from contactsync_sandbox.salesforce import SalesforceSandbox
from contactsync_sandbox.salesforce.outbound import ACK
from tests.sandboxes.salesforce.fixtures import (
    BASE,
    INSTANCE,
    app,
    clock,
    contact,
    seeded,
    session,
    sf,
)

__all__ = ["app", "clock", "seeded", "session", "sf"]


def _headers(sf: Salesforce) -> dict[str, str]:
    return {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}


def test_ingest_job_abort_leaves_rows_unprocessed(
    sf: Salesforce, session: requests.Session
) -> None:
    # Given an open ingest job with two uploaded rows
    jobs = f"{INSTANCE}/services/data/v59.0/jobs/ingest"
    job = session.post(
        jobs,
        json={"object": "Contact", "operation": "insert", "contentType": "CSV"},
        headers=_headers(sf),
    ).json()
    assert job["state"] == "Open"
    upload = session.put(
        f"{jobs}/{job['id']}/batches",
        data=b"LastName,Email\nHalpert,jim@dm.com\nBeesly,pam@dm.com\n",
        headers={**_headers(sf), "Content-Type": "text/csv"},
    )
    assert upload.status_code == 201
    # When the client aborts it
    aborted = session.patch(f"{jobs}/{job['id']}", json={"state": "Aborted"}, headers=_headers(sf))
    # Then nothing was written and both rows are unprocessed
    assert aborted.json()["state"] == "Aborted"
    unprocessed = sf.bulk2.Contact.get_unprocessed_records(job["id"])
    assert unprocessed.splitlines() == [
        '"LastName","Email"',
        '"Halpert","jim@dm.com"',
        '"Beesly","pam@dm.com"',
    ]
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    # And the job can be deleted, after which it is gone
    assert session.delete(f"{jobs}/{job['id']}", headers=_headers(sf)).status_code == 204
    assert session.get(f"{jobs}/{job['id']}", headers=_headers(sf)).status_code == 404


def test_query_results_before_completion_and_bad_query(
    sf: Salesforce, session: requests.Session
) -> None:
    jobs = f"{INSTANCE}/services/data/v59.0/jobs/query"
    job = session.post(
        jobs, json={"operation": "query", "query": "SELECT Id FROM Contact"}, headers=_headers(sf)
    ).json()
    early = session.get(f"{jobs}/{job['id']}/results", headers=_headers(sf))
    assert early.status_code == 400
    assert early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    bad = session.post(
        jobs, json={"operation": "query", "query": "SELECT Nope FROM Contact"}, headers=_headers(sf)
    )
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALIDJOB"
    assert "No such column 'Nope'" in bad.json()[0]["message"]


def test_bulk_upsert_and_delete(sf: Salesforce) -> None:
    sf.Contact.create(contact(Contactsync_Id__c="hub-9", Title="old"))
    result = sf.bulk2.Contact.upsert(
        records=[
            {"Contactsync_Id__c": "hub-9", "Title": "new"},
            {"Contactsync_Id__c": "hub-10", "LastName": "Vance"},
        ],
        external_id_field="Contactsync_Id__c",
        wait=0,
    )
    assert result[0]["numberRecordsProcessed"] == 2
    assert result[0]["numberRecordsFailed"] == 0
    rows = sf.query("SELECT Contactsync_Id__c, Title FROM Contact ORDER BY Contactsync_Id__c")[
        "records"
    ]
    assert [(r["Contactsync_Id__c"], r["Title"]) for r in rows] == [
        ("hub-10", None),
        ("hub-9", "new"),
    ]
    ids = [{"Id": r["Id"]} for r in sf.query("SELECT Id FROM Contact")["records"]]
    deleted = sf.bulk2.Contact.delete(records=ids, wait=0)
    assert deleted[0]["numberRecordsProcessed"] == 2
    assert sf.query_all("SELECT Id, IsDeleted FROM Contact", include_deleted=True)["totalSize"] == 2


class AckingEndpoint(requests.adapters.BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []

    def send(self, request: requests.PreparedRequest, **_: object) -> requests.Response:
        body = request.body
        self.bodies.append(body.decode() if isinstance(body, bytes) else str(body))
        response = requests.Response()
        response.status_code = 200
        response._content = ACK.encode()
        return response

    def close(self) -> None:
        return None


def test_outbound_messages_carry_at_most_100_notifications(
    sf: Salesforce, app: SalesforceSandbox, session: requests.Session
) -> None:
    endpoint = AckingEndpoint()
    app.dispatcher.session.mount("https://hub.example/", endpoint)
    session.post(
        BASE + "_sandbox/outbound_messages",
        json={"sobject": "Contact", "fields": ["Email"], "endpoint": "https://hub.example/sf"},
    )
    records = [{"attributes": {"type": "Contact"}, **contact()} for _ in range(150)]
    sf.restful("composite/sobjects", method="POST", json={"records": records})
    delivered = session.post(BASE + "_sandbox/outbound_messages/deliver").json()
    assert delivered == {"enqueued": 2, "acked": 2, "pending": 0}
    assert [b.count("<Notification>") for b in endpoint.bodies] == [100, 50]


def test_bulk_job_survives_save_and_restore(
    sf: Salesforce, app: SalesforceSandbox, seeded: list[str], tmp_path: object
) -> None:
    from pathlib import Path

    chunks = list(sf.bulk2.Contact.query("SELECT Id, Email FROM Contact", max_records=4000, wait=0))
    assert len(chunks) == 2
    path = Path(str(tmp_path)) / "state.json"
    app.save(path)
    other = SalesforceSandbox(app.clock, seed=7)
    other.restore(path)
    job_id = next(iter(other.bulk.jobs))
    data, count, locator = other.bulk.results(other.bulk.jobs[job_id], "NDAwMA", "4000")
    assert (count, locator) == (500, "null")
    assert data.splitlines()[0] == '"Id","Email"'
