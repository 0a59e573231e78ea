"""The record space on SQLite (`RecordOps`); `SearchRecords`' filter runs in SQL, its vectors come from a
per-prefix matrix cache.

The cache of a (project, items prefix, vectors prefix) holds the items' unit vectors by item rowid
(`_record_vectors`: float32, or int8 codes for large prefixes whose candidates are rescored exactly).
It is valid while both prefixes' `(count, sum of seq)` of sequenced records are unchanged: every put gives
a record a seq greater than any before in its namespace and every delete lowers the count, so any change
moves the pair (read from the `records_seq` index, without touching the rows; items are written
sequenced, unsequenced records such as checkpoints are not in that index). While nothing was committed at
all (`data_version` and the store's own write count unchanged) even that is skipped.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from typing import Any

import numpy as np

from ._base import (
    DeleteRecords,
    GetRecord,
    Linked,
    ListLinked,
    ListNamespaces,
    ListRecords,
    PutRecord,
    PutRecords,
    Record,
    SearchRecords,
    StoreVersion,
)
from ._record_search import filter_sql
from ._record_vectors import RecordVectors, load_record_vectors
from ._sqlite_linked import list_linked, list_sql, ns_where, seq_page
from ._sqlite_schema import UNSEQUENCED_ROWS, UPSERT_RECORD, UPSERT_RECORD_IF_ABSENT, insert_unsequenced
from ._sqlite_tx import TxState
from ._vectors import QUANT_MARGIN

__all__ = ["RecordOps", "RecordVectors", "distinct_namespaces", "search_records"]

_MAX_CHAR = "\U0010ffff"
_COLUMNS = "project_id, namespace, key, value, metadata, seq, created_at, updated_at, expires_at"
_RANGE = "project_id = ? AND namespace >= ? AND namespace < ?"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_MAX_CACHED = 16  # prefixes


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
    scores = items.scores(at, op.vector)
    end = op.offset + op.limit
    want = end + QUANT_MARGIN if items.approximate else end
    top = _ranked(conn, items, at, scores, _best(scores, at, want), op.vector)[op.offset : end]
    return _page(conn, items, at, scores, top.tolist())


def _best(scores: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` best by score, then newest row (ties at the cut keep the newest), unordered."""
    if n >= len(scores):
        return np.arange(len(scores))
    cut = scores[np.argpartition(-scores, n - 1)[n - 1]]
    better = np.flatnonzero(scores > cut)
    tied = np.flatnonzero(scores == cut)
    return np.concatenate([better, tied[np.argsort(-at[tied], kind="stable")][: n - len(better)]])


def _order(scores: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` best by score, then newest row, in that order (a total order: rows are unique)."""
    best = _best(scores, at, n)
    return best[np.lexsort((-at[best], -scores[best]))]


def _ranked(
    conn: sqlite3.Connection, items: RecordVectors, at: np.ndarray, scores: np.ndarray, pool: np.ndarray, vector: Any
) -> np.ndarray:
    """`pool` (indices into `at`) best first, then newest row; int8 estimates in `scores` are first
    replaced by the exact cosines of the pool's items (see `_record_vectors`)."""
    if items.approximate:
        scored = pool[np.isfinite(scores[pool])]
        scores[scored] = items.rescore(conn, at[scored], vector)
    return pool[np.lexsort((-at[pool], -scores[pool]))]


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
    rows read; `seq_page`); else one statement sorts them all."""
    end = op.offset + op.limit
    namespaces = _namespaces(conn, op.project_id, op.namespace)
    if namespaces is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE {_RANGE} AND {_LIVE} AND {where} "
            "ORDER BY seq DESC, namespace, key LIMIT ? OFFSET ?",
            [op.project_id, op.namespace, op.namespace + _MAX_CHAR, now, *args, op.limit, op.offset],
        ).fetchall()
        return [_record(row) for row in rows]
    clause = f"project_id = ? AND namespace = ? AND {_LIVE} AND {where}"
    rows = [
        row
        for ns in namespaces
        for row in conn.execute(*seq_page(_COLUMNS, clause, [op.project_id, ns, now, *args], end))
    ]
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
    without reading every row; a selective filter (few matches among the first rows) runs on all. With
    int8 estimates, `QUANT_MARGIN` more matches are found and rescored exactly."""
    assert op.vector is not None
    at = np.flatnonzero(items.expires > now)
    scores = items.scores(at, op.vector)
    order = _order(scores, at, _CHECK_FIRST)  # indices into `at`: the best-ranked live items, in order
    rowids = items.rowids[at]
    end, start, size = op.offset + op.limit, 0, max(64, 4 * (op.offset + op.limit))
    want = end + QUANT_MARGIN if items.approximate else end
    matched: list[int] = []
    while start < len(at) and len(matched) < want:
        if start >= _CHECK_FIRST:  # the rest at once: the filter's rows, found by rowid
            every = np.fromiter(itertools.chain.from_iterable(
                conn.execute(f"SELECT rowid FROM records WHERE {clause}", args)), dtype=np.int64)  # fmt: skip
            rest = _order(scores, at, len(at))[start:]
            matched.extend(rest[np.isin(rowids[rest], every)].tolist())
            break
        chunk = order[start : start + size]
        keep = set(itertools.chain.from_iterable(conn.execute(
            f"SELECT rowid FROM records WHERE rowid IN ({','.join('?' * len(chunk))}) AND {clause}",
            [*rowids[chunk].tolist(), *args],
        )))  # fmt: skip
        matched.extend(i for i, rowid in zip(chunk.tolist(), rowids[chunk].tolist(), strict=True) if rowid in keep)
        start, size = start + len(chunk), size * 2
    if items.approximate:
        matched = _ranked(conn, items, at, scores, np.array(matched[:want], dtype=np.int64), op.vector).tolist()
    return _page(conn, items, at, scores, matched[op.offset : end])


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
            f"SELECT count(*), total(seq) FROM records WHERE {_RANGE} AND seq > 0",
            [project_id, space, space + _MAX_CHAR],
        ).fetchone()
    )
    if cached is not None and cached.fingerprint == fingerprint:
        cached.unchanged = (version, -1 if writes is None else writes)
        return cached
    cache.pop(key, None)  # the stale copy goes before the load: never two in memory
    del cached
    loaded = load_record_vectors(conn, [project_id, items, items + _MAX_CHAR], prefix, int(fingerprint[0]), fingerprint)
    loaded.unchanged = (version, -1 if writes is None else writes)
    if len(cache) >= _MAX_CACHED:
        cache.pop(next(iter(cache)))
    cache[key] = loaded
    return loaded


def _fetch(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, Record]:
    if not rowids:
        return {}
    rows = conn.execute(f"SELECT rowid, {_COLUMNS} FROM records WHERE rowid IN ({','.join('?' * len(rowids))})", rowids)
    return {row[0]: _record(row[1:]) for row in rows}


def _record(row: tuple[Any, ...]) -> Record:
    project_id, namespace, key, value, metadata, seq, created, updated, expires = row
    return Record(project_id, namespace, key, value, json.loads(metadata), seq, created, updated, expires)


class RecordOps(TxState):
    """The record space's operations (`PutRecord` ... `ListNamespaces`, and `StoreVersion`)."""

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
                   COALESCE((SELECT MAX(seq) FROM records WHERE project_id = ?1 AND namespace = ?2 AND seq > 0), 0),
                   COALESCE((SELECT seq FROM record_seq WHERE project_id = ?1 AND namespace = ?2), 0)),
                   ?4, ?5, ?6, ?7, ?8 WHERE true
               ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq=excluded.seq,
                   value=excluded.value, metadata=excluded.metadata, updated_at=excluded.updated_at,
                   expires_at=excluded.expires_at
               RETURNING seq, created_at""",
            (r.project_id, r.namespace, r.key, r.value, _json(r.metadata),
             created, r.updated_at or now, r.expires_at),
        ).fetchone()  # fmt: skip
        return Record(r.project_id, r.namespace, r.key, r.value, r.metadata, seq, created, r.updated_at or now,
                      r.expires_at)  # fmt: skip

    def put_records(self, op: PutRecords) -> None:
        """Sequenced: one `executemany` of one cached statement. Unsequenced: one statement for all the
        rows (so alone it is atomic without BEGIN / COMMIT, see `SQLiteStorage.batch`). Nothing read back."""
        now = time.time()
        if op.sequenced:
            rows = [(r.project_id, r.namespace, r.key, r.value, _json(r.metadata), r.created_at or now,
                     r.updated_at or now, r.expires_at, now) for r in op.records]  # fmt: skip
            self.conn.executemany(UPSERT_RECORD_IF_ABSENT if op.if_absent else UPSERT_RECORD, rows)
            return
        for start in range(0, len(op.records), UNSEQUENCED_ROWS):
            chunk = op.records[start : start + UNSEQUENCED_ROWS]
            args: list[Any] = [now]
            for r in chunk:
                args += (r.project_id, r.namespace, r.key, r.value, _json(r.metadata), r.created_at or now,
                         r.updated_at or now, r.expires_at)  # fmt: skip
            self.conn.execute(insert_unsequenced(len(chunk), op.if_absent), args)

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

    def delete_records(self, op: DeleteRecords) -> int:
        clauses, args = ns_where(op.project_id, op.namespace, op.prefix)
        if op.keys is not None:
            if not op.keys:
                return 0
            clauses.append(f"key IN ({','.join('?' * len(op.keys))})")
            args.extend(op.keys)
        where = " AND ".join(clauses)
        # keep each namespace's highest seq, so a later put never reuses the seq of a deleted record
        # (unsequenced records, seq 0, leave nothing to keep)
        self.conn.execute(
            f"""INSERT INTO record_seq (project_id, namespace, seq)
                SELECT project_id, namespace, MAX(seq) FROM records WHERE {where} AND seq > 0
                GROUP BY project_id, namespace
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
        connection commits, the second when this one does (at this transaction's commit: + 1; a read
        transaction: the same twice). None on a connection passed in: SQL run on it outside the store's
        transactions would not be seen."""
        if not self.store._owns_conn:
            return None
        (changes,) = self.conn.execute("PRAGMA data_version").fetchone()
        writes = self.store._doc_counts.writes
        return (changes, writes), (changes, writes + 1 if self.write else writes)

    def list_linked(self, op: ListLinked) -> Linked:
        return list_linked(self.conn, op, self.list_records)

    def list_namespaces(self, op: ListNamespaces) -> list[str]:
        return distinct_namespaces(self.conn, op.project_id, op.prefix, op.limit, op.offset)


_json = json.JSONEncoder(separators=(",", ":"), default=str).encode  # one encoder, not one per record
