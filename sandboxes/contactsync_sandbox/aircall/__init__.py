"""The Aircall Public API v1 sandbox (contacts, calls, webhooks, OAuth, the company rate
limit): see ``responses.py`` for the surface and ``/work/shared/PROVIDERS.md`` for the facts."""

from contactsync_sandbox.aircall.responses import App

__all__ = ["App"]
