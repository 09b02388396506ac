"""The cloud runtime's application glue: what the Lambda handlers in functions/ call.

- ``settings``: the functions' environment, one pydantic model per concern;
- ``limits``: per provider, the quotas that bound concurrency (reserved concurrency, the bulk
  sync's Distributed Map) and how many shards a stream is split into;
- ``aws``: the AWS wiring (clients injected by the handlers; Secrets Manager behind the
  connector factory, rotated refresh tokens written back; the FIFO queues);
- ``spokes``: an organisation's spokes as one provider's worker sees them (its own accounts
  with connectors, every other spoke as a view without credentials);
- ``pulls``, ``pushes``, ``fanout``: scheduled and webhook pulls (and the router of the
  webhooks' requests), per-spoke pushes, and the table stream's relay of hub changes to the
  spokes' push queues; ``streams`` reads the stream's records, ``proxies`` wraps connectors;
- ``schedules``: one EventBridge Scheduler schedule per sync, kept in step with its settings,
  and the start of a new sync's bulk sync;
- ``bulk`` (with ``bulk_state`` and ``shards_aircall``): the initial bulk sync that the Step
  Functions state machine orchestrates;
- ``observability``: Powertools Logger, Metrics and Tracer for the handlers.
"""
