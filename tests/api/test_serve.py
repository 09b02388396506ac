"""`contactsync serve` and `contactsync token`: the real threaded server on 127.0.0.1, and the
scheduler taking a webhook's pull end to end: an edit in the Aircall sandbox reaches the hub
through Aircall's webhook, our verification, the pull queue and the Aircall connector."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from contactsync.activity import reader_factory
from contactsync.api import ApiContext, build_app
from contactsync.api.queue import LocalPullQueue, PullInbox
from contactsync.api.routes.accounts import ensure_webhook_config
from contactsync.api.wsgi import ApiWsgi, WsgiTransport
from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.activity import Activity
from contactsync.domain.org import User
from contactsync.local.cli import main
from contactsync.local.connectors import connector_factory
from contactsync.local.home import Home, LocalConfig
from contactsync.local.serve import CaptureLoop, LocalRuntime, Scheduler, build_runtime
from contactsync_sandbox.aircall import App as AircallApp
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.microsoft import App as MicrosoftApp
from tests.api.conftest import AIRCALL, API, settings_for


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    store = home.store()
    org, admin = Setup(store, home.secrets()).create_organisation(
        "Dunder Mifflin", "michael@dundermifflin.com"
    )
    Setup(store, home.secrets()).add_user(org.id, "rep@example.com")
    home.save_config(LocalConfig(org_id=org.id, admin_user_id=admin.id))
    store.close()
    return home


@pytest.fixture
def runtime(home: Home) -> Iterator[LocalRuntime]:
    running = build_runtime(home, 0).start(scheduler=False)
    yield running
    running.stop()


def token(home: Home, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--home", str(home.root), "token", *args]) == 0
    return out.getvalue().strip()


def test_serve_answers_on_127_0_0_1(home: Home, runtime: LocalRuntime) -> None:
    assert runtime.url.startswith("http://127.0.0.1:")
    document = requests.get(runtime.url + "/openapi.json", timeout=10).json()
    assert document["info"]["title"] == "contactsync"
    assert requests.get(runtime.url + "/docs", timeout=10).status_code == 200
    admin = token(home, "--user", "michael@dundermifflin.com", "--admin")
    me = requests.get(runtime.url + "/me", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    assert me.json()["role"] == "admin"
    rep = token(home, "--user", "REP@example.com")
    me = requests.get(runtime.url + "/me", headers={"Authorization": f"Bearer {rep}"}, timeout=10)
    assert me.json()["role"] == "user"
    assert requests.get(runtime.url + "/me", timeout=10).status_code == 401


def test_token_refuses_strangers_and_false_admins(home: Home) -> None:
    assert main(["--home", str(home.root), "token", "--user", "nobody@example.com"]) == 1
    assert main(["--home", str(home.root), "token", "--user", "rep@example.com", "--admin"]) == 2


def test_a_phone_system_edit_reaches_the_hub_through_the_webhook(tmp_path: Path) -> None:
    pytest.importorskip("contactsync.connectors.aircall")
    # Given the Aircall sandbox, our API and the scheduler, wired in-process
    clock = VirtualClock(frozen=False)
    aircall = AircallApp(clock, seed=3)
    session = requests.Session()
    mount_sandbox(session, AIRCALL, aircall)
    home = Home(tmp_path / "home")
    store, secrets = home.store(), home.secrets()
    setup = Setup(store, secrets)
    org, admin = setup.create_organisation("Dunder Mifflin", "michael@dundermifflin.com")
    config = aircall.client_config()
    account, _ = setup.connect(
        org.id,
        admin,
        Provider.AIRCALL,
        "DM phones",
        {"api_base": config["api_base"]},
        {"api_id": config["api_id"], "api_token": config["api_token"]},
    )
    queue = LocalPullQueue()
    inbox = PullInbox(store, queue)
    connectors = connector_factory(secrets, sessions={"aircall": session})
    ctx = ApiContext(
        settings_for(MicrosoftApp(clock), aircall), store, secrets, inbox, session, connectors
    )
    ensure_webhook_config(ctx, store.get(ConnectedAccount, org.id, account.id))
    wsgi = ApiWsgi(lambda: build_app(ctx))
    aircall.webhooks.session.mount(API + "/", WsgiTransport(wsgi))
    scheduler = Scheduler(store, org.id, connectors, queue, inbox)
    # When the scheduler starts: the webhook is registered and the initial sync runs
    scheduler.maintain_webhooks()
    assert scheduler.tick() is True
    assert "webhook_token" in secrets.get(account.secret_ref or "")
    assert scheduler.tick() is False  # nothing due, nothing queued
    # And a rep adds a contact in Aircall, which Aircall announces to our webhook
    auth = (config["api_id"], config["api_token"])
    created = session.post(
        config["api_base"] + "/contacts",
        auth=auth,
        json={
            "first_name": "Stanley",
            "last_name": "Hudson",
            "phone_numbers": [{"label": "work", "value": "+15705550111"}],
        },
    )
    assert created.status_code in (200, 201)
    clock.advance(5)
    assert aircall.deliver_webhooks() == 1
    assert len(queue) == 1
    # Then the next tick pulls that account and the contact is in the gallery
    assert scheduler.tick() is True
    found = Gallery(store).search(Actor.of(admin), "+1 570 555 0111")
    assert [(c.given_name, c.family_name) for c in found] == [("Stanley", "Hudson")]
    assert json.loads(json.dumps(scheduler.rounds)) == 2


def test_the_scheduler_runs_its_rounds_with_the_collector_tuned(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from contactsync.local.process import SYNC_GC_THRESHOLD
    from contactsync.sync.service import SyncService

    # Given a scheduler with one account due
    store = home.store()
    queue = LocalPullQueue()
    scheduler = Scheduler(
        store, home.config().org_id, connector_factory(home.secrets()), queue,
        PullInbox(store, queue),
    )  # fmt: skip
    monkeypatch.setattr(Scheduler, "due_accounts", lambda self: {"acc-due"})
    seen: list[tuple[int, int, int]] = []

    def run_once(self: SyncService, **kwargs: object) -> None:
        seen.append(gc.get_threshold())

    monkeypatch.setattr(SyncService, "run_once", run_once)
    before = gc.get_threshold()
    # When it ticks, the round runs as `contactsync sync` runs one, and the setting is undone
    assert scheduler.tick() is True
    assert seen == [SYNC_GC_THRESHOLD]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    store.close()


def test_concurrent_deliveries_each_see_their_own_body(home: Home, runtime: LocalRuntime) -> None:
    """Powertools keeps the current event on a class attribute: the server must resolve one
    request at a time, or one delivery is judged with another's body (a false duplicate)."""
    store = home.store()
    config = home.config()
    admin = store.get(User, config.org_id, config.admin_user_id)
    account, _ = Setup(store, home.secrets()).connect(
        config.org_id,
        admin,
        Provider.MICROSOFT,
        "michael@dundermifflin.com",
        {},
        {"refresh_token": "rt"},
    )
    state = runtime.ctx.graph_client_state(config.org_id, account.id)
    url = f"{runtime.url}/webhooks/microsoft/{config.org_id}/{account.id}"

    def send(i: int) -> str:
        note = {
            "subscriptionId": "s",
            "changeType": "updated",
            "clientState": state,
            "resourceData": {"id": f"c{i}"},
        }
        outcome: str = requests.post(url, json={"value": [note]}, timeout=30).json()["outcome"]
        return outcome

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(send, range(120)))
    assert outcomes == ["accepted"] * 120


def test_serve_captures_activity_on_a_timer(tmp_path: Path) -> None:
    # Given a phone system with calls, one caller in the gallery, and serve's capture loop
    clock = VirtualClock()
    aircall = AircallApp(clock, seed=3)
    session = mount_sandbox(requests.Session(), AIRCALL, aircall)
    home = Home(tmp_path / "home")
    store, secrets = home.store(), home.secrets()
    setup = Setup(store, secrets)
    org, admin = setup.create_organisation("Dunder Mifflin", "michael@dundermifflin.com")
    config = aircall.client_config()
    setup.connect(
        org.id,
        admin,
        Provider.AIRCALL,
        "DM phones",
        {"api_base": config["api_base"]},
        {"api_id": config["api_id"], "api_token": config["api_token"]},
    )
    aircall.seed({"count": 10, "calls": 20, "seed": 4})
    calls = session.get(AIRCALL + "_sandbox/state").json()["state"]["calls"]
    caller = next(c for c in calls if c.get("contact_id"))
    Gallery(store).create(
        Actor.of(admin), {"given_name": "Caller", "phones": [caller["raw_digits"]]}
    )
    loop = CaptureLoop(
        store, org.id, reader_factory(secrets, sessions={"aircall": session}), now=clock.now
    )
    # When it ticks: the first tick captures (a backfill), the next waits for its interval
    assert loop.tick() is True
    stored = sum(1 for _ in store.scan(Activity, org.id))
    assert stored == sum(1 for c in calls if c["raw_digits"] == caller["raw_digits"])
    assert loop.tick() is False
    clock.advance(loop.every.total_seconds())
    assert loop.tick() is True
    assert loop.runs == 2
    assert sum(1 for _ in store.scan(Activity, org.id)) == stored  # nothing new, nothing twice


def test_serve_runs_the_capture_loop(home: Home) -> None:
    running = build_runtime(home, 0)
    try:
        assert running.capture is not None
        running.start()
        assert [t.name for t in running.threads] == ["api", "scheduler", "capture"]
    finally:
        running.stop()
