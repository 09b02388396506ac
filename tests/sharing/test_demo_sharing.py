"""The demo's sharing chapter runs end to end and checks itself (here against the Google sandbox
in-process; the main demo runs it over HTTPS)."""

from __future__ import annotations

import io
from pathlib import Path

import requests
from rich.console import Console

from contactsync.activity import reader_factory
from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.accounts import AccountStatus, ConnectedAccount, Provider
from contactsync.local.demo_sharing import sharing_story
from contactsync.local.home import Home, LocalConfig
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.google import App as GoogleApp
from tests.activity.conftest import GOOGLE, START


def test_sharing_story(tmp_path: Path) -> None:
    # Given the state the main demo leaves: an organisation, its admin and a rep whose Gmail
    # mailbox is connected, and contacts in the gallery
    clock = VirtualClock(START)
    google = GoogleApp(clock, seed=9)
    google.workspace.settings.enabled = False
    session = mount_sandbox(requests.Session(), GOOGLE, google)
    home = Home(tmp_path / "home")
    store = home.store()
    setup = Setup(store, home.secrets(), clock.now)
    org, admin = setup.create_organisation("Dunder Mifflin", "admin@example.com")
    rep = setup.add_user(org.id, "rep@example.com", "Pam Beesly")
    home.save_config(LocalConfig(org_id=org.id, admin_user_id=admin.id))
    gallery = Gallery(store, clock.now)
    for i in range(5):
        person = {"given_name": f"Client{i}", "emails": [{"address": f"client{i}@acme.example"}]}
        gallery.create(Actor.of(admin), person)
    config = google.client_config()
    setup.connect(
        org.id, rep, Provider.GOOGLE, "rep@example.com",
        {k: config[k] for k in ("token_uri", "gmail_api_base", "calendar_api_base")},
        {"client_id": config["client_id"], "client_secret": config["client_secret"],
         "refresh_token": config["users"]["rep@example.com"]},
    )  # fmt: skip
    output = io.StringIO()
    # When the chapter runs
    result = sharing_story(
        home,
        {"google": {"admin": GOOGLE + "_sandbox/"}},
        store,
        org.id,
        owner=rep,
        teammate=admin,
        now=clock.now,
        advance=clock.advance,
        console=Console(file=output, width=120),
        readers=reader_factory(home.secrets(), clock=clock, sessions={"google": session}),
        admin_session=session,
    )
    # Then every step checked out
    assert result.failures == [], output.getvalue()
    assert result.captured > 0
    assert result.levels["off"] == []
    assert set(result.levels["activity"]) == {"metadata"}
    assert "content" in result.levels["content"]
    assert "FAILED" not in output.getvalue()
    (mailbox,) = [a for a in store.scan(ConnectedAccount, org.id)]
    assert mailbox.status is AccountStatus.DISABLED  # the owner left at the end
