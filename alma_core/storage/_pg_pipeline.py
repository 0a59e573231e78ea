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

import contextlib
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
    """The lock, the check, the abort test: the statements before a `WriteIf`'s writes."""
    sql, args, _ = check_step(op)
    return [("SELECT pg_advisory_xact_lock(%s)", (lock_key,)), (sql, args), (_ABORT, None)]


def transact(conn: Any, statements: Sequence[tuple[str, Any]], cursors: list[Any] | None = None) -> None:
    """Run `statements` as one transaction in one pipeline on the autocommit `conn`; `cursors` gets the
    cursor of each statement sent (to read a result, or what ran before an error). On an error the
    transaction is rolled back (unless the connection broke) and the error raised."""
    import psycopg

    sent = [] if cursors is None else cursors
    try:
        with conn.pipeline():
            conn.execute(_BEGIN)
            for sql, args in statements:
                sent.append(conn.execute(sql, args))
            conn.execute("COMMIT")
    except psycopg.Error:
        if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):  # (a connection that cannot roll back is broken)
                conn.execute("ROLLBACK")
        raise


async def atransact(conn: Any, statements: Sequence[tuple[str, Any]], cursors: list[Any] | None = None) -> None:
    """The async twin of `transact`."""
    import psycopg

    sent = [] if cursors is None else cursors
    try:
        async with conn.pipeline():
            await conn.execute(_BEGIN)
            for sql, args in statements:
                sent.append(await conn.execute(sql, args))
            await conn.execute("COMMIT")
    except psycopg.Error:
        if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


def _check(cursors: list[Any]) -> Any:
    """The check's cursor, if its result came back (see `_guard`: it is the second statement)."""
    cursor = cursors[1] if len(cursors) > 1 else None
    return cursor if cursor is not None and cursor.pgresult is not None else None


def compare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """`op` in one pipeline on the autocommit `conn` (see the module docstring): the heads found."""
    import psycopg

    cursors: list[Any] = []
    try:
        transact(conn, [*_guard(op, lock_key), *_statements(ops, op.ops)], cursors)
    except psycopg.Error:
        check = _check(cursors)
        row = check.fetchone() if check is not None else None
        if row is None or row[0] != "0":
            raise
        return tuple(row[1:])  # a head did not hold: nothing was written
    return tuple(cursors[1].fetchone()[1:])


async def acompare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """The async twin of `compare_and_set`."""
    import psycopg

    cursors: list[Any] = []
    try:
        await atransact(conn, [*_guard(op, lock_key), *_statements(ops, op.ops)], cursors)
    except psycopg.Error:
        check = _check(cursors)
        row = await check.fetchone() if check is not None else None
        if row is None or row[0] != "0":
            raise
        return tuple(row[1:])
    return tuple((await cursors[1].fetchone())[1:])


def write_all(conn: Any, ops: OpSteps, writes: Sequence[Op]) -> list[Any]:
    """Blind writes of one statement each as one transaction in one round trip."""
    transact(conn, _statements(ops, writes))
    return [None] * len(writes)


async def awrite_all(conn: Any, ops: OpSteps, writes: Sequence[Op]) -> list[Any]:
    await atransact(conn, _statements(ops, writes))
    return [None] * len(writes)
