"""Aircall's ``contact.*`` webhooks: registering ours, and verifying and parsing deliveries.

A delivery is a POST of ``{resource, event, timestamp, token, data}`` with no signature: the
receiver compares ``token`` with the token Aircall gave when the webhook was created
(constant-time). Delivery is at least once and unordered; the engine's echo suppression and
per-field timestamps make a replayed or late event harmless.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from contactsync.connectors.aircall.client import AircallApi, AircallConfig
from contactsync.connectors.aircall.errors import RemoteNotFound, WebhookRejected
from contactsync.connectors.aircall.models import (
    DeletedContact,
    RawContact,
    RawWebhook,
    WebhookDelivery,
    deleted_record,
    to_record,
)
from contactsync.connectors.base import RemoteRecord

CONTACT_EVENTS = ("contact.created", "contact.updated", "contact.deleted")
WEBHOOK_ID = "webhook_id"
WEBHOOK_TOKEN = "webhook_token"
_MAX_LISTED = 100  # a company has at most 100 webhooks


def _matches(hook: RawWebhook, config: AircallConfig) -> bool:
    return (
        hook.url == config.webhook_url
        and hook.active
        and sorted(hook.events) == sorted(CONTACT_EVENTS)
        and hook.custom_name == config.webhook_name
    )


def _wanted(config: AircallConfig) -> dict[str, Any]:
    # ``events`` always: a PUT without it subscribes the webhook to every event.
    return {
        "url": config.webhook_url,
        "custom_name": config.webhook_name,
        "events": list(CONTACT_EVENTS),
        "active": True,
    }


def _ours(api: AircallApi, config: AircallConfig) -> RawWebhook | None:
    """A webhook registered earlier for our URL whose id we lost (the answer to its create
    never arrived): adopted rather than registered twice."""
    for number in range(1, _MAX_LISTED // 50 + 2):
        listed = api.list_webhooks(page=number, per_page=50)
        for hook in listed.webhooks:
            if hook.url == config.webhook_url and hook.custom_name == config.webhook_name:
                return hook
        if listed.meta.next_page_link is None:
            break
    return None


def ensure_webhook(
    api: AircallApi, config: AircallConfig, secrets: Mapping[str, str]
) -> dict[str, str] | None:
    """Makes sure our webhook exists, is active and listens to contact events only. Returns
    the secrets to store when they changed (a new webhook's id and token), else None."""
    if config.webhook_url is None:
        return None
    hook: RawWebhook | None = None
    webhook_id = secrets.get(WEBHOOK_ID)
    if webhook_id:
        try:
            hook = api.get_webhook(webhook_id)
        except RemoteNotFound:
            hook = None  # deleted by an admin: register again
    if hook is None:
        hook = _ours(api, config)
    if hook is None:
        hook = api.create_webhook({k: v for k, v in _wanted(config).items() if k != "active"})
    elif not _matches(hook, config):
        hook = api.update_webhook(hook.webhook_id, _wanted(config))
    token = hook.token or (secrets.get(WEBHOOK_TOKEN) if hook.webhook_id == webhook_id else None)
    if not token:
        raise WebhookRejected("no_webhook_token", "Aircall did not return the webhook's token")
    if hook.webhook_id == webhook_id and token == secrets.get(WEBHOOK_TOKEN):
        return None
    return {WEBHOOK_ID: hook.webhook_id, WEBHOOK_TOKEN: token}


def parse_delivery(
    body: bytes | str | Mapping[str, Any], expected_token: str | None, region: str
) -> list[RemoteRecord]:
    """Verifies one delivery and returns the records it carries: one for a contact event
    (``deleted=True`` for contact.deleted), none for other events. Raises WebhookRejected when
    the token is not ours or the body is not a delivery (answer 401, ingest nothing)."""
    try:
        raw = json.loads(body) if isinstance(body, bytes | str) else dict(body)
        delivery = WebhookDelivery.model_validate(raw)
    except (ValueError, TypeError, ValidationError) as exc:
        raise WebhookRejected("malformed_delivery", "not an Aircall webhook delivery") from exc
    if not expected_token or not hmac.compare_digest(
        delivery.token.encode(), expected_token.encode()
    ):
        raise WebhookRejected("bad_webhook_token", "the delivery does not carry our token")
    if delivery.resource != "contact" or delivery.event not in CONTACT_EVENTS:
        return []
    try:
        if delivery.event == "contact.deleted":
            gone = DeletedContact.model_validate(delivery.data)
            at = delivery.timestamp or gone.updated_at or 0
            return [deleted_record(gone.id, at)]
        return [to_record(RawContact.model_validate(delivery.data), region)]
    except ValidationError as exc:
        raise WebhookRejected("malformed_delivery", "the contact in the delivery") from exc
