"""`SearchRecords` on SQLite: the filter runs in SQL; vectors come from a per-prefix matrix cache.

The cache of a (project, items prefix, vectors prefix) holds the items' unit vectors by item rowid.
It is valid while both prefixes' `(count, sum of seq)` are unchanged: every put gives a record a seq
greater than any before in its namespace and every delete lowers the count, so any change moves the
pair (read from the `records_seq` index, without touching the rows). While nothing was committed at
all (`data_version` and the store's own write count unchanged) even that is skipped.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._base import Record, SearchRecords
from ._record_search import filter_sql

__all__ = ["RecordVectors", "search_records"]

_MAX_CHAR = "\U0010ffff"
_COLUMNS = "project_id, namespace, key, value, metadata, seq, created_at, updated_at, expires_at"
_RANGE = "project_id = ? AND namespace >= ? AND namespace < ?"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_MAX_CACHED = 16  # prefixes


@dataclass
class RecordVectors:
    """One prefix's items by rowid (sorted): expiry (inf: never), whether each has a vector, and the
    unit vectors (zero rows for items without one)."""

    fingerprint: tuple[float, ...]
    rowids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    expires: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    has: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    unchanged: tuple[int, int] = (-1, -1)  # (data_version, this connection's writes) when last checked


def search_records(
    conn: sqlite3.Connection, cache: dict[tuple[str, str, str], RecordVectors], op: SearchRecords, writes: int | None
) -> list[tuple[Record, float | None]]:
    """`writes`: the store's count of its own committed write transactions (with SQLite's
    `data_version`, which moves on other connections' commits, it says nothing changed); None inside
    a write transaction, whose own writes it does not count."""
    span = [op.project_id, op.namespace, op.namespace + _MAX_CHAR]
    where, args = filter_sql(op.filter, "CAST(value AS TEXT)")
    clause = f"{_RANGE} AND {_LIVE} AND {where}"
    now = time.time()
    if op.vector is None or op.vectors is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE {clause} ORDER BY seq DESC, namespace, key LIMIT ? OFFSET ?",
            [*span, now, *args, op.limit, op.offset],
        ).fetchall()
        return [(_record(row), None) for row in rows]
    items = _items(conn, cache, op.project_id, op.namespace, op.vectors, writes)
    if op.filter:  # the filter runs in SQL; its rows are found in the cache by rowid
        found = conn.execute(f"SELECT rowid FROM records WHERE {clause}", [*span, now, *args]).fetchall()
        wanted = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=len(found))
        at = np.searchsorted(items.rowids, wanted)
        at = at[(at < len(items.rowids)) & (items.rowids[np.minimum(at, len(items.rowids) - 1)] == wanted)]
    else:  # every live item, without reading a row
        at = np.flatnonzero(items.expires > now)
    if not len(at):
        return []
    scored = items.has[at] & (items.matrix.shape[1] == len(op.vector))
    scores = np.full(len(at), -np.inf, dtype=np.float32)
    if scored.any():  # every row at once (no copy of the matrix), then the candidates' scores
        query = np.asarray(op.vector, dtype=np.float32)
        every = items.matrix @ (query / (float(np.linalg.norm(query)) or 1.0))
        scores[scored] = every[at[scored]]
    end = op.offset + op.limit
    top = np.argpartition(-scores, end - 1)[:end] if end < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((-at[top], -scores[top]))][op.offset : end]  # best first, then newest row
    records = _fetch(conn, [int(items.rowids[at[i]]) for i in top])
    return [(records[rowid], float(scores[i]) if scored[i] else None)
            for i in top if (rowid := int(items.rowids[at[i]])) in records]  # fmt: skip


def _items(
    conn: sqlite3.Connection,
    cache: dict[tuple[str, str, str], RecordVectors],
    project_id: str,
    items: str,
    prefix: str,
    writes: int | None,
) -> RecordVectors:
    """The items under `items` with their vectors (each the record of its key under `prefix`)."""
    key = (project_id, items, prefix)
    cached = cache.get(key)
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    if writes is not None and cached is not None and cached.unchanged == (version, writes):  # nothing committed
        return cached
    fingerprint = tuple(
        value
        for space in (items, prefix)
        for value in conn.execute(
            f"SELECT count(*), total(seq) FROM records WHERE {_RANGE}", [project_id, space, space + _MAX_CHAR]
        ).fetchone()
    )
    if cached is not None and cached.fingerprint == fingerprint:
        cached.unchanged = (version, -1 if writes is None else writes)
        return cached
    rows = conn.execute(
        """SELECT r.rowid, r.expires_at, v.value FROM records AS r LEFT JOIN records AS v
               ON v.project_id = r.project_id AND v.namespace = ? || substr(r.namespace, ?) AND v.key = r.key
            WHERE r.project_id = ? AND r.namespace >= ? AND r.namespace < ? ORDER BY r.rowid""",
        [prefix, len(items) + 1, project_id, items, items + _MAX_CHAR],
    ).fetchall()
    dim = next((len(row[2]) // 4 for row in rows if row[2]), 0)
    has = np.array([row[2] is not None and len(row[2]) == dim * 4 for row in rows], dtype=bool)
    zero = bytes(dim * 4)
    blob = b"".join(row[2] if ok else zero for row, ok in zip(rows, has, strict=True))
    matrix = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim).copy()
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1.0, norms)
    expires = np.array([np.inf if row[1] is None else row[1] for row in rows], dtype=np.float64)
    if len(cache) >= _MAX_CACHED:
        cache.pop(next(iter(cache)))
    rowids = np.array([row[0] for row in rows], dtype=np.int64)
    cache[key] = RecordVectors(fingerprint, rowids, expires, has, matrix, (version, -1 if writes is None else writes))
    return cache[key]


def _fetch(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, Record]:
    if not rowids:
        return {}
    rows = conn.execute(f"SELECT rowid, {_COLUMNS} FROM records WHERE rowid IN ({','.join('?' * len(rowids))})", rowids)
    return {row[0]: _record(row[1:]) for row in rows}


def _record(row: tuple[Any, ...]) -> Record:
    project_id, namespace, key, value, metadata, seq, created, updated, expires = row
    return Record(project_id, namespace, key, value, json.loads(metadata), seq, created, updated, expires)
