"""What only the SQLite store has: its file format, and opening files written by earlier
versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from contactsync.domain import HubContact
from contactsync.domain.base import STORED
from contactsync.domain.contact import EmailAddress, PhoneNumber
from contactsync.domain.errors import VersionConflict
from contactsync.store.sqlite import SQLiteStore
from tests import factories as f


def _downgrade(path: Path, *, with_idx: bool) -> None:
    """Rewrites the file the way earlier versions kept it: entities WITHOUT ROWID, at first
    without the ``idx`` column and with a by-id index on entity_index instead."""
    conn = sqlite3.connect(path)
    idx = "idx TEXT NOT NULL DEFAULT '[]'," if with_idx else ""
    conn.executescript(
        f"""
        CREATE TABLE old (org TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
            version INTEGER NOT NULL, body TEXT NOT NULL, expires_at REAL, {idx}
            PRIMARY KEY (org, kind, id)) WITHOUT ROWID;
        INSERT INTO old SELECT {"*" if with_idx else "org, kind, id, version, body, expires_at"}
            FROM entities;
        DROP TABLE entities;
        ALTER TABLE old RENAME TO entities;
        """
    )
    if not with_idx:
        conn.execute("CREATE INDEX entity_index_by_id ON entity_index (org, kind, id)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("with_idx", [False, True], ids=["no-idx", "without-rowid"])
def test_a_file_from_an_earlier_version_is_migrated(tmp_path: Path, with_idx: bool) -> None:
    path = tmp_path / "hub.db"
    store = SQLiteStore(path)
    store.create(f.contact(contact_id="c-1", emails=["ann@example.com"], phones=["+14155552671"]))
    store.create(f.contact(contact_id="c-2", emails=["bob@example.com"]))
    store.close()
    _downgrade(path, with_idx=with_idx)

    store = SQLiteStore(path)
    assert [c.id for c in store.lookup(HubContact, "org-a", "email", "ann@example.com")] == ["c-1"]
    # An update replaces exactly the index entries the migration recorded...
    ann = store.get(HubContact, "org-a", "c-1")
    store.update(ann.model_copy(update={"emails": [EmailAddress(address="ann@new.example")]}))
    assert store.lookup_ids(HubContact, "org-a", "email", "ann@example.com") == []
    assert store.lookup_ids(HubContact, "org-a", "email", "ann@new.example") == ["c-1"]
    assert store.lookup_ids(HubContact, "org-a", "phone", "+14155552671") == ["c-1"]
    # ...and a delete removes every one of them.
    store.delete(HubContact, "org-a", "c-2")
    assert store.lookup_ids(HubContact, "org-a", "email", "bob@example.com") == []
    store.close()

    conn = sqlite3.connect(path)
    left = conn.execute("SELECT count(*) FROM entity_index WHERE id='c-2'").fetchone()[0]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    table = conn.execute("SELECT sql FROM sqlite_master WHERE name='entities'").fetchone()[0]
    conn.close()
    assert left == 0
    assert "entity_index_by_id" not in indexes
    assert "WITHOUT ROWID" not in table


def test_only_stored_entities_skip_the_phone_check() -> None:
    body = '{"raw": "555", "e164": "+15555555555"}'  # not a valid number
    assert PhoneNumber.model_validate_json(body, context=STORED).e164 == "+15555555555"
    with pytest.raises(ValueError, match="not a valid phone number"):
        PhoneNumber.model_validate_json(body)


def test_versions_known_inside_a_batch_still_guard_every_write(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.db")
    first = store.create(f.contact(contact_id="c-1"))
    with store.batch():
        store.prefetch(HubContact, "org-a", ["c-1", "c-2"])
        # Known present: a create conflicts, a stale update conflicts, a current one passes.
        with pytest.raises(VersionConflict):
            store.create(f.contact(contact_id="c-1"))
        updated = store.update(first.model_copy(update={"title": "CFO"}))
        with pytest.raises(VersionConflict):
            store.update(first.model_copy(update={"title": "CEO"}))
        # Known absent: found as absent without asking, a create passes, a second conflicts.
        assert store.find(HubContact, "org-a", "c-2") is None
        store.create(f.contact(contact_id="c-2"))
        assert store.find(HubContact, "org-a", "c-2") is not None
        with pytest.raises(VersionConflict):
            store.create(f.contact(contact_id="c-2"))
        store.delete(HubContact, "org-a", "c-2")
        assert store.find(HubContact, "org-a", "c-2") is None
        store.create(f.contact(contact_id="c-2"))
    assert store.get(HubContact, "org-a", "c-1").version == updated.version == 2
    assert store.get(HubContact, "org-a", "c-2").version == 1
    # After the batch, another connection's write is seen: nothing was remembered.
    other = SQLiteStore(tmp_path / "hub.db")
    other.update(store.get(HubContact, "org-a", "c-1").model_copy(update={"title": "CTO"}))
    with pytest.raises(VersionConflict):
        store.update(updated.model_copy(update={"title": "COO"}))


def test_index_values_known_inside_a_batch_follow_the_batch_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.db")
    ann = store.create(f.contact(contact_id="c-1", emails=["ann@example.com"]))
    with store.batch():
        store.prefetch_index(HubContact, "org-a", "email", ["ann@example.com", "new@example.com"])
        assert store.lookup_ids(HubContact, "org-a", "email", "new@example.com") == []
        store.create(f.contact(contact_id="c-2", emails=["new@example.com"]))
        store.update(ann.model_copy(update={"emails": [EmailAddress(address="new@example.com")]}))
        assert store.lookup_ids(HubContact, "org-a", "email", "ann@example.com") == []
        assert store.lookup_ids(HubContact, "org-a", "email", "new@example.com") == ["c-1", "c-2"]
        store.delete(HubContact, "org-a", "c-2")
        assert store.lookup_ids(HubContact, "org-a", "email", "new@example.com") == ["c-1"]
    # After the batch SQLite answers again, and agrees.
    assert store.lookup_ids(HubContact, "org-a", "email", "new@example.com") == ["c-1"]
    assert store.lookup_ids(HubContact, "org-a", "email", "ann@example.com") == []


def _rows(path: Path) -> tuple[list[tuple[str, int]], list[tuple[str, str, str]]]:
    """What another connection sees: entity ids and versions, and index entries."""
    conn = sqlite3.connect(path)
    entities = conn.execute(
        "SELECT id, version FROM entities WHERE kind='contact' ORDER BY id"
    ).fetchall()
    index = conn.execute(
        "SELECT name, value, id FROM entity_index WHERE kind='contact' AND name IN "
        "('email', 'phone') ORDER BY name, value, id"
    ).fetchall()
    conn.close()
    return entities, index


def test_a_batch_sends_its_writes_when_a_query_needs_them_or_at_commit(tmp_path: Path) -> None:
    """Writes inside a batch wait in memory; every read in the batch sees them, the commit
    sends each key's last state with exactly its index entries, a rollback sends nothing."""
    path = tmp_path / "hub.db"
    store = SQLiteStore(path)
    ann = store.create(f.contact(contact_id="c-1", emails=["ann@example.com"]))
    with store.batch():
        # Written three times and deleted: nothing of it may remain.
        gone = store.create(f.contact(contact_id="c-0", emails=["gone@example.com"]))
        gone = store.update(gone.model_copy(update={"emails": [EmailAddress(address="x@e.com")]}))
        store.delete(HubContact, "org-a", "c-0", expected_version=gone.version)
        # Re-indexed twice: the first value dropped, the second replaced, the third kept.
        ann = store.update(ann.model_copy(update={"emails": [EmailAddress(address="b@e.com")]}))
        assert _rows(path)[0] == [("c-1", 1)]  # not sent yet
        ann = store.update(
            ann.model_copy(
                update={"emails": [EmailAddress(address="c@e.com")], "phones": [_phone()]}
            )
        )
        # Reads that SQLite answers see the pending writes.
        assert store.lookup_ids(HubContact, "org-a", "email", "c@e.com") == ["c-1"]
        assert store.lookup_ids(HubContact, "org-a", "email", "x@e.com") == []
        assert [c.id for c in store.page(HubContact, "org-a").items] == ["c-1"]
        assert store.get(HubContact, "org-a", "c-1").version == 3
        store.create(f.contact(contact_id="c-2", emails=["dee@example.com"]))
    entities, index = _rows(path)
    assert entities == [("c-1", 3), ("c-2", 1)]
    assert index == [
        ("email", "c@e.com", "c-1"),
        ("email", "dee@example.com", "c-2"),
        ("phone", "+14155550100", "c-1"),
    ]
    with pytest.raises(RuntimeError, match="the page failed"):
        _failing_page(store)
    assert _rows(path) == (entities, index)
    assert store.find(HubContact, "org-a", "c-3") is None
    assert store.lookup_ids(HubContact, "org-a", "email", "dee@example.com") == ["c-2"]


def _failing_page(store: SQLiteStore) -> None:
    with store.batch():
        store.create(f.contact(contact_id="c-3", emails=["eve@example.com"]))
        store.delete(HubContact, "org-a", "c-2")
        raise RuntimeError("the page failed")


def _phone() -> PhoneNumber:
    return PhoneNumber.parse("+1 415 555 0100")


def test_reads_inside_a_batch_reuse_what_the_batch_wrote_or_read(tmp_path: Path) -> None:
    """Inside a batch an entity the batch wrote or read comes back without asking SQLite
    (nobody else writes meanwhile); what an earlier batch saw is asked again."""
    path = tmp_path / "hub.db"
    store = SQLiteStore(path)
    store.create(f.contact(contact_id="c-1", title="CEO"))
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with store.batch():
        assert store.get(HubContact, "org-a", "c-1").title == "CEO"  # asks SQLite
        asked = len(statements)
        two = store.create(f.contact(contact_id="c-2", title="CTO"))
        assert store.get(HubContact, "org-a", "c-1").title == "CEO"
        assert store.get_many(HubContact, "org-a", ["c-1", "c-2"])["c-2"] == two
        assert store.find(HubContact, "org-a", "c-3") is None  # asks SQLite
        assert store.find(HubContact, "org-a", "c-3") is None
        store.update(two.model_copy(update={"title": "CFO"}))  # its version is known
        assert store.get(HubContact, "org-a", "c-2").title == "CFO"
        # Only the create's check that c-2 is absent and the one read of c-3.
        assert [s.split(" WHERE")[0] for s in statements[asked:]] == [
            "SELECT version, idx FROM entities",
            "SELECT id, body, version, idx FROM entities",
        ]
    # Another connection deletes c-1 and creates it again: the same version, other content.
    other = SQLiteStore(path)
    other.delete(HubContact, "org-a", "c-1")
    other.create(f.contact(contact_id="c-1", title="COO"))
    with store.batch():
        store.prefetch(HubContact, "org-a", ["c-1"])  # version 1, as remembered
        assert store.get(HubContact, "org-a", "c-1").title == "COO"
    assert store.get(HubContact, "org-a", "c-2").version == 2


def test_a_write_waiting_in_a_batch_is_read_from_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pending write no longer in the recent entities (a page writes more than it keeps) is
    read back from the pending row: no early send, no query."""
    import contactsync.store.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "RECENT_ENTITIES", 1)
    store = SQLiteStore(tmp_path / "hub.db")
    statements: list[str] = []
    with store.batch():
        store.prefetch(HubContact, "org-a", ["c-1", "c-2"])
        store._conn.set_trace_callback(statements.append)
        one = store.create(f.contact(contact_id="c-1", title="CEO"))
        store.create(f.contact(contact_id="c-2", title="CTO"))  # pushes c-1 out of the recent
        assert store.get(HubContact, "org-a", "c-1") == one
        assert store.get_many(HubContact, "org-a", ["c-1", "c-2"])["c-2"].title == "CTO"
        assert statements == []
    assert [s.split()[0] for s in statements][-1] == "COMMIT"
    assert store.get(HubContact, "org-a", "c-1").title == "CEO"


def test_a_batch_holds_back_a_bounded_number_of_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat with the page size: past the bound the pending writes are sent."""
    import contactsync.store.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "PENDING_ENTITIES", 2)
    path = tmp_path / "hub.db"
    store = SQLiteStore(path)
    with store.batch():
        store.create(f.contact(contact_id="c-1", emails=["a@example.com"]))
        assert store._pending
        two = store.create(f.contact(contact_id="c-2", emails=["b@example.com"]))
        assert not store._pending  # sent, not committed: another connection sees nothing yet
        assert _rows(path) == ([], [])
        store.update(two.model_copy(update={"emails": [EmailAddress(address="c@example.com")]}))
    assert _rows(path) == (
        [("c-1", 1), ("c-2", 2)],
        [("email", "a@example.com", "c-1"), ("email", "c@example.com", "c-2")],
    )
