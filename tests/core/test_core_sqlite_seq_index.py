"""SQLite's `records_seq` index holds sequenced records only (migration 7): an unsequenced put (a LangGraph
checkpoint, a task's writes: seq 0) writes no entry there, and every reader that orders by seq still
returns what it returned before, sequenced records newest first, then the unsequenced ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alma_core.storage import DeleteRecords, ListRecords, PutRecords, Record, SQLiteStorage
from alma_core.storage._sqlite_schema import _split_sql
from alma_core.storage.sqlite import MIGRATIONS


def _seq_entries(path: Path) -> int:
    """Entries of the `records_seq` index: the cells of all its pages (`dbstat`; an index b-tree keeps
    entries in its interior pages too)."""
    with sqlite3.connect(path) as raw:
        try:
            (n,) = raw.execute("SELECT sum(ncell) FROM dbstat WHERE name = 'records_seq'").fetchone()
        except sqlite3.OperationalError:  # pragma: no cover - SQLite built without dbstat
            pytest.skip("this SQLite has no dbstat")
    return int(n or 0)


def _keys(records: list[Record]) -> list[tuple[str, int]]:
    return [(r.key, r.seq) for r in records]


def _schema_6(path: Path) -> None:
    """A store as schema 6 wrote it: every record in `records_seq`, five sequenced records and four
    unsequenced ones in one namespace, and 300 sequenced ones in another."""
    with sqlite3.connect(path, isolation_level=None) as raw:
        raw.execute("CREATE TABLE alma_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        for version, sql in enumerate(MIGRATIONS[:6], start=1):
            for statement in _split_sql(sql):
                raw.execute(statement)
            raw.execute("INSERT INTO alma_migrations VALUES (?, 0)", (version,))
        rows = [("mixed", f"s{i}", i + 1) for i in range(5)] + [("mixed", f"u{i}", 0) for i in range(4)]
        rows += [("big", f"k{i:03}", i + 1) for i in range(300)]
        raw.executemany(
            "INSERT INTO records (project_id, namespace, key, seq, value, metadata, created_at, updated_at) "
            "VALUES ('p', ?, ?, ?, x'01', '{}', 1, 1)",
            rows,
        )


def test_a_schema_6_store_migrates_and_lists_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_6(path)
    assert _seq_entries(path) == 309
    store = SQLiteStorage(path)
    try:
        assert _seq_entries(path) == 305  # the four unsequenced records left the index
        sequenced = [(f"s{i}", i + 1) for i in reversed(range(5))]
        listed = _keys(store.execute(ListRecords("p", "mixed")))
        assert listed[:5] == sequenced and sorted(listed[5:]) == [(f"u{i}", 0) for i in range(4)]
        assert _keys(store.execute(ListRecords("p", "mixed", limit=3))) == sequenced[:3]
        assert _keys(store.execute(ListRecords("p", "mixed", limit=4, offset=3))) == [*sequenced[3:], *listed[5:7]]
        assert _keys(store.execute(ListRecords("p", "mixed", limit=10, offset=6))) == listed[6:]
        assert _keys(store.execute(ListRecords("p", "mixed", limit=2, before_seq=3))) == [("s1", 2), ("s0", 1)]
        assert _keys(store.execute(ListRecords("p", "big", limit=2, offset=1))) == [("k298", 299), ("k297", 298)]
        store.execute(PutRecords((Record("p", "mixed", "s5", b"x"),)))  # the namespace's seq goes on
        assert _keys(store.execute(ListRecords("p", "mixed", limit=1))) == [("s5", 6)]
        store.execute(DeleteRecords("p", "mixed", keys=("s5",)))
        store.execute(PutRecords((Record("p", "mixed", "s6", b"x"),)))  # never the seq of a deleted record
        assert _keys(store.execute(ListRecords("p", "mixed", limit=1))) == [("s6", 7)]
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_unsequenced_records_write_no_seq_index_entry(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SQLiteStorage(path)
    try:
        store.execute(PutRecords(tuple(Record("p", "cp", f"c{i}", b"v" * 500) for i in range(40)), sequenced=False))
        store.execute(PutRecords(tuple(Record("p", "w", f"t/{i}", b"v") for i in range(2)), sequenced=False))
        assert _seq_entries(path) == 0
        store.execute(PutRecords(tuple(Record("p", "items", f"i{i}", b"v") for i in range(3))))
        assert _seq_entries(path) == 3
        store.execute(DeleteRecords("p", "cp"))  # nothing to remember of seq 0: no high-water row
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT namespace FROM record_seq").fetchall() == []
    finally:
        store.close()


def test_a_newest_page_reads_the_index_not_the_namespace(tmp_path: Path) -> None:
    """A page of 1 of a namespace of 3,000 sequenced records costs what a page of 1 of 30 does (SQLite
    VM steps, counted by a progress handler): the unsequenced part is not scanned when the page is full."""
    store = SQLiteStorage(tmp_path / "big.db")
    try:
        for namespace, n in (("small", 30), ("large", 3000)):
            store.execute(PutRecords(tuple(Record("p", namespace, f"k{i:05}", b"v" * 300) for i in range(n))))
        steps = {}
        for namespace in ("small", "large"):
            counted = [0]

            def count(counted: list[int] = counted) -> int:
                counted[0] += 1
                return 0

            store._conn.set_progress_handler(count, 1)
            try:
                [newest] = store.execute(ListRecords("p", namespace, limit=1))
            finally:
                store._conn.set_progress_handler(None, 1)
            assert newest.seq == (30 if namespace == "small" else 3000)
            steps[namespace] = counted[0]
        assert steps["large"] <= 2 * steps["small"] + 50, steps
    finally:
        store.close()
