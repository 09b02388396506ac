from __future__ import annotations

import pytest

from contactsync.store.base import Store
from tests.sharing.world import World


@pytest.fixture
def world(sqlite_store: Store) -> World:
    return World(sqlite_store)
