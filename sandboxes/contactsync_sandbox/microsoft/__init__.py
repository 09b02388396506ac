"""Microsoft Graph v1.0 (Outlook contacts, folders, categories, delta, subscriptions, $batch)
and the Microsoft identity platform's v2.0 endpoints, as driven by msal and requests."""

from contactsync_sandbox.microsoft.responses import App

__all__ = ["App"]
