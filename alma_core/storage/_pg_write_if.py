"""`WriteIf` on PostgreSQL: a compare-and-set of namespace heads in one round trip.

A lone `WriteIf` whose writes are each one statement (`PutRecords`, `DeleteRecords`) is sent as one
pipeline on an autocommit connection, answered after one round trip:

    BEGIN; SELECT pg_advisory_xact_lock(<store>); <check>; <abort unless the check held>; <writes>; COMMIT

The lock is the store's write lock, as every write transaction takes it, so the check's snapshot (a
statement of its own, after the lock: READ COMMITTED) sees every commit before it and nothing can
commit in between. The check returns the heads and records in a transaction-local setting whether they
hold; the next statement divides by that flag, so when a head does not hold it fails, the server skips
the writes and the COMMIT of the pipeline, and the transaction is rolled back. Other `WriteIf`s (writes
of several statements, or inside an open transaction) run as the check, then the writes, in the
transaction (`OpSteps.write_if`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._base import DeleteRecords, PutRecords, WriteIf

if TYPE_CHECKING:
    from ._pg_ops import OpSteps, Step

__all__ = ["acompare_and_set", "check_step", "compare_and_set", "pipelined"]

_FLAG = "alma.write_if"  # the transaction-local setting the check leaves for the abort statement
_ABORT = f"SELECT 1 / current_setting('{_FLAG}')::int"  # division by zero: the writes are skipped
_PIPELINED = (PutRecords, DeleteRecords)  # writes of one statement whose result nothing waits for


def pipelined(op: WriteIf) -> bool:
    """Whether `op` can run as one pipeline (see the module docstring)."""
    return all(type(w) in _PIPELINED for w in op.ops)


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


def _heads(row: Any) -> tuple[str | None, ...]:
    return tuple(row[1:])


def compare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """`op` in one pipeline on `conn` (an autocommit connection, see the module docstring)."""
    import psycopg

    check = None
    try:
        with conn.pipeline():
            conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            sql, args, _ = check_step(op)
            check = conn.execute(sql, args)
            conn.execute(_ABORT)
            for write in op.ops:
                for sql, args, _ in ops.steps(write):
                    conn.execute(sql, args)
            conn.execute("COMMIT")
    except psycopg.Error:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        row = check.fetchone() if check is not None and check.pgresult is not None else None
        if row is not None and row[0] == "0":
            return _heads(row)  # a head did not hold: nothing was written
        raise
    assert check is not None
    return _heads(check.fetchone())


async def acompare_and_set(conn: Any, ops: OpSteps, op: WriteIf, lock_key: int) -> tuple[str | None, ...]:
    """The async twin of `compare_and_set`."""
    import psycopg

    check = None
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            sql, args, _ = check_step(op)
            check = await conn.execute(sql, args)
            await conn.execute(_ABORT)
            for write in op.ops:
                for sql, args, _ in ops.steps(write):
                    await conn.execute(sql, args)
            await conn.execute("COMMIT")
    except psycopg.Error:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.execute("ROLLBACK")
        row = await check.fetchone() if check is not None and check.pgresult is not None else None
        if row is not None and row[0] == "0":
            return _heads(row)
        raise
    assert check is not None
    return _heads(await check.fetchone())
