"""Outbound Messages: a workflow action that POSTs a SOAP ``notifications`` envelope (up to 100
``Notification`` elements, each with its own Id and the chosen fields of one record) to an
endpoint, and keeps retrying for 24 hours until the endpoint answers ``<Ack>true</Ack>``.
Delivery is at least once and may arrive out of order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import requests

from contactsync_sandbox.core.webhooks import Delivery, WebhookDispatcher
from contactsync_sandbox.salesforce.models import Record, format_datetime

log = logging.getLogger(__name__)

MAX_NOTIFICATIONS = 100
# Salesforce retries for up to 24 hours, the gaps growing to two hours.
RETRY_BACKOFF = (
    15,
    30,
    60,
    120,
    240,
    480,
    960,
    1920,
    3840,
    7200,
    7200,
    7200,
    7200,
    7200,
    7200,
    7200,
    7200,
    7200,
    7200,
)


@dataclass
class OutboundMessage:
    id: str
    sobject: str
    fields: list[str]
    endpoint: str
    organization_id: str
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sobject": self.sobject,
            "fields": self.fields,
            "endpoint": self.endpoint,
            "organization_id": self.organization_id,
            "pending": [[nid, values] for nid, values in self.pending],
        }


class OutboundDispatcher(WebhookDispatcher):
    """A delivery counts only when the body carries ``<Ack>true</Ack>``, not on any 2xx."""

    def _send(self, delivery: Delivery) -> bool:
        headers = {"Content-Type": delivery.content_type, "SOAPAction": '""', **delivery.headers}
        try:
            response = self.session.post(
                delivery.url, data=delivery.body, headers=headers, timeout=self.timeout_seconds
            )
        except requests.RequestException as exc:
            log.info("outbound message delivery failed", extra={"error": type(exc).__name__})
            return False
        return response.status_code == 200 and "<Ack>true</Ack>" in response.text.replace(" ", "")


def _value_xml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def notification_values(
    message: OutboundMessage, rec: Record, types: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"Id": rec["Id"]}
    for name in message.fields:
        value = rec.get(name)
        if types.get(name) == "datetime" and value is not None:
            value = format_datetime(value).replace(".000+0000", ".000Z")
        out[name] = value
    return out


def envelope(
    message: OutboundMessage,
    instance_url: str,
    version: str,
    batch: list[tuple[str, dict[str, Any]]],
) -> str:
    org = message.organization_id
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        "<soapenv:Body>",
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">',
        f"<OrganizationId>{org}</OrganizationId>",
        f"<ActionId>{message.id}</ActionId>",
        '<SessionId xsi:nil="true"/>',
        f"<EnterpriseUrl>{escape(instance_url)}/services/Soap/c/{version}/{org}</EnterpriseUrl>",
        f"<PartnerUrl>{escape(instance_url)}/services/Soap/u/{version}/{org}</PartnerUrl>",
    ]
    for notification_id, values in batch:
        parts.append("<Notification>")
        parts.append(f"<Id>{notification_id}</Id>")
        parts.append(
            f'<sObject xsi:type="sf:{message.sobject}"'
            ' xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        )
        for name, value in values.items():
            if value is None:
                continue
            parts.append(f"<sf:{name}>{_value_xml(value)}</sf:{name}>")
        parts.append("</sObject>")
        parts.append("</Notification>")
    parts.extend(["</notifications>", "</soapenv:Body>", "</soapenv:Envelope>"])
    return "".join(parts)


ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
