"""OAuth scopes of the Gmail and Calendar APIs the Google sandbox grants besides the People API's
(shared by the token endpoint in ``models`` and the Gmail and Calendar handlers)."""

from __future__ import annotations

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_INSERT = "https://www.googleapis.com/auth/gmail.insert"
GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
GMAIL_FULL = "https://mail.google.com/"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
CALENDAR = "https://www.googleapis.com/auth/calendar"
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
CALENDAR_EVENTS_READONLY = "https://www.googleapis.com/auth/calendar.events.readonly"
WORKSPACE_SCOPES = (
    GMAIL_READONLY,
    GMAIL_METADATA,
    GMAIL_INSERT,
    GMAIL_MODIFY,
    GMAIL_FULL,
    CALENDAR_READONLY,
    CALENDAR,
    CALENDAR_EVENTS,
    CALENDAR_EVENTS_READONLY,
)
