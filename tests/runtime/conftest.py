"""Fixtures of the runtime tests: moto holding the table, secrets and queues as template.yaml
declares them, an organisation with an Aircall account whose API is the in-process sandbox on a
virtual clock, and the handlers' cached contexts pointed at all of it (harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.harness import World, moto_world


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with moto_world(monkeypatch) as world:
        yield world
