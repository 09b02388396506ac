"""The sync engine: pure, deterministic functions with no I/O. Normalise, match, merge, plan
mutations per spoke, decide deletes. The application services (``contactsync.sync``) feed it
what they read from the store and the connectors, and write what it decides."""
