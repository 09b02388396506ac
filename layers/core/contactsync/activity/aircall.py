"""Aircall calls (stream ``activity.calls``), through the Aircall connector's authenticated
session, rate governor and error table.

``GET /v1/calls?from=<unix>&order=asc`` reads by creation (start) time: the cursor is the
start time of the last call read plus the ids read at that second (``>=`` with dedupe: start
times are not unique). Aircall answers at most 10,000 records a query, so a long backlog is read
in successive queries, each from the last start time seen. Aircall keeps about six months of
calls: older ones are gone anyway.

Call webhooks (``call.ended`` and friends) carry the call itself: ``captured_from_delivery``
verifies one delivery's token (constant time) and returns what the capture ingests at once;
``ensure_call_webhook`` registers a webhook of its own for them (the contact webhook's events
stay the connector's).

A call has no content to fetch: its metadata is all there is.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests
from pydantic import ValidationError

from contactsync.activity.base import CALLS, Captured, CapturePage
from contactsync.connectors.aircall.client import (
    AircallConfig,
    Credentials,
    build_session,
    make_http,
)
from contactsync.connectors.aircall.errors import RemoteNotFound, WebhookRejected
from contactsync.connectors.aircall.models import WebhookDelivery
from contactsync.connectors.base import ConnectorStats, TransientError
from contactsync.connectors.http import Clock, HttpClient, SystemClock
from contactsync.domain.activity import ActivityKind
from contactsync.domain.contact import to_e164

CALL_EVENTS = ("call.ended",)
CALL_WEBHOOK_ID = "call_webhook_id"
CALL_WEBHOOK_TOKEN = "call_webhook_token"
CALL_WEBHOOK_NAME = "contactsync-calls"
CALL_WEBHOOK_URL = "call_webhook_url"  # where the registered one posts (re-registered on change)
MAX_QUERIES = 10_000


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError("bad_response", "not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError("bad_response", "not an object")
    return body


def captured_call(call: Mapping[str, Any], region: str = "US") -> Captured | None:
    """An Aircall call resource as an activity: the other party's number in E.164, who took
    it (the Aircall user's email), its direction and length."""
    call_id = call.get("id")
    started = call.get("started_at")
    if not isinstance(call_id, int) or not isinstance(started, int | float):
        return None
    raw = call.get("raw_digits")
    number = to_e164(raw, region) if isinstance(raw, str) and raw else None
    user = call.get("user") if isinstance(call.get("user"), dict) else {}
    email = user.get("email") if isinstance(user, dict) else None
    direction = call.get("direction")
    duration = call.get("duration")
    return Captured(
        remote_id=str(call_id),
        kind=ActivityKind.CALL,
        occurred_at=datetime.fromtimestamp(float(started), UTC),
        participants=(number,) if number else (),
        sender=None
        if direction == "inbound"
        else (email.lower() if isinstance(email, str) else None),
        direction="inbound" if direction == "inbound" else "outbound",
        duration_seconds=int(duration)
        if isinstance(duration, int | float) and duration >= 0
        else None,
        handled_by=email.lower() if isinstance(email, str) and "@" in email else None,
    )


class AircallCallsReader:
    stream = CALLS

    def __init__(self, http: HttpClient, config: AircallConfig) -> None:
        self.http = http
        self.config = config

    def read(self, cursor: str | None, since: datetime) -> Iterator[CapturePage]:
        state = json.loads(cursor) if cursor else {}
        start = int(state.get("from") or since.timestamp())
        seen: set[int] = {int(i) for i in state.get("ids") or ()}
        full = cursor is None
        for _ in range(MAX_QUERIES):
            queried, moved = 0, False
            page_number = 1
            query_from = start  # every page of one query asks the same question
            while True:
                params = {
                    "from": query_from,
                    "order": "asc",
                    "per_page": self.config.per_page,
                    "page": page_number,
                }
                url = f"{self.config.api_base}/calls?{urlencode(params)}"
                body = _json(self.http.request("GET", url, "calls.list"))
                calls = [c for c in body.get("calls") or () if isinstance(c, dict)]
                queried += len(calls)
                items: list[Captured] = []
                for call in calls:
                    call_id, started = call.get("id"), call.get("started_at")
                    if not isinstance(call_id, int) or not isinstance(started, int):
                        continue
                    if started == start and call_id in seen:
                        continue
                    if started > start:
                        start, seen, moved = started, set(), True
                    seen.add(call_id)
                    if (captured := captured_call(call, self.config.default_region)) is not None:
                        items.append(captured)
                meta = body.get("meta") or {}
                more = bool(meta.get("next_page_link")) and queried < self.config.query_cap
                cursor_now = json.dumps({"from": start, "ids": sorted(seen)})
                yield CapturePage(items, cursor_now, last=False, full=full)
                if not more:
                    break
                page_number += 1
            # A query stops at the cap: the next one starts from the last start time seen.
            if queried < self.config.query_cap or not moved:
                break
        yield CapturePage(
            [], json.dumps({"from": start, "ids": sorted(seen)}), last=True, full=full
        )

    def fetch_body(self, remote_id: str) -> str | None:
        return None  # a call has no content

    def ensure_webhook(self, url: str, secrets: Mapping[str, str]) -> dict[str, str] | None:
        """Registers (or repairs) this account's call webhook; see ``ensure_call_webhook``."""
        return ensure_call_webhook(self.http, self.config, url, secrets)


def readers(
    config: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    session: requests.Session | None = None,
    clock: Clock | None = None,
) -> list[AircallCallsReader]:
    aircall = AircallConfig.from_mapping(config)
    authenticated = build_session(Credentials.from_secrets(secrets), session, aircall.ca_bundle)
    http, _ = make_http(authenticated, aircall, clock or SystemClock(), ConnectorStats())
    return [AircallCallsReader(http, aircall)]


# ---- call webhooks -----------------------------------------------------------------------------


def captured_from_delivery(
    body: bytes | str | Mapping[str, Any], expected_token: str | None, region: str = "US"
) -> Captured | None:
    """Verifies one webhook delivery (our token, constant-time) and returns the call it
    carries when it is a call event we capture. Raises WebhookRejected otherwise (answer 401,
    ingest nothing)."""
    try:
        raw = json.loads(body) if isinstance(body, bytes | str) else dict(body)
        delivery = WebhookDelivery.model_validate(raw)
    except (ValueError, TypeError, ValidationError) as exc:
        raise WebhookRejected("malformed_delivery", "not an Aircall webhook delivery") from exc
    if not expected_token or not hmac.compare_digest(
        delivery.token.encode(), expected_token.encode()
    ):
        raise WebhookRejected("bad_webhook_token", "the delivery does not carry our token")
    if delivery.resource != "call" or delivery.event not in CALL_EVENTS:
        return None
    return captured_call(delivery.data, region)


def ensure_call_webhook(
    http: HttpClient, config: AircallConfig, url: str, secrets: Mapping[str, str]
) -> dict[str, str] | None:
    """Makes sure a webhook for call events posts to ``url``. Returns the secrets to store
    (``call_webhook_id``, ``call_webhook_token``) when they changed."""
    base = config.api_base
    hook: dict[str, Any] | None = None
    known = secrets.get(CALL_WEBHOOK_ID)
    if known:
        try:
            hook = _json(http.request("GET", f"{base}/webhooks/{known}", "webhooks.get"))["webhook"]
        except RemoteNotFound:
            hook = None
    wanted = {"url": url, "custom_name": CALL_WEBHOOK_NAME, "events": list(CALL_EVENTS)}
    if hook is None:
        created = http.request(
            "POST", f"{base}/webhooks", "webhooks.create", idempotent=False, json=wanted
        )
        hook = _json(created)["webhook"]
    elif (
        hook.get("url") != url
        or sorted(hook.get("events") or ()) != sorted(CALL_EVENTS)
        or not hook.get("active")
    ):
        updated = http.request(
            "PUT",
            f"{base}/webhooks/{hook['webhook_id']}",
            "webhooks.update",
            json={**wanted, "active": True},
        )
        hook = {**_json(updated)["webhook"], "token": hook.get("token")}
    assert hook is not None
    token = hook.get("token") or secrets.get(CALL_WEBHOOK_TOKEN)
    if not token:
        raise WebhookRejected("no_webhook_token", "Aircall did not return the webhook's token")
    found = {CALL_WEBHOOK_ID: str(hook["webhook_id"]), CALL_WEBHOOK_TOKEN: str(token)}
    return None if all(secrets.get(k) == v for k, v in found.items()) else found
