"""How every connection of a PostgreSQL store is set up, in as few round trips as possible.

A new connection (a pool growing under concurrent puts, the store's direct connection) gets its search
path and vector index settings in one autocommit statement, and pgvector's types registered from
`TypeInfo`s looked up once per store, all four in one statement (a database's type OIDs never change
under it): one round trip, where pgvector's `register_vector` costs four lookups on every connection,
each in a transaction or savepoint of its own.
`prepare_threshold` is psycopg's: a statement text is prepared on the connection at its next run
after this many (0: at once; None: never).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["HNSW_MAX_SCAN_TUPLES", "Sessions"]

# An iterative HNSW scan stops after this many index tuples: a filter that the query's neighbourhood
# rarely matches (agent A asking about agent B's topics) otherwise walks 20,000 tuples (~200 ms at 100k)
# to return a handful of rows. Filters of at most EXACT_SEARCH_ROWS rows are searched exactly anyway.
HNSW_MAX_SCAN_TUPLES = 2_000
_TYPES = ("vector", "bit", "halfvec", "sparsevec")
# psycopg's `TypeInfo.fetch` query, for the four types at once
_LOOKUP = """SELECT typname, oid, typarray, oid::regtype::text, typdelim FROM pg_type
    WHERE oid = ANY(ARRAY[to_regtype('vector'), to_regtype('bit'), to_regtype('halfvec'), to_regtype('sparsevec')])"""


def _infos(rows: list[Any]) -> list[Any]:
    """The four types' `TypeInfo`s in `_TYPES` order (None: a type this pgvector lacks)."""
    from psycopg.types import TypeInfo

    found = {r[0]: TypeInfo(r[0], r[1], r[2], regtype=r[3], delimiter=r[4]) for r in rows}
    return [found.get(name) for name in _TYPES]


def _register(conn: Any, infos: list[Any]) -> None:
    from pgvector.psycopg.bit import register_bit_info
    from pgvector.psycopg.halfvec import register_halfvec_info
    from pgvector.psycopg.sparsevec import register_sparsevec_info
    from pgvector.psycopg.vector import register_vector_info

    for info, register in zip(
        infos, (register_vector_info, register_bit_info, register_halfvec_info, register_sparsevec_info), strict=True
    ):
        if info is not None:
            register(conn, info)


class Sessions:
    """The session set-up of one store's connections (sync and async)."""

    def __init__(self, schema: str, prepare_threshold: int | None = 5) -> None:
        self.sql = (
            f'SET search_path TO "{schema}", public; SET hnsw.ef_search = 100; '
            f"SET hnsw.iterative_scan = relaxed_order; SET hnsw.max_scan_tuples = {HNSW_MAX_SCAN_TUPLES}; "
            "SET ivfflat.probes = 10; SET ivfflat.iterative_scan = relaxed_order"
        )
        self.prepare_threshold = prepare_threshold
        self._types: list[Any] | None = None  # pgvector's TypeInfos, once looked up
        self._lock = threading.Lock()

    def configure(self, conn: Any) -> None:
        """Set up a sync connection; it is left idle in its own autocommit mode."""
        conn.prepare_threshold = self.prepare_threshold
        autocommit, conn.autocommit = conn.autocommit, True
        try:
            conn.execute(self.sql, prepare=False)  # (several commands: never prepared)
            with self._lock:
                if self._types is None:
                    self._types = _infos(conn.execute(_LOOKUP).fetchall())
            _register(conn, self._types)
        finally:
            conn.autocommit = autocommit

    async def aconfigure(self, conn: Any) -> None:
        """Set up an async connection (see `configure`)."""
        conn.prepare_threshold = self.prepare_threshold
        autocommit = conn.autocommit
        await conn.set_autocommit(True)
        try:
            await conn.execute(self.sql, prepare=False)
            if self._types is None:  # (two connections may both look them up: the same answer)
                self._types = _infos(await (await conn.execute(_LOOKUP)).fetchall())
            _register(conn, self._types)
        finally:
            await conn.set_autocommit(autocommit)
