"""The webhook path end to end: an edit in the Graph sandbox reaches Salesforce because Graph
notified our webhook route, not because a schedule came round. The sandbox's own subscription
and delivery machinery posts to the real API (through its WSGI adapter); the scheduler takes the
queued pull and the sync service pushes the change to Salesforce."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from contactsync.api import ApiContext, ApiSettings, build_app
from contactsync.api.queue import LocalPullQueue, PullInbox
from contactsync.api.routes.accounts import ensure_webhook_config
from contactsync.api.wsgi import ApiWsgi, WsgiTransport
from contactsync.domain import ConnectedAccount, Provider, SyncSettings
from contactsync.local.secrets import LocalSecretStore
from contactsync.local.serve import Scheduler
from contactsync_sandbox.microsoft import App as MicrosoftApp
from tests.support.world import World

API = "https://api.test"


def wire(world: World, base: str) -> tuple[MicrosoftApp, LocalPullQueue, Scheduler]:
    """Our API at ``base`` (where Graph posts, in-process) and the local scheduler."""
    graph = world.apps[Provider.MICROSOFT]
    assert isinstance(graph, MicrosoftApp)
    queue = LocalPullQueue()
    inbox = PullInbox(world.store, queue)
    ctx = ApiContext(
        ApiSettings(public_base_url=base, webhook_key="w" * 43),
        world.store,
        LocalSecretStore(world.root / "secrets.json"),
        inbox,
        world.sessions[Provider.MICROSOFT],
        now=world.clock.now,
    )
    for provider in world.accounts:
        account = world.store.get(ConnectedAccount, world.org_id, world.accounts[provider].id)
        ensure_webhook_config(ctx, account)
    world.reconfigure(Provider.MICROSOFT)  # connectors are cached: rebuild with the webhook URL
    graph.webhooks.session.mount(base + "/", WsgiTransport(ApiWsgi(lambda: build_app(ctx))))
    scheduler = Scheduler(
        world.store, world.org_id, world.service.connectors, queue, inbox, now=world.clock.now
    )
    return graph, queue, scheduler


def test_a_graph_edit_reaches_salesforce_through_the_webhook(tmp_path: Path) -> None:
    # Given Salesforce and a rep's Outlook, our API and the local scheduler, wired in-process;
    # schedules an hour apart, so only a webhook can explain a change arriving sooner
    hourly = {"schedule": {"interval_minutes": 60}}
    world = World.build(
        tmp_path,
        [Provider.SALESFORCE, Provider.MICROSOFT],
        settings={Provider.SALESFORCE: hourly, Provider.MICROSOFT: hourly},
    )
    world.seed(Provider.SALESFORCE, 5, overlap=0.0)
    graph, queue, scheduler = wire(world, API)
    # When the scheduler starts: Graph validates our endpoint and subscribes (the synced folder
    # and the default one); the first sync brings Salesforce's contacts into the hub and Outlook
    scheduler.maintain_webhooks()
    assert len(graph.subscriptions.items) == 2
    assert scheduler.tick() is True
    world.clock.advance(30)
    # Graph announces our own five creates too: they coalesce into one pull, which finds only
    # our own writes and sends nothing back out
    assert graph.deliver_webhooks() >= 1
    assert len(queue) == 1
    writes = len(world.remote_records(Provider.SALESFORCE, "Contact"))
    assert scheduler.tick() is True
    assert len(world.remote_records(Provider.SALESFORCE, "Contact")) == writes
    world.clock.advance(30)
    assert scheduler.tick() is False  # nothing queued, nothing due for an hour
    [link] = [lk for lk in world.links(Provider.MICROSOFT)][:1]
    contact_id = link.contact_id
    [sf_link] = [lk for lk in world.links(Provider.SALESFORCE) if lk.contact_id == contact_id]

    # And the rep retitles the contact in Outlook, which Graph announces to our webhook
    world.clock.advance(60)
    world.user_edit(Provider.MICROSOFT, link.remote_id, "contact", title="Regional Manager")
    assert len(queue) == 0
    assert graph.deliver_webhooks() == 1
    assert len(queue) == 1
    # Then one tick pulls Outlook and pushes the title to Salesforce, well before any schedule
    assert scheduler.tick() is True
    records = {r.remote_id: r for r in world.remote_records(Provider.SALESFORCE, "Contact")}
    assert records[sf_link.remote_id].fields.title == "Regional Manager"
    settings = {s.account_id: s for s in world.store.scan(SyncSettings, world.org_id)}
    last_run = settings[world.accounts[Provider.SALESFORCE].id].status.last_run_at
    assert last_run is not None
    assert world.clock.now() - last_run < timedelta(minutes=60)
    # And a repeated delivery of the same notification changes nothing more
    assert graph.deliver_webhooks() == 0
    assert scheduler.tick() is False


def test_a_refused_subscription_is_tried_again_within_minutes(tmp_path: Path) -> None:
    # Given `contactsync serve` on http://127.0.0.1 and a Graph that refuses plain http
    world = World.build(tmp_path, [Provider.MICROSOFT])
    graph, _, scheduler = wire(world, "http://127.0.0.1:8080")
    graph.configure_quotas({"allow_http_localhost": False})
    # When the scheduler keeps the webhooks: Graph refuses, and nothing is subscribed
    scheduler.maintain_webhooks()
    assert graph.subscriptions.items == {}
    # Then, once Graph accepts the loopback URL, the next attempt within minutes subscribes
    graph.configure_quotas({"allow_http_localhost": True})
    scheduler.maintain_webhooks()
    assert graph.subscriptions.items == {}  # not retried at once: the retry waits
    world.clock.advance(scheduler.prepare_retry.total_seconds())
    scheduler.maintain_webhooks()
    assert len(graph.subscriptions.items) == 2
    # And a success waits its full interval before the next upkeep
    world.clock.advance(scheduler.prepare_retry.total_seconds())
    graph.subscriptions.items.clear()
    scheduler.maintain_webhooks()
    assert graph.subscriptions.items == {}
