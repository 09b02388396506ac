"""The shared sandbox machinery: both transports, faults, the admin surface, the clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.routing import Rule

from contactsync_sandbox.core import (
    FaultRule,
    Request,
    Response,
    SandboxApp,
    VirtualClock,
    json_response,
    mount_sandbox,
)
from contactsync_sandbox.core.server import CertificateAuthority, HTTPSSandboxServer


class CounterApp(SandboxApp):
    """A minimal provider: a counter that POST increments (a committed write)."""

    name = "counter"

    def __init__(self, clock: VirtualClock | None = None, *, seed: int = 0) -> None:
        self.value = 0
        super().__init__(clock, seed=seed)

    def routes(self) -> list[Rule]:
        return [
            Rule("/v1/counter", methods=["GET"], endpoint="get_counter"),
            Rule("/v1/counter", methods=["POST"], endpoint="increment"),
        ]

    def get_counter(self, request: Request) -> Response:
        return json_response({"value": self.value, "now": self.clock.now().isoformat()})

    def increment(self, request: Request) -> Response:
        self.value += 1
        return json_response({"value": self.value}, 201)

    def render_fault(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind == "throttle":
            return json_response(
                {"error": "slow down"}, 429, {"Retry-After": str(rule.retry_after)}
            )
        return json_response({"error": "boom"}, rule.status)

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        self.value += int(body.get("count", 0))
        return {"value": self.value}

    def dump_state(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state(self, state: dict[str, Any]) -> None:
        self.value = state["value"]

    def reset(self) -> None:
        self.value = 0

    def client_config(self) -> dict[str, Any]:
        return {"api_base": self.base_url + "v1", "admin": self.base_url + "_sandbox/"}


BASE = "https://counter.sandbox.test/"


@pytest.fixture
def app() -> CounterApp:
    return CounterApp()


@pytest.fixture
def session(app: CounterApp) -> requests.Session:
    return mount_sandbox(requests.Session(), BASE, app)


def test_in_process_transport_round_trip(session: requests.Session) -> None:
    assert session.post(BASE + "v1/counter").status_code == 201
    response = session.get(BASE + "v1/counter")
    assert response.status_code == 200
    assert response.json()["value"] == 1
    assert response.headers["Content-Type"].startswith("application/json")


def test_unknown_route_and_method(session: requests.Session) -> None:
    assert session.get(BASE + "v1/nothing").status_code == 404
    assert session.delete(BASE + "v1/counter").status_code == 405


def test_clock_advances_only_through_admin(session: requests.Session, app: CounterApp) -> None:
    before = session.get(BASE + "v1/counter").json()["now"]
    assert session.get(BASE + "v1/counter").json()["now"] == before  # frozen
    assert session.post(BASE + "_sandbox/clock", json={"advance_seconds": 86400}).ok
    assert app.clock.now().isoformat() > before
    bad = session.post(BASE + "_sandbox/clock", json={"advance_seconds": -1})
    assert bad.status_code == 400


def test_error_fault_is_rendered_by_the_provider(session: requests.Session) -> None:
    rules = [{"kind": "error", "path": "^/v1/counter$", "method": "GET", "status": 502, "times": 1}]
    assert session.post(BASE + "_sandbox/faults", json={"rules": rules}).ok
    assert session.get(BASE + "v1/counter").status_code == 502
    assert session.get(BASE + "v1/counter").status_code == 200  # fired once only


def test_throttle_fault_carries_retry_after(session: requests.Session) -> None:
    rules = [{"kind": "throttle", "retry_after": 7}]
    session.post(BASE + "_sandbox/faults", json={"rules": rules})
    response = session.get(BASE + "v1/counter")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_drop_after_commit_commits_then_loses_the_answer(
    session: requests.Session, app: CounterApp
) -> None:
    rules = [{"kind": "drop_after_commit", "method": "POST", "times": 1}]
    session.post(BASE + "_sandbox/faults", json={"rules": rules})
    with pytest.raises(requests.ConnectionError):
        session.post(BASE + "v1/counter")
    assert app.value == 1  # the write happened


def test_timeout_does_not_process(session: requests.Session, app: CounterApp) -> None:
    session.post(BASE + "_sandbox/faults", json={"rules": [{"kind": "timeout", "times": 1}]})
    with pytest.raises(requests.Timeout):
        session.post(BASE + "v1/counter")
    assert app.value == 0


def test_fault_rates_replay_with_the_same_seed(session: requests.Session) -> None:
    def run() -> list[int]:
        rules = [{"kind": "error", "rate": 0.5, "status": 500}]
        session.post(BASE + "_sandbox/faults", json={"rules": rules, "seed": 42})
        return [session.get(BASE + "v1/counter").status_code for _ in range(40)]

    first = run()
    assert 0 < first.count(500) < 40
    assert run() == first


def test_bad_fault_rules_are_refused_and_change_nothing(session: requests.Session) -> None:
    for body in (
        {"rules": [{"kind": "explode"}]},
        {"rules": [{"kind": "error", "rate": 2}]},
        {"rules": [{"kind": "error", "colour": "red"}]},
        {"rules": "all"},
        {"rules": [{"kind": "error", "path": "("}]},
    ):
        response = session.post(BASE + "_sandbox/faults", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert session.get(BASE + "_sandbox/faults").json() == {"rules": [], "quotas": {}}


def test_state_seed_reset(session: requests.Session) -> None:
    assert session.post(BASE + "_sandbox/seed", json={"count": 5}).json() == {"value": 5}
    state = session.get(BASE + "_sandbox/state").json()
    assert state["state"] == {"value": 5}
    assert state["provider"] == "counter"
    assert session.post(BASE + "_sandbox/seed", json={}).status_code == 400
    assert session.post(BASE + "_sandbox/reset").ok
    assert session.get(BASE + "_sandbox/state").json()["state"] == {"value": 0}


def test_save_and_restore(tmp_path: Path, app: CounterApp) -> None:
    app.value = 9
    app.save(tmp_path / "counter.json")
    other = CounterApp()
    other.restore(tmp_path / "counter.json")
    assert other.value == 9


@pytest.fixture
def https_app(tmp_path: Path) -> Iterator[tuple[CounterApp, str, Path]]:
    authority = CertificateAuthority.create(tmp_path)
    app = CounterApp()
    server = HTTPSSandboxServer(app, authority, timeout_seconds=0.2).start()
    try:
        yield app, server.base_url, authority.ca_path
    finally:
        server.stop()


def test_https_with_throwaway_ca(https_app: tuple[CounterApp, str, Path]) -> None:
    app, base, ca = https_app
    session = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would override session.verify (a requests quirk).
    session.trust_env = False
    session.verify = str(ca)
    assert session.post(base + "v1/counter").status_code == 201
    assert app.value == 1
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(base + "v1/counter", timeout=5)  # not trusted without the CA


def test_https_drop_after_commit(https_app: tuple[CounterApp, str, Path]) -> None:
    app, base, ca = https_app
    session = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would override session.verify (a requests quirk).
    session.trust_env = False
    session.verify = str(ca)
    session.post(
        base + "_sandbox/faults", json={"rules": [{"kind": "drop_after_commit", "method": "POST"}]}
    )
    with pytest.raises(requests.ConnectionError):
        session.post(base + "v1/counter", timeout=5)
    assert app.value == 1


ENVIRON_CASES = [
    (
        "GET",
        "https://graph.example/",
        "/v1.0/me/contacts",
        "%24top=10&%24skip=20",
        [("Authorization", "Bearer x"), ("Accept", "*/*")],
        b"",
    ),
    (
        "post",
        "https://graph.example/",
        "/v1.0/$batch",
        "",
        [("Content-Type", "application/json"), ("Content-Length", "5"), ("X-A", "1"), ("x-a", "2")],
        b"hello",
    ),
    ("POST", "http://sf.example:8443/", "/services/data/v59.0/sobjects", "",
     [("Content-Length", "0")], b""),
    (
        "PATCH",
        "https://graph.example/",
        "/v1.0/users('a%40b.example')/contacts/AA%3D%3D",
        "",
        [("Content-Type", "application/json; charset=utf-8")],
        '{"name":"Zoë"}'.encode(),
    ),
    (
        "POST",
        "https://login.example/base/",
        "/tenant/oauth2/v2.0/token",
        "",
        [("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=client_credentials&client_id=x",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "base", "path", "query", "headers", "body"), ENVIRON_CASES)
def test_build_environ_matches_werkzeug(
    method: str, base: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    """The transport's and $batch's environ is werkzeug's EnvironBuilder's, built directly."""
    from werkzeug.test import EnvironBuilder

    from contactsync_sandbox.core.environ import build_environ

    builder = EnvironBuilder(
        method=method.upper(), path=path, query_string=query, base_url=base, headers=headers,
        data=body,
    )  # fmt: skip
    expected = builder.get_environ()
    builder.close()
    actual = build_environ(method, base, path, query, headers, body)
    for environ in (expected, actual):
        environ.pop("wsgi.errors")
        environ["wsgi.input"] = environ["wsgi.input"].read()
    assert actual == expected
