"""The vectors `SearchRecords` ranks by on SQLite (LangGraph's `AlmaStore.search`), cached per prefix.

A prefix's items are held by rowid with their expiry and, for those with a vector (the float32 record
of the same key under the vectors prefix), its unit vector: as float32 rows below `_vectors.QUANT_MIN_ROWS`
items, as int8 codes (`_quantised.Int8Rows`: a quarter of the memory and of the bytes a scan reads) from
there, like the memory side's matrices. Codes give estimates: `rescore` reads the candidates' stored
vectors back by rowid and scores them exactly, so returned scores are exact cosines and only which
candidates are rescored is approximate (`QUANT_MARGIN` beyond the page). A load streams the rows a
batch at a time, so it never holds the prefix's vectors as bytes, joined bytes and an array at once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

from .._blas import single_blas_thread
from . import _vectors
from ._quantised import Int8Rows

__all__ = ["RecordVectors", "load_record_vectors"]

_LOAD_BATCH = 4096  # rows converted at once by a load


@dataclass
class RecordVectors:
    """One prefix's items by rowid (sorted): expiry (inf: never), whether each has a vector, the rowid
    of that vector's record, and the unit vectors: float32 rows (`matrix`) or int8 `codes`."""

    fingerprint: tuple[float, ...]
    rowids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    expires: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    has: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    unchanged: tuple[int, int] = (-1, -1)  # (data_version, this connection's writes) when last checked
    codes: Int8Rows | None = None  # set (and `matrix` empty) from `_vectors.QUANT_MIN_ROWS` items
    vector_rowids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def dim(self) -> int:
        return self.matrix.shape[1] if self.codes is None else self.codes.codes.shape[1]

    @property
    def approximate(self) -> bool:
        """Whether `scores` gives estimates (int8 codes), which `rescore` makes exact."""
        return self.codes is not None

    def scores(self, at: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Similarity of the items at positions `at` to `vector` (-inf: no vector of that size): exact
        cosines, or int8 estimates (in the order of the cosines, not their scale) when `approximate`."""
        scores = np.full(len(at), -np.inf, dtype=np.float32)
        scored = self.has[at] & (self.dim == len(vector))
        if scored.any():
            query = _unit(vector)
            if self.codes is not None:
                every = self.codes.scores(query, len(self.rowids))
            else:
                with single_blas_thread():  # memory-bound: see `_vectors`
                    every = self.matrix @ query
            scores[scored] = every[at[scored]]
        return scores

    def rescore(self, conn: sqlite3.Connection, positions: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Exact cosines of the items at `positions` (all with a vector) to `vector`, from their stored vectors."""
        wanted = self.vector_rowids[positions].tolist()
        if not wanted:
            return np.zeros(0, dtype=np.float32)
        blobs = dict(conn.execute(f"SELECT rowid, value FROM records WHERE rowid IN ({','.join('?' * len(wanted))})",
                                  wanted).fetchall())  # fmt: skip
        rows = np.frombuffer(b"".join(blobs[r] for r in wanted), dtype=np.float32).reshape(len(wanted), self.dim)
        with single_blas_thread():
            return _normalised(rows.copy()) @ _unit(vector)  # type: ignore[no-any-return]


def _unit(vector: np.ndarray) -> np.ndarray:
    query = np.asarray(vector, dtype=np.float32)
    return query / (float(np.linalg.norm(query)) or 1.0)  # type: ignore[no-any-return]


def _normalised(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows /= np.where(norms == 0, 1.0, norms)
    return rows


def load_record_vectors(
    conn: sqlite3.Connection, span: list[str], prefix: str, count: int, fingerprint: tuple[float, ...]
) -> RecordVectors:
    """The items of `span` (project id, items prefix, its end) with their vectors under `prefix`, read a
    batch at a time. `count`, the items' count, sizes the arrays (they grow if a writer added more)."""
    cursor = conn.execute(
        """SELECT r.rowid, r.expires_at, v.rowid, v.value FROM records AS r LEFT JOIN records AS v
               ON v.project_id = r.project_id AND v.namespace = ? || substr(r.namespace, ?) AND v.key = r.key
            WHERE r.project_id = ? AND r.namespace >= ? AND r.namespace < ? ORDER BY r.rowid""",
        [prefix, len(span[1]) + 1, *span],
    )
    out = RecordVectors(fingerprint)
    out.matrix = np.zeros((0, 0), np.float32)
    n, dim, quantised = 0, 0, count >= _vectors.QUANT_MIN_ROWS
    while batch := cursor.fetchmany(_LOAD_BATCH):
        if not dim and (dim := next((len(row[3]) // 4 for row in batch if row[3]), 0)):
            out.codes = Int8Rows(dim, len(out.rowids)) if quantised else None
            out.matrix = np.zeros((0 if quantised else len(out.rowids), dim), np.float32)
        end = n + len(batch)
        if end > len(out.rowids):
            _grow(out, max(count, 2 * end))
        ok = [bool(dim) and row[3] is not None and len(row[3]) == dim * 4 for row in batch]
        out.rowids[n:end] = [row[0] for row in batch]
        out.expires[n:end] = [np.inf if row[1] is None else row[1] for row in batch]
        out.has[n:end] = ok
        out.vector_rowids[n:end] = [row[2] if good else -1 for row, good in zip(batch, ok, strict=True)]
        if dim:
            zero = bytes(dim * 4)
            blob = b"".join(row[3] if good else zero for row, good in zip(batch, ok, strict=True))
            rows = _normalised(np.frombuffer(blob, dtype=np.float32).reshape(len(batch), dim).copy())
            if out.codes is not None:
                out.codes.set(n, rows)
            else:
                out.matrix[n:end] = rows
        n = end
    _grow(out, n)  # to the rows read
    return out


def _grow(out: RecordVectors, size: int) -> None:
    """Resize `out`'s per-item arrays to `size` rows (new rows: no vector, never expiring)."""
    old = len(out.rowids)
    out.rowids = np.concatenate([out.rowids[:size], np.zeros(max(0, size - old), np.int64)])
    out.expires = np.concatenate([out.expires[:size], np.full(max(0, size - old), np.inf)])
    out.has = np.concatenate([out.has[:size], np.zeros(max(0, size - old), bool)])
    out.vector_rowids = np.concatenate([out.vector_rowids[:size], np.full(max(0, size - old), -1, np.int64)])
    if out.codes is not None:
        if size > out.codes.capacity:
            out.codes.grow(size)
        else:
            out.codes.codes, out.codes.scales = out.codes.codes[:size], out.codes.scales[:size]
    else:
        dim = out.matrix.shape[1]
        out.matrix = np.concatenate([out.matrix[:size], np.zeros((max(0, size - old), dim), np.float32)])
