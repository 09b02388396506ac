"""The Google sandbox's admin call for Gmail and Calendar, beside the shared ``/_sandbox/`` ones:

GET  /_sandbox/workspace   settings, and per user the message, history and event counts
POST /_sandbox/workspace   any of:
  {"settings": {"history_retention_seconds": N, "calendar_sync_token_ttl_seconds": N,
                "gmail_units_per_minute": N|null, "calendar_requests_per_minute": N|null,
                "enabled": bool}}
  {"user": EMAIL, "messages": [{from, to[], cc[], subject, body, date, labels[],
                               message_id, in_reply_to}]}
  {"user": EMAIL, "generate": {"count": N, "seed": S, "days": D, "partners": [...]}}
      (partners default to the addresses in the user's address book)
  {"user": EMAIL, "events": [events.insert bodies]}
  {"user": EMAIL, "generate_events": {"count": N, "seed": S, "days": D, "partners": [...]}}
  {"invalidate_calendar_tokens": true}   (as an ACL change does: every token answers 410)
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from contactsync_sandbox.core.app import Response, json_response
from contactsync_sandbox.google.models import GoogleBackend
from contactsync_sandbox.google.workspace import Workspace, rfc3339


class WorkspaceAdmin:
    workspace: Workspace
    backend: GoogleBackend

    def _admin_workspace(self, body: dict[str, Any]) -> Response:
        ws = self.workspace
        result: dict[str, Any] = {}
        if "settings" in body:
            if not isinstance(body["settings"], dict):
                raise ValueError("settings must be an object")
            ws.settings.update(body["settings"])
        user = body.get("user", self.backend.default_user.email)
        seeding = any(k in body for k in ("messages", "generate", "events", "generate_events"))
        if seeding and user not in ws.mailboxes:
            raise ValueError(f"unknown user {user!r}; users: {', '.join(ws.mailboxes)}")
        if "messages" in body:
            if not isinstance(body["messages"], list):
                raise ValueError("messages must be a list")
            result["messages"] = ws.seed_mail(user, body["messages"])
        if "generate" in body:
            spec = self._spec(body["generate"], "generate")
            result["messages"] = result.get("messages", []) + ws.seed_generated(
                user, self._partners(user, spec), spec["count"], spec["seed"], spec["days"]
            )
        if "events" in body:
            if not isinstance(body["events"], list):
                raise ValueError("events must be a list")
            result["events"] = ws.seed_events(user, body["events"])
        if "generate_events" in body:
            spec = self._spec(body["generate_events"], "generate_events")
            result["events"] = result.get("events", []) + self._meetings(user, spec)
        if body.get("invalidate_calendar_tokens") is True:
            for calendar in ws.calendars.values():
                calendar.invalid_before = ws.clock.timestamp() + 1e-6
            result["invalidated"] = True
        result["settings"] = vars(ws.settings)
        result["users"] = {
            email: {
                "messages": len(box.messages),
                "history_id": box.history_id,
                "history_records": len(box.history),
                "events": len(ws.calendars[email].live()),
            }
            for email, box in ws.mailboxes.items()
        }
        return json_response(result)

    @staticmethod
    def _spec(raw: Any, where: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        count, seed, days = raw.get("count", 10), raw.get("seed", 0), raw.get("days", 30)
        if not isinstance(count, int) or count < 0 or not isinstance(seed, int):
            raise ValueError(f"{where}.count and {where}.seed must be integers")
        if not isinstance(days, int | float) or days <= 0:
            raise ValueError(f"{where}.days must be a positive number")
        partners = raw.get("partners")
        if partners is not None and not (
            isinstance(partners, list) and all(isinstance(p, str) for p in partners)
        ):
            raise ValueError(f"{where}.partners must be a list of addresses")
        return {"count": count, "seed": seed, "days": float(days), "partners": partners}

    def _partners(self, user: str, spec: dict[str, Any]) -> list[str]:
        if spec["partners"]:
            return list(spec["partners"])
        book = self.backend.book(user)
        found: list[str] = []
        for contact in book.contacts.values():
            if contact.deleted:
                continue
            for item in contact.fields.get("emailAddresses", []):
                value = item.get("value")
                if isinstance(value, str) and value:
                    found.append(value)
                    break
        return found

    def _meetings(self, user: str, spec: dict[str, Any]) -> list[str]:
        partners = self._partners(user, spec)
        if not partners:
            raise ValueError("no partner addresses to meet (seed contacts first)")
        rng = random.Random(f"calendar:{spec['seed']}:{user}")
        now = self.workspace.clock.now()
        titles = ("Quarterly business review", "Demo", "Contract call", "Private: 1:1")
        items = []
        for _ in range(spec["count"]):
            start = now - timedelta(
                seconds=rng.randint(3600, max(3601, int(spec["days"] * 86_400)))
            )
            guests = rng.sample(partners, k=min(len(partners), rng.randint(1, 2)))
            items.append(
                {
                    "summary": rng.choice(titles),
                    "description": "Agenda: paper, prices, delivery.",
                    "start": {"dateTime": rfc3339(start)},
                    "end": {"dateTime": rfc3339(start + timedelta(minutes=30))},
                    "attendees": [{"email": user, "responseStatus": "accepted"}]
                    + [{"email": g} for g in guests],
                }
            )
        return self.workspace.seed_events(user, items)
