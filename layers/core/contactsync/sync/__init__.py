"""Application services of the sync: they read from the store and the connectors, call the
pure engine, and write what it decides. The Lambda handlers and the local runner call these."""
