"""Write transactions in one round trip on PostgreSQL: every statement of the transaction, from BEGIN to
COMMIT, sent as one pipeline on an autocommit connection, answered once.

- Blind record writes of several statements (`PutRecords` that read nothing back: a checkpoint with its
  retention index entry, a task's regular and special writes): BEGIN; the writes; COMMIT. Each write
  takes the store's write lock in shared mode in its own statement (see `PostgresStorage`).
- `WriteIf`, a compare-and-set of namespace heads, whose writes are each one statement (`PutRecords`,
  `DeleteRecords`):

      BEGIN; SELECT pg_advisory_xact_lock(<store>); <check>; <abort unless the check held>; <writes>; COMMIT

  The lock is the store's write lock, as every write transaction takes it, so the check's snapshot (a
  statement of its own, after the lock: READ COMMITTED) sees every commit before it and nothing can
  commit in between. The check returns the heads and records in a transaction-local setting whether
  they hold; the next statement divides by that flag, so when a head does not hold it fails, the server
  skips the rest of the pipeline, and the transaction is rolled back (one more round trip). Other
  `WriteIf`s (writes of several statements, or inside an open transaction) run as the check, then the
  writes, in the transaction (`OpSteps.write_if`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._base import DeleteRecords, Op, PutRecords, WriteIf

if TYPE_CHECKING:
    from ._pg_ops import OpSteps, Step

__all__ = [
    "acompare_and_set",
    "atransact",
    "awrite_all",
    "check_step",
    "compare_and_set",
    "one_statement_writes",
    "transact",
    "write_all",
]

_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
_FLAG = "alma.write_if"  # the transaction-local setting the check leaves for the abort statement
_ABORT = f"SELECT 1 / current_setting('{_FLAG}')::int"  # division by zero: the rest is skipped
_ONE_STATEMENT = (PutRecords, DeleteRecords)  # writes of one statement whose result nothing waits for


def one_statement_writes(ops: Sequence[Op]) -> bool:
    """Whether these writes fit one pipeline: each one statement, nothing read back."""
    return all(type(op) in _ONE_STATEMENT for op in ops)


def check_step(op: WriteIf) -> Step:
    """One statement: each condition's head (the namespace's greatest live key), and the flag (1: every
    head holds) set for the rest of the transaction. Returns one row: the flag, then the heads."""
    heads, tests, args, now = [], [], [], time.time()
    for i, c in enumerate(op.conditions):  # the flag's parameters come first in the text
        tests.append(f"(h{i} = ANY(%s::text[]) OR (h{i} IS NULL AND %s))")
        args += [[k for k in c.keys if k is not None], None in c.keys]
    for i, c in enumerate(op.conditions):
        heads.append(
            f"""(SELECT key FROM alma_records WHERE project_id = %s AND namespace = %s
                AND (expires_at IS NULL OR expires_at > %s) ORDER BY key DESC LIMIT 1) AS h{i}"""
        )
        args += [c.project_id, c.namespace, now]
    ok = " AND ".join(tests) or "TRUE"
    names = ", ".join(f"h{i}" for i in range(len(op.conditions)))
    sql = f"SELECT set_config('{_FLAG}', ({ok})::int::text, true){', ' if names else ''}{names} "
    return sql + f"FROM (SELECT {', '.join(heads) or '1'}) AS h", args, "one"


def _statements(ops: OpSteps, writes: Sequence[Op]) -> list[tuple[str, Any]]:
    """The writes' statements (one each, see `one_statement_writes`)."""
    return [(sql, args) for write in writes for sql, args, _ in ops.steps(write)]


def _guard(op: WriteIf, lock_key: int) -> list[tuple[str, Any]]:
    sql, args, _ = check_step(op)
    return [("SELECT pg_advisory_xact_lock(%s)", (lock_key,)), (sql, args), (_ABORT, None)]


def _refused(check: Any) -> tuple[str | None, ...] | None:
    """The heads, when the check ran and a head did not hold (the pipeline failed on purpose)."""
    row = check.fetchone() if check is not None and check.pgresult is not None else None
    return tuple(row[1:]) if row is not None and row[0] == "0" else None


def transact(conn: Any, statements: Sequence[tuple[str, Any]], watch: int | None = None) -> Any:
    """Run `statements` as one transaction in one pipeline on the autocommit `conn`; the cursor of the
    statement at index `watch` (None: no cursor). On an error the transaction is rolled back and the
    error raised with the watched cursor as its `cursor` attribute."""
    import psycopg

    watched = None
    try:
        with conn.pipeline():
            conn.execute(_BEGIN)
            for i, (sql, args) in enumerate(statements):
                cur = conn.execute(sql, args)
                watched = cur if i == watch else watched
            conn.execute("COMMIT")
    except psycopg.Error as exc:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        exc.cursor = watched  # type: ignore[attr-defined]
        raise
    return watched


async def atransact(conn: Any, statements: Sequence[tuple[str, Any]], watch: int | None = None) -> Any:
    """The async twin of `transact`."""
    import psycopg

    watched = None
    try:
        async with conn.pipeline():
            await conn.execute(_BEGIN)
            for i, (sql, args) in enumerate(statements):
                cur = await conn.execute(sql, args)
                watched = cur if i == watch else watched
            await conn.execute("COMMIT")
    except psycopg.Error as exc:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.execute("ROLLBACK")
        exc.cursor = watched  # type: ignore[attr-defined]
        raise
    return watched


def compare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """`op` in one pipeline on the autocommit `conn` (see the module docstring): the heads found."""
    import psycopg

    try:
        check = transact(conn, [*_guard(op, lock_key), *_statements(ops, op.ops)], watch=1)
    except psycopg.Error as exc:
        refused = _refused(exc.cursor)  # type: ignore[attr-defined]
        if refused is None:
            raise
        return refused  # a head did not hold: nothing was written
    return tuple(check.fetchone()[1:])


async def acompare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """The async twin of `compare_and_set`."""
    import psycopg

    try:
        check = await atransact(conn, [*_guard(op, lock_key), *_statements(ops, op.ops)], watch=1)
    except psycopg.Error as exc:
        cursor = exc.cursor  # type: ignore[attr-defined]
        row = await cursor.fetchone() if cursor is not None and cursor.pgresult is not None else None
        if row is None or row[0] != "0":
            raise
        return tuple(row[1:])
    return tuple((await check.fetchone())[1:])


def write_all(conn: Any, ops: OpSteps, writes: Sequence[Op]) -> list[Any]:
    """Blind writes of one statement each as one transaction in one round trip."""
    transact(conn, _statements(ops, writes))
    return [None] * len(writes)


async def awrite_all(conn: Any, ops: OpSteps, writes: Sequence[Op]) -> list[Any]:
    await atransact(conn, _statements(ops, writes))
    return [None] * len(writes)
