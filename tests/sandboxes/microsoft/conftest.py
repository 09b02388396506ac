"""Fixtures of the Microsoft sandbox tests in this folder."""

from __future__ import annotations

import pytest
import requests

from contactsync_sandbox.microsoft import App
from tests.sandboxes.microsoft.helpers import (
    Graph,
    Receiver,
    attach_receiver,
    graph,
    new_app,
    session_for,
)


@pytest.fixture
def app() -> App:
    return new_app()


@pytest.fixture
def session(app: App) -> requests.Session:
    return session_for(app)


@pytest.fixture
def api(app: App, session: requests.Session) -> Graph:
    return graph(app, session)


@pytest.fixture
def receiver(app: App) -> Receiver:
    return attach_receiver(app)
