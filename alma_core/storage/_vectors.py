"""In-memory vector matrices for exact cosine search, one per (project, agent, type).

Each matrix remembers the store generation it reflects. The owning store applies its own commits to
the matrix in place (append, overwrite, tombstone) and reloads it when another process has written.

A search is one matrix-vector product, which is memory-bound: it runs with one BLAS thread
(`alma_core/_blas.py` says why). At 100k rows that product reads 154 MB per query, so a matrix of at
least `APPROX_MIN_ROWS` rows that keeps serving searches gets an HNSW index (usearch, int8 vectors) when
usearch is installed: the index proposes candidates, the float32 rows rescore them, so scores stay exact
cosines and only recall is approximate (benchmarks/bench_vectors.py measures it against exact search).
Below the threshold, without usearch, or for a filter that keeps few rows, search stays exact.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._blas import single_blas_thread

APPROX_MIN_ROWS = 20_000  # rows eligible for a search (valid and in its filter) before the index is used
APPROX_AFTER_SEARCHES = 8  # a matrix builds its index once it served this many searches without a reload
APPROX_FETCH = 12  # candidates the index proposes per wanted hit (all rescored exactly); at least 128
APPROX_MIN_RECALL = 0.95  # the built index is kept only if it finds this much of the exact top 10 (sampled)
BUILDING = "building"

log = logging.getLogger("alma_core.storage")

# Index builds run on daemon threads inside usearch's C++ code: at interpreter exit they are asked to
# stop (their progress callback says so) and joined, instead of being killed mid-build (an abort).
_STOPPING = threading.Event()
_BUILDERS: set[threading.Thread] = set()


def _going_on(processed: int, total: int) -> bool:
    return not _STOPPING.is_set()


_going_on.__annotations__ = {"processed": int, "total": int, "return": bool}  # usearch checks the types


@atexit.register
def _stop_builds() -> None:
    _STOPPING.set()
    for thread in list(_BUILDERS):
        thread.join(timeout=30)


class AnnIndex:
    """usearch HNSW over a matrix's row positions (int8: a quarter of the float32 bytes)."""

    def __init__(self, vectors: np.ndarray) -> None:
        from usearch.index import Index

        self._lock = threading.Lock()
        self.index = Index(ndim=vectors.shape[1], metric="ip", dtype="i8", connectivity=16, expansion_add=128,
                           expansion_search=128)  # fmt: skip
        try:
            self.index.add(np.arange(len(vectors)), vectors, threads=1, progress=_going_on)
        except RuntimeError as exc:  # "Operation has been terminated": our callback stopped it
            raise InterruptedError("interpreter exit") from exc
        if _STOPPING.is_set():
            raise InterruptedError("interpreter exit")

    @classmethod
    def build(cls, vectors: np.ndarray, min_recall: float = 0.0) -> AnnIndex | None:
        """The index of `vectors`; None when usearch is not installed (`pip install 'alma-core[ann]'`) or when
        the index finds less than `min_recall` of the exact top 10 for sample queries (data with no
        neighbourhood structure, such as random vectors, where exact search is the only right answer)."""
        try:
            index = cls(vectors)
        except (ImportError, InterruptedError):
            return None
        return index if min_recall <= 0 or index.recall(vectors) >= min_recall else None

    def recall(self, vectors: np.ndarray, samples: int = 24, k: int = 10) -> float:
        """Mean recall@k against exact search, for queries near stored rows (a row plus a little noise: what
        a query about something remembered looks like; midpoints between unrelated rows understate it)."""
        rng = np.random.default_rng(len(vectors))
        queries = vectors[rng.integers(0, len(vectors), samples)] + rng.normal(0, 0.05, (samples, vectors.shape[1]))
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        found = 0
        for query in queries:
            exact = set(np.argpartition(-(vectors @ query), k)[:k].tolist())
            rows = self.candidates(query, max(128, k * APPROX_FETCH))
            rows = rows[(rows >= 0) & (rows < len(vectors))]
            best = rows[np.argsort(-(vectors[rows] @ query))[:k]]
            found += len(exact & set(best.tolist()))
        return found / (samples * k)

    def put(self, pos: int, vector: np.ndarray) -> None:
        with self._lock:
            if self.index.contains(pos):
                self.index.remove(pos)
            self.index.add(pos, vector)

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        with self._lock:
            return np.asarray(self.index.search(query, count, threads=1).keys, dtype=np.int64)


@dataclass
class VectorRow:
    id: str
    vector: np.ndarray
    user_id: str | None
    workflow_id: str | None
    category: str | None


@dataclass
class VectorMatrix:
    """Rows of unit vectors with the few columns dense search filters on."""

    dim: int
    generation: int = -1
    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    valid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    user_ids: list[str | None] = field(default_factory=list)
    workflow_ids: list[str | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    searches: int = 0
    ann: Any = None  # None, BUILDING, an AnnIndex, or False (no usearch, or data where it would miss)
    _dirty: set[int] = field(default_factory=set)  # rows written while the index was building
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.matrix.shape[1] != self.dim:
            self.matrix = np.zeros((16, self.dim), dtype=np.float32)
            self.valid = np.zeros(16, dtype=bool)

    @property
    def size(self) -> int:
        return len(self.ids)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, bytes, str | None, str | None, str | None]], capacity: int, generation: int
    ) -> VectorMatrix | None:
        """The matrix of rows (id, float32 blob, user id, workflow id, category) read one at a time into
        one array of `capacity` rows (at least the row count): a load holds the vectors once, not as
        bytes, then joined bytes, then an array. Rows whose size differs from the first's are skipped.
        None when there are no rows."""
        matrix: VectorMatrix | None = None
        n = 0
        for memory_id, blob, user_id, workflow_id, category in rows:
            if matrix is None:
                dim = len(blob) // 4
                matrix = cls(dim=dim, generation=generation, matrix=np.empty((max(capacity, 16), dim), np.float32),
                             valid=np.zeros(max(capacity, 16), dtype=bool))  # fmt: skip
            if len(blob) != matrix.dim * 4:
                continue
            if n == len(matrix.matrix):  # more rows than counted (a concurrent write): grow
                matrix.matrix = np.vstack([matrix.matrix, np.empty_like(matrix.matrix)])
                matrix.valid = np.concatenate([matrix.valid, np.zeros(len(matrix.valid), dtype=bool)])
            matrix.matrix[n] = np.frombuffer(blob, dtype=np.float32)
            matrix.ids.append(memory_id)
            matrix.user_ids.append(user_id)
            matrix.workflow_ids.append(workflow_id)
            matrix.categories.append(category)
            n += 1
        if matrix is None:
            return None
        matrix.valid[:n] = True
        matrix.index = {memory_id: i for i, memory_id in enumerate(matrix.ids)}
        return matrix

    def upsert(self, row: VectorRow) -> None:
        pos = self.index.get(row.id)
        if pos is None:
            pos = len(self.ids)
            if pos >= self.matrix.shape[0]:
                grow = max(16, self.matrix.shape[0])
                self.matrix = np.vstack([self.matrix, np.zeros((grow, self.dim), dtype=np.float32)])
                self.valid = np.concatenate([self.valid, np.zeros(grow, dtype=bool)])
            self.ids.append(row.id)
            self.user_ids.append(row.user_id)
            self.workflow_ids.append(row.workflow_id)
            self.categories.append(row.category)
            self.index[row.id] = pos
        else:
            self.user_ids[pos], self.workflow_ids[pos] = row.user_id, row.workflow_id
            self.categories[pos] = row.category
        self.matrix[pos] = row.vector
        self.valid[pos] = True
        with self._lock:
            if self.ann is BUILDING:
                self._dirty.add(pos)
            elif self.ann:
                self.ann.put(pos, self.matrix[pos])

    def remove(self, memory_id: str) -> None:
        pos = self.index.get(memory_id)
        if pos is not None:
            self.valid[pos] = False

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top-k (id, cosine) among valid rows, and among `mask` rows when given."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        keep = self.valid[:n] if mask is None else (self.valid[:n] & mask)
        count = int(keep.sum())
        if count == 0:
            return []
        k = min(k, count)
        ann = self._ann(count)
        if ann is not None and count * 4 >= n:
            hits = self._approximate(ann, query, k, keep, n / count)
            if hits is not None:
                return hits
        if count * 4 < n:  # a filter that keeps few rows: read only those
            rows = np.flatnonzero(keep)
            with single_blas_thread():
                return self._top(rows, self.matrix[rows] @ query, k)
        with single_blas_thread():
            sims = self.matrix[:n] @ query
        sims = np.where(keep, sims, -np.inf)
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.isfinite(sims[top])]
        return self._top(top, sims[top], k)

    def _top(self, rows: np.ndarray, sims: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k best of `rows` (positions) by `sims`, best first; ties keep row order."""
        if len(rows) > k:
            part = np.argpartition(-sims, k - 1)[:k]
            rows, sims = rows[part], sims[part]
        order = np.lexsort((rows, -sims))
        return [(self.ids[rows[i]], float(sims[i])) for i in order]

    def _ann(self, count: int) -> AnnIndex | None:
        """The HNSW index, built on the search that makes this matrix a steady large one."""
        if self.ann is None and count >= APPROX_MIN_ROWS:
            self.searches += 1
            if self.searches >= APPROX_AFTER_SEARCHES:
                with self._lock:
                    # a view, not a copy: rows written while the index builds are put again after it
                    self.ann, snapshot = BUILDING, self.matrix[: len(self.ids)]
                thread = threading.Thread(target=self._build, args=(snapshot,), name="alma-ann", daemon=True)
                _BUILDERS.add(thread)
                thread.start()
        return self.ann if self.ann and self.ann is not BUILDING and count >= APPROX_MIN_ROWS else None

    def _build(self, snapshot: np.ndarray) -> None:
        """Build the index off the search path (searches stay exact meanwhile), then catch up on writes.
        A build that fails (usearch out of memory, ...) is logged and the matrix stays exact: it used to
        stay "building" for good, collecting every later write's row as one to catch up on."""
        try:
            ann = AnnIndex.build(snapshot, APPROX_MIN_RECALL)
        except Exception:
            log.warning("HNSW index build failed for %d rows; searches stay exact", len(snapshot), exc_info=True)
            ann = None
        finally:
            _BUILDERS.discard(threading.current_thread())
        with self._lock:
            if ann is not None:
                for pos in sorted(self._dirty):
                    ann.put(pos, self.matrix[pos])
            self._dirty.clear()
            self.ann = ann or False

    def _approximate(
        self, ann: AnnIndex, query: np.ndarray, k: int, keep: np.ndarray, spread: float
    ) -> list[tuple[str, float]] | None:
        """Candidates from the index, rescored exactly; None when too few pass the filter (search exactly)."""
        rows = ann.candidates(query, int(max(128, k * APPROX_FETCH) * spread))
        rows = rows[(rows >= 0) & (rows < len(keep))]
        rows = rows[keep[rows]]
        if len(rows) < k:
            return None
        with single_blas_thread():
            sims = self.matrix[rows] @ query
        return self._top(rows, sims, k)

    def column_mask(self, column: str, allowed: AbstractSet[str | None]) -> np.ndarray:
        values = getattr(self, column)
        return np.fromiter((v in allowed for v in values), dtype=bool, count=len(values))
