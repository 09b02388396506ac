"""Bulk API 2.0: query jobs (CSV results in sets addressed by base-64 locators, usable in any order
and in parallel) and ingest jobs (CSV upload, processing, and the successful / failed /
unprocessed result sets). Jobs advance UploadComplete -> InProgress -> JobComplete as they are
polled or as the virtual clock moves."""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from contactsync_sandbox.salesforce import exceptions as err
from contactsync_sandbox.salesforce import soql
from contactsync_sandbox.salesforce.exceptions import SalesforceError
from contactsync_sandbox.salesforce.models import (
    DAY,
    Org,
    WriteContext,
    format_datetime,
    format_datetime_z,
)
from contactsync_sandbox.salesforce.schema import get_object

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
PROCESSING_SECONDS = 5  # a job also completes once this much virtual time has passed
RESULT_SETS = {
    "successfulresults": "successful",
    "failedresults": "failed",
    "unprocessedrecords": "unprocessed",
}


@dataclass
class Job:
    id: str
    kind: str  # "query" or "ingest"
    operation: str
    object: str
    created: int
    user_id: str
    api_version: str
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    state: str = "UploadComplete"
    query: str = ""
    external_id_field: str | None = None
    modstamp: int = 0
    polls: int = 0
    ids: list[str] = field(default_factory=list)
    columns: list[soql.Column] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    successful_rows: list[list[str]] = field(default_factory=list)
    failed_rows: list[list[str]] = field(default_factory=list)
    unprocessed_rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    error_message: str | None = None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.user_id,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query" if self.kind == "query" else "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.processed,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.kind == "ingest":
            out["externalIdFieldName"] = self.external_id_field
            out["numberRecordsFailed"] = self.failed
            out["apiActiveProcessingTime"] = 0
            out["apexProcessingTime"] = 0
            out["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


def _csv(rows: list[list[str]], delimiter: str, line_ending: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=DELIMITERS[delimiter],
        lineterminator=LINE_ENDINGS[line_ending],
        quoting=csv.QUOTE_ALL,
    )
    writer.writerows(rows)
    return buffer.getvalue()


def _csv_value(value: Any, type_: str) -> str:
    if value is None:
        return ""
    if type_ == "boolean":
        return "true" if value else "false"
    if type_ == "datetime":
        return format_datetime_z(value)
    return str(value)


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        text = base64.b64decode(padded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise err.bad_request("INVALIDLOCATOR", f"Invalid locator: {locator}") from exc
    if not text.isdigit():
        raise err.bad_request("INVALIDLOCATOR", f"Invalid locator: {locator}")
    return int(text)


class BulkJobs:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.jobs: dict[str, Job] = {}
        self.query_job_times: deque[int] = deque()

    def reset(self) -> None:
        self.jobs.clear()
        self.query_job_times.clear()

    def get(self, job_id: str, kind: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise err.not_found()
        return job

    # ---- query jobs --------------------------------------------------------------------------

    def create_query(self, body: dict[str, Any], user_id: str, version: str) -> Job:
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise err.bad_request("INVALIDJOB", f"Invalid operation: {operation}")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise err.bad_request("INVALIDJOB", "query is required for query jobs")
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        line_ending = str(body.get("lineEnding", "LF"))
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise err.bad_request("INVALIDJOB", "invalid columnDelimiter or lineEnding")
        now = self.org.now()
        times = self.query_job_times
        while times and times[0] <= now - DAY:
            times.popleft()
        limit = self.org.settings.bulk_query_jobs_per_day
        if self.org.settings.enabled and len(times) >= limit:
            raise err.bad_request(
                "LIMIT_EXCEEDED", f"Max bulk v2 query jobs exceeded: {limit} per 24 hours"
            )
        try:
            q = soql.compile_query(text, self.org)
        except soql.SoqlError as exc:
            raise err.bad_request("INVALIDJOB", exc.message) from exc
        if q.count_only or q.count_column is not None or q.offset is not None:
            raise err.bad_request(
                "INVALIDJOB", "Aggregate queries and OFFSET are not supported by Bulk API 2.0 query"
            )
        found = self.org.select_ids(q, operation == "queryAll", user_id)
        job = Job(
            id=self.org.seq.next("750"),
            kind="query",
            operation=operation,
            object=q.sobject.name,
            created=now,
            user_id=user_id,
            api_version=version,
            column_delimiter=delimiter,
            line_ending=line_ending,
            query=text,
            ids=found,
            columns=q.columns,
        )
        times.append(now)
        self.jobs[job.id] = job
        return job

    def poll(self, job: Job) -> Job:
        """Advances the job the way a real one moves on between two status calls."""
        if job.state in ("JobComplete", "Failed", "Aborted", "Open"):
            return job
        job.polls += 1
        due = self.org.now() >= job.created + PROCESSING_SECONDS
        if job.state == "UploadComplete":
            job.state = "InProgress"
            job.modstamp = self.org.now()
        if job.state == "InProgress" and (
            due or job.polls >= self.org.settings.bulk_polls_to_complete
        ):
            self._complete(job)
        return job

    def _complete(self, job: Job) -> None:
        if job.kind == "query":
            job.processed = len(job.ids)
            job.state = "JobComplete"
        else:
            self._process_ingest(job)
        job.modstamp = self.org.now()

    def results(
        self, job: Job, locator: str | None, max_records: str | None
    ) -> tuple[str, int, str]:
        """(csv, number of records, next locator or "null")."""
        if job.state != "JobComplete":
            raise err.bad_request(
                "INVALIDJOBSTATE", f"Job is not in a state to return results: {job.state}"
            )
        start = decode_locator(locator) if locator else 0
        if max_records is None:
            size = self.org.settings.bulk_default_max_records
        elif max_records.isdigit() and int(max_records) > 0:
            size = int(max_records)
        else:
            raise err.bad_request("INVALIDPARAMETER", f"Invalid maxRecords: {max_records}")
        chunk = job.ids[start : start + size]
        rows = [[c.header for c in job.columns]]
        lookup = self.org.tables[job.object].records
        for rid in chunk:
            rec = lookup.get(rid)
            if rec is None:  # purged since the job ran
                continue
            rows.append([_csv_value(c.getter(rec), c.field.type) for c in job.columns])
        end = start + size
        next_locator = encode_locator(end) if end < len(job.ids) else "null"
        return _csv(rows, job.column_delimiter, job.line_ending), len(rows) - 1, next_locator

    # ---- ingest jobs --------------------------------------------------------------------------

    def create_ingest(self, body: dict[str, Any], user_id: str, version: str) -> Job:
        name = str(body.get("object", ""))
        sobject = get_object(name)
        if sobject is None:
            raise err.bad_request(
                "INVALIDENTITY", f"Entity '{name}' is not supported by the Bulk API."
            )
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise err.bad_request("INVALIDJOB", f"Invalid operation: {operation}")
        external = body.get("externalIdFieldName")
        if operation == "upsert" and not external:
            raise err.bad_request(
                "INVALIDJOB",
                "External ID was blank for the upsert operation. Specify an External ID",
            )
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        line_ending = str(body.get("lineEnding", "LF"))
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise err.bad_request("INVALIDJOB", "invalid columnDelimiter or lineEnding")
        job = Job(
            id=self.org.seq.next("750"),
            kind="ingest",
            operation=str(operation),
            object=sobject.name,
            created=self.org.now(),
            user_id=user_id,
            api_version=version,
            column_delimiter=delimiter,
            line_ending=line_ending,
            state="Open",
            external_id_field=str(external) if external else None,
        )
        self.jobs[job.id] = job
        return job

    def upload(self, job: Job, data: str) -> None:
        if job.state != "Open":
            raise SalesforceError(
                409, "INVALIDJOBSTATE", f"Unable to upload data: job is in state {job.state}"
            )
        job.uploads.append(data)

    def set_state(self, job: Job, state: Any) -> Job:
        if state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            job.state = "UploadComplete"
        elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            if job.kind == "ingest":
                job.unprocessed_rows = self._rows(job)[1]
                job.header = self._rows(job)[0]
            job.state = "Aborted"
        else:
            raise err.bad_request(
                "INVALIDJOBSTATE", f"Invalid state transition from {job.state} to {state}"
            )
        job.modstamp = self.org.now()
        return job

    def _rows(self, job: Job) -> tuple[list[str], list[list[str]]]:
        header: list[str] = []
        rows: list[list[str]] = []
        for data in job.uploads:
            reader = csv.reader(
                io.StringIO(data, newline=""), delimiter=DELIMITERS[job.column_delimiter]
            )
            chunk = [row for row in reader if row]
            if not chunk:
                continue
            header = chunk[0]
            rows.extend(chunk[1:])
        return header, rows

    def _process_ingest(self, job: Job) -> None:
        header, rows = self._rows(job)
        job.header = header
        sobject = get_object(job.object)
        assert sobject is not None
        unknown = [h for h in header if sobject.field(h) is None]
        if unknown or not header:
            job.state = "Failed"
            job.error_message = (
                f"InvalidBatch : Field name not found : {unknown[0] if unknown else ''}"
            )
            return
        ctx = WriteContext(job.user_id)
        for row in rows:
            data = {
                h: ("" if v == "" else (None if v == "#N/A" else v))
                for h, v in zip(header, row, strict=False)
            }
            data = {k: v for k, v in data.items() if v != ""}
            job.processed += 1
            try:
                rid, created = self._apply(job, data, ctx)
            except SalesforceError as exc:
                job.failed += 1
                job.failed_rows.append([str(data.get("Id") or ""), exc.bulk_error(), *row])
                continue
            job.successful_rows.append([rid, "true" if created else "false", *row])
        job.state = "JobComplete"

    def _apply(self, job: Job, data: dict[str, Any], ctx: WriteContext) -> tuple[str, bool]:
        org = self.org
        if job.operation == "insert":
            return org.create(job.object, data, ctx), True
        if job.operation == "upsert":
            assert job.external_id_field is not None
            value = data.get(job.external_id_field)
            if not value:
                return org.create(job.object, data, ctx), True
            body = {k: v for k, v in data.items() if k != job.external_id_field}
            try:
                return org.upsert(job.object, job.external_id_field, str(value), body, ctx)
            except SalesforceError as exc:
                if exc.status == 300:
                    raise err.bad_request(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{job.external_id_field}: more than one record found for external id"
                        f" field: {value}",
                    ) from exc
                raise
        rid = str(data.get("Id") or "")
        if not rid:
            raise err.bad_request("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if job.operation == "update":
            rec = org.update(job.object, rid, {k: v for k, v in data.items() if k != "Id"}, ctx)
            return str(rec["Id"]), False
        try:
            org.delete(job.object, rid, ctx)
        except SalesforceError as exc:
            if exc.code == "NOT_FOUND":
                raise err.bad_request(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []
                ) from exc
            raise
        if job.operation == "hardDelete":
            org.hard_delete(job.object, rid)
        return rid, False

    def result_set(self, job: Job, which: str) -> str:
        kind = RESULT_SETS.get(which.lower())
        if kind is None:
            raise err.not_found()
        if kind == "successful":
            rows = [["sf__Id", "sf__Created", *job.header], *job.successful_rows]
        elif kind == "failed":
            rows = [["sf__Id", "sf__Error", *job.header], *job.failed_rows]
        else:
            rows = [list(job.header), *job.unprocessed_rows]
        return _csv(rows, job.column_delimiter, job.line_ending) if job.header else ""

    def list_jobs(self, kind: str) -> dict[str, Any]:
        return {
            "done": True,
            "records": [j.info() for j in self.jobs.values() if j.kind == kind],
            "nextRecordsUrl": None,
        }

    def delete(self, job: Job) -> None:
        if job.state in ("UploadComplete", "InProgress"):
            raise err.bad_request("INVALIDJOBSTATE", f"Cannot delete a job in state {job.state}")
        del self.jobs[job.id]

    def dump(self) -> list[dict[str, Any]]:
        out = []
        for job in self.jobs.values():
            raw = {k: v for k, v in job.__dict__.items() if k != "columns"}
            out.append(raw)
        return out

    def load(self, raw_jobs: list[dict[str, Any]]) -> None:
        self.jobs = {}
        for raw in raw_jobs:
            job = Job(**raw)
            if job.kind == "query" and job.query:
                job.columns = soql.compile_query(job.query, self.org).columns
            self.jobs[job.id] = job
