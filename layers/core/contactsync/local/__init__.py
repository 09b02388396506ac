"""The local runtime: the `contactsync` CLI on the SQLite store, the embedded default."""
