"""The HTTP API: management routes, OAuth connect flows and provider webhooks, for the Lambda
functions (functions/api, functions/webhooks) and `contactsync serve` alike."""

from contactsync.api.app import build_app, openapi_document
from contactsync.api.context import ApiContext
from contactsync.api.settings import ApiSettings, Mode

__all__ = ["ApiContext", "ApiSettings", "Mode", "build_app", "openapi_document"]
