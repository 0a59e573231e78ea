"""Record reads on SQLite: listings as SQL (with their children, `ListWithChildren`) and `SearchRecords`,
whose filter runs in SQL and whose vectors come from a per-prefix matrix cache.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

from .._blas import single_blas_thread
from ._base import ListRecords, ListWithChildren, Record, SearchRecords
from ._record_search import filter_sql

__all__ = ["RecordVectors", "distinct_namespaces", "list_sql", "list_with_children", "ns_where", "search_records"]

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
        return [(record, None) for record in _newest(conn, op, where, args, now)]
    items = _items(conn, cache, op.project_id, op.namespace, op.vectors, writes)
    if op.filter:
        return _ranked_filtered(conn, items, op, clause, [*span, now, *args], now)
    at = np.flatnonzero(items.expires > now)  # every live item, without reading a row
    if not len(at):
        return []
    scores = _scores(items, at, op.vector)
    end = op.offset + op.limit
    top = np.argpartition(-scores, end - 1)[:end] if end < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((-at[top], -scores[top]))][op.offset : end]  # best first, then newest row
    return _page(conn, items, at, scores, top.tolist())


def _page(
    conn: sqlite3.Connection, items: RecordVectors, at: np.ndarray, scores: np.ndarray, page: list[int]
) -> list[tuple[Record, float | None]]:
    """The records of `page` (indices into `at`, the items' positions) with their scores (None: unscored)."""
    records = _fetch(conn, [int(items.rowids[at[i]]) for i in page])
    return [(records[rowid], float(scores[i]) if np.isfinite(scores[i]) else None)
            for i in page if (rowid := int(items.rowids[at[i]])) in records]  # fmt: skip


def _newest(conn: sqlite3.Connection, op: SearchRecords, where: str, args: list[Any], now: float) -> list[Record]:
    """The page of matching records, newest seq first. When the prefix holds few namespaces, each is
    read in its `records_seq` index order and stops at the page's end (a filter is checked only on the
    rows read); else one statement sorts them all."""
    end = op.offset + op.limit
    namespaces = _namespaces(conn, op.project_id, op.namespace)
    if namespaces is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE {_RANGE} AND {_LIVE} AND {where} "
            "ORDER BY seq DESC, namespace, key LIMIT ? OFFSET ?",
            [op.project_id, op.namespace, op.namespace + _MAX_CHAR, now, *args, op.limit, op.offset],
        ).fetchall()
        return [_record(row) for row in rows]
    sql = (
        f"SELECT {_COLUMNS} FROM records WHERE project_id = ? AND namespace = ? AND {_LIVE} AND {where} "
        "ORDER BY seq DESC LIMIT ?"
    )
    rows = [row for ns in namespaces for row in conn.execute(sql, [op.project_id, ns, now, *args, end])]
    rows.sort(key=lambda row: (-row[5], row[1], row[2]))  # seq DESC, namespace, key
    return [_record(row) for row in rows[op.offset : end]]


def distinct_namespaces(
    conn: sqlite3.Connection, project_id: str, prefix: str, limit: int | None = None, offset: int = 0
) -> list[str]:
    """The namespaces under `prefix`, sorted: one index seek per namespace (a skip scan), so a prefix
    with few namespaces and many records (a long LangGraph thread) costs a few seeks, not a scan."""
    end = -1 if limit is None else offset + limit
    rows = conn.execute(
        """WITH RECURSIVE ns(name) AS (
               SELECT MIN(namespace) FROM records WHERE project_id = ?1 AND namespace >= ?2 AND namespace < ?3
               UNION ALL
               SELECT (SELECT MIN(namespace) FROM records WHERE project_id = ?1 AND namespace > ns.name
                       AND namespace < ?3) FROM ns WHERE ns.name IS NOT NULL LIMIT ?4)
           SELECT name FROM ns WHERE name IS NOT NULL LIMIT -1 OFFSET ?5""",
        (project_id, prefix, prefix + _MAX_CHAR, end, offset),
    ).fetchall()
    return [row[0] for row in rows]


def _namespaces(conn: sqlite3.Connection, project_id: str, prefix: str, most: int = 16) -> list[str] | None:
    """The namespaces under `prefix`, or None when there are more than `most`."""
    found = distinct_namespaces(conn, project_id, prefix, most + 1)
    return None if len(found) > most else found


_CHECK_FIRST = 4096  # best-ranked rows whose filter is checked row by row before filtering them all


def _ranked_filtered(
    conn: sqlite3.Connection, items: RecordVectors, op: SearchRecords, clause: str, args: list[Any], now: float
) -> list[tuple[Record, float | None]]:
    """The page of live items matching the filter, by similarity (then newest row; unscored last). The
    filter is checked in SQL on the best-ranked rows first, in growing batches, so a page is found
    without reading every row; a selective filter (few matches among the first rows) runs on all."""
    assert op.vector is not None
    at = np.flatnonzero(items.expires > now)
    scores = _scores(items, at, op.vector)
    order = np.lexsort((-at, -scores)).tolist()  # indices into `at`: the ranking of every live item
    rowids = items.rowids[at].tolist()
    end, start, size = op.offset + op.limit, 0, max(64, 4 * (op.offset + op.limit))
    matched: list[int] = []
    while start < len(order) and len(matched) < end:
        if start >= _CHECK_FIRST:  # the rest at once: the filter's rows, found by rowid
            keep = set(itertools.chain.from_iterable(conn.execute(f"SELECT rowid FROM records WHERE {clause}", args)))
            matched.extend(i for i in order[start:] if rowids[i] in keep)
            break
        chunk = order[start : start + size]
        keep = set(itertools.chain.from_iterable(conn.execute(
            f"SELECT rowid FROM records WHERE rowid IN ({','.join('?' * len(chunk))}) AND {clause}",
            [*(rowids[i] for i in chunk), *args],
        )))  # fmt: skip
        matched.extend(i for i in chunk if rowids[i] in keep)
        start, size = start + size, size * 2
    return _page(conn, items, at, scores, matched[op.offset : end])


def _scores(items: RecordVectors, at: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of the items at positions `at` to `vector` (-inf: no vector of that size)."""
    scores = np.full(len(at), -np.inf, dtype=np.float32)
    scored = items.has[at] & (items.matrix.shape[1] == len(vector))
    if scored.any():
        query = np.asarray(vector, dtype=np.float32)
        with single_blas_thread():  # memory-bound: see `_vectors`
            every = items.matrix @ (query / (float(np.linalg.norm(query)) or 1.0))
        scores[scored] = every[at[scored]]
    return scores


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


_RECORD_ORDER = {"seq": "seq", "key": "key"}
_CHILD_COLUMNS = "c.project_id, c.namespace, c.key, c.value, c.metadata, c.seq, c.created_at, c.updated_at, " + (
    "c.expires_at"
)


def _key_of(record: Record) -> str:
    return record.key


def list_sql(op: ListRecords) -> tuple[str, list[Any], dict[str, Any]] | None:
    """`ListRecords` as SQL: (statement, arguments, the `where` entries checked in Python after it);
    None when it matches nothing."""
    if op.namespaces is not None:
        if not op.namespaces:
            return None
        clauses = ["project_id = ?", f"namespace IN ({','.join('?' * len(op.namespaces))})"]
        args: list[Any] = [op.project_id, *op.namespaces]
    else:
        clauses, args = ns_where(op.project_id, op.namespace, op.prefix)
    clauses.append("(expires_at IS NULL OR expires_at > ?)")
    args.append(time.time())
    if op.before_seq is not None:
        clauses.append("seq < ?")
        args.append(op.before_seq)
    if op.before_key is not None:
        clauses.append("key < ?")
        args.append(op.before_key)
    if op.updated_before is not None:
        clauses.append("updated_at < ?")
        args.append(op.updated_before)
    if op.keys is not None:
        if not op.keys:
            return None
        clauses.append(f"key IN ({','.join('?' * len(op.keys))})")
        args.extend(op.keys)
    post_filter: dict[str, Any] = {}
    for key, value in (op.where or {}).items():
        if value is None or isinstance(value, (str, int, float, bool)):
            path = '$."' + str(key).replace('"', '""') + '"'
            if value is None:
                clauses.append("json_type(metadata, ?) = 'null'")
                args.append(path)
            else:
                clauses.append("json_extract(metadata, ?) = ?")
                args.extend([path, value])
        else:
            post_filter[key] = value
    order = "DESC" if op.descending else "ASC"
    value_col = "value" if op.with_values else "NULL"
    sql = (
        f"SELECT project_id, namespace, key, {value_col}, metadata, seq, created_at, updated_at, "
        f"expires_at FROM records WHERE {' AND '.join(clauses)} ORDER BY {_RECORD_ORDER[op.order_by]} {order}"
    )
    if not post_filter:
        sql += " LIMIT ? OFFSET ?"
        args.extend([-1 if op.limit is None else op.limit, op.offset])
    return sql, args, post_filter


def list_with_children(
    conn: sqlite3.Connection, op: ListWithChildren, list_records: Callable[[ListRecords], list[Record]]
) -> list[tuple[Record, list[Record]]]:
    """One statement: the listing as a subquery, its rows' children joined to it (tagged, in order)."""
    listing = list_sql(op.records)
    if listing is None:
        return []
    sql, args, post_filter = listing
    if post_filter:  # (the listing is cut in Python: its children in a second statement)
        parents = list_records(op.records)
        spaces = tuple(op.children + r.key for r in parents)
        kids = list_records(ListRecords(op.records.project_id, "", namespaces=spaces)) if spaces else []
        by_ns: dict[str, list[Record]] = {}
        for c in sorted(kids, key=_key_of):
            by_ns.setdefault(c.namespace, []).append(c)
        return [(r, by_ns.get(op.children + r.key, [])) for r in parents]
    rows = conn.execute(
        f"""WITH p AS ({sql}) SELECT 0, p.* FROM p UNION ALL
            SELECT 1, {_CHILD_COLUMNS} FROM p JOIN records AS c ON c.project_id = p.project_id
              AND c.namespace = ? || p.key AND (c.expires_at IS NULL OR c.expires_at > ?)""",
        [*args, op.children, time.time()],
    ).fetchall()
    column = 3 if op.records.order_by == "key" else 6  # (tag, project_id, namespace, key, value, metadata, seq)
    heads = sorted((row for row in rows if row[0] == 0), key=itemgetter(column), reverse=op.records.descending)
    found: list[tuple[Record, list[Record]]] = [(_record(row[1:]), []) for row in heads]
    at = {op.children + r.key: kids for r, kids in found}
    for row in sorted((row for row in rows if row[0] == 1), key=itemgetter(3)):
        at[row[2]].append(_record(row[1:]))
    return found


def ns_where(project_id: str, namespace: str, prefix: bool) -> tuple[list[str], list[Any]]:
    if prefix:
        return ["project_id = ?", "namespace >= ?", "namespace < ?"], [project_id, namespace, namespace + _MAX_CHAR]
    return ["project_id = ?", "namespace = ?"], [project_id, namespace]
