"""`contactsync sharing|stream|connections|activity` on a local home: the same answers as the
query layer, as each user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contactsync.app.gallery import Actor, Gallery
from contactsync.app.setup import Setup
from contactsync.domain.activity import Activity
from contactsync.local import cli
from contactsync.local.home import Home, LocalConfig
from contactsync.sharing.connections import pairs_of, recompute
from contactsync.sharing.service import SharingService
from tests import factories as f


@pytest.fixture
def home(tmp_path: Path) -> dict[str, Any]:
    home = Home(tmp_path / "home")
    store = home.store()
    setup = Setup(store, home.secrets())
    org, admin = setup.create_organisation("Dunder Mifflin", "michael@dundermifflin.com")
    pam = setup.add_user(org.id, "pam@dundermifflin.com", "Pam Beesly")
    home.save_config(LocalConfig(org_id=org.id, admin_user_id=admin.id))
    zoe = Gallery(store).create(
        Actor.of(pam),
        {"given_name": "Zoë", "emails": [{"address": "zoe@acme.example"}], "company": "Acme Corp"},
    )
    account, _ = setup.connect(org.id, pam, f.Provider.GOOGLE, "pam@dundermifflin.com", {}, {})
    email = store.create(
        f.activity(
            org.id,
            Activity.make_id(account.id, "m-1"),
            account_id=account.id,
            owner_user_id=pam.id,
            contact_ids=[zoe.id],
            subject="Order",
            participants=["pam@dundermifflin.com", "zoe@acme.example"],
        )
    )
    recompute(store, org.id, pairs_of([email]))
    SharingService(store).ensure_queued(pam, [zoe])
    store.close()
    return {"home": str(home.root), "zoe": zoe.id, "email": email.id, "pam": pam.id}


def run(home: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = cli.main(["--home", home["home"], *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_sharing_through_the_cli(home: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    pam = "--as=pam@dundermifflin.com"
    # Everything off: Michael sees no activity in Zoë's Stream
    assert run(home, capsys, "stream", "contact", home["zoe"])["items"] == []
    # Pam shares her activity: Michael sees that it happened
    settings = run(home, capsys, "sharing", "settings", "--share-activity", "on", pam)
    assert settings["share_activity"] is True
    (item,) = run(home, capsys, "stream", "contact", home["zoe"])["items"]
    assert (item["level"], item["subject"], item["can_request_access"]) == ("metadata", None, True)
    # Michael asks, Pam grants
    request = run(home, capsys, "sharing", "request", home["email"], "--note", "renewal")
    (listed,) = run(home, capsys, "sharing", "requests", pam)
    assert listed["id"] == request["id"]
    assert (
        run(home, capsys, "sharing", "answer", request["id"], "--grant", pam)["status"] == "granted"
    )
    assert run(home, capsys, "stream", "contact", home["zoe"])["items"][0]["level"] == "content"
    # Pam's queue holds Zoë; All shares her content
    (entry,) = run(home, capsys, "sharing", "queue", pam)
    assert entry["contact_id"] == home["zoe"]
    assert run(home, capsys, "sharing", "all", pam) == {"decided": 1, "shared": True}
    assert run(home, capsys, "sharing", "queue", pam) == []
    # Per event: unshared again for everyone but the granted requester
    run(home, capsys, "sharing", "event", home["email"], "--unshare", pam)
    mine = run(home, capsys, "stream", "mine", pam)["items"][0]
    assert mine["sharing"] == {"event": False, "confidential": False, "content_shared": False}
    # The company's Stream and Closest Connections, by the company's name
    assert [i["id"] for i in run(home, capsys, "stream", "company", "ACME")["items"]] == [
        home["email"]
    ]
    connections = run(home, capsys, "connections", "contact", home["zoe"])
    assert [c["user_id"] for c in connections["items"]] == [home["pam"]]
    company = run(home, capsys, "connections", "company", "Acme Corporation")
    assert [c["contact_id"] for c in company["items"]] == [home["zoe"]]
    # Michael removes Pam: her shared activity stays visible, she can no longer act
    removal = run(home, capsys, "sharing", "remove-user", "pam@dundermifflin.com")
    assert removal["user_id"] == home["pam"]
    assert run(home, capsys, "stream", "contact", home["zoe"])["items"][0]["level"] == "content"
    assert cli.main(["--home", home["home"], "sharing", "queue", pam]) == 1


def test_bad_input_names_the_field(
    home: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--home", home["home"], "sharing", "decide", home["zoe"], "--share",
                     "--address", "nobody", "--as", "pam@dundermifflin.com"])  # fmt: skip
    assert code == 2
    assert "address.0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse refuses it, naming the option
        cli.main(["--home", home["home"], "sharing", "settings", "--share-activity", "maybe"])
    assert exited.value.code == 2
    assert "--share-activity" in capsys.readouterr().err


def test_activity_sync_without_capturable_accounts(
    home: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The Google account above has no credentials: its readers cannot be built, nothing breaks
    report = run(home, capsys, "activity", "sync")
    assert report["stored"] == 0
    assert [s["error"] for s in report["streams"]] == ["AuthError"]
