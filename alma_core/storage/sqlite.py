"""The embedded default store: one SQLite file (stdlib sqlite3), WAL, FTS5, numpy cosine search.

- Writes run in short `BEGIN IMMEDIATE` transactions behind a busy timeout, so several processes can
  learn into one file without "database is locked".
- Vectors are float32 blobs; dense search is exact cosine over in-memory matrices per
  (project, agent, type), kept in step with this process's commits and reloaded when a per-scope
  generation counter shows that another process wrote.
- Lexical search is FTS5 BM25 (porter stemming) over a bounded set of query terms (`_lexical`).
- Migrations are versioned and append-only (`_sqlite_schema`), run by an idempotent `setup()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import StorageError
from .._models import Memory, MemoryType
from . import _vectors
from ._base import (
    WRITE_OPS,
    BaseStorage,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    ListNamespaces,
    ListRecords,
    ListWithChildren,
    MemoryFilter,
    Op,
    PutMemories,
    PutRecord,
    PutRecords,
    Record,
    SearchHits,
    SearchMemories,
    SearchRecords,
    StoreVersion,
    user_filter,
)
from ._bm25 import lexical_hits
from ._filters import dense_mask, matches_nothing, memory_where
from ._lexical import DocCounts
from ._lexindex import COLUMNS, NUMBERS, Change, LexicalIndex
from ._parsed import ParsedMemories
from ._sqlite_records import RecordVectors, distinct_namespaces, list_sql, list_with_children, ns_where, search_records
from ._sqlite_schema import (
    INSERT_UNSEQUENCED,
    INSERT_UNSEQUENCED_IF_ABSENT,
    UPSERT_MEMORY,
    UPSERT_MEMORY_SAME_KEYS,
    UPSERT_RECORD,
    UPSERT_RECORD_IF_ABSENT,
    migrate,
)
from ._sqlite_schema import MIGRATIONS as MIGRATIONS  # re-exported: the schema's version count
from ._vectors import VectorMatrix, VectorRow

__all__ = ["SQLiteStorage"]

_MAX_CHAR = "\U0010ffff"

_ORDER = {"created_at": "created_at", "updated_at": "updated_at", "confidence": "confidence"}


def _scope(project_id: str, agent: str | None = None, mtype: str | None = None) -> str:
    return project_id if agent is None else f"{project_id}\x1f{agent}\x1f{mtype}"


class _Tx:
    """One open transaction on the store's connection."""

    def __init__(self, store: SQLiteStorage, write: bool) -> None:
        self.store, self.conn, self.write = store, store._conn, write
        self.bumped: dict[str, tuple[int, int]] = {}  # scope -> (generation before, after)
        self.vector_changes: dict[str, list[VectorRow | str]] = {}  # scope -> upserts / deleted ids
        self.project_generations: dict[str, dict[str, int]] = {}  # read transactions: project -> scopes
        # the memory rows this transaction replaces, writes and deletes, for the lexical index (when built)
        self.lexical: list[Change] | None = [] if write and store._lexical.built else None

    def execute(self, op: Op) -> Any:
        handler = _HANDLERS.get(type(op))
        if handler is None:
            raise StorageError(f"unsupported operation {type(op).__name__}")
        if isinstance(op, WRITE_OPS) and not self.write:
            raise StorageError(f"{type(op).__name__} needs a write transaction")
        return handler(self, op)

    # -- generations ----------------------------------------------------------------------------

    def bump(self, scope: str) -> None:
        """Move the scope's generation, once per transaction."""
        self.bump_all([scope])

    def bump_all(self, scopes: Iterable[str]) -> None:
        """Move the generation of each scope not yet moved by this transaction (one statement)."""
        todo = [scope for scope in dict.fromkeys(scopes) if scope not in self.bumped]
        for start in range(0, len(todo), 500):  # under SQLite's bound-parameter limit
            chunk = todo[start : start + 500]
            rows = self.conn.execute(
                f"INSERT INTO generations (scope, value) VALUES {','.join(['(?, 1)'] * len(chunk))} "
                "ON CONFLICT (scope) DO UPDATE SET value = value + 1 RETURNING scope, value",
                chunk,
            ).fetchall()
            for scope, value in rows:
                self.bumped[scope] = (value - 1, value)

    def generations(self, project_id: str, scopes: list[str]) -> dict[str, int]:
        """The generations of `scopes` (absent: never written). A read transaction reads every scope of
        the project once: its snapshot cannot change, and a retrieve searches several types."""
        if self.write:
            if not scopes:
                return {}
            sql = f"SELECT scope, value FROM generations WHERE scope IN ({','.join('?' * len(scopes))})"
            return dict(self.conn.execute(sql, scopes).fetchall())
        known = self.project_generations.get(project_id)
        if known is None:  # the project's own scope and each of its (agent, type) scopes
            known = self.project_generations[project_id] = dict(
                self.conn.execute(
                    "SELECT scope, value FROM generations WHERE scope >= ? AND scope < ?",
                    (project_id, project_id + "\x1f" + _MAX_CHAR),
                ).fetchall()
            )
        return {scope: known[scope] for scope in scopes if scope in known}

    # -- memories -------------------------------------------------------------------------------

    def put_memories(self, op: PutMemories) -> int:
        """Upsert the memories. A row whose indexed columns (agent, type, category, user, workflow,
        creation time) are unchanged is updated without touching its index entries (a heuristic's
        counts change at each outcome: 1 page written instead of 4); if any row's did change, one more
        statement rewrites every column."""
        rows = []
        scopes: list[str] = []
        for m in op.memories:
            vec = None if (embedding := m.embedding) is None else np.asarray(embedding, dtype=np.float32)
            blob = None if vec is None else vec.tobytes()
            rows.append(
                (
                    m.project_id, m.id, m.agent, m.memory_type.value, m.category, m.user_id_value,
                    m.workflow_id, m.text, m.confidence, m.created_at.timestamp(),
                    m.updated_at.timestamp(), m.model_dump_json(), blob,
                )
            )  # fmt: skip
            scope = _scope(m.project_id, m.agent, m.memory_type.value)
            scopes.extend((scope, _scope(m.project_id)))
            if vec is not None:
                self.vector_changes.setdefault(scope, []).append(
                    VectorRow(m.id, vec, m.user_id_value, m.workflow_id, m.category)
                )
        self.bump_all(scopes)
        if self.lexical is not None:
            self._record_rows(op.memories, "del")
        if self.conn.executemany(UPSERT_MEMORY_SAME_KEYS, rows).rowcount != len(rows):
            self.conn.executemany(UPSERT_MEMORY, rows)
        if self.lexical is not None:
            self._record_rows(op.memories, "put")
        return len(rows)

    def _record_rows(self, memories: Sequence[Memory], kind: str) -> None:
        """Record the stored rows of `memories` for the lexical index: before a write the rows it
        replaces ("del": rowid, text), after it the rows written ("put": rowid, text, columns)."""
        assert self.lexical is not None
        names = "rowid, text, " + ", ".join((*COLUMNS, *NUMBERS))
        by_project: dict[str, list[str]] = {}
        for m in memories:
            by_project.setdefault(m.project_id, []).append(m.id)
        for project_id, ids in by_project.items():
            ids = list(dict.fromkeys(ids))
            for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                found = self.conn.execute(
                    f"SELECT {names} FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})",
                    [project_id, *chunk],
                )
                self.lexical.extend((kind, r[0], r[1], None if kind == "del" else r[2:]) for r in found)

    def delete_memories(self, op: DeleteMemories) -> int:
        where, args = memory_where(op.filter)
        gone = self.conn.execute(
            f"DELETE FROM memories WHERE {where} RETURNING id, agent, type, rowid, text", args
        ).fetchall()
        scopes = []
        for memory_id, agent, mtype, rowid, text in gone:
            if self.lexical is not None:
                self.lexical.append(("del", rowid, text, None))
            scope = _scope(op.filter.project_id, agent, mtype)
            scopes.append(scope)
            self.vector_changes.setdefault(scope, []).append(memory_id)
        if gone:
            self.bump_all([*scopes, _scope(op.filter.project_id)])
        return len(gone)

    def find_memories(self, op: FindMemories, shared: bool = False, generation: int | None = None) -> list[Memory]:
        """`shared`: memories the caller only reads may be the store's kept ones (`ParsedMemories`);
        `generation`: the project's, in a read transaction (kept with what is parsed)."""
        where, args = memory_where(op.filter)
        vectors = "embedding" if op.with_embeddings else "NULL"
        sql = f"SELECT type, data, {vectors}, id FROM memories WHERE {where} ORDER BY {_ORDER[op.order_by]}"
        sql += " DESC, rowid DESC" if op.descending else " ASC, rowid ASC"
        if op.limit is not None:
            sql += " LIMIT ?"
            args.append(op.limit)
        out: list[Memory] = []
        parsed = self.store._parsed
        for mtype, data, blob, memory_id in self.conn.execute(sql, args):
            try:
                memory = parsed.parse(op.filter.project_id, memory_id, mtype, data, shared, generation)
            except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
                self.store.bad_rows.report(op.filter.project_id, memory_id, data, exc)
                continue
            if op.with_embeddings and blob is not None:
                memory.embedding = np.frombuffer(blob, dtype=np.float32)
            out.append(memory)
        return out

    def count_memories(self, op: CountMemories) -> dict[tuple[str, MemoryType], int]:
        where, args = memory_where(op.filter)
        rows = self.conn.execute(f"SELECT agent, type, COUNT(*) FROM memories WHERE {where} GROUP BY agent, type", args)
        return {(agent, MemoryType(mtype)): n for agent, mtype, n in rows}

    def search_memories(self, op: SearchMemories) -> SearchHits:
        """Every type's dense and lexical top-k: BM25 from cached postings for all types (`_bm25`),
        cosine over the in-memory matrices, then one statement loads the candidates."""
        f = op.filter
        types = list(MemoryType) if f.types is None else list(dict.fromkeys(f.types))
        out = SearchHits()
        if op.k <= 0 or not types or matches_nothing(f):
            return out
        pushed = f if op.user_types is None else replace(f, user_id=None)  # the user, per type, below
        if op.terms:
            users = {t: user_filter(f, t, op.user_types) if pushed.user_id is None else None for t in types}
            cache = None if self.write else self.store._doc_counts
            index = self.store._lexical
            out.lexical = lexical_hits(self.conn, cache, pushed, op.terms, types, users, op.k, index)
        if op.vector is not None:
            query = np.asarray(op.vector, dtype=np.float32)
            allowed = self._allowed(pushed)
            for t in types:
                scoped = replace(pushed, types=(t,), user_id=user_filter(f, t, op.user_types))
                out.dense[t] = self._dense(scoped, query, op.k, allowed)
        ids = tuple({i: None for hits in (*out.dense.values(), *out.lexical.values()) for i, _ in hits})
        if ids:
            out.memories = self._candidates(f.project_id, ids, op.shared and not op.with_embeddings, op.with_embeddings)
        return out

    def _candidates(self, project_id: str, ids: tuple[str, ...], shared: bool, vectors: bool) -> dict[str, Memory]:
        """The memories of `ids` by id; shared ones parsed at the project's current generation are not
        read again (`ParsedMemories.current`)."""
        generation = None
        if shared and not self.write:
            generation = self.generations(project_id, [project_id]).get(project_id)
        kept = {} if generation is None else self.store._parsed.current(project_id, ids, generation)
        missing = tuple(i for i in ids if i not in kept) if kept else ids
        if missing:
            find = FindMemories(MemoryFilter(project_id=project_id, ids=missing), with_embeddings=vectors)
            kept.update((m.id, m) for m in self.find_memories(find, shared, generation))
        return kept

    def _allowed(self, f: MemoryFilter) -> set[str] | None:
        """The ids a dense search may return when the filter has conditions the matrices don't hold."""
        needs_sql = (
            f.ids is not None
            or f.created_before
            or f.updated_before
            or f.created_after
            or f.confidence_below is not None
        )
        if not needs_sql:
            return None
        where, args = memory_where(f)
        return {r[0] for r in self.conn.execute(f"SELECT id FROM memories WHERE {where}", args)}

    def _dense(self, f: MemoryFilter, query: np.ndarray, k: int, allowed: set[str] | None) -> list[tuple[str, float]]:
        """Cosine top-k over the matrices of the filter's (agent, type) scopes."""
        types = [str(t) for t in (f.types or list(MemoryType))]
        agents = f.agents
        if agents is None:
            agents = tuple(
                r[0] for r in self.conn.execute("SELECT DISTINCT agent FROM memories WHERE project_id = ?",
                                                (f.project_id,))
            )  # fmt: skip
        hits: list[tuple[str, float]] = []
        pairs = [(agent, mtype) for agent in agents for mtype in types]
        scopes = [_scope(f.project_id, agent, mtype) for agent, mtype in pairs]
        generations = self.generations(f.project_id, scopes)
        for (agent, mtype), scope in zip(pairs, scopes, strict=True):
            if scope not in generations:  # never written: nothing to search
                continue
            matrix = self.store._matrix(self.conn, f.project_id, agent, mtype, generations[scope])
            if matrix is not None and matrix.size > 0:
                hits.extend(
                    matrix.search(query, k, dense_mask(matrix, f, allowed), partial(self._stored_vectors, f.project_id))
                )
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def _stored_vectors(self, project_id: str, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors of `ids`: a matrix of int8 codes rescores its candidates with them."""
        sql = f"SELECT id, embedding FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(ids))})"
        return dict(self.conn.execute(sql, [project_id, *ids]).fetchall())

    # -- records --------------------------------------------------------------------------------

    def put_record(self, op: PutRecord) -> Record:
        r, now = op.record, time.time()
        if op.if_absent and (kept := self.get_record(GetRecord(r.project_id, r.namespace, r.key))) is not None:
            return kept  # write-once: the write transaction is serialized, so read-then-insert is atomic
        # one statement: seq = 1 + the namespace's highest seq, live or deleted (see `delete_records`)
        created = r.created_at or now
        seq, created = self.conn.execute(
            """INSERT INTO records (project_id, namespace, key, seq, value, metadata, created_at,
                   updated_at, expires_at)
               SELECT ?1, ?2, ?3, 1 + MAX(
                   COALESCE((SELECT MAX(seq) FROM records WHERE project_id = ?1 AND namespace = ?2), 0),
                   COALESCE((SELECT seq FROM record_seq WHERE project_id = ?1 AND namespace = ?2), 0)),
                   ?4, ?5, ?6, ?7, ?8 WHERE true
               ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq=excluded.seq,
                   value=excluded.value, metadata=excluded.metadata, updated_at=excluded.updated_at,
                   expires_at=excluded.expires_at
               RETURNING seq, created_at""",
            (r.project_id, r.namespace, r.key, r.value, json.dumps(r.metadata, default=str),
             created, r.updated_at or now, r.expires_at),
        ).fetchone()  # fmt: skip
        return Record(r.project_id, r.namespace, r.key, r.value, r.metadata, seq, created, r.updated_at or now,
                      r.expires_at)  # fmt: skip

    def put_records(self, op: PutRecords) -> None:
        """One `executemany` of one cached statement; nothing read back (see `PutRecords`)."""
        now = time.time()
        rows = [(r.project_id, r.namespace, r.key, r.value, _json(r.metadata), r.created_at or now,
                 r.updated_at or now, r.expires_at, now) for r in op.records]  # fmt: skip
        if op.sequenced:
            self.conn.executemany(UPSERT_RECORD_IF_ABSENT if op.if_absent else UPSERT_RECORD, rows)
        else:
            self.conn.executemany(INSERT_UNSEQUENCED_IF_ABSENT if op.if_absent else INSERT_UNSEQUENCED, rows)

    def get_record(self, op: GetRecord) -> Record | None:
        row = self.conn.execute(
            "SELECT project_id, namespace, key, value, metadata, seq, created_at, updated_at, expires_at "
            "FROM records WHERE project_id = ? AND namespace = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (op.project_id, op.namespace, op.key, time.time()),
        ).fetchone()
        return _record(row) if row else None

    def list_records(self, op: ListRecords) -> list[Record]:
        listing = list_sql(op)
        if listing is None:
            return []
        sql, args, post_filter = listing
        records = [_record(row) for row in self.conn.execute(sql, args)]
        if post_filter:
            records = [r for r in records if all(r.metadata.get(k) == v for k, v in post_filter.items())]
            end = None if op.limit is None else op.offset + op.limit
            records = records[op.offset : end]
        return records

    def list_with_children(self, op: ListWithChildren) -> list[tuple[Record, list[Record]]]:
        return list_with_children(self.conn, op, self.list_records)

    def delete_records(self, op: DeleteRecords) -> int:
        clauses, args = ns_where(op.project_id, op.namespace, op.prefix)
        if op.keys is not None:
            if not op.keys:
                return 0
            clauses.append(f"key IN ({','.join('?' * len(op.keys))})")
            args.extend(op.keys)
        where = " AND ".join(clauses)
        # keep each namespace's highest seq, so a later put never reuses the seq of a deleted record
        self.conn.execute(
            f"""INSERT INTO record_seq (project_id, namespace, seq)
                SELECT project_id, namespace, MAX(seq) FROM records WHERE {where} GROUP BY project_id, namespace
                ON CONFLICT (project_id, namespace) DO UPDATE SET seq = MAX(seq, excluded.seq)""",
            args,
        )
        cur = self.conn.execute(f"DELETE FROM records WHERE {where}", args)
        return cur.rowcount

    def search_records(self, op: SearchRecords) -> list[tuple[Record, float | None]]:
        writes = None if self.write else self.store._doc_counts.writes
        return search_records(self.conn, self.store._record_vectors, op, writes)

    def store_version(self, op: StoreVersion) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(data_version, this store's committed write transactions): the first moves when another
        connection commits, the second when this one does (at this transaction's commit: + 1). None on
        a connection passed in: SQL run on it outside the store's transactions would not be seen."""
        if not self.store._owns_conn:
            return None
        (changes,) = self.conn.execute("PRAGMA data_version").fetchone()
        writes = self.store._doc_counts.writes
        return (changes, writes), (changes, writes + 1 if self.write else writes)

    def list_namespaces(self, op: ListNamespaces) -> list[str]:
        return distinct_namespaces(self.conn, op.project_id, op.prefix, op.limit, op.offset)


_json = json.JSONEncoder(separators=(",", ":"), default=str).encode  # one encoder, not one per record


def _record(row: tuple[Any, ...]) -> Record:
    project_id, namespace, key, value, metadata, seq, created, updated, expires = row
    return Record(project_id, namespace, key, value, json.loads(metadata), seq, created, updated, expires)


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
    ListWithChildren: _Tx.list_with_children,
    DeleteRecords: _Tx.delete_records,
    ListNamespaces: _Tx.list_namespaces,
    SearchRecords: _Tx.search_records,
    StoreVersion: _Tx.store_version,
}


_ONE_STATEMENT_READS = frozenset(
    {GetRecord, ListRecords, ListWithChildren, ListNamespaces, CountMemories, FindMemories, StoreVersion}
)


def _one_statement(op: Op) -> bool:
    """A `ListWithChildren` whose `where` is checked in Python takes two statements (see its handler)."""
    if type(op) is not ListWithChildren:
        return True
    where = op.records.where or {}
    return all(v is None or isinstance(v, (str, int, float, bool)) for v in where.values())


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
    capabilities = frozenset({"memories", "records", "dense", "lexical", "multiprocess"})

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
        self._closed = False
        self.setup()

    def setup(self) -> None:
        """Create or upgrade the schema. Idempotent, and safe when several processes start at once."""
        with self._lock:
            migrate(self._conn, self.path)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Tx]:
        """A transaction: `BEGIN IMMEDIATE` for writes (serialised across processes), deferred for reads.

        Re-entrant on the same thread: an inner transaction joins the outer one.
        """
        if self._closed:
            raise StorageError("the store is closed")
        with self._lock:
            if self._active is not None:
                if write and not self._active.write:
                    raise StorageError("cannot write inside a read transaction")
                yield self._active
                return
            tx = _Tx(self, write)
            self._active = tx
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield tx
                self._conn.execute("COMMIT")
                if write:
                    self._doc_counts.writes += 1
            except sqlite3.Error as exc:
                self._rollback()
                raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._active = None
            self._apply_vector_changes(tx)
            self._after_commit(tx)

    def batch(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction; a lone read that is one SQL statement runs without BEGIN and
        COMMIT (one statement already reads one consistent snapshot)."""
        if len(ops) == 1 and type(ops[0]) in _ONE_STATEMENT_READS and _one_statement(ops[0]):
            if self._closed:
                raise StorageError("the store is closed")
            with self._lock:
                if self._active is None:
                    tx = _Tx(self, write=False)
                    self._active = tx
                    try:
                        return [tx.execute(ops[0])]
                    except sqlite3.Error as exc:
                        raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
                    finally:
                        self._active = None
        return super().batch(ops)

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
                else:
                    matrix.upsert(change)
            matrix.generation = after

    def _matrix(
        self, conn: sqlite3.Connection, project_id: str, agent: str, mtype: str, generation: int
    ) -> VectorMatrix | None:
        """The scope's matrix, reloaded when its `generation` has moved."""
        scope = _scope(project_id, agent, mtype)
        matrix = self._matrices.get(scope)
        if matrix is not None and matrix.generation == generation:
            return matrix
        self._matrices.pop(scope, None)  # (the old matrix is garbage before the new one is read)
        where = "WHERE project_id = ? AND agent = ? AND type = ?"
        (capacity,) = conn.execute(f"SELECT COUNT(*) FROM memories {where}", (project_id, agent, mtype)).fetchone()
        rows = conn.execute(
            f"SELECT id, embedding, user_id, workflow_id, category FROM memories {where} AND embedding IS NOT NULL",
            (project_id, agent, mtype),
        )
        matrix = VectorMatrix.from_rows(rows, capacity, generation, _vectors.QUANT_MIN_ROWS)
        if matrix is not None:
            self._matrices[scope] = matrix
        return matrix

    def generation(self, project_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM generations WHERE scope = ?", (_scope(project_id),)).fetchone()
        return row[0] if row else 0

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._owns_conn:  # a connection the caller passed in stays theirs to close
                    self._conn.close()
