"""Verifying provider deliveries: small functions the connectors can take over.

- Microsoft Graph: the ``validationToken`` handshake, ``clientState`` compared in constant time
  with the secret we gave the subscription, lifecycle events.
- Aircall: the delivery's ``token`` compared in constant time with the webhook's (kept in the
  account's secrets by the connector), a delivery id for deduplication, stale events refused.
- Salesforce outbound messages: SOAP, the OrganizationId compared with the account's, the
  endpoint key in the URL, one delivery id per Notification Id, the SOAP Ack.

Per-account secrets are derived from the deployment's webhook key (HMAC), so checking a Graph
or Salesforce delivery needs no lookup of a stored secret.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from pydantic import BaseModel, ConfigDict, ValidationError

from contactsync.api.problems import ApiError
from contactsync.api.queue import PullAction

log = logging.getLogger(__name__)

GRAPH_LIFECYCLE = {
    "reauthorizationRequired": PullAction.REAUTHORIZE,
    "subscriptionRemoved": PullAction.RESYNC,
    "missed": PullAction.PULL,
}
# Graph retries a notification for up to four hours; one for a subscription that expired
# before that is a replay.
GRAPH_GRACE = timedelta(hours=4)
SOAP_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
_OUTBOUND = "{http://soap.sforce.com/2005/09/outbound}"


class WebhookRejected(ApiError):
    """A delivery we do not act on: forged (401), malformed (400), stale (400)."""

    status = 400
    code = "rejected"


def derive_secret(webhook_key: str, purpose: str, org_id: str, account_id: str) -> str:
    """A per-account secret for ``purpose`` (64 hex characters, within Graph's 128)."""
    message = f"{purpose}\x00{org_id}\x00{account_id}".encode()
    return hmac.new(webhook_key.encode(), message, hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected("The body is not JSON.", code="malformed") from exc


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---- Microsoft Graph ------------------------------------------------------------------------


class GraphNotification(_Raw):
    subscriptionId: str  # noqa: N815 - Graph's spelling
    clientState: str | None = None  # noqa: N815
    changeType: str | None = None  # noqa: N815
    lifecycleEvent: str | None = None  # noqa: N815
    subscriptionExpirationDateTime: datetime | None = None  # noqa: N815
    resource: str | None = None
    resourceData: dict[str, Any] | None = None  # noqa: N815


@dataclass(frozen=True)
class GraphBatch:
    """The notifications of one POST that verified: their delivery keys and the work asked."""

    keys: list[str]
    actions: list[PullAction]
    rejected: int


def verify_graph(body: bytes, client_state: str, now: datetime) -> GraphBatch:
    raw = _json(body)
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), list) or not raw["value"]:
        raise WebhookRejected('Expected {"value": [notifications]}.', code="malformed")
    if len(raw["value"]) > 1000:
        raise WebhookRejected("Too many notifications in one request.", code="malformed")
    keys: list[str] = []
    actions: list[PullAction] = []
    rejected = 0
    for item in raw["value"]:
        try:
            note = GraphNotification.model_validate(item)
        except ValidationError as exc:
            raise WebhookRejected("A notification is malformed.", code="malformed") from exc
        if note.clientState is None or not same(note.clientState, client_state):
            rejected += 1  # not from our subscription: ignored, as Graph's docs ask
            continue
        expiry = note.subscriptionExpirationDateTime
        if expiry is not None and expiry.astimezone(UTC) + GRAPH_GRACE < now:
            rejected += 1  # a replay of a long-expired subscription's notification
            continue
        if note.lifecycleEvent is not None:
            action = GRAPH_LIFECYCLE.get(note.lifecycleEvent)
            if action is None:
                rejected += 1
                continue
            actions.append(action)
            keys.append(f"graph-lc\x00{note.subscriptionId}\x00{note.lifecycleEvent}\x00{expiry}")
            continue
        data = note.resourceData or {}
        actions.append(PullAction.PULL)
        keys.append(
            "graph\x00"
            + "\x00".join(
                str(v)
                for v in (
                    note.subscriptionId,
                    note.changeType,
                    data.get("id"),
                    data.get("@odata.etag"),
                )
            )
        )
    if not actions and rejected:
        raise WebhookRejected("No notification carried our clientState.", code="forged", status=401)
    return GraphBatch(keys, actions, rejected)


def graph_validation_token(raw: str | None) -> str | None:
    """The decoded ``validationToken`` to echo (the query string is already decoded)."""
    if raw is None:
        return None
    if not raw or len(raw) > 1024:
        raise WebhookRejected("The validationToken is empty or too long.", code="malformed")
    return raw


# ---- Aircall --------------------------------------------------------------------------------


class AircallDelivery(_Raw):
    resource: str
    event: str
    timestamp: int | str | None = None
    token: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AircallEvent:
    key: str
    contact_event: bool
    name: str = ""  # resource and event: "call:call.ended", "contact:contact.updated"...


def _aircall_time(value: int | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookRejected("The timestamp is not a time.", code="malformed") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ConnectorVerifier = Callable[[bytes, str, str], object]


def _connector_verifier() -> ConnectorVerifier | None:
    """The Aircall connector's own ``parse_delivery`` when it is installed (it also checks the
    token in constant time); ours below otherwise."""
    try:
        module = importlib.import_module("contactsync.connectors.aircall.webhooks")
    except ImportError:
        return None
    verifier = getattr(module, "parse_delivery", None)
    return verifier if callable(verifier) else None


def verify_aircall(
    body: bytes, expected_token: str | None, now: datetime, max_age: timedelta, region: str = "US"
) -> AircallEvent:
    raw = _json(body)
    try:
        delivery = AircallDelivery.model_validate(raw)
    except ValidationError as exc:
        raise WebhookRejected("Not an Aircall delivery.", code="malformed") from exc
    if not expected_token or not same(delivery.token, expected_token):
        raise WebhookRejected("The delivery does not carry our token.", code="forged", status=401)
    at = _aircall_time(delivery.timestamp)
    if at is not None and at < now - max_age:
        raise WebhookRejected("The delivery is too old.", code="stale")
    if at is not None and at > now + timedelta(minutes=10):
        raise WebhookRejected("The delivery is dated in the future.", code="stale")
    verifier = _connector_verifier()
    if verifier is not None:
        try:
            verifier(body, expected_token, region)
        except Exception as exc:  # the connector's WebhookRejected (a ConnectorError)
            if type(exc).__name__ != "WebhookRejected":
                raise
            if getattr(exc, "code", "") == "bad_webhook_token":
                raise WebhookRejected(
                    "The delivery does not carry our token.", code="forged", status=401
                ) from exc
            # A snapshot the connector cannot read still announces a change: the pull reads
            # the contact from the API, so the delivery is acted on, not refused.
            log.info("aircall snapshot unreadable", extra={"code": getattr(exc, "code", "")})
    data_id = delivery.data.get("id")
    updated = delivery.data.get("updated_at")
    key = f"aircall\x00{delivery.event}\x00{data_id}\x00{delivery.timestamp}\x00{updated}"
    return AircallEvent(
        key,
        delivery.resource == "contact" and delivery.event.startswith("contact."),
        f"{delivery.resource}:{delivery.event}",
    )


# ---- Salesforce outbound messages -----------------------------------------------------------


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    notification_ids: list[str]
    sobjects: list[str]


def _text(element: ElementTree.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def verify_salesforce(body: bytes, expected_org_id: str | None) -> OutboundMessage:
    head = body[:2048].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise WebhookRejected("Document type declarations are refused.", code="malformed")
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - DTDs refused above; size capped
    except ElementTree.ParseError as exc:
        raise WebhookRejected("The body is not XML.", code="malformed") from exc
    notifications = root.find(f".//{_OUTBOUND}notifications")
    if notifications is None:
        raise WebhookRejected("Not an outbound message.", code="malformed")
    org_id = _text(notifications.find(f"{_OUTBOUND}OrganizationId"))
    if not expected_org_id or not org_id or not same(org_id[:15], expected_org_id[:15]):
        raise WebhookRejected(
            "The OrganizationId is not this account's.", code="forged", status=403
        )
    ids: list[str] = []
    sobjects: list[str] = []
    for item in notifications.findall(f"{_OUTBOUND}Notification"):
        notification_id = _text(item.find(f"{_OUTBOUND}Id"))
        if not notification_id or len(notification_id) > 64:
            raise WebhookRejected("A notification has no Id.", code="malformed")
        ids.append(notification_id)
        sobject = item.find(f"{_OUTBOUND}sObject")
        kind = ""
        if sobject is not None:
            kind = next((v for k, v in sobject.attrib.items() if k.endswith("}type")), "")
        sobjects.append(kind.split(":")[-1])
    if not ids or len(ids) > 100:
        raise WebhookRejected("An outbound message holds 1 to 100 notifications.", code="malformed")
    return OutboundMessage(org_id, ids, sobjects)
