"""Helpers for the Microsoft sandbox tests: msal against the sandbox, a thin Graph caller over
``requests`` (what our connector will use), a webhook receiver mounted on the sandbox's
outbound session, and factories for contact payloads."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msal
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from contactsync_sandbox.core import mount_sandbox
from contactsync_sandbox.microsoft import App
from contactsync_sandbox.registry import create

BASE = "https://microsoft.sandbox.test/"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
REP = "rep@example.com"
HOOKS = "https://hooks.example.test/"

_names = itertools.count(1)


def new_app(seed: int = 7) -> App:
    app = create("microsoft", seed=seed)
    assert isinstance(app, App)
    return app


def session_for(app: App) -> requests.Session:
    return mount_sandbox(requests.Session(), BASE, app)


def msal_app(
    app: App, session: requests.Session, secret: str | None = None
) -> msal.ConfidentialClientApplication:
    """A fresh msal client (fresh caches: msal caches discovery, 400s and 5xx per instance)."""
    config = app.client_config()
    return msal.ConfidentialClientApplication(
        config["client_id"],
        client_credential=secret if secret is not None else config["client_secret"],
        authority=config["authority"],
        instance_discovery=False,
        http_client=session,
    )


def app_token(app: App, session: requests.Session) -> str:
    result = msal_app(app, session).acquire_token_for_client(scopes=GRAPH_SCOPE)
    token: str = result["access_token"]
    return token


@dataclass
class Graph:
    """Graph calls as our connector makes them: plain requests with a bearer token."""

    session: requests.Session
    token: str
    base: str = BASE + "v1.0"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.session.request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def delta_round(
        self, start: str, page_size: int = 200
    ) -> tuple[list[dict[str, Any]], str, int]:
        """Follows nextLinks until a deltaLink; (items, deltaLink, pages)."""
        items: list[dict[str, Any]] = []
        url, pages = start, 0
        prefer = {"Prefer": f"odata.maxpagesize={page_size}"}
        while True:
            response = self.get(url, headers=prefer)
            assert response.status_code == 200, response.text
            body = response.json()
            pages += 1
            items.extend(body["value"])
            if "@odata.deltaLink" in body:
                assert "@odata.nextLink" not in body
                return items, body["@odata.deltaLink"], pages
            url = body["@odata.nextLink"]
            assert pages < 10_000


def graph(app: App, session: requests.Session | None = None) -> Graph:
    session = session or session_for(app)
    return Graph(session, app_token(app, session))


def contact_payload(**overrides: Any) -> dict[str, Any]:
    """A realistic contact as a connector would POST it."""
    n = next(_names)
    body: dict[str, Any] = {
        "givenName": "Renée",
        "surname": f"Lefèvre-{n}",
        "emailAddresses": [{"name": "Renée Lefèvre", "address": f"renee.lefevre.{n}@sgconseil.fr"}],
        "businessPhones": ["+33 1 42 68 53 00"],
        "mobilePhone": "+33 6 12 34 56 78",
        "companyName": "Société Générale Conseil",
        "jobTitle": "Directrice commerciale",
        "department": "Sales",
        "businessAddress": {
            "street": "12 rue de Rivoli",
            "city": "Paris",
            "state": "",
            "countryOrRegion": "France",
            "postalCode": "75008",
        },
        "categories": [],
        "personalNotes": "Met at SaaStr",
    }
    body.update(overrides)
    return body


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# ---- a webhook receiver ------------------------------------------------------------------------


@dataclass
class Received:
    url: str
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Behaviour = Callable[[requests.PreparedRequest], tuple[int, str, str]]


def echo_validation(request: requests.PreparedRequest) -> tuple[int, str, str]:
    """A correct receiver: echoes the decoded validation token, acknowledges notifications."""
    token = query_of(request.url or "").get("validationToken")
    if token is not None:
        return 200, "text/plain; charset=utf-8", token
    return 202, "text/plain", ""


@dataclass
class Receiver(BaseAdapter):
    """Mounted on the sandbox's outbound session; records what Graph POSTs to it."""

    behaviour: Behaviour = echo_validation
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        self.received.append(
            Received(request.url or "", request.headers.get("Content-Type", ""), body)
        )
        status, content_type, text = self.behaviour(request)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": content_type})
        response._content = text.encode()
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        return None

    def validations(self) -> list[Received]:
        return [r for r in self.received if "validationToken=" in r.url]

    def notifications(self) -> list[dict[str, Any]]:
        return [
            n for r in self.received if "validationToken=" not in r.url for n in r.json()["value"]
        ]


def attach_receiver(app: App, behaviour: Behaviour = echo_validation) -> Receiver:
    receiver = Receiver(behaviour)
    app.webhooks.session.mount(HOOKS, receiver)
    return receiver
