"""Storage: one protocol (``Store``), two implementations (SQLite for the embedded local mode,
DynamoDB for the cloud), one contract test suite that both pass."""

from contactsync.store.base import Page, Store, Write

__all__ = ["Page", "Store", "Write"]
