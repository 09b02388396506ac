"""Factories and a thin client for the Aircall sandbox tests.

The client is what our connector will use: a plain ``requests.Session`` with HTTP Basic
``api_id:api_token`` (Aircall publishes no Python client), here mounted on the sandbox
in-process.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from contactsync_sandbox.aircall import App
from contactsync_sandbox.core import VirtualClock, mount_sandbox

BASE = "https://aircall.sandbox.test/"
HOOKS = "https://hooks.example.test/"
_numbers = itertools.count(1)


def new_app(seed: int = 7, **quotas: Any) -> App:
    app = App(VirtualClock(), seed=seed)
    if quotas:
        app.configure_quotas(quotas)
    return app


@dataclass
class Aircall:
    app: App
    session: requests.Session
    config: dict[str, Any]

    def url(self, path: str) -> str:
        return self.config["api_base"] + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(path), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url(path), **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.put(self.url(path), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url(path), **kwargs)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self.session.post(self.config["admin"] + path, json=body or {})

    def advance(self, seconds: float) -> None:
        assert self.admin("clock", {"advance_seconds": seconds}).ok

    def create_contact(self, **overrides: Any) -> dict[str, Any]:
        response = self.post("/contacts", json=contact_payload(**overrides))
        assert response.status_code == 201, response.text
        contact: dict[str, Any] = response.json()["contact"]
        return contact

    def create_webhook(self, **overrides: Any) -> dict[str, Any]:
        body = {"url": HOOKS + "aircall", "custom_name": "contactsync", **overrides}
        response = self.post("/webhooks", json=body)
        assert response.status_code == 201, response.text
        webhook: dict[str, Any] = response.json()["webhook"]
        return webhook


def client(app: App, key: int = 0, auth: Any = "basic") -> Aircall:
    session = mount_sandbox(requests.Session(), BASE, app)
    config = app.client_config()
    if auth == "basic":
        api_key = config["api_keys"][key]
        session.auth = (api_key["api_id"], api_key["api_token"])
    elif auth is not None:
        session.headers["Authorization"] = auth
    return Aircall(app, session, config)


def phone(n: int | None = None) -> str:
    """A valid US number in international form, different at each call."""
    return f"+1 212-555-{(next(_numbers) if n is None else n) % 10_000:04d}"


def contact_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "first_name": "Zoë",
        "last_name": "Wróbel",
        "company_name": "Müller & Söhne KG",
        "information": "Met at SaaStr",
        "phone_numbers": [{"label": "Work", "value": phone()}],
        "emails": [{"label": "Work", "value": "zoe.wrobel@mueller-soehne.de"}],
    }
    payload.update(overrides)
    return payload


@dataclass
class Receiver(BaseAdapter):
    """A webhook endpoint mounted on the dispatcher's session: records every POST and
    answers ``status``."""

    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        if 200 <= self.status < 300:
            self.received.append(json.loads(body or "{}"))
        response = requests.Response()
        response.status_code = self.status
        response.headers = CaseInsensitiveDict({"Content-Type": "text/plain"})
        response._content = b"ok"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        return None

    def events(self) -> list[str]:
        return [body["event"] for body in self.received]


def receiver(app: App) -> Receiver:
    hook = Receiver()
    app.webhooks.session.mount(HOOKS, hook)
    return hook
