"""The local CLI's account commands: init from sandbox.json, connect one account, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contactsync.domain import ConnectedAccount
from contactsync.local.cli import main
from contactsync.local.home import Home
from contactsync_sandbox.up import RunningSandboxes, start


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[RunningSandboxes]:
    running = start(tmp_path / "sandbox")
    try:
        yield running
    finally:
        running.stop(save=False)


def test_init_then_connect_one_more_account(tmp_path: Path, sandboxes: RunningSandboxes) -> None:
    home = str(tmp_path / "home")
    sandbox = str(sandboxes.config_path)
    assert main(["--home", home, "init", "--sandbox", sandbox]) == 0
    assert main(["--home", home, "init", "--sandbox", sandbox]) == 2  # already initialised
    # The same Aircall company again is refused; another company (its own key) is connected
    assert main(["--home", home, "connect", "aircall", "--sandbox", sandbox]) == 2
    entry = json.loads(sandboxes.config_path.read_text())["aircall"]
    second = entry["api_keys"][1] if "api_keys" in entry else entry
    code = main([
        "--home", home, "connect", "aircall", "--address", "Scranton branch",
        "--config", f"api_base={entry['api_base']}",
        "--secret", f"api_id={second['api_id']}", "--secret", f"api_token={second['api_token']}",
    ])  # fmt: skip
    assert code == 0
    store = Home.locate(home).store()
    org = Home.locate(home).config().org_id
    addresses = sorted(
        a.address for a in store.scan(ConnectedAccount, org) if a.provider.value == "aircall"
    )
    assert len(addresses) == 2
    assert "Scranton branch" in addresses
    # Secrets never land in the (non-secret) account config
    for account in store.scan(ConnectedAccount, org):
        leaked = {k for k in account.config if k.endswith(("secret", "_token", "private_key"))}
        assert not leaked, account.provider


@pytest.mark.parametrize(
    "argv",
    [
        ["connect", "aircall", "--address", "x", "--secret", "oops"],
        ["connect", "aircall", "--address", "x", "--config", "=1", "--secret", "api_id=a"],
        ["connect", "aircall", "--address", "x"],
        ["connect", "aircall", "--secret", "api_id=a"],
    ],
)
def test_connect_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, sandboxes: RunningSandboxes, argv: list[str]
) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "init", "--sandbox", str(sandboxes.config_path)]) == 0
    store = Home.locate(home).store()
    org = Home.locate(home).config().org_id
    before = len(list(store.scan(ConnectedAccount, org)))
    assert main(["--home", home, *argv]) == 2
    assert len(list(store.scan(ConnectedAccount, org))) == before


def test_contactsync_sync_runs_its_round_with_the_collector_tuned(
    tmp_path: Path, sandboxes: RunningSandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from contactsync.local.process import SYNC_GC_THRESHOLD
    from contactsync.sync.service import SyncService

    home = str(tmp_path / "home")
    assert main(["--home", home, "init", "--sandbox", str(sandboxes.config_path)]) == 0
    seen: list[tuple[int, int, int]] = []
    real = SyncService.run_once

    def watched(self: SyncService, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        return real(self, **kwargs)

    monkeypatch.setattr(SyncService, "run_once", watched)
    before = gc.get_threshold()
    assert main(["--home", home, "sync", "--once", "--json"]) == 0
    assert seen == [SYNC_GC_THRESHOLD]
    assert gc.get_threshold() == before


def test_a_sync_round_tunes_the_collector_and_restores_it() -> None:
    import gc

    from contactsync.local.process import SYNC_GC_THRESHOLD, sync_gc

    before = gc.get_threshold()
    with sync_gc():
        assert gc.get_threshold() == SYNC_GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
