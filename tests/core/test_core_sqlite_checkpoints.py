"""SQLite's WAL checkpoints run on a thread of their own (`_sqlite_checkpoint`): no commit of the store's
connection checkpoints (SQLite's autocheckpoint waited for two fsyncs inside every ~58th learn), the
thread copies the WAL into the file at the pages SQLite's autocheckpoint would (so a power loss takes no
more), and the WAL still restarts from its beginning (it must not grow without end while a writer keeps
writing)."""

from __future__ import annotations

import gc
import os
import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from alma_core import DomainKnowledge
from alma_core.storage import PutMemories, PutRecords, Record, SQLiteStorage, _sqlite_checkpoint
from alma_core.storage._sqlite_checkpoint import AUTOCHECKPOINT, Checkpointer, wal_frames

WAIT = 60.0  # seconds: only a hang reaches it


def _put(store: SQLiteStorage, n: int, start: int = 0) -> None:
    memories = [DomainKnowledge(project_id="p", agent="a", domain="d", fact=f"fact {i} " + "x" * 300)
                for i in range(start, start + n)]  # fmt: skip
    store.execute(PutMemories(memories))


def _wal_restarts(db_path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite moves it each time the WAL starts again."""
    with open(f"{db_path}-wal", "rb") as wal:
        return int(struct.unpack(">I", wal.read(16)[12:16])[0])


def _checkpointer(store: SQLiteStorage) -> Checkpointer:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    return checkpointer


def test_commits_do_not_checkpoint_the_thread_does(db_path: Path) -> None:
    store = SQLiteStorage(db_path)
    try:
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpointer = _checkpointer(store)
        size = db_path.stat().st_size
        for i in range(400):  # until the commits have written enough pages to ask for a checkpoint
            _put(store, 20, start=20 * i)
            if checkpointer._asked:
                break
        assert checkpointer._asked == 1, f"no checkpoint asked for after {AUTOCHECKPOINT} WAL pages"
        assert checkpointer.wait(1, WAIT)
        # in WAL mode only a checkpoint writes the database file, and the store's connection never does
        assert db_path.stat().st_size > size
        with sqlite3.connect(db_path) as other:
            assert other.execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 20 * (i + 1)
    finally:
        store.close()


def _frames(db_path: Path) -> int:
    """The WAL's pages, as the checkpointer reads them (the wal-index header of the `-shm` file)."""
    shm = os.open(f"{db_path}-shm", os.O_RDONLY)
    try:
        frames = wal_frames(shm)
    finally:
        os.close(shm)
    assert frames is not None
    return frames


@pytest.mark.parametrize("value_bytes", [200, 20_000])
def test_a_checkpoint_is_asked_for_at_the_page_sqlites_autocheckpoint_takes_one(
    db_path: Path, value_bytes: int
) -> None:
    """Pages, not rows: a LangGraph checkpoint row of ~20 KB writes ~6 pages, a small record ~2, and the
    first checkpoint comes with the commit that takes the WAL to `AUTOCHECKPOINT` pages for both (counting
    rows instead asked for one after ~3,000 pages of large rows: a power loss could take three times more)."""
    store = SQLiteStorage(db_path)
    try:
        checkpointer = _checkpointer(store)
        value = os.urandom(value_bytes)  # (incompressible: its pages are its size)
        before = _frames(db_path)
        for i in range(5000):
            store.execute(PutRecords((Record("p", "ns", f"k{i:05d}", value),), sequenced=False))
            after = _frames(db_path)
            if checkpointer._asked:
                break
            before = after
        assert checkpointer._asked == 1
        assert before < AUTOCHECKPOINT <= after, (before, after)
        assert checkpointer.wait(1, WAIT)
    finally:
        store.close()


def test_where_the_wal_index_cannot_be_read_sqlites_autocheckpoint_stays(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_checkpoint, "wal_frames", lambda shm: None)
    store = SQLiteStorage(db_path)
    try:
        assert store._checkpointer is None
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT
        _put(store, 10)  # commits still work
    finally:
        store.close()


@pytest.mark.parametrize("tail_frames", [1, 10**9])
def test_the_commit_after_the_threads_checkpoint_copies_the_rest_and_the_wal_restarts(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, tail_frames: int
) -> None:
    """The thread's checkpoint cannot copy what was written while it ran (here: after a reader's snapshot,
    which it may not pass); the next commit copies it, and the write after that starts the WAL again.
    Without that step (`tail_frames` too large to take it) the WAL only grows."""
    monkeypatch.setattr(_sqlite_checkpoint, "TAIL_FRAMES", tail_frames)
    store = SQLiteStorage(db_path)
    try:
        checkpointer = _checkpointer(store)
        _put(store, 10)
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM memories").fetchone()  # a snapshot: the pages above it stay
        _put(store, 10, start=10)
        assert checkpointer.wait(checkpointer.request(), WAIT)
        assert checkpointer.tail is (tail_frames == 1)
        reader.execute("COMMIT")
        reader.close()
        _put(store, 10, start=20)  # copies the rest (when `tail` is set)
        restarts = _wal_restarts(db_path)
        _put(store, 10, start=30)
        assert _wal_restarts(db_path) == restarts + (tail_frames == 1)
    finally:
        store.close()
    with sqlite3.connect(db_path) as other:
        assert other.execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 40


def _checkpointed(db_path: Path) -> tuple[SQLiteStorage, Checkpointer, threading.Thread]:
    """A store whose thread has run one checkpoint, its checkpointer and that thread."""
    store = SQLiteStorage(db_path)
    checkpointer = _checkpointer(store)
    _put(store, 10)
    assert checkpointer.wait(checkpointer.request(), WAIT)
    thread = checkpointer._thread
    assert thread is not None
    return store, checkpointer, thread


def test_close_stops_the_thread_and_the_last_connection_removes_the_wal(db_path: Path) -> None:
    store, checkpointer, thread = _checkpointed(db_path)
    assert thread.is_alive()
    store.close()
    assert not thread.is_alive()
    assert not Path(f"{db_path}-wal").exists()
    assert checkpointer.request() == checkpointer._done  # closed: asks for nothing


def test_a_store_dropped_unclosed_stops_its_thread(db_path: Path) -> None:
    store, _, thread = _checkpointed(db_path)
    del store
    gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_without_a_thread_the_store_checkpoints_itself(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When no thread can start (e.g. at interpreter shutdown), the commits checkpoint as SQLite would."""

    def refuse(self: object) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(_sqlite_checkpoint.threading.Thread, "start", refuse)
    store = SQLiteStorage(db_path)
    try:
        checkpointer = _checkpointer(store)
        size = db_path.stat().st_size
        for i in range(400):
            _put(store, 20, start=20 * i)
            if checkpointer.inline:
                break
        assert checkpointer.inline and checkpointer._thread is None
        assert db_path.stat().st_size > size  # only a checkpoint writes the file
    finally:
        store.close()


def test_wait_for_checkpoints_returns_once_the_checkpoints_asked_for_have_run(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark's timed block of writes ends with `wait_for_checkpoints`, so the checkpoints it caused
    count in its time: the call returns only after the thread's checkpoint ran (held here until released)."""
    gate = threading.Event()
    real = _sqlite_checkpoint._checkpoint

    def held(conn: sqlite3.Connection) -> int:
        if conn is not store._conn:  # the thread's connection waits; the store's own tail copy does not
            gate.wait(WAIT)
        return real(conn)

    monkeypatch.setattr(_sqlite_checkpoint, "_checkpoint", held)
    store = SQLiteStorage(db_path)
    try:
        assert store.wait_for_checkpoints(0)  # nothing asked for yet
        checkpointer = _checkpointer(store)
        _put(store, 10)
        asked = checkpointer.request()
        size = db_path.stat().st_size
        assert not store.wait_for_checkpoints(0.2)  # (the thread cannot finish before the gate opens)
        assert checkpointer._done < asked and db_path.stat().st_size == size
        gate.set()
        assert store.wait_for_checkpoints(WAIT)
        assert checkpointer._done >= asked
        assert db_path.stat().st_size > size  # the checkpoint copied the WAL into the file
    finally:
        gate.set()
        store.close()
    memory = SQLiteStorage(":memory:")
    assert memory.wait_for_checkpoints(0)  # no checkpoint thread: nothing to wait for
    memory.close()
