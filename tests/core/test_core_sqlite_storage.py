"""What only the SQLite backend does: its migrations, WAL file and schema guards.

Every storage operation's semantics are tested once for all backends in tests/backends/.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest
from _helpers import dense, lexical

from alma_core import DomainKnowledge, MockEmbedder, StorageError
from alma_core.storage import (
    GetRecord,
    MemoryFilter,
    PutMemories,
    PutRecord,
    Record,
    SQLiteStorage,
)
from alma_core.storage.sqlite import MIGRATIONS

EMBED = MockEmbedder(64)
P = "proj"


@pytest.fixture
def store(db_path: Path):
    s = SQLiteStorage(db_path)
    yield s
    s.close()


def _embedded(*memories):
    vectors = EMBED.embed_documents([m.text for m in memories])
    for memory, vector in zip(memories, vectors, strict=True):
        memory.embedding = vector
    return list(memories)


def _fact(fact: str, agent: str = "a", domain: str = "d", **kw) -> DomainKnowledge:
    return DomainKnowledge(project_id=kw.pop("project_id", P), agent=agent, domain=domain, fact=fact, **kw)


# ---- schema -----------------------------------------------------------------------------------------------


def test_setup_is_idempotent_and_reopening_keeps_everything(db_path: Path) -> None:
    store = SQLiteStorage(db_path)
    store.setup()
    store.setup()
    mems = _embedded(_fact("persistent fact"))
    store.execute(PutMemories(mems))
    store.execute(PutRecord(Record(P, "ns", "k", b"v", {"x": 1})))
    store.close()
    with pytest.raises(StorageError):
        store.execute(GetRecord(P, "ns", "k"))  # closed

    again = SQLiteStorage(db_path)
    try:
        assert again.execute(GetRecord(P, "ns", "k")).metadata == {"x": 1}
        assert again.execute(PutRecord(Record(P, "ns", "k2", b"v"))).seq == 2
        hits = dense(again, MemoryFilter(project_id=P), EMBED.embed_query("persistent fact"), 5)
        assert [h[0] for h in hits] == [mems[0].id]
        found = lexical(again, MemoryFilter(project_id=P), "persistent", 5)
        assert [h[0] for h in found] == [mems[0].id]
        assert again.integrity_check() == "ok"
    finally:
        again.close()
    with sqlite3.connect(db_path) as raw:
        versions = [r[0] for r in raw.execute("SELECT version FROM alma_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_partial_schema_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute("CREATE TABLE memories (id TEXT)")
    with pytest.raises(StorageError, match="partial"):
        SQLiteStorage(db_path)
    with sqlite3.connect(db_path) as raw:  # and left as it was
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'records'").fetchone() is None


def test_newer_schema_is_refused(db_path: Path) -> None:
    SQLiteStorage(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("INSERT INTO alma_migrations VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StorageError, match="newer"):
        SQLiteStorage(db_path)


def test_a_version_2_store_keeps_its_records_and_sequences_after_migrating(db_path: Path) -> None:
    from alma_core.storage._sqlite_schema import _split_sql

    with sqlite3.connect(db_path, isolation_level=None) as raw:  # a store written before migration 3
        raw.execute("CREATE TABLE alma_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        for version, sql in enumerate(MIGRATIONS[:2], start=1):
            for statement in _split_sql(sql):
                raw.execute(statement)
            raw.execute("INSERT INTO alma_migrations VALUES (?, 0)", (version,))
        raw.execute("INSERT INTO records VALUES ('proj', 'ns', 'old', 7, x'00ff', '{\"a\": 1}', 1.0, 2.0, NULL)")
        raw.execute("INSERT INTO record_seq VALUES ('proj', 'ns', 9)")  # seqs 8 and 9 were deleted
    store = SQLiteStorage(db_path)
    try:
        old = store.execute(GetRecord(P, "ns", "old"))
        assert (old.value, old.metadata, old.seq, old.created_at) == (b"\x00\xff", {"a": 1}, 7, 1.0)
        assert store.execute(PutRecord(Record(P, "ns", "new", b"v"))).seq == 10
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_a_deleted_newest_record_never_gives_its_seq_again(store: SQLiteStorage) -> None:
    from alma_core.storage import DeleteRecords

    first = store.execute(PutRecord(Record(P, "ns", "a", b"v"))).seq
    newest = store.execute(PutRecord(Record(P, "ns", "b", b"v"))).seq
    store.execute(DeleteRecords(P, "ns", ("b",)))
    assert store.execute(PutRecord(Record(P, "ns", "c", b"v"))).seq == newest + 1 > first
    store.execute(DeleteRecords(P, "ns"))  # the whole namespace
    assert store.execute(PutRecord(Record(P, "ns", "d", b"v"))).seq == newest + 2


def test_a_lone_put_commits_at_once_or_joins_the_open_transaction(store: SQLiteStorage, db_path: Path) -> None:
    """`PutRecords` of one statement runs in autocommit: committed when `batch` returns (another connection
    sees it); inside a transaction it is part of it, and goes with its rollback."""
    from alma_core.storage import PutRecords

    store.batch([PutRecords((Record(P, "cp", "a", b"1"), Record(P, "cp", "b", b"2")), sequenced=False)])
    other = sqlite3.connect(db_path)
    assert other.execute("SELECT key FROM records WHERE namespace = 'cp' ORDER BY key").fetchall() == [("a",), ("b",)]
    assert not store._conn.in_transaction
    with pytest.raises(RuntimeError), store.transaction():
        store.batch([PutRecords((Record(P, "cp", "c", b"3"),), sequenced=False)])
        raise RuntimeError("abort")
    assert store.execute(GetRecord(P, "cp", "c")) is None
    with pytest.raises(StorageError, match="read transaction"), store.transaction(write=False):
        store.batch([PutRecords((Record(P, "cp", "d", b"4"),), sequenced=False)])
    other.close()


def test_a_lone_put_never_joins_a_transaction_left_open_on_a_passed_in_connection(db_path: Path) -> None:
    """On a connection the caller owns, SQL of theirs may hold a transaction open: a put then fails as
    BEGIN does, rather than joining it and returning before anything is committed."""
    from alma_core.storage import PutRecords

    conn = sqlite3.connect(db_path, check_same_thread=False)
    store = SQLiteStorage(conn)
    conn.execute("BEGIN")
    conn.execute("SELECT 1 FROM records").fetchall()
    with pytest.raises(StorageError, match="within a transaction"):
        store.batch([PutRecords((Record(P, "cp", "a", b"1"),), sequenced=False)])
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    assert store.execute(GetRecord(P, "cp", "a")) is None
    store.batch([PutRecords((Record(P, "cp", "a", b"1"),), sequenced=False)])
    assert not conn.in_transaction and store.execute(GetRecord(P, "cp", "a")).value == b"1"
    store.close()
    conn.close()


def test_opening_waits_for_another_connection_switching_the_journal(db_path: Path) -> None:
    """Two processes opening a new file race to switch it to WAL; SQLite then fails the loser at once
    ("database is locked", no busy wait). Opening must wait for the winner instead (it failed CI once)."""
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (i)")
    other.execute("BEGIN IMMEDIATE")  # what the winner holds while it switches the journal mode
    other.execute("INSERT INTO t VALUES (1)")
    probe = contextlib.closing(sqlite3.connect(db_path, timeout=5))
    with probe as conn, pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute("PRAGMA journal_mode=WAL")  # the race: SQLite refuses at once
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    store = SQLiteStorage(db_path)
    try:
        release.join()
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("SELECT i FROM t").fetchall() == [(1,)]
    finally:
        store.close()
        other.close()


def _fts_postings(path: Path) -> list[tuple]:
    """Every (term, rowid, offset) of the full-text index and each document's size, as stored."""
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab (main, memories_fts, instance)")
        terms = raw.execute("SELECT term, doc, offset FROM temp.v ORDER BY term, doc, offset").fetchall()
        return [*terms, *raw.execute("SELECT id, sz FROM memories_fts_docsize ORDER BY id")]


def _assert_fts_is_the_rows(store: SQLiteStorage, path: Path) -> None:
    """The full-text index holds exactly the memories' rows: FTS5's own check against the rows, and
    the same postings as an index rebuilt from them."""
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")
    written = _fts_postings(path)
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")
    assert written == _fts_postings(path) and written


def _batches() -> list[list[DomainKnowledge]]:
    """New rows, an id written twice in one batch, changed texts and agents of rows already stored."""
    first = _embedded(*(_fact(f"zebra crossing {i}", agent="a" if i % 2 else "b") for i in range(6)))
    twice = _fact("quokka first")
    again = twice.model_copy(update={"fact": "quokka second words"})
    moved = [first[0].model_copy(update={"fact": "giraffe neck"}), first[1].model_copy(update={"agent": "c"})]
    return [first, _embedded(twice, _fact("okapi"), again), _embedded(*moved, _fact("lemur"))]


def test_the_full_text_index_holds_exactly_the_rows_written(store: SQLiteStorage, db_path: Path) -> None:
    batches = _batches()
    for batch in batches:
        store.execute(PutMemories(batch))
    _assert_fts_is_the_rows(store, db_path)
    f = MemoryFilter(project_id=P)
    assert [h[0] for h in lexical(store, f, "quokka second", 5)] == [batches[1][0].id]  # its last text
    assert lexical(store, f, "first", 5) == [] and lexical(store, f, "crossing 0", 5)[0][0] != batches[0][0].id


def test_new_rows_are_indexed_when_rowids_are_no_longer_sequential(store: SQLiteStorage, db_path: Path) -> None:
    with store.transaction() as tx:  # the largest rowid taken: SQLite picks new ones at random below it
        tx.conn.execute(
            "INSERT INTO memories (rowid, project_id, id, agent, type, text, confidence, created_at, updated_at, data) "
            "VALUES (9223372036854775807, 'elsewhere', 'last', 'a', 'domain_knowledge', 'last row', 1, 0, 0, '{}')"
        )
        tx.conn.execute("INSERT INTO memories_fts (rowid, text) VALUES (9223372036854775807, 'last row')")
    for batch in _batches():
        store.execute(PutMemories(batch))
    _assert_fts_is_the_rows(store, db_path)
    assert len(lexical(store, MemoryFilter(project_id=P), "zebra", 10)) == 5  # (one of 6 became a giraffe)
