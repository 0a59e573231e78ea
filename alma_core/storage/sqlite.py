"""The embedded default store: one SQLite file (stdlib sqlite3), WAL, FTS5, numpy cosine search.

- Writes run in short `BEGIN IMMEDIATE` transactions behind a busy timeout, so several processes can
  learn into one file without "database is locked".
- Vectors are float32 blobs; dense search is exact cosine over in-memory matrices per
  (project, agent, type), kept in step with this process's commits and reloaded when a per-scope
  generation counter shows that another process wrote.
- Lexical search is FTS5 BM25 (porter stemming) over a bounded set of query terms (`_lexical`).
- Migrations are versioned and append-only (`_sqlite_schema`), run by an idempotent `setup()`.

This module holds the connection and its transactions; the operations live in `_sqlite_writes`
(memory writes), `_sqlite_search` (memory reads and search) and `_sqlite_records` (the record space).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import StorageError
from . import _vectors
from ._base import (
    WRITE_OPS,
    BaseStorage,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    ListLinked,
    ListNamespaces,
    ListRecords,
    Op,
    PutMemories,
    PutRecord,
    PutRecords,
    SearchMemories,
    SearchRecords,
    StoreVersion,
)
from ._lexical import DocCounts
from ._lexindex import LexicalIndex
from ._parsed import ParsedMemories
from ._sqlite_checkpoint import Checkpointer
from ._sqlite_records import RecordOps, RecordVectors
from ._sqlite_schema import MIGRATIONS as MIGRATIONS  # re-exported: the schema's version count
from ._sqlite_schema import UNSEQUENCED_ROWS, migrate
from ._sqlite_search import MemoryReads
from ._sqlite_tx import scope_of
from ._sqlite_writes import MemoryWrites
from ._vectors import VectorMatrix

__all__ = ["SQLiteStorage"]


class _Tx(MemoryWrites, MemoryReads, RecordOps):
    """One open transaction on the store's connection."""

    def execute(self, op: Op) -> Any:
        handler = _HANDLERS.get(type(op))
        if handler is None:
            raise StorageError(f"unsupported operation {type(op).__name__}")
        if isinstance(op, WRITE_OPS) and not self.write:
            raise StorageError(f"{type(op).__name__} needs a write transaction")
        return handler(self, op)


_HANDLERS: dict[type, Any] = {
    PutMemories: _Tx.put_memories,
    DeleteMemories: _Tx.delete_memories,
    FindMemories: _Tx.find_memories,
    CountMemories: _Tx.count_memories,
    SearchMemories: _Tx.search_memories,
    PutRecord: _Tx.put_record,
    PutRecords: _Tx.put_records,
    GetRecord: _Tx.get_record,
    ListRecords: _Tx.list_records,
    ListLinked: _Tx.list_linked,
    DeleteRecords: _Tx.delete_records,
    ListNamespaces: _Tx.list_namespaces,
    SearchRecords: _Tx.search_records,
    StoreVersion: _Tx.store_version,
}


def _one_statement(op: Op) -> bool:
    """A `ListLinked` whose `where` is checked in Python takes two statements (see `_sqlite_linked`)."""
    if type(op) is not ListLinked:
        return True
    return all(v is None or isinstance(v, (str, int, float, bool)) for v in (op.records.where or {}).values())


def _one_statement_write(op: Op) -> bool:
    """A `PutRecords` of unsequenced records (up to one statement's rows) or of one record: one statement
    (see `_sqlite_records.put_records`). Autocommit takes the write lock with the busy handler, as
    `BEGIN IMMEDIATE` does."""
    if type(op) is not PutRecords:
        return False
    return len(op.records) == 1 or (not op.sequenced and 0 < len(op.records) <= UNSEQUENCED_ROWS)


_ONE_STATEMENT_READS = frozenset(
    {GetRecord, ListRecords, ListLinked, ListNamespaces, CountMemories, FindMemories, StoreVersion}
)


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, waiting out another process that is switching it at the same moment.

    SQLite answers "database is locked" at once, without its busy handler, when two connections that both
    read the file race to change its journal mode (each would wait on the other), so we retry until `timeout`.
    """
    deadline, pause = time.monotonic() + timeout, 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class SQLiteStorage(BaseStorage):
    """ALMA's embedded store in one SQLite file (or ":memory:"). Thread-safe; safe across processes."""

    name = "sqlite"
    capabilities = frozenset({"memories", "records", "dense", "lexical", "multiprocess", "linked"})

    def __init__(
        self, path: str | os.PathLike[str] | sqlite3.Connection = ".alma/alma.db", *, timeout: float = 60.0
    ) -> None:
        if isinstance(path, sqlite3.Connection):  # an open connection (LangGraph's `SqliteSaver(conn)` idiom)
            self._conn, self._owns_conn = path, False
            self._conn.isolation_level = None  # transactions are ours: explicit BEGIN / COMMIT
            self.path = path.execute("PRAGMA database_list").fetchone()[2] or ":memory:"
        else:
            self.path, self._owns_conn = str(path), True
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            if not isinstance(path, sqlite3.Connection):
                self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                _enable_wal(self._conn, timeout)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Reads of a retrieve touch rows all over the file (FTS joins, candidate loads): a 64 MB page
            # cache (a ceiling, allocated as used) and in-memory temp b-trees. No memory-mapped reads: mapped
            # pages count in the process's RSS (256 MB of it at 100k memories) and retrieve was no faster.
            self._conn.execute("PRAGMA cache_size=-65536")
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self._active: _Tx | None = None
        self._matrices: dict[str, VectorMatrix] = {}
        self._record_vectors: dict[tuple[str, str, str], RecordVectors] = {}  # SearchRecords' vectors
        self._doc_counts = DocCounts()  # FTS document counts, valid until the file changes
        self._lexical = LexicalIndex()  # the FTS index in memory, for BM25 (`_bm25`)
        self._parsed = ParsedMemories()  # memories parsed from unchanged rows
        # each project's generations as last read, by the read snapshot they were read at (`TxState.snapshot`)
        self._generations: dict[str, tuple[tuple[int, int], dict[str, int]]] = {}
        self._written: dict[Any, tuple[tuple[int, int], Any]] = {}  # `MemoryReads._written`'s, the same way
        self._closed = False
        self._checkpointer: Checkpointer | None = None
        self.setup()
        # WAL checkpoints on a thread of their own (`_sqlite_checkpoint`): no commit waits for their fsyncs
        if self._owns_conn and self.path != ":memory:":
            self._checkpointer = Checkpointer.open(self._conn, self.path, timeout)
            if self._checkpointer is not None:  # (a store dropped unclosed stops its thread)
                weakref.finalize(self, self._checkpointer.close)

    def setup(self) -> None:
        """Create or upgrade the schema. Idempotent, and safe when several processes start at once."""
        with self._lock:
            migrate(self._conn, self.path)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Tx]:
        """A transaction: `BEGIN IMMEDIATE` for writes (serialised across processes), deferred for reads.

        Re-entrant on the same thread: an inner transaction joins the outer one.
        """
        with self._lock:
            joined = self._joined(write)
            if joined is not None:
                yield joined
                return
            tx = self._active = _Tx(self, write)
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield tx
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._active = None
            self._committed(tx)

    def batch(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction. Alone, a read that is one SQL statement runs without BEGIN and
        COMMIT (one statement already reads one consistent snapshot), and so does a write that is one
        statement (`_one_statement_write`: SQLite commits it, atomically, before it returns)."""
        if len(ops) == 1:
            op = ops[0]
            if type(op) in _ONE_STATEMENT_READS and _one_statement(op):
                return [self._lone(op, write=False)]
            if _one_statement_write(op) and not self._conn.in_transaction:  # (open: BEGIN refuses, as before)
                return [self._lone(op, write=True)]
        return super().batch(ops)

    def _lone(self, op: Op, write: bool) -> Any:
        """One op of one statement in autocommit (joining the open transaction on this thread, if any)."""
        with self._lock:
            joined = self._joined(write)
            if joined is not None:
                return joined.execute(op)
            tx = self._active = _Tx(self, write)
            try:
                found = tx.execute(op)
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
            finally:
                self._active = None
            self._committed(tx)
            return found

    def _joined(self, write: bool) -> _Tx | None:
        """This thread's open transaction, which a nested one joins (None: none is open). Under the lock."""
        if self._closed:
            raise StorageError("the store is closed")
        if self._active is not None and write and not self._active.write:
            raise StorageError("cannot write inside a read transaction")
        return self._active

    def _committed(self, tx: _Tx) -> None:
        """After `tx` committed (by COMMIT, or alone in autocommit): the caches follow it."""
        if tx.write:
            self._doc_counts.writes += 1
            if self._checkpointer is not None:
                self._checkpointer.committed()
        self._apply_vector_changes(tx)
        self._after_commit(tx)

    def _after_commit(self, tx: _Tx) -> None:
        """Bring the lexical index along with this connection's commit (it drops itself if another
        connection committed since it was built: `data_version` moved)."""
        if tx.lexical is None:
            return
        try:
            (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:  # (the commit stands; the index is read again when next needed)
            self._lexical.clear()
            return
        writes = self._doc_counts.writes
        self._lexical.apply(tx.lexical, (version, writes - 1), (version, writes))

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _apply_vector_changes(self, tx: _Tx) -> None:
        """After a commit, update cached matrices that were current before it; drop the others."""
        for scope, (before, after) in tx.bumped.items():
            matrix = self._matrices.get(scope)
            if matrix is None:
                continue
            if matrix.generation != before:
                del self._matrices[scope]
                continue
            for change in tx.vector_changes.get(scope, []):
                if isinstance(change, str):
                    matrix.remove(change)
                elif len(change.vector) != matrix.dim:  # (a vector of another size: not in this matrix, as
                    matrix.remove(change.id)  # on a reload; a query of its size loads the scope's matrix of it)
                else:
                    matrix.upsert(change)
            matrix.generation = after

    def _matrix(
        self, conn: sqlite3.Connection, project_id: str, agent: str, mtype: str, generation: int, dim: int
    ) -> VectorMatrix | None:
        """The scope's matrix of its `dim`-sized vectors (a query is compared with vectors of its own size
        only, as on PostgreSQL: a store being re-embedded holds two sizes), reloaded when its `generation`
        has moved or another size is asked for."""
        scope = scope_of(project_id, agent, mtype)
        matrix = self._matrices.get(scope)
        if matrix is not None and matrix.generation == generation and matrix.dim == dim:
            return matrix
        self._matrices.pop(scope, None)  # (the old matrix is garbage before the new one is read)
        where = "WHERE project_id = ? AND agent = ? AND type = ?"
        (capacity,) = conn.execute(f"SELECT COUNT(*) FROM memories {where}", (project_id, agent, mtype)).fetchone()
        rows = conn.execute(
            f"SELECT id, embedding, user_id, workflow_id, category FROM memories {where} AND length(embedding) = ?",
            (project_id, agent, mtype, dim * 4),
        )
        matrix = VectorMatrix.from_rows(rows, capacity, generation, _vectors.QUANT_MIN_ROWS)
        if matrix is not None:
            self._matrices[scope] = matrix
        return matrix

    def generation(self, project_id: str) -> int:
        with self._lock:
            sql = "SELECT value FROM generations WHERE scope = ?"
            row = self._conn.execute(sql, (scope_of(project_id),)).fetchone()
        return row[0] if row else 0

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:
        """Block until the WAL checkpoints this store's commits asked for so far have run on its thread
        (`_sqlite_checkpoint`; at once when there is none); False on timeout. Benchmarks call it so that
        a timed block of writes includes the checkpoints it caused and none runs into the next block."""
        checkpointer = self._checkpointer
        return True if checkpointer is None else checkpointer.drain(timeout)

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._checkpointer is not None:
                    self._checkpointer.close()
                if self._owns_conn:  # a connection the caller passed in stays theirs to close
                    self._conn.close()
