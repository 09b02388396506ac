"""Google People API v1 sandbox (contacts, contact groups, sync tokens, quotas) with Google's
OAuth 2.0 token endpoint, for the unpatched google-auth client."""

from contactsync_sandbox.google.responses import GoogleApp as App

__all__ = ["App"]
