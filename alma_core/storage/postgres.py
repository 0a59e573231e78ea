"""PostgreSQL + pgvector store (extra `postgres`): psycopg 3 connection pools, sync and native async.

- Write transactions take one transaction-level advisory lock first, so they are serialized across
  processes like SQLite's `BEGIN IMMEDIATE` (the learning engine's read-modify-writes rely on it);
  read transactions run at REPEATABLE READ, READ ONLY, and take no lock.
- Dense search runs in the database: a `vector` column with one partial HNSW (or IVFFlat) index per
  dimension, searched with pgvector's iterative scan so filtered searches still return k rows.
- Lexical search is PostgreSQL full-text search (generated tsvector, GIN index, ts_rank_cd).
- Migrations are versioned and append-only, applied by an idempotent `setup()` under a session
  advisory lock, so several processes may start at once.
- The SQL of every operation lives once, in `_pg_ops`, as steps driven here by a sync or async connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import MissingDependency, StorageError
from ._base import (
    WRITE_OPS,
    BaseStorage,
    CountMemories,
    FindMemories,
    GetRecord,
    ListLinked,
    ListNamespaces,
    ListRecords,
    Op,
    PutRecord,
    PutRecords,
    WriteIf,
)
from ._pg_ops import MIGRATIONS, OpSteps, Step, Steps, TermStats
from ._pg_pipeline import acompare_and_set, awrite_all, compare_and_set, one_statement_writes, write_all
from ._pg_sessions import Sessions

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from .._config import PostgresConfig

__all__ = ["PostgresStorage"]

ANALYZE_AFTER = 1_000  # memories written (and 20% growth) before this store re-ANALYZEs its table
STATS_TTL = 300.0  # seconds a store trusts its cached lexeme counts
_SETUP_LOCK = 0x414C4D41  # "ALMA": serializes setup() of every ALMA schema on a server


def _import_psycopg() -> Any:
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise MissingDependency(exc.name or "psycopg", "postgres") from None
    return psycopg


def _run(cur: Any, step: Step) -> Any:
    sql, params, fetch = step
    if fetch == "many":
        cur.executemany(sql, params)
        return None
    cur.execute(sql, params, binary=fetch == "binary")
    if fetch in ("all", "binary"):
        return cur.fetchall()
    if fetch == "one":
        return cur.fetchone()
    return cur.rowcount


async def _arun(cur: Any, step: Step) -> Any:
    sql, params, fetch = step
    if fetch == "many":
        await cur.executemany(sql, params)
        return None
    await cur.execute(sql, params, binary=fetch == "binary")
    if fetch in ("all", "binary"):
        return await cur.fetchall()
    if fetch == "one":
        return await cur.fetchone()
    return cur.rowcount


class _Tx:
    """One open sync transaction on a pooled connection."""

    def __init__(self, conn: psycopg.Connection[Any], ops: OpSteps) -> None:
        self.conn, self.ops = conn, ops

    def execute(self, op: Op) -> Any:
        steps: Steps = self.ops.steps(op)
        try:
            with self.conn.cursor() as cur:
                step = next(steps)
                while True:
                    step = steps.send(_run(cur, step))
        except StopIteration as stop:
            return stop.value
        except _psycopg_error() as exc:
            raise StorageError(f"PostgreSQL error in {type(op).__name__}: {exc}") from exc


class _ATx:
    """One open async transaction: `await tx.execute(op)`."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], ops: OpSteps) -> None:
        self.conn, self.ops = conn, ops

    async def execute(self, op: Op) -> Any:
        steps: Steps = self.ops.steps(op)
        try:
            async with self.conn.cursor() as cur:
                step = next(steps)
                while True:
                    step = steps.send(await _arun(cur, step))
        except StopIteration as stop:
            return stop.value
        except _psycopg_error() as exc:
            raise StorageError(f"PostgreSQL error in {type(op).__name__}: {exc}") from exc


def _blind_puts(ops: Sequence[Op]) -> bool:
    """Record writes to one namespace only, one `PutRecords`, or unsequenced `PutRecords` (see
    `PostgresStorage._put_unlocked`)."""
    if len(ops) == 1 and type(ops[0]) is PutRecords:
        return True  # one statement, which locks its namespaces' seq rows in one global order
    if ops and all(type(op) is PutRecords and not op.sequenced for op in ops):  # type: ignore[union-attr]
        return True  # no seq row locked at all
    return (
        bool(ops)
        and all(type(op) is PutRecord for op in ops)
        and len({(op.record.project_id, op.record.namespace) for op in ops if isinstance(op, PutRecord)}) == 1
    )


# Reads that are one statement: alone in a batch, they run in autocommit (a statement is its own
# snapshot), without the BEGIN and COMMIT round trips of a transaction.
_ONE_STATEMENT_READS = frozenset({GetRecord, ListRecords, ListLinked, ListNamespaces, CountMemories, FindMemories})


def _one_statement_read(ops: Sequence[Op]) -> bool:
    return len(ops) == 1 and type(ops[0]) in _ONE_STATEMENT_READS


def _lone_write_if(ops: Sequence[Op]) -> bool:
    """A `WriteIf` alone in its batch that runs as one pipeline (`_pg_pipeline`)."""
    return len(ops) == 1 and type(ops[0]) is WriteIf and one_statement_writes(ops[0].ops)


def _finish(conn: psycopg.Connection[Any], steps: Steps, result: Any) -> Any:
    """Drive an op's remaining steps after its pipelined first one."""
    try:
        step = steps.send(result)
        with conn.cursor() as cur:
            while True:
                step = steps.send(_run(cur, step))
    except StopIteration as stop:
        return stop.value


async def _afinish(conn: psycopg.AsyncConnection[Any], steps: Steps, result: Any) -> Any:
    try:
        step = steps.send(result)
        async with conn.cursor() as cur:
            while True:
                step = steps.send(await _arun(cur, step))
    except StopIteration as stop:
        return stop.value


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


class PostgresStorage(BaseStorage):
    """ALMA's store in PostgreSQL with pgvector. Thread-safe, safe across processes, natively async.

    `PostgresStorage("postgresql://user:pass@host/db")` or `PostgresStorage(PostgresConfig(...))`; a
    keyword given here overrides the config's field of that name.
    """

    name = "postgres"
    capabilities = frozenset({"memories", "records", "dense", "lexical", "multiprocess", "async", "linked", "write_if"})

    def __init__(
        self,
        conninfo: str | PostgresConfig,
        *,
        schema: str | None = None,
        vector_index_type: str | None = None,
        min_pool_size: int | None = None,
        max_pool_size: int | None = None,
        prepare_threshold: int | None = None,
    ) -> None:
        from .._config import PostgresConfig

        _import_psycopg()
        config = conninfo if isinstance(conninfo, PostgresConfig) else PostgresConfig(uri=conninfo)
        updates = {"schema_name": schema, "vector_index_type": vector_index_type, "min_pool_size": min_pool_size,
                   "max_pool_size": max_pool_size, "prepare_threshold": prepare_threshold}  # fmt: skip
        config = config.model_copy(update={k: v for k, v in updates.items() if v is not None})
        self.config = config
        self.conninfo = config.conninfo()
        self.schema = config.schema_name
        self.vector_index_type = config.vector_index_type
        self._sessions = Sessions(self.schema, config.prepare_threshold)
        self._lock_key = zlib.crc32(f"alma-write:{self.schema}".encode()) - 2**31
        self._indexed_dims: set[int] = set()
        self._term_stats: TermStats = ([], [], 0.0)
        self._stats_at = -STATS_TTL
        self._unanalyzed = 0  # memories written since the last ANALYZE by this store
        self._local = threading.local()
        self._closed = False
        self._apools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._direct: psycopg.Connection[Any] | None = None  # see `_autocommit()`
        self._direct_lock = threading.Lock()
        self.setup()
        self._pool = self._make_pool()

    # -- connections ----------------------------------------------------------------------------

    def _make_pool(self) -> ConnectionPool[Any]:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self.conninfo, min_size=self.config.min_pool_size, max_size=self.config.max_pool_size,
            configure=self._sessions.configure, open=True, name=f"alma-{self.schema}",
        )  # fmt: skip

    def _recover(self, exc: Exception) -> None:
        """After a connection-level failure (a server restart, say), drop the pool's idle connections
        that broke with it, so the next call gets a live one instead of failing again."""
        psycopg = _import_psycopg()
        if isinstance(exc, psycopg.OperationalError) and not self._closed:
            with contextlib.suppress(Exception):
                self._pool.check()

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection for one statement (a blind put, a generation read): the store's
        dedicated connection, which skips the pool's checkout, or a pooled one while another thread
        holds it."""
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        if not self._direct_lock.acquire(blocking=False):
            with self._pool.connection() as pooled:
                pooled.autocommit = True
                try:
                    yield pooled
                finally:
                    pooled.autocommit = False
            return
        try:
            conn = self._direct
            if conn is None or conn.closed or conn.broken:
                conn = self._direct = psycopg.connect(self.conninfo, autocommit=True)
                self._sessions.configure(conn)
            yield conn
        finally:
            if self._direct is not None and self._direct.broken:
                self._direct.close()
                self._direct = None
            self._direct_lock.release()

    async def _apool(self) -> AsyncConnectionPool[Any]:
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                self.conninfo, min_size=self.config.min_pool_size, max_size=self.config.max_pool_size,
                configure=self._sessions.aconfigure, open=False, name=f"alma-async-{self.schema}",
            )  # fmt: skip
            await pool.open()
            self._apools[loop] = pool
        return pool

    # -- schema ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or upgrade the schema. Idempotent, and safe when several processes start at once."""
        psycopg = _import_psycopg()
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
                try:
                    self._migrate(conn)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        except psycopg.Error as exc:
            raise StorageError(f"cannot set up the PostgreSQL store ({self.schema}): {exc}") from exc

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
        conn.execute(f'SET search_path TO "{self.schema}", public')
        conn.execute("CREATE TABLE IF NOT EXISTS alma_migrations (version INTEGER PRIMARY KEY, applied_at FLOAT8)")
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM alma_migrations").fetchone()
        done = int(row[0]) if row else 0
        partial = conn.execute(
            "SELECT to_regclass(quote_ident(%s) || '.alma_memories') IS NOT NULL", (self.schema,)
        ).fetchone()
        if done == 0 and partial and partial[0]:
            raise StorageError(f"schema {self.schema!r}: a partial ALMA schema without migration records; refusing")
        if done > len(MIGRATIONS):
            raise StorageError(
                f"schema {self.schema!r} was written by a newer ALMA (schema {done} > {len(MIGRATIONS)}); upgrade"
            )
        for version, sql in enumerate(MIGRATIONS[done:], start=done + 1):
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO alma_migrations VALUES (%s, %s)", (version, time.time()))
        rows = conn.execute("SELECT dim FROM alma_vector_indexes").fetchall()
        self._indexed_dims = {int(r[0]) for r in rows}

    # -- transactions ---------------------------------------------------------------------------

    def _new_ops(self, write: bool, shared: bool = False) -> OpSteps:
        ops = OpSteps(write, self.vector_index_type, self._indexed_dims, self._lock_key if shared else None)
        ops.bad_rows = self.bad_rows
        if time.monotonic() - self._stats_at < STATS_TTL:
            ops.term_stats = self._term_stats
        return ops

    def _after_commit(self, ops: OpSteps) -> bool:
        """Adopt what the transaction learnt; True when enough memories were written to ANALYZE."""
        self._indexed_dims |= ops.new_dims
        if ops.term_stats is not None and ops.term_stats is not self._term_stats:
            self._term_stats, self._stats_at = ops.term_stats, time.monotonic()
        self._unanalyzed += ops.memories_written
        if self._unanalyzed < max(ANALYZE_AFTER, self._term_stats[2] / 5):
            return False
        self._unanalyzed = 0
        return True

    # Fresh planner statistics after bulk loads: with stale ones PostgreSQL searches vectors exactly
    # instead of through the HNSW index, and lexical search cannot tell common terms from rare ones.

    def _analyzed(self, total: float) -> None:
        self._term_stats, self._stats_at = ([], [], total), 0.0  # reload term counts on the next search

    def _analyze(self) -> None:
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("ANALYZE alma_memories")
                row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'alma_memories'::regclass").fetchone()
            finally:
                conn.autocommit = False
        self._analyzed(float(row[0]) if row else 0.0)

    @contextlib.asynccontextmanager
    async def _autocommitted(self) -> AsyncIterator[Any]:
        """A pooled async connection in autocommit, for a lone statement (no BEGIN/COMMIT round trips)."""
        pool = await self._apool()
        async with pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                await conn.set_autocommit(False)

    async def _aanalyze(self) -> None:
        async with self._autocommitted() as conn:
            await conn.execute("ANALYZE alma_memories")
            cur = await conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'alma_memories'::regclass")
            row = await cur.fetchone()
        self._analyzed(float(row[0]) if row else 0.0)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Tx]:
        """A transaction on a pooled connection; writes are serialized (see the module docstring).

        Re-entrant on the same thread: an inner transaction joins the outer one.
        """
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        active: _Tx | None = getattr(self._local, "tx", None)
        if active is not None:
            if write and not active.ops.write:
                raise StorageError("cannot write inside a read transaction")
            yield active
            return
        ops = self._new_ops(write)
        try:
            with self._pool.connection() as conn:
                conn.isolation_level = (
                    psycopg.IsolationLevel.READ_COMMITTED if write else psycopg.IsolationLevel.REPEATABLE_READ
                )
                conn.read_only = not write
                with conn.transaction():
                    if write:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                    tx = self._local.tx = _Tx(conn, ops)
                    try:
                        yield tx
                    finally:
                        self._local.tx = None
        except psycopg.Error as exc:
            self._recover(exc)
            raise StorageError(f"PostgreSQL error: {exc}") from exc
        if self._after_commit(ops):
            self._analyze()

    @contextlib.asynccontextmanager
    async def atransaction(self, write: bool = True) -> AsyncIterator[_ATx]:
        """The async twin of `transaction()` on psycopg's AsyncConnectionPool (one pool per event loop)."""
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        ops = self._new_ops(write)
        try:
            pool = await self._apool()
            async with pool.connection() as conn:
                await conn.set_isolation_level(
                    psycopg.IsolationLevel.READ_COMMITTED if write else psycopg.IsolationLevel.REPEATABLE_READ
                )
                await conn.set_read_only(not write)
                async with conn.transaction():
                    if write:
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                    yield _ATx(conn, ops)
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error: {exc}") from exc
        if self._after_commit(ops):
            await self._aanalyze()

    async def abatch(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction on an async connection (no worker thread)."""
        if _blind_puts(ops):
            return await self._aput_unlocked(ops)
        if _one_statement_read(ops):
            return [await self._aread_one(ops[0])]
        if _lone_write_if(ops):
            return [await self._acompare_and_set(ops[0])]  # type: ignore[arg-type]
        write = any(isinstance(op, WRITE_OPS) for op in ops)
        async with self.atransaction(write=write) as tx:
            return [await tx.execute(op) for op in ops]

    def batch(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction; record writes to one namespace skip the exclusive lock, and a
        read of one statement runs alone in autocommit."""
        if getattr(self._local, "tx", None) is None:
            if _blind_puts(ops):
                return self._put_unlocked(ops)
            if _one_statement_read(ops):
                return [self._read_one(ops[0])]
            if _lone_write_if(ops):
                return [self._compare_and_set(ops[0])]  # type: ignore[arg-type]
        return super().batch(ops)

    def _compare_and_set(self, op: WriteIf) -> tuple[str | None, ...]:
        """A lone `WriteIf` in one round trip (see `_pg_pipeline`)."""
        psycopg = _import_psycopg()
        try:
            with self._autocommit() as conn:
                return compare_and_set(conn, self._new_ops(True), op, self._lock_key)
        except psycopg.Error as exc:
            self._recover(exc)
            raise StorageError(f"PostgreSQL error in WriteIf: {exc}") from exc

    async def _acompare_and_set(self, op: WriteIf) -> tuple[str | None, ...]:
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        try:
            async with self._autocommitted() as conn:
                return await acompare_and_set(conn, self._new_ops(True), op, self._lock_key)
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error in WriteIf: {exc}") from exc

    def _read_one(self, op: Op) -> Any:
        psycopg = _import_psycopg()
        for attempt in range(2):  # a read: once more on a fresh connection when the first one broke
            try:
                with self._autocommit() as conn:
                    return _Tx(conn, self._new_ops(False)).execute(op)
            except StorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, psycopg.Error):
                    self._recover(cause)
                if attempt or not isinstance(cause, psycopg.OperationalError):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aread_one(self, op: Op) -> Any:
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        try:
            async with self._autocommitted() as conn:
                return await _ATx(conn, self._new_ops(False)).execute(op)
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error in {type(op).__name__}: {exc}") from exc

    # Blind record writes (a batch of PutRecord to one namespace, or one PutRecords: a checkpoint, a
    # task's writes) read nothing, so they need not queue behind the exclusive write lock. Each statement
    # takes it in shared mode instead (read-modify-write transactions still exclude them), and the
    # namespaces' seq row locks order them. One put is one autocommit statement; several `PutRecords`
    # are one transaction sent as one pipeline (`_pg_pipeline`); several `PutRecord`s are pipelined in a
    # transaction, each read back.

    def _put_unlocked(self, ops: Sequence[Op]) -> list[Any]:
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        steps = self._new_ops(True, shared=True)
        try:
            if len(ops) == 1 or all(type(op) is PutRecords for op in ops):
                with self._autocommit() as conn:
                    return write_all(conn, steps, ops) if len(ops) > 1 else [_Tx(conn, steps).execute(ops[0])]
            with self._pool.connection() as conn:
                conn.read_only, conn.isolation_level = False, psycopg.IsolationLevel.READ_COMMITTED
                with conn.pipeline(), conn.transaction():
                    gens = [steps.steps(op) for op in ops]
                    firsts = [next(g) for g in gens]
                    curs = [conn.execute(sql, params) for sql, params, _ in firsts]
                    results = [c.fetchone() if f[2] == "one" else c.rowcount for c, f in zip(curs, firsts, strict=True)]
                    return [_finish(conn, g, r) for g, r in zip(gens, results, strict=True)]
        except psycopg.Error as exc:
            self._recover(exc)
            raise StorageError(f"PostgreSQL error in {type(ops[0]).__name__}: {exc}") from exc

    async def _aput_unlocked(self, ops: Sequence[Op]) -> list[Any]:
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        steps = self._new_ops(True, shared=True)
        try:
            pool = await self._apool()
            async with pool.connection() as conn:
                records = all(type(op) is PutRecords for op in ops)
                await conn.set_autocommit(len(ops) == 1 or records)
                await conn.set_read_only(False)
                await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)
                try:
                    if len(ops) == 1:
                        return [await _ATx(conn, steps).execute(ops[0])]
                    if records:
                        return await awrite_all(conn, steps, ops)
                    async with conn.pipeline(), conn.transaction():
                        gens = [steps.steps(op) for op in ops]
                        firsts = [next(g) for g in gens]
                        curs = [await conn.execute(sql, params) for sql, params, _ in firsts]
                        results = [await c.fetchone() if f[2] == "one" else c.rowcount
                                   for c, f in zip(curs, firsts, strict=True)]  # fmt: skip
                        return [await _afinish(conn, g, r) for g, r in zip(gens, results, strict=True)]
                finally:
                    await conn.set_autocommit(False)
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error in {type(ops[0]).__name__}: {exc}") from exc

    def generation(self, project_id: str) -> int:
        """The project's generation: one autocommit statement (no BEGIN/COMMIT round trips) unless a
        transaction is open on this thread, which then answers from its own snapshot."""
        sql = "SELECT value FROM alma_generations WHERE project_id = %s"
        active: _Tx | None = getattr(self._local, "tx", None)
        if active is not None:
            row = active.conn.execute(sql, (project_id,)).fetchone()
            return int(row[0]) if row else 0
        psycopg = _import_psycopg()
        for attempt in range(2):  # a read: once more on a fresh connection when the first one broke
            try:
                with self._autocommit() as conn:
                    row = conn.execute(sql, (project_id,)).fetchone()
                break
            except psycopg.Error as exc:
                self._recover(exc)
                if attempt or not isinstance(exc, psycopg.OperationalError):
                    raise StorageError(f"PostgreSQL error: {exc}") from exc
        return int(row[0]) if row else 0

    async def ageneration(self, project_id: str) -> int:
        """The project's generation, read on an async connection (one autocommit statement)."""
        psycopg = _import_psycopg()
        if self._closed:
            raise StorageError("the store is closed")
        try:
            async with self._autocommitted() as conn:
                cur = await conn.execute("SELECT value FROM alma_generations WHERE project_id = %s", (project_id,))
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error: {exc}") from exc
        return int(row[0]) if row else 0

    def drop_schema(self) -> None:
        """Delete every ALMA table of this store's schema (tests, `alma reset`). Irreversible."""
        psycopg = _import_psycopg()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self._indexed_dims.clear()

    async def aclose(self) -> None:
        """Close the async pool of the running loop, then the store."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._direct_lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None
        self._pool.close()
        for loop, pool in list(self._apools.items()):
            if not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(Exception):
                    loop.run_until_complete(pool.close())
        self._apools.clear()
