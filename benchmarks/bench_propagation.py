"""Propagation latency through webhooks: from a user's edit in one provider sandbox to that
edit being visible in every other connected system, with everything running as a user runs it:
`contactsync sandbox up` (all four sandboxes over HTTPS, delivering their webhooks every
0.25 s) and `contactsync serve` (API, webhook routes and scheduler on 127.0.0.1) as separate
processes, the organisation made by `contactsync init` and filled by `contactsync sync --once`.

Each edit sets a contact's family name to a fresh value through the provider's own REST API
(as the user would in Outlook, Aircall or Salesforce), the sources taking turns: Outlook (Graph
change notifications), Aircall (contact.updated webhooks) and Salesforce (an outbound message on
Contact, set up through the sandbox's admin API). Google People has no push API, so Google is
only a target. The clock starts when the edit is sent; each other system is then read back
directly (a GET of the linked record by its id, every 0.05 s) until it shows the new value. An
edit not visible everywhere within 60 s is a miss; edits are 2 s apart, one warm-up edit is not
counted. Quotas are off in every sandbox; `sandbox up` lets Graph and Aircall post to serve's
plain http://127.0.0.1 (the real services demand https).

Outlook is a source only when serve has registered Graph's subscriptions; when it has not, the
output says BLOCKED and Outlook is measured as a target only.

Target: p95 under 5 s locally, for the time until an edit is visible in every other system.

    .venv/bin/python -m benchmarks propagation [--edits 20] [--contacts 50]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from contactsync.domain import ConnectedAccount, HubContact, Link
from contactsync.local.connectors import https_session
from contactsync.local.home import Home

TARGET_P95_S = 5.0
EDIT_TIMEOUT_S = 60.0
POLL_S = 0.05
SETTLE_S = 2.0  # between edits, so one edit's echoes are not the next one's queue
SOURCES = ("microsoft", "aircall", "salesforce")
TARGETS = ("salesforce", "google", "microsoft", "aircall")
NAMES = {
    "salesforce": "Salesforce",
    "google": "Google",
    "microsoft": "Outlook",
    "aircall": "Aircall",
}
CLI = [sys.executable, "-m", "contactsync.local.cli"]


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def _seconds(value: float) -> str:
    return f">{EDIT_TIMEOUT_S:.0f}" if math.isinf(value) else f"{value:.2f}"


# ---- the providers' own REST APIs, as the user's apps call them -----------------------------


class Client:
    """Reads and writes one contact's family name with the user's credentials."""

    def __init__(self, http: requests.Session, entry: dict[str, Any]) -> None:
        self.http = http
        self.entry = entry
        self._token: str | None = None

    def token(self) -> str:
        raise NotImplementedError

    def grant(self, token_url: str, **form: str) -> str:
        """An access token from the provider's OAuth token endpoint."""
        answer = self.http.post(token_url, data=form, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def refresh(self, token_url: str) -> str:
        """The refresh-token grant with the sandbox.json entry's client (Salesforce, Google)."""
        entry = self.entry
        return self.grant(token_url, grant_type="refresh_token",
                          refresh_token=entry["refresh_token"], client_id=entry["client_id"],
                          client_secret=entry["client_secret"])  # fmt: skip

    def headers(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token()
        return {"Authorization": f"Bearer {self._token}"}

    def call(self, method: str, url: str, **kw: Any) -> requests.Response:
        response = self.http.request(method, url, headers=self.headers(), timeout=30, **kw)
        if response.status_code == 401:  # the access token expired: a fresh one, once
            self._token = None
            response = self.http.request(method, url, headers=self.headers(), timeout=30, **kw)
        response.raise_for_status()
        return response

    def family_name(self, remote_id: str) -> str | None:
        raise NotImplementedError

    def set_family_name(self, remote_id: str, value: str) -> None:
        raise NotImplementedError


class Salesforce(Client):
    def __init__(self, http: requests.Session, entry: dict[str, Any]) -> None:
        super().__init__(http, entry)
        self.base = (
            f"{entry['instance_url']}/services/data/v{entry['api_version']}/sobjects/Contact/"
        )

    def token(self) -> str:
        return self.refresh(self.entry["token_url"])

    def family_name(self, remote_id: str) -> str | None:
        answer = self.call("GET", self.base + remote_id, params={"fields": "LastName"})
        return answer.json().get("LastName")

    def set_family_name(self, remote_id: str, value: str) -> None:
        self.call("PATCH", self.base + remote_id, json={"LastName": value})


class Outlook(Client):
    def __init__(self, http: requests.Session, entry: dict[str, Any]) -> None:
        super().__init__(http, entry)
        self.base = f"{entry['graph_base']}/users/{entry['user_id']}/contacts/"

    def token(self) -> str:
        entry = self.entry
        return self.grant(entry["authority"] + "/oauth2/v2.0/token",
                          grant_type="client_credentials", client_id=entry["client_id"],
                          client_secret=entry["client_secret"], scope=entry["scope"])  # fmt: skip

    def family_name(self, remote_id: str) -> str | None:
        answer = self.call("GET", self.base + remote_id, params={"$select": "surname"})
        return answer.json().get("surname")

    def set_family_name(self, remote_id: str, value: str) -> None:
        self.call("PATCH", self.base + remote_id, json={"surname": value})

    def subscriptions(self) -> int:
        url = self.entry["graph_base"] + "/subscriptions"
        return len(self.call("GET", url).json().get("value", []))


class Google(Client):
    def token(self) -> str:
        return self.refresh(self.entry["token_uri"])

    def family_name(self, remote_id: str) -> str | None:
        url = f"{self.entry['api_base'].rstrip('/')}/v1/{remote_id}"
        names = self.call("GET", url, params={"personFields": "names"}).json().get("names", [])
        return names[0].get("familyName") if names else None


class Aircall(Client):
    def __init__(self, http: requests.Session, entry: dict[str, Any]) -> None:
        super().__init__(http, entry)
        self.base = entry["api_base"].rstrip("/")
        self.auth = (entry["api_id"], entry["api_token"])

    def call(self, method: str, url: str, **kw: Any) -> requests.Response:
        response = self.http.request(method, url, auth=self.auth, timeout=30, **kw)
        response.raise_for_status()
        return response

    def family_name(self, remote_id: str) -> str | None:
        return self.call("GET", f"{self.base}/contacts/{remote_id}").json()["contact"]["last_name"]

    def set_family_name(self, remote_id: str, value: str) -> None:
        self.call("POST", f"{self.base}/contacts/{remote_id}", json={"last_name": value})

    def webhooks(self) -> int:
        return len(self.call("GET", f"{self.base}/webhooks").json().get("webhooks", []))


# ---- setup ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, ready: Callable[[], bool], seconds: float, process: subprocess.Popen[bytes],
          log: Path, *, fail: bool = True) -> bool:  # fmt: skip
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what}: the process exited ({process.returncode}):\n{_tail(log)}")
        try:
            if ready():
                return True
        except (requests.RequestException, OSError, ValueError):
            pass
        time.sleep(0.1)
    if not fail:
        return False
    raise SystemExit(f"{what}: not ready after {seconds:.0f} s\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(CLI + args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # both commands stop cleanly on Ctrl-C
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _linked(home: Home) -> tuple[int, dict[str, int], list[dict[str, str]]]:
    """Hub contacts, links per provider, and the contacts linked in all four systems."""
    config = home.config()
    store = home.store()
    try:
        providers = {a.id: a.provider.value for a in store.scan(ConnectedAccount, config.org_id)}
        contacts = sum(1 for _ in store.scan(HubContact, config.org_id))
        by_contact: dict[str, dict[str, str]] = {}
        for link in store.scan(Link, config.org_id):
            provider = providers.get(link.account_id)
            if provider and not link.pending_create and not link.restore:
                by_contact.setdefault(link.contact_id, {})[provider] = link.remote_id
    finally:
        store.close()
    counts = {p: sum(1 for ids in by_contact.values() if p in ids) for p in TARGETS}
    full = [ids for _, ids in sorted(by_contact.items()) if set(TARGETS) <= set(ids)]
    return contacts, counts, full


# ---- measuring -----------------------------------------------------------------------------


def _watch(client: Client, remote_id: str, value: str, t0: float) -> float:
    deadline = t0 + EDIT_TIMEOUT_S
    while True:
        try:
            if client.family_name(remote_id) == value:
                return time.perf_counter() - t0
        except requests.RequestException:
            pass  # a failed read is only a missed sample
        if time.perf_counter() >= deadline:
            return math.inf
        time.sleep(POLL_S)


def _edit(clients: dict[str, Client], source: str, ids: dict[str, str], value: str,
          pool: ThreadPoolExecutor) -> dict[str, float]:  # fmt: skip
    targets = [t for t in TARGETS if t != source]
    t0 = time.perf_counter()
    clients[source].set_family_name(ids[source], value)
    futures = {t: pool.submit(_watch, clients[t], ids[t], value, t0) for t in targets}
    return {t: f.result() for t, f in futures.items()}


def _row(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<26} {0:>3}"
    p50, p95, worst = (_percentile(values, 0.5), _percentile(values, 0.95), max(values))
    return (
        f"{label:<26} {len(values):>3} {_seconds(p50):>7} {_seconds(p95):>7} {_seconds(worst):>7}"
    )


def _report(
    results: list[tuple[str, dict[str, float]]], args: argparse.Namespace, skipped: list[str]
) -> None:
    _say(f"{'seconds':<26} {'n':>3} {'p50':>7} {'p95':>7} {'max':>7}")
    for source in SOURCES:
        mine = [r for s, r in results if s == source]
        if not mine:
            continue
        for target in TARGETS:
            if target != source:
                label = f"{NAMES[source]} -> {NAMES[target]}"
                _say(_row(label, [r[target] for r in mine]))
        _say(_row(f"{NAMES[source]} -> all others", [max(r.values()) for r in mine]))
    for target in TARGETS:
        _say(_row(f"any -> {NAMES[target]}", [r[t] for _, r in results for t in r if t == target]))
    each = [v for _, r in results for v in r.values()]
    everywhere = [max(r.values()) for _, r in results]
    _say(_row("overall, per target", each))
    _say(_row("overall, all others", everywhere))
    misses = sum(1 for v in everywhere if math.isinf(v))
    p95 = _percentile(everywhere, 0.95)
    verdict = "met" if p95 < TARGET_P95_S else "MISSED"
    pairs = sum(1 for v in each if math.isinf(v))
    _say(f"misses (not everywhere within {EDIT_TIMEOUT_S:.0f} s): {misses} of {len(everywhere)} "
         f"edits ({pairs} of {len(each)} edit-target pairs)")  # fmt: skip
    scope = (
        f" ({', '.join(NAMES[s] for s in skipped)} as a source: not measured)" if skipped else ""
    )
    _say(f"target p95 < {TARGET_P95_S:.0f} s until visible in every other system: {verdict} "
         f"(p95 {_seconds(p95)} s){scope}")  # fmt: skip
    _say(f"reproduce: .venv/bin/python -m benchmarks propagation --edits {args.edits} "
         f"--contacts {args.contacts}")  # fmt: skip


def _setup(root: Path, sandbox: dict[str, Any], contacts: int) -> list[dict[str, str]]:
    http = https_session(sandbox["ca_bundle"])
    for provider in TARGETS:
        # `sandbox up` already lets Graph and Aircall post to serve's http://127.0.0.1.
        body = {"rules": [], "quotas": {"enabled": False}}
        http.post(sandbox[provider]["admin"] + "faults", json=body, timeout=60).raise_for_status()
    home = root / "home"
    _run(["--home", str(home), "init", "--sandbox", str(root / "sandbox" / "sandbox.json")], "init")
    http.post(
        sandbox["salesforce"]["admin"] + "seed",
        json={"count": contacts, "overlap": 0.0, "seed": 7},
        timeout=600,
    ).raise_for_status()
    started = time.perf_counter()
    _run(["--home", str(home), "sync", "--once", "--json"], "sync --once")
    hub, counts, full = _linked(Home(home))
    _say(f"initial sync: {time.perf_counter() - started:.1f} s; {hub} hub contacts; links: "
         + ", ".join(f"{NAMES[p]} {n}" for p, n in counts.items())
         + f"; {len(full)} linked in all four")  # fmt: skip
    if not full:
        raise SystemExit("no contact is linked in all four systems: nothing to measure")
    return full


def _hook_salesforce(
    root: Path, base: str, sandbox: dict[str, Any], http: requests.Session
) -> None:
    """Points a Contact outbound message at the Salesforce account's webhook URL (the URL the
    API gives for it), as an admin would in a workflow rule."""
    home = Home(root / "home")
    admin = sandbox["salesforce"]["username"]
    token = subprocess.run(
        [*CLI, "--home", str(home.root), "token", "--user", admin, "--admin", "--ttl", "3600"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    local = requests.Session()
    local.trust_env = False
    accounts = local.get(
        base + "/accounts", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    accounts.raise_for_status()
    [url] = [a["webhook_url"] for a in accounts.json()["items"] if a["provider"] == "salesforce"]
    body = {"sobject": "Contact", "endpoint": url, "fields": ["LastName"]}
    answer = http.post(sandbox["salesforce"]["admin"] + "outbound_messages", json=body, timeout=30)
    answer.raise_for_status()


def _webhooks(root: Path, base: str, sandbox: dict[str, Any], serve: subprocess.Popen[bytes],
              log: Path) -> tuple[str, ...]:  # fmt: skip
    """Waits for serve's scheduler to register Graph's subscriptions and Aircall's webhook, and
    points a Salesforce outbound message at us. The sources whose edits can reach us."""
    http = https_session(sandbox["ca_bundle"])
    outlook, aircall = Outlook(http, sandbox["microsoft"]), Aircall(http, sandbox["aircall"])
    started = time.perf_counter()
    _wait("Aircall webhook", lambda: aircall.webhooks() >= 1, 60, serve, log)
    graph = _wait(
        "Graph subscriptions", lambda: outlook.subscriptions() >= 2, 15, serve, log, fail=False
    )
    _hook_salesforce(root, base, sandbox, http)
    waited = time.perf_counter() - started
    _say(f"contactsync serve on {base}: Aircall webhook registered, Salesforce outbound message "
         f"on Contact pointed at it ({waited:.1f} s)")  # fmt: skip
    if graph:
        _say("Graph subscriptions registered (the synced folder and the address book)")
        return SOURCES
    said = " | ".join([x for x in _tail(log).splitlines() if "WARNING" in x][-3:])
    _say("BLOCKED: no Graph subscription after 15 s, so Outlook edits cannot reach the hub and "
         f"Outlook is measured only as a target. serve's log: {said or 'nothing'}")  # fmt: skip
    return tuple(s for s in SOURCES if s != "microsoft")


def _measure(sandbox: dict[str, Any], sources: tuple[str, ...], full: list[dict[str, str]],
             edits: int) -> list[tuple[str, dict[str, float]]]:  # fmt: skip
    ca = sandbox["ca_bundle"]
    clients: dict[str, Client] = {
        "salesforce": Salesforce(https_session(ca), sandbox["salesforce"]),
        "google": Google(https_session(ca), sandbox["google"]),
        "microsoft": Outlook(https_session(ca), sandbox["microsoft"]),
        "aircall": Aircall(https_session(ca), sandbox["aircall"]),
    }
    run = uuid.uuid4().hex[:6]
    results: list[tuple[str, dict[str, float]]] = []
    with ThreadPoolExecutor(max_workers=len(TARGETS)) as pool:
        warm = _edit(clients, sources[0], full[-1], f"Warmup{run}", pool)
        _say(f"warm-up edit ({NAMES[sources[0]]}, not counted): visible everywhere after "
             f"{_seconds(max(warm.values()))} s")  # fmt: skip
        _say(f"{edits} edits of the family name, sources in turn: "
             + ", ".join(NAMES[s] for s in sources) + f"; reads every {POLL_S} s, "
             f"{SETTLE_S:.0f} s between edits")  # fmt: skip
        for i in range(edits):
            time.sleep(SETTLE_S)
            source = sources[i % len(sources)]
            ids = full[i % max(1, len(full) - 1)]
            results.append((source, _edit(clients, source, ids, f"Edit{run}{i:03d}", pool)))
            seen = " ".join(f"{NAMES[t]} {_seconds(v)}" for t, v in results[-1][1].items())
            _say(f"  edit {i + 1:>3} {NAMES[source]:<10} {seen}")
    return results


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(CLI + args, stdout=out, stderr=subprocess.STDOUT)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_propagation")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=50, help="Salesforce contacts seeded")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-propagation-"))
    state = root / "sandbox"
    sandboxes_log, serve_log = root / "sandbox.log", root / "serve.log"
    sandboxes: subprocess.Popen[bytes] | None = None
    serve: subprocess.Popen[bytes] | None = None
    try:
        sandboxes = _start(
            ["--home", str(root / "sb-home"), "sandbox", "up", "--state-dir", str(state)],
            sandboxes_log,
        )
        _wait("sandbox up", (state / "sandbox.json").exists, 120, sandboxes, sandboxes_log)
        sandbox = json.loads((state / "sandbox.json").read_text())
        _say(f"sandboxes up in {root}: quotas off")
        full = _setup(root, sandbox, args.contacts)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        serve = _start(["--home", str(root / "home"), "serve", "--port", str(port)], serve_log)
        local = requests.Session()
        local.trust_env = False
        up = serve
        _wait("serve", lambda: local.get(base + "/openapi.json", timeout=5).ok, 60, up, serve_log)
        sources = _webhooks(root, base, sandbox, serve, serve_log)
        results = _measure(sandbox, sources, full, args.edits)
        _report(results, args, skipped=[s for s in SOURCES if s not in sources])
    finally:
        _stop(serve)
        _stop(sandboxes)
