"""Shared fixtures and factories for the Salesforce sandbox tests: a frozen clock, the app mounted
in-process on a requests session, and a simple-salesforce client in direct mode."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from contactsync_sandbox import registry
from contactsync_sandbox.core import VirtualClock, mount_sandbox
from contactsync_sandbox.salesforce import SalesforceSandbox

BASE = "https://salesforce.sandbox.test/"
INSTANCE = "https://salesforce.sandbox.test"
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
_numbers = itertools.count(1)


def contact(**overrides: Any) -> dict[str, Any]:
    """A valid Contact body in Salesforce's JSON shape; override any field."""
    n = next(_numbers)
    body: dict[str, Any] = {
        "FirstName": "Zoë",
        "LastName": f"Åkesson-{n}",
        "Email": f"zoe.akesson.{n}@example.com",
        "Phone": "+44 20 7946 0958",
        "Title": "Einkaufsleiter",
    }
    body.update(overrides)
    return body


def collection_item(sobject: str = "Contact", **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, **fields}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def app(clock: VirtualClock) -> SalesforceSandbox:
    created = registry.create("salesforce", clock, seed=7)
    assert isinstance(created, SalesforceSandbox)
    return created


@pytest.fixture
def session(app: SalesforceSandbox) -> requests.Session:
    return mount_sandbox(requests.Session(), BASE, app)


@pytest.fixture
def sf(app: SalesforceSandbox, session: requests.Session) -> Salesforce:
    return Salesforce(
        session_id=app.issue_session(), instance_url=INSTANCE, session=session, version="59.0"
    )


@pytest.fixture
def seeded(app: SalesforceSandbox, session: requests.Session) -> list[str]:
    response = session.post(BASE + "_sandbox/seed", json={"count": 4500, "seed": 3})
    assert response.status_code == 200
    created: list[str] = response.json()["created"]["Contact"]
    return created


def error_of(exc: Exception) -> dict[str, Any]:
    """The first error of a simple-salesforce exception's JSON array body."""
    content = exc.content  # type: ignore[attr-defined]
    assert isinstance(content, list), content
    first: dict[str, Any] = content[0]
    return first
