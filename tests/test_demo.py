"""`make demo` runs `contactsync demo`: the whole story over HTTPS against the sandboxes. It
checks itself (every expectation it prints must hold), so running it is a real end-to-end test."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactsync.local.cli import main
from contactsync.local.home import Home


def test_the_demo_tells_its_story_and_every_check_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "demo"
    assert main(["--home", str(home), "demo", "--count", "24"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert "an idle round writes nothing (0 remote, 0 hub writes)" in out
    for system in ("salesforce", "google", "microsoft", "aircall"):
        assert f"{system} agrees with the hub" in out
    # The home it leaves behind works with the other commands.
    assert Home.locate(str(home)).config().org_id
    assert main(["--home", str(home), "status", "--json"]) == 0


def test_the_demo_refuses_a_home_already_in_use(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    assert main(["--home", str(home), "demo", "--count", "8"]) == 0
    assert main(["--home", str(home), "demo", "--count", "8"]) == 1
