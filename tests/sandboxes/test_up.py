"""`contactsync sandbox up`: the four sandboxes over HTTPS, sandbox.json as INTERFACES.md says,
reachable by the real clients trusting the throw-away CA, seeding, and state kept across runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msal
import pytest
import requests

from contactsync.local.cli import main
from contactsync_sandbox.up import RunningSandboxes, start

KEYS = {
    "google": {
        "api_base",
        "token_uri",
        "client_id",
        "client_secret",
        "refresh_token",
        "user",
        "admin",
    },
    "microsoft": {"authority", "graph_base", "client_id", "client_secret", "user_id", "admin"},
    "salesforce": {
        "instance_url",
        "token_url",
        "api_version",
        "client_id",
        "client_secret",
        "refresh_token",
        "username",
        "admin",
    },
    "aircall": {"api_base", "api_id", "api_token", "admin"},
}

URL_KEYS = {
    "api_base",
    "token_uri",
    "authority",
    "graph_base",
    "instance_url",
    "token_url",
    "admin",
}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[RunningSandboxes]:
    running = start(tmp_path / "sandbox")
    try:
        yield running
    finally:
        running.stop(save=False)


def trusting(ca: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = ca
    return session


def test_sandbox_json_follows_the_interface(up: RunningSandboxes) -> None:
    config = json.loads(up.config_path.read_text())
    assert Path(config["ca_bundle"]).is_absolute()
    assert Path(config["ca_bundle"]).exists()
    for provider, keys in KEYS.items():
        assert keys <= set(config[provider]), provider
        for key in keys & URL_KEYS:
            assert config[provider][key].startswith("https://127.0.0.1:"), (provider, key)


def test_each_token_endpoint_answers_the_real_client_over_https(up: RunningSandboxes) -> None:
    config = json.loads(up.config_path.read_text())
    http = trusting(config["ca_bundle"])
    google = config["google"]
    token = http.post(
        google["token_uri"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": google["refresh_token"],
            "client_id": google["client_id"],
            "client_secret": google["client_secret"],
        },
        timeout=10,
    )
    assert token.status_code == 200
    assert token.json()["access_token"]
    ms = config["microsoft"]
    app = msal.ConfidentialClientApplication(
        ms["client_id"],
        client_credential=ms["client_secret"],
        authority=ms["authority"],
        instance_discovery=False,
        http_client=http,
    )
    assert "access_token" in app.acquire_token_for_client(
        scopes=["https://graph.microsoft.com/.default"]
    )
    sf = config["salesforce"]
    grant = http.post(
        sf["token_url"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": sf["refresh_token"],
            "client_id": sf["client_id"],
            "client_secret": sf["client_secret"],
        },
        timeout=10,
    )
    assert grant.status_code == 200
    assert grant.json()["instance_url"] == sf["instance_url"]
    aircall = config["aircall"]
    ping = http.get(
        aircall["api_base"] + "/ping", auth=(aircall["api_id"], aircall["api_token"]), timeout=10
    )
    assert ping.json() == {"ping": "pong"}


def test_seed_command_and_state_kept_across_runs(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    running = start(state)
    try:
        assert main(["--home", str(tmp_path), "sandbox", "seed", "aircall", "--count", "12"]) == 0
        config = json.loads(running.config_path.read_text())
        http = trusting(config["ca_bundle"])
        count = http.get(config["aircall"]["admin"] + "state", timeout=10).json()
    finally:
        running.stop(save=True)
    again = start(state)
    try:
        config = json.loads(again.config_path.read_text())
        http = trusting(config["ca_bundle"])
        restored = http.get(config["aircall"]["admin"] + "state", timeout=10).json()
        assert restored["state"]["contacts"] == count["state"]["contacts"]
        assert len(restored["state"]["contacts"]["contacts"]) == 12
    finally:
        again.stop(save=False)
