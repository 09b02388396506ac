"""Activity capture against the sandboxes, through the real clients (google-auth, msal,
requests): backfill windows, incremental reads, expired cursors, matching, bodies only for
shared content, meetings, calls and their webhooks, accounts and users leaving."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from contactsync.activity.aircall import (
    CALL_WEBHOOK_TOKEN,
    captured_from_delivery,
    ensure_call_webhook,
)
from contactsync.activity.aircall import readers as aircall_readers
from contactsync.app.gallery import Actor
from contactsync.connectors.aircall.errors import WebhookRejected
from contactsync.domain.accounts import AccountStatus
from contactsync.domain.activity import Activity, ActivityKind
from contactsync.domain.cursor import Cursor
from contactsync.domain.sharing import SharingFlag
from contactsync.sharing.lifecycle import Lifecycle
from contactsync.sharing.service import Decision, SharingService
from contactsync.sharing.stream import StreamQuery
from tests.activity.conftest import Env

DAY = 86_400


def _mail(env: Env, *items: dict[str, Any], user: str = "rep@example.com") -> list[str]:
    return list(env.google_admin({"user": user, "messages": list(items)})["messages"])


def _at(env: Env, days_ago: float) -> str:
    return (env.clock.now() - timedelta(days=days_ago)).isoformat()


def _email(
    env: Env, sender: str, to: list[str], subject: str, days_ago: float = 0, body: str = ""
) -> dict[str, Any]:
    return {"from": sender, "to": to, "subject": subject, "date": _at(env, days_ago), "body": body}


ZOE, REP = "zoe@acme.example", "rep@example.com"


def _activities(env: Env) -> list[Activity]:
    return sorted(env.store.scan(Activity, env.org.id), key=lambda a: a.occurred_at)


def test_gmail_backfill_keeps_the_window_and_the_gallery_contacts_only(env: Env) -> None:
    # Given Zoë in the gallery, a teammate, and mail over eight months
    zoe = env.contact(env.pam, given_name="Zoë", emails=[{"address": "Zoe@Acme.example"}])
    account = env.gmail_account(env.pam)
    _mail(
        env,
        _email(env, ZOE, [REP], "Old", 240),
        _email(env, ZOE, [REP], "Order", 30, "The price is 5 dollars"),
        _email(env, REP, [ZOE, "stranger@else.example"], "Re: Order", 29),
        _email(env, REP, ["manager@example.com"], "Internal", 3),
        _email(env, "news@else.example", [REP], "Newsletter", 2),
    )
    # When the capture runs
    report = env.capture().run()
    # Then the two emails with Zoë inside the 6-month window are stored, metadata only
    stored = _activities(env)
    assert [a.subject for a in stored] == ["Order", "Re: Order"]
    assert all(a.contact_ids == [zoe.id] for a in stored)
    assert all(a.body is None for a in stored)
    assert [a.direction for a in stored] == ["inbound", "outbound"]
    assert stored[1].participants == [
        "rep@example.com",
        "zoe@acme.example",
        "stranger@else.example",
    ]
    assert stored[0].message_key
    assert stored[0].thread_id
    (mail,) = [s for s in report.streams if s.stream == "activity.mail"]
    assert (mail.stored, mail.unmatched, mail.restarted, mail.error) == (2, 2, True, None)
    # The cursor is the history id; Zoë joined Pam's queue of contacts to approve
    cursor = env.store.load_cursor(env.org.id, account.id, "activity.mail")
    assert cursor is not None
    assert '"h"' in (cursor.value or "")
    queue = SharingService(env.store, env.clock.now).queue(Actor.of(env.pam))
    assert [e.contact_id for e in queue] == [zoe.id]


def test_gmail_incremental_reads_only_the_history_and_an_idle_run_writes_nothing(env: Env) -> None:
    env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    env.gmail_account(env.pam)
    _mail(
        env,
        {
            "from": "zoe@acme.example",
            "to": ["rep@example.com"],
            "subject": "A",
            "date": _at(env, 5),
        },
    )
    env.capture().run()
    # A new email arrives
    env.clock.advance(60)
    _mail(env, {"from": "zoe@acme.example", "to": ["rep@example.com"], "subject": "B"})
    report = env.capture().run()
    (mail,) = [s for s in report.streams if s.stream == "activity.mail"]
    assert (mail.stored, mail.restarted) == (1, False)
    assert [a.subject for a in _activities(env)] == ["A", "B"]
    # Nothing new: nothing written
    writes = env.store.stats.writes
    again = env.capture().run()
    assert again.stored == 0
    assert env.store.stats.writes - writes <= 4  # cursors and leases only


def test_an_expired_gmail_history_restarts_the_backfill_without_duplicates(env: Env) -> None:
    env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    env.gmail_account(env.pam)
    _mail(
        env,
        {
            "from": "zoe@acme.example",
            "to": ["rep@example.com"],
            "subject": "A",
            "date": _at(env, 5),
        },
    )
    env.capture().run()
    # B arrives, its history record ages out (a week is kept), then C arrives
    _mail(env, {"from": "zoe@acme.example", "to": ["rep@example.com"], "subject": "B"})
    env.clock.advance(9 * DAY)
    _mail(env, {"from": "zoe@acme.example", "to": ["rep@example.com"], "subject": "C"})
    report = env.capture().run()
    (mail,) = [s for s in report.streams if s.stream == "activity.mail"]
    assert mail.restarted is True
    assert mail.error is None
    assert [a.subject for a in _activities(env)] == ["A", "B", "C"]


def test_bodies_are_fetched_only_for_shared_content(env: Env) -> None:
    # Given Pam shares her activity and one email with Zoë was captured (no body)
    zoe = env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    env.gmail_account(env.pam)
    _mail(env, {"from": "zoe@acme.example", "to": ["rep@example.com"], "subject": "Prices",
                "body": "The price is 5 dollars", "date": _at(env, 1)})  # fmt: skip
    sharing = SharingService(env.store, env.clock.now)
    pam = Actor.of(env.pam)
    sharing.update_settings(pam, {"share_activity": True})
    env.capture().run()
    (email,) = _activities(env)
    assert (email.body, email.body_due) == (None, False)
    # When she shares Zoë's content, the next run fetches the body
    sharing.decide(pam, [Decision(contact_id=zoe.id, shared=True)])
    report = env.capture().run()
    assert report.bodies_fetched == 1
    assert env.store.get(Activity, env.org.id, email.id).body == "The price is 5 dollars"
    admin_view = StreamQuery(env.store, env.clock.now).contact_stream(Actor.of(env.admin), zoe.id)
    assert admin_view.items[0].body == "The price is 5 dollars"
    # When she unshares it, the body is dropped at once
    sharing.decide(pam, [Decision(contact_id=zoe.id, shared=False)])
    assert env.store.get(Activity, env.org.id, email.id).body is None


def test_google_meetings_are_captured_and_cancellations_remove_them(env: Env) -> None:
    zoe = env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    env.gmail_account(env.pam)
    start = env.clock.now() - timedelta(days=3)
    made = env.google_admin({"user": "rep@example.com", "events": [
        {"summary": "QBR", "start": {"dateTime": start.isoformat()},
         "end": {"dateTime": (start + timedelta(minutes=45)).isoformat()},
         "attendees": [{"email": "rep@example.com"}, {"email": "zoe@acme.example"}]},
    ]})["events"]  # fmt: skip
    env.capture().run()
    (meeting,) = [a for a in _activities(env) if a.activity_kind is ActivityKind.MEETING]
    assert (meeting.subject, meeting.duration_seconds, meeting.contact_ids) == (
        "QBR",
        2700,
        [zoe.id],
    )
    assert meeting.direction == "outbound"  # Pam organised it
    # Cancelled in Google Calendar: the meeting will not take place
    assert (
        env.session.delete(
            "https://google.sandbox.test/calendar/v3/calendars/primary/events/" + made[0],
            headers={"Authorization": "Bearer none"},
        ).status_code
        == 401
    )
    env.google.workspace.calendars["rep@example.com"].cancel(made[0])
    report = env.capture().run()
    assert sum(s.removed for s in report.streams) == 1
    assert [a for a in _activities(env) if a.activity_kind is ActivityKind.MEETING] == []


def test_outlook_mail_and_meetings(env: Env) -> None:
    # Given Michael's Office 365 mailbox with mail in and out, and a meeting
    zoe = env.contact(env.admin, emails=[{"address": "zoe@acme.example"}])
    account = env.outlook_account(env.admin)
    now = env.clock.now()
    env.outlook_admin({"user": "manager@example.com", "messages": [
        {"from": "zoe@acme.example", "to": ["manager@example.com"], "subject": "Hello",
         "body": "Content", "date": (now - timedelta(days=400)).isoformat()},
        {"from": "zoe@acme.example", "to": ["manager@example.com"], "subject": "Order",
         "body": "Content", "date": (now - timedelta(days=10)).isoformat()},
        {"from": "manager@example.com", "to": ["zoe@acme.example"], "subject": "Re: Order",
         "body": "Reply", "date": (now - timedelta(days=9)).isoformat()},
    ], "events": [
        {"subject": "Renewal", "start": (now - timedelta(days=2)).isoformat(),
         "end": (now - timedelta(days=2) + timedelta(hours=1)).isoformat(),
         "attendees": ["zoe@acme.example"]},
    ]})  # fmt: skip
    # When the capture runs (Office 365: two years of history)
    env.capture().run()
    # Then inbox and sent items and the meeting are in, the 400-day-old email too
    by_subject = {a.subject: a for a in _activities(env)}
    assert set(by_subject) == {"Hello", "Order", "Re: Order", "Renewal"}
    assert by_subject["Re: Order"].direction == "outbound"
    assert by_subject["Renewal"].activity_kind is ActivityKind.MEETING
    assert all(a.contact_ids == [zoe.id] for a in by_subject.values())
    # An expired delta link restarts that folder's backfill
    env.clock.advance(8 * DAY)
    later = {"from": ZOE, "to": ["manager@example.com"], "subject": "Later"}
    env.outlook_admin({"user": "manager@example.com", "messages": [later]})
    report = env.capture().run()
    mail_stream = next(s for s in report.streams if s.stream == "activity.mail")
    assert (mail_stream.restarted, mail_stream.error) == (True, None)
    assert "Later" in {a.subject for a in _activities(env)}
    assert env.store.load_cursor(env.org.id, account.id, "activity.calendar") is not None


def test_calls_from_aircall_and_their_webhooks(env: Env) -> None:
    # Given an Aircall contact (and its twin in the gallery) with calls handled by Pam
    seeded = env.session.post("https://aircall.sandbox.test/_sandbox/seed", json={
        "records": [{"first_name": "Zoë", "last_name": "Müller",
                     "phone_numbers": [{"label": "Work", "value": "+14155552671"}]}],
        "calls": 6, "call_spread_days": 20})  # fmt: skip
    assert seeded.status_code == 200, seeded.text
    zoe = env.contact(env.admin, given_name="Zoë", phones=["+1 415 555 2671"])
    from contactsync.app.setup import Setup

    jim = Setup(env.store, env.secrets, env.clock.now).add_user(
        env.org.id, "jim.halpert@dundermifflin.com", "Jim Halpert"
    )
    account = env.aircall_account(env.admin)
    # When the capture runs
    report = env.capture().run()
    calls = [a for a in _activities(env) if a.activity_kind is ActivityKind.CALL]
    # Then every call with Zoë is in, owned by the user who took it (Jim when it was him)
    state = env.session.get("https://aircall.sandbox.test/_sandbox/state").json()["state"]
    with_zoe = [
        c for c in state["calls"] if re.sub(r"\D", "", c["raw_digits"]).endswith("4155552671")
    ]
    assert len(calls) == len(with_zoe) > 0
    assert all(c.contact_ids == [zoe.id] and c.participants == ["+14155552671"] for c in calls)
    jims = {str(c["id"]) for c in with_zoe if c["user_id"] == 401002}
    assert {c.remote_id for c in calls if c.owner_user_id == jim.id} == jims
    assert all(c.owner_user_id in (jim.id, env.admin.id) for c in calls)
    (stream,) = [s for s in report.streams if s.stream == "activity.calls"]
    assert stream.error is None
    # A second run reads nothing new
    assert env.capture().run().stored == 0
    # Call webhooks: registered with their own token, verified, then ingested at once
    config = env.aircall.client_config()
    (reader,) = aircall_readers({"api_base": config["api_base"]},
                                {"api_id": config["api_id"], "api_token": config["api_token"]},
                                session=env.session, clock=env.clock)  # fmt: skip
    secrets = ensure_call_webhook(
        reader.http, reader.config, "https://hub.example.test/hooks/calls", {}
    )
    assert secrets is not None
    call = {"id": 99, "direction": "inbound", "started_at": int(env.clock.timestamp()),
            "duration": 42, "raw_digits": "+1 415-555-2671",
            "user": {"email": "jim.halpert@dundermifflin.com"}}  # fmt: skip
    token = secrets[CALL_WEBHOOK_TOKEN]
    delivery = {"resource": "call", "event": "call.ended", "timestamp": 1, "token": token,
                "data": call}  # fmt: skip
    captured = captured_from_delivery(delivery, secrets[CALL_WEBHOOK_TOKEN])
    assert captured is not None
    assert env.capture().ingest(account, [captured])[0] == 1
    with pytest.raises(WebhookRejected):
        captured_from_delivery({**delivery, "token": "forged"}, secrets[CALL_WEBHOOK_TOKEN])
    assert (
        captured_from_delivery({**delivery, "event": "call.created"}, secrets[CALL_WEBHOOK_TOKEN])
        is None
    )
    assert (
        ensure_call_webhook(
            reader.http, reader.config, "https://hub.example.test/hooks/calls", secrets
        )
        is None
    )


def test_deleted_accounts_are_forgotten_disabled_ones_kept_removed_users_stop(env: Env) -> None:
    env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    account = env.gmail_account(env.pam)
    _mail(
        env,
        {
            "from": "zoe@acme.example",
            "to": ["rep@example.com"],
            "subject": "A",
            "date": _at(env, 2),
        },
    )
    env.capture().run()
    # Disabled: kept, nothing new captured
    disabled = env.store.update(account.model_copy(update={"status": AccountStatus.DISABLED}))
    _mail(env, {"from": "zoe@acme.example", "to": ["rep@example.com"], "subject": "B"})
    env.capture().run()
    assert [a.subject for a in _activities(env)] == ["A"]
    # Reconnected, then Pam leaves: her mailbox is disabled, nothing more enters
    reconnected = env.store.update(disabled.model_copy(update={"status": AccountStatus.CONNECTED}))
    Lifecycle(env.store, env.clock.now).remove_user(Actor.of(env.admin), env.pam.id)
    env.capture().run()
    assert [a.subject for a in _activities(env)] == ["A"]
    # Deleted: its activity is forgotten on the next run
    current = env.store.get(type(reconnected), env.org.id, account.id)
    env.store.update(current.model_copy(update={"status": AccountStatus.DELETED}))
    report = env.capture().run()
    assert report.forgotten_accounts == [account.id]
    assert _activities(env) == []
    assert (
        env.store.find(Cursor, env.org.id, Cursor.make_id(account.id, "activity.mail")) is not None
    )
    assert env.store.lookup(SharingFlag, env.org.id, "user", env.pam.id)  # decisions are kept


def test_throttling_is_waited_out_on_the_virtual_clock(env: Env) -> None:
    env.contact(env.pam, emails=[{"address": "zoe@acme.example"}])
    env.gmail_account(env.pam)
    env.google_admin({"user": "rep@example.com", "generate": {
        "count": 12, "seed": 1, "days": 10, "partners": ["zoe@acme.example"]}})  # fmt: skip
    env.google_admin({"settings": {"enabled": True, "gmail_units_per_minute": 30}})
    before = env.clock.now()
    report = env.capture().run()
    (mail,) = [s for s in report.streams if s.stream == "activity.mail"]
    assert (mail.stored, mail.error) == (12, None)
    assert env.clock.now() - before >= timedelta(minutes=1)  # waited for new minutes


def test_outlook_bodies_are_fetched_as_text_once_shared(env: Env) -> None:
    zoe = env.contact(env.admin, emails=[{"address": ZOE}])
    env.outlook_account(env.admin)
    yesterday = env.clock.now() - timedelta(days=1)
    message = {"from": ZOE, "to": ["manager@example.com"], "subject": "Prices",
               "body_html": "<p>5 dollars</p>", "date": yesterday.isoformat()}  # fmt: skip
    meeting = {"subject": "Call", "body": "Agenda: prices", "start": yesterday.isoformat(),
               "end": (yesterday + timedelta(hours=1)).isoformat(), "attendees": [ZOE]}  # fmt: skip
    env.outlook_admin({"user": "manager@example.com", "messages": [message], "events": [meeting]})
    sharing = SharingService(env.store, env.clock.now)
    michael = Actor.of(env.admin)
    sharing.update_settings(michael, {"share_activity": True})
    env.capture().run()
    sharing.decide(michael, [Decision(contact_id=zoe.id, shared=True)])
    assert env.capture().run().bodies_fetched == 2
    bodies = {a.subject: a.body for a in _activities(env)}
    assert bodies == {"Prices": "5 dollars", "Call": "Agenda: prices"}


def test_google_meeting_bodies_are_their_descriptions(env: Env) -> None:
    zoe = env.contact(env.pam, emails=[{"address": ZOE}])
    env.gmail_account(env.pam)
    start = env.clock.now() - timedelta(days=1)
    event = {"summary": "Demo", "description": "Bring the samples",
             "start": {"dateTime": start.isoformat()},
             "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
             "attendees": [{"email": ZOE}]}  # fmt: skip
    env.google_admin({"user": REP, "events": [event]})
    sharing = SharingService(env.store, env.clock.now)
    pam = Actor.of(env.pam)
    sharing.update_settings(pam, {"share_activity": True})
    sharing.decide(pam, [Decision(contact_id=zoe.id, shared=True)])
    env.capture().run()  # captured: its body is due at once (already shared)
    (meeting,) = _activities(env)
    assert meeting.body == "Bring the samples"
