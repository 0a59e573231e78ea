"""PostgreSQL schema and the storage operations as driver-independent steps.

Each operation handler is a generator that yields `Step`s (SQL, parameters, how to fetch) and receives
their results; `postgres.py` drives the same generators with a sync or an async psycopg connection, so
the SQL exists once for both.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from .._errors import StorageError
from .._models import Memory, MemoryType, memory_from_dict
from ._base import (
    BadRows,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    Linked,
    ListLinked,
    ListNamespaces,
    ListRecords,
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
    WriteIf,
    user_filter,
)
from ._lexical import choose_terms
from ._pg_counts import COUNTS_MIGRATION
from ._pg_pipeline import check_step
from ._record_search import search_in_python

Fetch = Literal["all", "one", "none", "many", "binary"]  # "binary": all rows, sent in binary (bytea unescaped)
Step = tuple[str, Any, Fetch]
Steps = Generator[Step, Any, Any]

_MAX_CHAR = "\U0010ffff"
MAX_INDEXED_DIM = 2000  # pgvector indexes `vector` columns up to 2000 dimensions; above, search is exact

MIGRATIONS: list[str] = [
    # 1: memories (vector + generated tsvector), records, per-namespace sequences, generations
    """
    CREATE TABLE alma_memories (
        project_id TEXT NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        rid BIGSERIAL,
        agent TEXT NOT NULL,
        type TEXT NOT NULL,
        category TEXT,
        user_id TEXT,
        workflow_id TEXT,
        text TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL,
        embedding vector,
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX alma_memories_scope ON alma_memories (project_id, agent, type, created_at);
    CREATE INDEX alma_memories_user ON alma_memories (project_id, user_id);
    CREATE INDEX alma_memories_workflow ON alma_memories (project_id, workflow_id);
    CREATE INDEX alma_memories_tsv ON alma_memories USING gin (tsv);
    CREATE TABLE alma_vector_indexes (dim INTEGER PRIMARY KEY, kind TEXT NOT NULL);
    CREATE TABLE alma_records (
        project_id TEXT NOT NULL,
        namespace TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        value BYTEA,
        metadata JSONB NOT NULL DEFAULT '{}',
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        PRIMARY KEY (project_id, namespace, key)
    );
    CREATE INDEX alma_records_seq ON alma_records (project_id, namespace, seq);
    CREATE TABLE alma_record_seq (
        project_id TEXT NOT NULL,
        namespace TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (project_id, namespace)
    );
    CREATE TABLE alma_generations (project_id TEXT PRIMARY KEY, value BIGINT NOT NULL);
    """,
    COUNTS_MIGRATION,  # 2: each scope's number of memories, kept by triggers (`_pg_counts`)
]

_ORDER = {"created_at": "created_at", "updated_at": "updated_at", "confidence": "confidence"}
_RECORD_COLUMNS = "project_id, namespace, key, {value}, metadata, seq, created_at, updated_at, expires_at"


# Lexical search bounds the rows it ranks (ts_rank_cd reads every match) with `_lexical.choose_terms`,
# like SQLite's. Counts come from the planner's statistics of the tsvector column (most common lexemes;
# those absent from it are rare), kept fresh by the ANALYZE that follows bulk loads.
EXACT_SEARCH_ROWS = 1_000  # dense search over at most this many filtered rows is exact (no index walk)
TermStats = tuple[list[str], list[float], float]  # common lexemes, their row counts, rows in the table
TERM_STATS_SQL = """
    SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, GREATEST(c.reltuples, 0)
    FROM pg_class c LEFT JOIN pg_stats s
        ON s.schemaname = current_schema() AND s.tablename = 'alma_memories' AND s.attname = 'tsv'
    WHERE c.oid = 'alma_memories'::regclass"""


def term_stats(row: Sequence[Any] | None) -> TermStats:
    """Row counts of the common lexemes, from TERM_STATS_SQL's row."""
    if not row or row[0] is None:
        return [], [], float(row[2]) if row else 0.0
    lexemes, freqs, total = row
    return list(lexemes), [float(f) * float(total) for f in freqs[: len(lexemes)]], float(total)


def memory_where(f: MemoryFilter) -> tuple[str, list[Any]]:
    """SQL conditions and parameters for a MemoryFilter."""
    clauses: list[str] = ["project_id = %s"]
    args: list[Any] = [f.project_id]
    for column, values in (("agent", f.agents), ("type", f.types), ("id", f.ids), ("category", f.categories)):
        if values is not None:
            clauses.append(f"{column} = ANY(%s)")
            args.append([str(v) for v in values])
    for column, op, value in f.scalar_conditions():
        clauses.append(f"{column} {op} %s")
        args.append(value)
    return " AND ".join(clauses), args


def vector_index_sql(dim: int, kind: str) -> str:
    """A partial index on the vectors of one dimension (a `vector` column holds any dimension)."""
    method = "hnsw" if kind == "hnsw" else "ivfflat"
    extra = " WITH (lists = 100)" if method == "ivfflat" else ""
    return (
        f"CREATE INDEX IF NOT EXISTS alma_memories_vec_{dim} ON alma_memories USING {method} "
        f"((embedding::vector({dim})) vector_cosine_ops){extra} WHERE vector_dims(embedding) = {dim}"
    )


def put_record_step(r: Record, if_absent: bool, shared_lock: int | None) -> Step:
    """The upsert of one record, its seq bumped in the same statement. `shared_lock`: take the store's
    write lock in shared mode first (blind writes outside a locked transaction, see `PostgresStorage`)."""
    now = time.time()
    lock = "FROM (SELECT pg_advisory_xact_lock_shared(%s::bigint)) AS l" if shared_lock is not None else ""
    keep = "WHERE alma_records.expires_at <= %s" if if_absent else ""
    args: list[Any] = [r.project_id, r.namespace]
    if shared_lock is not None:
        args.append(shared_lock)
    args += [r.project_id, r.namespace, r.key, r.value, json.dumps(r.metadata, default=str), r.created_at or now,
             r.updated_at or now, r.expires_at]  # fmt: skip
    if if_absent:
        args.append(now)
    return (
        f"""WITH s AS (
                INSERT INTO alma_record_seq (project_id, namespace, seq) SELECT %s, %s, 1 {lock}
                ON CONFLICT (project_id, namespace) DO UPDATE SET seq = alma_record_seq.seq + 1
                RETURNING seq)
            INSERT INTO alma_records (project_id, namespace, key, seq, value, metadata, created_at,
                updated_at, expires_at)
            SELECT %s, %s, %s, s.seq, %s, %s::jsonb, %s, %s, %s FROM s
            ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq = EXCLUDED.seq,
                value = EXCLUDED.value, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at,
                expires_at = EXCLUDED.expires_at {keep}
            RETURNING {_RECORD_COLUMNS.format(value="value")}""",
        args,
        "one",
    )


VALUES_ROWS = 16  # unsequenced rows written as parameters of a VALUES list (more: as binary arrays)
_UPSERT_UNSEQUENCED = """INSERT INTO alma_records (project_id, namespace, key, seq, value, metadata, created_at,
        updated_at, expires_at)
    SELECT r.project_id, r.namespace, r.key, 0, r.value, r.metadata, r.created_at, r.updated_at, r.expires_at
    FROM (VALUES {rows}) AS r(project_id, namespace, key, value, metadata, created_at, updated_at, expires_at){lock}
    ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq = EXCLUDED.seq, value = EXCLUDED.value,
        metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at {keep}"""
_VALUES_ROW = "(%s::text, %s::text, %s::text, %b::bytea, %s::jsonb, %s::float8, %s::float8, %s::float8)"


def _unsequenced_values(rows: Sequence[Record], if_absent: bool, shared_lock: int | None, now: float) -> Step:
    """A few unsequenced records (a checkpoint, a task's writes) as one statement with one parameter per
    column: psycopg dumps scalars far faster than eight one-element arrays (~0.3 ms of client CPU a put),
    and the text is the same for every put of as many rows, so psycopg prepares it once."""
    args: list[Any] = []
    for r in rows:
        args += (r.project_id, r.namespace, r.key, r.value, _json(r.metadata), r.created_at or now,
                 r.updated_at or now, r.expires_at)  # fmt: skip
    if shared_lock is not None:
        args.append(shared_lock)
    if if_absent:
        args.append(now)
    return _unsequenced_sql(len(rows), shared_lock is not None, if_absent), args, "none"


@functools.lru_cache(maxsize=4 * VALUES_ROWS)
def _unsequenced_sql(rows: int, locked: bool, if_absent: bool) -> str:
    """The text of `_unsequenced_values` (one per shape: built once)."""
    lock = ", (SELECT pg_advisory_xact_lock_shared(%s::bigint)) AS l" if locked else ""
    keep = "WHERE alma_records.expires_at <= %s" if if_absent else ""
    return _UPSERT_UNSEQUENCED.format(rows=", ".join([_VALUES_ROW] * rows), lock=lock, keep=keep)


_json = json.JSONEncoder(separators=(",", ":"), default=str).encode  # one encoder, not one per record


def put_records_step(
    records: Sequence[Record], if_absent: bool, shared_lock: int | None, sequenced: bool = True
) -> Step:
    """`PutRecords` in one statement: each namespace's seq moves once by its count of records (its row
    locked in (project, namespace) order, so concurrent puts cannot deadlock), then one multi-row upsert.
    The columns go as binary arrays (`%b`): text arrays would be quoted and escaped value by value.
    Unsequenced records (`sequenced=False`) get seq 0, and no namespace's seq row is touched."""
    now = time.time()
    latest: dict[tuple[str, str, str], Record] = {}
    for r in records:  # one row per key, as the records applied in order would leave it (and rank it)
        key = (r.project_id, r.namespace, r.key)
        if not if_absent:
            latest.pop(key, None)
        latest.setdefault(key, r)
    rows = list(latest.values())
    if not sequenced and len(rows) <= VALUES_ROWS:
        return _unsequenced_values(rows, if_absent, shared_lock, now)
    lock = ", (SELECT pg_advisory_xact_lock_shared(%s::bigint)) AS l" if shared_lock is not None else ""
    keep = "WHERE alma_records.expires_at <= %s" if if_absent else ""
    args: list[Any] = [[r.project_id for r in rows], [r.namespace for r in rows], [r.key for r in rows],
                       [r.value for r in rows], [json.dumps(r.metadata, default=str) for r in rows],
                       [r.created_at or now for r in rows], [r.updated_at or now for r in rows],
                       [r.expires_at for r in rows]]  # fmt: skip
    if shared_lock is not None:
        args.append(shared_lock)
    if if_absent:
        args.append(now)
    if not sequenced:
        return (
            f"""INSERT INTO alma_records (project_id, namespace, key, seq, value, metadata, created_at,
                    updated_at, expires_at)
                SELECT r.project_id, r.namespace, r.key, 0, r.value, r.metadata, r.created_at, r.updated_at,
                    r.expires_at
                FROM unnest(%b::text[], %b::text[], %b::text[], %b::bytea[], %b::text[]::jsonb[], %b::float8[],
                    %b::float8[], %b::float8[])
                    AS r(project_id, namespace, key, value, metadata, created_at, updated_at, expires_at){lock}
                ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq = EXCLUDED.seq,
                    value = EXCLUDED.value, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at,
                    expires_at = EXCLUDED.expires_at {keep}""",
            args,
            "none",
        )
    return (
        f"""WITH r AS (
                SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bytea[], %b::text[]::jsonb[],
                    %b::float8[], %b::float8[], %b::float8[]) WITH ORDINALITY
                    AS r(project_id, namespace, key, value, metadata, created_at, updated_at, expires_at, n)),
            s AS (
                INSERT INTO alma_record_seq (project_id, namespace, seq)
                SELECT project_id, namespace, count(*) FROM r{lock} GROUP BY project_id, namespace
                ORDER BY project_id, namespace
                ON CONFLICT (project_id, namespace) DO UPDATE SET seq = alma_record_seq.seq + EXCLUDED.seq
                RETURNING project_id, namespace, seq)
            INSERT INTO alma_records (project_id, namespace, key, seq, value, metadata, created_at,
                updated_at, expires_at)
            SELECT r.project_id, r.namespace, r.key,
                s.seq - count(*) OVER w + row_number() OVER (w ORDER BY r.n),
                r.value, r.metadata, r.created_at, r.updated_at, r.expires_at
            FROM r JOIN s ON s.project_id = r.project_id AND s.namespace = r.namespace
            WINDOW w AS (PARTITION BY r.project_id, r.namespace)
            ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq = EXCLUDED.seq,
                value = EXCLUDED.value, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at,
                expires_at = EXCLUDED.expires_at {keep}""",
        args,
        "none",
    )


def _record(row: Sequence[Any]) -> Record:
    project_id, namespace, key, value, metadata, seq, created, updated, expires = row
    return Record(project_id, namespace, key, None if value is None else bytes(value), metadata, int(seq),
                  created, updated, expires)  # fmt: skip


def _ns_where(project_id: str, namespace: str, prefix: bool) -> tuple[list[str], list[Any]]:
    if prefix:
        return ["project_id = %s", "namespace >= %s", "namespace < %s"], [project_id, namespace, namespace + _MAX_CHAR]
    return ["project_id = %s", "namespace = %s"], [project_id, namespace]


def list_sql(op: ListRecords, numbered: bool = False) -> tuple[str, list[Any]] | None:
    """The SELECT of a `ListRecords` and its parameters (None: it matches nothing). `numbered`: each row
    first gets its place in the order (`n`)."""
    if op.namespaces is not None:
        if not op.namespaces:
            return None
        clauses = ["project_id = %s", "namespace = ANY(%s)"]
        args: list[Any] = [op.project_id, list(op.namespaces)]
    else:
        clauses, args = _ns_where(op.project_id, op.namespace, op.prefix)
    clauses.append("(expires_at IS NULL OR expires_at > %s)")
    args.append(time.time())
    for column, bound in (("seq", op.before_seq), ("key", op.before_key), ("updated_at", op.updated_before)):
        if bound is not None:
            clauses.append(f"{column} < %s")
            args.append(bound)
    if op.keys is not None:
        if not op.keys:
            return None
        clauses.append("key = ANY(%s)")
        args.append(list(op.keys))
    for key, value in (op.where or {}).items():
        clauses.append("metadata -> %s = %s::jsonb")
        args.extend([str(key), json.dumps(value, default=str)])
    order = "DESC" if op.descending else "ASC"
    by = "key" if op.order_by == "key" else "seq"
    order_by = f"{by} {order}, namespace {order}, key {order}"
    columns = _RECORD_COLUMNS.format(value="value" if op.with_values else "NULL::bytea AS value")
    number = f"row_number() OVER (ORDER BY {order_by}) AS n, " if numbered else ""
    if op.per_namespace and op.prefix and op.namespaces is None and op.limit is not None:
        return _per_namespace(op, clauses[3:], args[3:], columns, number, order_by)
    where = " AND ".join(clauses)
    sql = f"SELECT {number}{columns} FROM alma_records WHERE {where} ORDER BY {order_by} LIMIT %s OFFSET %s"
    return sql, [*args, op.limit, op.offset]


def _per_namespace(
    op: ListRecords, clauses: list[str], args: list[Any], columns: str, number: str, order_by: str
) -> tuple[str, list[Any]]:
    """`ListRecords.per_namespace`: the prefix's namespaces by a skip scan (one index seek each), each
    one's first `limit + offset` records in its index's order (LATERAL), then only those sorted."""
    assert op.limit is not None
    where = " AND ".join(["project_id = %s", "namespace = ns.name", *clauses])
    hi = op.namespace + _MAX_CHAR
    sql = f"""WITH RECURSIVE ns(name) AS (
            SELECT min(namespace) FROM alma_records WHERE project_id = %s AND namespace >= %s AND namespace < %s
            UNION ALL
            SELECT (SELECT min(namespace) FROM alma_records
                     WHERE project_id = %s AND namespace > ns.name AND namespace < %s)
              FROM ns WHERE ns.name IS NOT NULL)
        SELECT {number}{columns} FROM ns CROSS JOIN LATERAL (
            SELECT {columns} FROM alma_records WHERE {where} ORDER BY {order_by} LIMIT %s) AS x
        WHERE ns.name IS NOT NULL ORDER BY {order_by} LIMIT %s OFFSET %s"""
    pid = op.project_id
    return sql, [pid, op.namespace, hi, pid, hi, pid, *args, op.limit + op.offset, op.limit, op.offset]


@functools.lru_cache(maxsize=64)
def links_sql(base: str, children: str | None, refs: str | None, refs_path: tuple[str, ...]) -> tuple[str, int]:
    """What a `ListLinked` selects after its head rows `h`: the rows, their children and their references,
    its constants written as literals (one text per shape of the op, so the statement stays prepared),
    and how many times the clock (`expires_at`) is its parameter."""
    from psycopg import sql

    def lit(value: Any) -> str:
        return sql.Literal(value).as_string(None).replace("%", "%%")

    cut, size, live = len(base) + 1, len(base), "(r.expires_at IS NULL OR r.expires_at > %s)"
    cols = "r." + ", r.".join(_RECORD_COLUMNS.format(value="value").split(", "))
    parts = [f"SELECT 0 AS part, h.n, {_RECORD_COLUMNS.format(value='value')} FROM h"]
    if children is not None:
        parts.append(
            f"""SELECT 1, 0, {cols} FROM h JOIN alma_records r ON r.project_id = h.project_id
                AND r.namespace = {lit(children)} || substr(h.namespace, {cut}) || '/' || h.key
                WHERE left(h.namespace, {size}) = {lit(base)} AND {live}"""
        )
    if refs is not None:
        parts.append(
            f"""SELECT 2, 0, {cols} FROM (
                    SELECT DISTINCT h.project_id, {lit(refs)} || substr(h.namespace, {cut}) AS ns, k.key
                    FROM h, LATERAL (SELECT h.metadata #> {lit(list(refs_path))}::text[] AS v) m,
                        jsonb_array_elements(CASE jsonb_typeof(m.v) WHEN 'array' THEN m.v
                            WHEN 'object' THEN jsonb_path_query_array(m.v, '$.*') ELSE '[]' END) AS e(v),
                        LATERAL (SELECT e.v #>> '{{}}' AS key) k
                    WHERE left(h.namespace, {size}) = {lit(base)} AND jsonb_typeof(e.v) = 'string'
                        AND k.key <> '') x
                JOIN alma_records r ON r.project_id = x.project_id AND r.namespace = x.ns AND r.key = x.key
                WHERE {live}"""
        )
    return " UNION ALL ".join(parts), len(parts) - 1


def _first(pair: tuple[int, Record]) -> int:
    return pair[0]


def _key(record: Record) -> str:
    return record.key


def dense_step(f: MemoryFilter, vector: np.ndarray, k: int) -> Step:
    """Cosine top-k in one statement: a filter matching at most EXACT_SEARCH_ROWS rows (counted through
    the scope index) is searched exactly, a larger one through the HNSW index with pgvector's iterative
    scan (a rare filter would make that scan walk most of the graph). The materialized CTE restores
    strict order after the iterative scan's relaxed order."""
    dim = len(vector)
    where, args = memory_where(f)
    dist = f"embedding::vector({dim}) <=> %s::vector({dim})"
    return (
        f"""WITH c AS MATERIALIZED (SELECT count(*) AS n FROM (
                SELECT 1 FROM alma_memories WHERE {where} LIMIT {EXACT_SEARCH_ROWS + 1}) s),
            hits AS MATERIALIZED (
                (SELECT id, {dist} AS dist FROM alma_memories
                 WHERE {where} AND vector_dims(embedding) = {dim} AND (SELECT n FROM c) <= {EXACT_SEARCH_ROWS}
                 ORDER BY ({dist}) + 0 LIMIT %s)
                UNION ALL
                (SELECT id, {dist} AS dist FROM alma_memories
                 WHERE {where} AND vector_dims(embedding) = {dim} AND (SELECT n FROM c) > {EXACT_SEARCH_ROWS}
                 ORDER BY {dist} LIMIT %s))
            SELECT id, 1 - dist AS sim FROM hits ORDER BY dist, id""",
        [*args, vector, *args, vector, k, vector, *args, vector, k],
        "all",
    )


class OpSteps:
    """The state of one transaction (caches, what to apply after commit) and its op handlers."""

    def __init__(
        self, write: bool, vector_index_type: str, indexed_dims: set[int], shared_lock: int | None = None
    ) -> None:
        self.write = write
        self.shared_lock = shared_lock  # blind record writes take the write lock shared, in their statement
        self.vector_index_type = vector_index_type
        self.indexed_dims = indexed_dims  # the store's set, read-only here
        self.new_dims: set[int] = set()
        self.bumped: set[str] = set()
        self.term_stats: TermStats | None = None  # set by the store when fresh; loaded here otherwise
        self.memories_written = 0
        self.bad_rows = BadRows()  # the store's, set by it: rows reads skipped

    def steps(self, op: Op) -> Steps:
        handler = _HANDLERS.get(type(op))
        if handler is None:
            raise StorageError(f"unsupported operation {type(op).__name__}")
        if type(op) in _WRITES and not self.write:
            raise StorageError(f"{type(op).__name__} needs a write transaction")
        result: Steps = handler(self, op)
        return result

    def bump(self, project_id: str) -> Steps:
        if project_id not in self.bumped:
            self.bumped.add(project_id)
            yield (
                "INSERT INTO alma_generations (project_id, value) VALUES (%s, 1) "
                "ON CONFLICT (project_id) DO UPDATE SET value = alma_generations.value + 1",
                (project_id,),
                "none",
            )

    # -- memories -------------------------------------------------------------------------------

    def put_memories(self, op: PutMemories) -> Steps:
        rows, projects, dims = [], set(), set()
        for m in op.memories:
            vec = None if m.embedding is None else np.asarray(m.embedding, dtype=np.float32)
            if vec is not None:
                dims.add(len(vec))
            data = m.to_dict()
            data.pop("type")
            rows.append(
                (
                    m.project_id, m.id, m.agent, m.memory_type.value, m.category, m.user_id_value,
                    m.workflow_id, m.text, m.confidence, m.created_at.timestamp(),
                    m.updated_at.timestamp(), json.dumps(data, separators=(",", ":")), vec,
                )
            )  # fmt: skip
            projects.add(m.project_id)
        self.memories_written += len(rows)
        for dim in sorted(dims - self.indexed_dims - self.new_dims):
            yield from self._ensure_vector_index(dim)
        if rows:
            yield (
                """INSERT INTO alma_memories (project_id, id, agent, type, category, user_id, workflow_id,
                       text, confidence, created_at, updated_at, data, embedding)
                   VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
                   ON CONFLICT (project_id, id) DO UPDATE SET
                       agent=EXCLUDED.agent, type=EXCLUDED.type, category=EXCLUDED.category,
                       user_id=EXCLUDED.user_id, workflow_id=EXCLUDED.workflow_id, text=EXCLUDED.text,
                       confidence=EXCLUDED.confidence, created_at=EXCLUDED.created_at,
                       updated_at=EXCLUDED.updated_at, data=EXCLUDED.data, embedding=EXCLUDED.embedding""",
                rows,
                "many",
            )
        for project_id in sorted(projects):
            yield from self.bump(project_id)
        return len(rows)

    def _ensure_vector_index(self, dim: int) -> Steps:
        row = yield ("SELECT 1 FROM alma_vector_indexes WHERE dim = %s", (dim,), "one")
        if row is None:
            if dim <= MAX_INDEXED_DIM:
                yield (vector_index_sql(dim, self.vector_index_type), None, "none")
            yield ("INSERT INTO alma_vector_indexes (dim, kind) VALUES (%s, %s)", (dim, self.vector_index_type), "none")
        self.new_dims.add(dim)

    def delete_memories(self, op: DeleteMemories) -> Steps:
        where, args = memory_where(op.filter)
        gone = yield (f"DELETE FROM alma_memories WHERE {where} RETURNING id", args, "all")
        if gone:
            yield from self.bump(op.filter.project_id)
        return len(gone)

    def find_memories(self, op: FindMemories) -> Steps:
        where, args = memory_where(op.filter)
        vec = "embedding" if op.with_embeddings else "NULL"
        order = "DESC" if op.descending else "ASC"
        sql = f"SELECT type, data, {vec}, id FROM alma_memories WHERE {where} ORDER BY {_ORDER[op.order_by]} {order}, "
        sql += f"rid {order} LIMIT %s"
        rows = yield (sql, [*args, op.limit], "all")
        out: list[Memory] = []
        for mtype, data, vector, memory_id in rows:
            try:
                memory = memory_from_dict({"type": mtype, **json.loads(data)})
            except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                self.bad_rows.report(op.filter.project_id, memory_id, data, exc)
                continue
            if vector is not None:
                memory.embedding = vector.to_numpy() if hasattr(vector, "to_numpy") else vector
            out.append(memory)
        return out

    def count_memories(self, op: CountMemories) -> Steps:
        """From `alma_memory_counts` (kept by triggers, migration 2) when the filter names only the project,
        agents and types; else COUNT(*) over the matching rows."""
        f = op.filter
        where, args = memory_where(f)
        if f.ids is None and f.categories is None and not f.scalar_conditions():  # columns of both tables
            sql = f"SELECT agent, type, n FROM alma_memory_counts WHERE {where} AND n > 0"
        else:
            sql = f"SELECT agent, type, COUNT(*) FROM alma_memories WHERE {where} GROUP BY agent, type"
        rows = yield (sql, args, "all")
        return {(agent, MemoryType(mtype)): int(n) for agent, mtype, n in rows}

    def search_memories(self, op: SearchMemories) -> Steps:
        """Every type's dense and lexical top-k and the candidates' rows in one statement (plus, for a
        lexical search, one to stem the terms and, now and then, one to refresh the term counts)."""
        f = op.filter
        types = list(MemoryType) if f.types is None else list(dict.fromkeys(f.types))
        out = SearchHits()
        if op.k <= 0 or not types or any(v is not None and not v for v in (f.agents, f.ids, f.categories)):
            return out
        pushed = f if op.user_types is None else replace(f, user_id=None)
        parts: list[str] = []
        params: list[Any] = []
        if op.vector is not None:
            vector = np.asarray(op.vector, dtype=np.float32)
            for t in types:
                scoped = replace(pushed, types=(t,), user_id=user_filter(f, t, op.user_types))
                sql, args, _ = dense_step(scoped, vector, op.k)
                parts.append(f"(SELECT 'd' AS kind, %s::text AS t, id, sim AS s FROM ({sql}) d{len(parts)})")
                params.extend([t.value, *args])
        if op.terms:
            kept = yield from self._kept_lexemes(" ".join(op.terms))
            if kept:
                where, args = memory_where(replace(pushed, types=tuple(types)))
                if op.user_types is not None and f.user_id is not None:
                    where += " AND (type <> ALL(%s) OR user_id = %s)"
                    args += [[t.value for t in op.user_types], f.user_id]
                parts.append(
                    f"""(SELECT 'l' AS kind, type AS t, id, s FROM (
                        SELECT id, type, ts_rank_cd(tsv, q) AS s,
                               row_number() OVER (PARTITION BY type ORDER BY ts_rank_cd(tsv, q) DESC, id) AS n
                        FROM alma_memories,
                             (SELECT string_agg(quote_literal(w), ' | ')::tsquery AS q FROM unnest(%s::text[]) w) qq
                        WHERE tsv @@ q AND {where}) l WHERE n <= %s)"""
                )
                params.extend([kept, *args, op.k])
        if not parts:
            return out
        vectors = "m.embedding" if op.with_embeddings else "NULL"
        rows = yield (
            f"""WITH h AS ({" UNION ALL ".join(parts)})
                SELECT h.kind, h.t, h.id, h.s, m.data, {vectors} FROM h
                JOIN alma_memories m ON m.project_id = %s AND m.id = h.id
                ORDER BY h.kind, h.t, h.s DESC, h.id""",
            [*params, f.project_id],
            "all",
        )
        for kind, mtype, memory_id, score, data, vector in rows:
            memory_type = MemoryType(mtype)
            (out.dense if kind == "d" else out.lexical).setdefault(memory_type, []).append((memory_id, float(score)))
            if memory_id not in out.memories:
                memory = memory_from_dict({"type": mtype, **json.loads(data)})
                if vector is not None:
                    memory.embedding = vector.to_numpy() if hasattr(vector, "to_numpy") else vector
                out.memories[memory_id] = memory
        return out

    def _kept_lexemes(self, text: str) -> Steps:
        """The text's lexemes (PostgreSQL's stemmer and stop words) that `choose_terms` keeps."""
        lexemes = yield ("SELECT DISTINCT w FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS w",
                         [text], "all")  # fmt: skip
        if not lexemes:
            return []
        if self.term_stats is None:
            self.term_stats = term_stats((yield (TERM_STATS_SQL, None, "one")))
        common, counts, total = self.term_stats
        known = dict(zip(common, counts, strict=True))
        return choose_terms({w: known.get(w, 0.0) for (w,) in lexemes}, total)

    # -- records --------------------------------------------------------------------------------

    def put_record(self, op: PutRecord) -> Steps:
        """One statement: bump the namespace's seq and upsert the record (with `if_absent`, a live record
        of that key is kept: the upsert does nothing, and the kept record is read back)."""
        r = op.record
        while True:
            row = yield put_record_step(r, op.if_absent, self.shared_lock)
            if row is not None:
                return replace(_record(row), metadata=r.metadata)
            kept = yield from self.get_record(GetRecord(r.project_id, r.namespace, r.key))
            if kept is not None:
                return kept

    def put_records(self, op: PutRecords) -> Steps:
        if op.records:
            yield put_records_step(op.records, op.if_absent, self.shared_lock, op.sequenced)
        return None

    def get_record(self, op: GetRecord) -> Steps:
        row = yield (
            f"SELECT {_RECORD_COLUMNS.format(value='value')} FROM alma_records "
            "WHERE project_id = %s AND namespace = %s AND key = %s AND (expires_at IS NULL OR expires_at > %s)",
            (op.project_id, op.namespace, op.key, time.time()),
            "one",
        )
        return _record(row) if row else None

    def search_records(self, op: SearchRecords) -> Steps:
        """Filtered and ranked in Python over the prefix's records (no SQL pushdown here yet)."""
        records = yield from self.list_records(ListRecords(op.project_id, op.namespace, prefix=True))
        vectors: list[Record] = []
        if op.vector is not None and op.vectors is not None:
            vectors = yield from self.list_records(ListRecords(op.project_id, op.vectors, prefix=True))
        return search_in_python(records, vectors, op)

    def list_records(self, op: ListRecords) -> Steps:
        query = list_sql(op)
        if query is None:
            return []
        rows = yield (query[0], query[1], "binary" if op.with_values else "all")
        return [_record(row) for row in rows]

    def list_linked(self, op: ListLinked) -> Steps:
        """The records and what they link to in one statement: the found rows (numbered, so their order
        survives), then their children and their references joined to them (see `ListLinked`)."""
        query = list_sql(op.records, numbered=True)
        if query is None:
            return Linked()
        head, args = query
        tail, nows = links_sql(op.base, op.children, op.refs, tuple(op.refs_path))
        rows = yield (f"WITH h AS MATERIALIZED ({head}) {tail}", [*args, *[time.time()] * nows], "binary")
        out = Linked()
        heads: list[tuple[int, Record]] = []
        for row in rows:
            part, n, record = row[0], row[1], _record(row[2:])
            if part == 0:
                heads.append((n, record))
            elif part == 1:
                out.children.setdefault(record.namespace, []).append(record)
            else:
                out.refs[(record.namespace, record.key)] = record
        out.records = [r for _, r in sorted(heads, key=_first)]
        for kids in out.children.values():
            kids.sort(key=_key)  # in key order, as on every backend (code points, not the collation)
        return out

    def delete_records(self, op: DeleteRecords) -> Steps:
        clauses, args = _ns_where(op.project_id, op.namespace, op.prefix)
        if op.keys is not None:
            if not op.keys:
                return 0
            clauses.append("key = ANY(%s)")
            args.append(list(op.keys))
        count = yield (f"DELETE FROM alma_records WHERE {' AND '.join(clauses)}", args, "none")
        return count

    def list_namespaces(self, op: ListNamespaces) -> Steps:
        """A skip scan: one index seek per namespace, not a scan of every record under the prefix."""
        end = op.prefix + _MAX_CHAR
        rows = yield (
            """WITH RECURSIVE ns(name) AS (
                   SELECT min(namespace) FROM alma_records
                    WHERE project_id = %(p)s AND namespace >= %(lo)s AND namespace < %(hi)s
                   UNION ALL
                   SELECT (SELECT min(namespace) FROM alma_records
                            WHERE project_id = %(p)s AND namespace > ns.name AND namespace < %(hi)s)
                     FROM ns WHERE ns.name IS NOT NULL)
               SELECT name FROM ns WHERE name IS NOT NULL LIMIT %(limit)s OFFSET %(offset)s""",
            {"p": op.project_id, "lo": op.prefix, "hi": end, "limit": op.limit, "offset": op.offset},
            "all",
        )
        return [r[0] for r in rows]

    def write_if(self, op: WriteIf) -> Steps:
        """The check, then the writes if every head holds (in a write transaction, which holds the
        store's lock; a lone `WriteIf` runs as one pipeline instead, see `_pg_pipeline`)."""
        row = yield check_step(op)
        heads = tuple(row[1:])
        if op.holds(heads):
            for write in op.ops:
                yield from self.steps(write)
        return heads

    def store_version(self, op: StoreVersion) -> Steps:
        """None: no cheap token of the whole store here, so caches built on it stay off."""
        yield from ()
        return None


_HANDLERS: dict[type, Any] = {
    PutMemories: OpSteps.put_memories,
    DeleteMemories: OpSteps.delete_memories,
    FindMemories: OpSteps.find_memories,
    CountMemories: OpSteps.count_memories,
    SearchMemories: OpSteps.search_memories,
    PutRecord: OpSteps.put_record,
    PutRecords: OpSteps.put_records,
    GetRecord: OpSteps.get_record,
    ListRecords: OpSteps.list_records,
    ListLinked: OpSteps.list_linked,
    SearchRecords: OpSteps.search_records,
    DeleteRecords: OpSteps.delete_records,
    ListNamespaces: OpSteps.list_namespaces,
    StoreVersion: OpSteps.store_version,
    WriteIf: OpSteps.write_if,
}
_WRITES = {PutMemories, DeleteMemories, PutRecord, PutRecords, DeleteRecords, WriteIf}
