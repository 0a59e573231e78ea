"""In-memory vectors for cosine search, one matrix per (project, agent, type).

Each matrix remembers the store generation it reflects. The owning store applies its own commits to
the matrix in place (append, overwrite, tombstone) and reloads it when another process has written.

A small matrix holds float32 rows, and a search is one matrix-vector product with one BLAS thread
(`alma_core/_blas.py` says why). A store's matrix of at least `QUANT_MIN_ROWS` rows holds int8 codes
instead (`_quantised.py`: a quarter of the memory and of the bytes a search reads): a scan of the codes
proposes `k + QUANT_MARGIN` candidates, whose float32 vectors are rescored exactly (kept beside the codes
in a matrix of fewer than `EXACT_KEPT_ROWS` rows, else read back from the store: `fetch`), so scores stay
exact cosines and only recall is approximate (1.0 of the exact top 10 on
random and MiniLM vectors: benchmarks/bench_quantised.py). A matrix of at least `APPROX_MIN_ROWS` rows
that keeps serving searches also gets an HNSW index when usearch is installed (extra `ann`), whose
candidates are rescored the same way (benchmarks/bench_vectors.py). A filter that keeps few rows reads
only those rows.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._blas import single_blas_thread
from .._errors import StorageError
from ._quantised import Int8Rows, quantise

QUANT_MIN_ROWS = 8_192  # a store's matrix holds int8 codes (no float32 rows) from this many rows
EXACT_KEPT_ROWS = 32_768  # below this many rows a matrix of codes keeps its float32 rows to rescore with
QUANT_MARGIN = 8  # candidates the int8 scan proposes beyond the k wanted (all rescored exactly; dev-set choice)
APPROX_MIN_ROWS = 131_072  # eligible rows (valid, in the filter) before the index is built and used
APPROX_AFTER_SEARCHES = 8  # a matrix builds its index once it served this many searches without a reload
APPROX_FETCH = 12  # candidates the index proposes per wanted hit (all rescored exactly); at least 128
APPROX_MIN_RECALL = 0.95  # the built index is kept only if it finds this much of the exact top 10 (sampled)
BUILDING = "building"
_LOAD_BATCH = 4096  # rows a quantised load converts at once
_SORTED_IN_PYTHON = 256  # `_top` sorts at most this many candidates in Python

Fetch = Callable[[Sequence[str]], dict[str, bytes]]  # ids -> their float32 vectors as stored

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


def _onnxruntime_first() -> None:
    """Import onnxruntime (when installed) before usearch: `import usearch` loads numkong's library with
    RTLD_GLOBAL, and an onnxruntime imported after it crashes the process (a segfault in its session
    start, usearch 2.26 / onnxruntime 1.32). The local embedder loads onnxruntime lazily, so a process that
    built an index first (a large store searched with another embedder, then `LocalEmbedder`) crashed."""
    if "onnxruntime" not in sys.modules and importlib.util.find_spec("onnxruntime") is not None:
        importlib.import_module("onnxruntime")


def _codes(vectors: np.ndarray) -> np.ndarray:
    """Int8 rows as the index stores them (cosine is blind to each row's scale)."""
    return vectors if vectors.dtype == np.int8 else quantise(vectors)[0]


class AnnIndex:
    """usearch HNSW over a matrix's row positions (int8 codes, cosine: a quarter of the float32 bytes)."""

    def __init__(self, vectors: np.ndarray) -> None:
        _onnxruntime_first()
        from usearch.index import Index

        self._lock = threading.Lock()
        self.index = Index(ndim=vectors.shape[1], metric="cos", dtype="i8", connectivity=16, expansion_add=128,
                           expansion_search=128)  # fmt: skip
        try:
            self.index.add(np.arange(len(vectors)), _codes(vectors), threads=1, progress=_going_on)
        except RuntimeError as exc:  # "Operation has been terminated": our callback stopped it
            raise InterruptedError("interpreter exit") from exc
        if _STOPPING.is_set():
            raise InterruptedError("interpreter exit")

    @classmethod
    def build(cls, matrix: VectorMatrix, n: int, min_recall: float = 0.0) -> AnnIndex | None:
        """The index of the matrix's first `n` rows; None when usearch is not installed (`pip install
        'alma-core[ann]'`) or when the index finds less than `min_recall` of the exhaustive top 10 for sample
        queries (data with no neighbourhood structure, such as random vectors, where a scan is the only right
        answer)."""
        try:
            index = cls(matrix.index_rows(n))
        except (ImportError, InterruptedError):
            return None
        return index if min_recall <= 0 or index.recall(matrix, n) >= min_recall else None

    def recall(self, matrix: VectorMatrix, n: int, samples: int = 24, k: int = 10) -> float:
        """Mean recall@k against the matrix's exhaustive scan, for queries near stored rows (a row plus a
        little noise: what a query about something remembered looks like; midpoints between unrelated rows
        understate it)."""
        rng = np.random.default_rng(n)
        picks = matrix.float_rows(rng.integers(0, n, samples))
        queries = picks + rng.normal(0, 0.05, picks.shape)
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        found = 0
        for query in queries:
            scores = matrix.scan(query, n)
            exact = set(np.argpartition(-scores, k)[:k].tolist())
            rows = self.candidates(query, max(128, k * APPROX_FETCH))
            rows = rows[(rows >= 0) & (rows < n)]
            found += len(exact & set(rows[np.argsort(-scores[rows])[:k]].tolist()))
        return found / (samples * k)

    def put(self, pos: int, vector: np.ndarray) -> None:
        with self._lock:
            if self.index.contains(pos):
                self.index.remove(pos)
            self.index.add(pos, _codes(vector))

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        with self._lock:
            return np.asarray(self.index.search(quantise(query)[0], count, threads=1).keys, dtype=np.int64)


@dataclass
class VectorRow:
    id: str
    vector: np.ndarray
    user_id: str | None
    workflow_id: str | None
    category: str | None


@dataclass
class VectorMatrix:
    """Rows of unit vectors (float32, or int8 codes once `quantise_at` rows) with the few columns dense
    search filters on. A matrix with codes holds no float32 rows: its searches need `fetch`."""

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
    codes: Int8Rows | None = None  # set once the matrix has `quantise_at` rows; `matrix` is then empty
    exact: np.ndarray | None = None  # with codes, under `EXACT_KEPT_ROWS` rows: the float32 rows, to rescore
    quantise_at: int | None = None  # None: float32 rows whatever the size (no `fetch` needed)
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
        cls,
        rows: Iterable[tuple[str, bytes, str | None, str | None, str | None]],
        capacity: int,
        generation: int,
        quantise_at: int | None = None,
    ) -> VectorMatrix | None:
        """The matrix of rows (id, float32 blob, user id, workflow id, category) read one at a time into
        one array of `capacity` rows (at least the row count): a load holds the vectors once, not as
        bytes, then joined bytes, then an array; with `capacity >= quantise_at`, as int8 codes (converted
        a batch at a time). Rows whose size differs from the first's are skipped. None when there are no rows."""
        matrix: VectorMatrix | None = None
        batch: list[bytes] = []
        n = 0
        for memory_id, blob, user_id, workflow_id, category in rows:
            if matrix is None:
                matrix = cls._empty(len(blob) // 4, max(capacity, 16), generation, quantise_at)
            if len(blob) != matrix.dim * 4:
                continue
            if n == len(matrix.valid):  # more rows than counted (a concurrent write): grow
                matrix._grow(len(matrix.valid))
            if matrix.codes is None:
                matrix.matrix[n] = np.frombuffer(blob, dtype=np.float32)
            else:
                batch.append(blob)
                if len(batch) == _LOAD_BATCH:
                    matrix._load_codes(n + 1 - len(batch), batch)
            matrix.ids.append(memory_id)
            matrix.user_ids.append(user_id)
            matrix.workflow_ids.append(workflow_id)
            matrix.categories.append(category)
            n += 1
        if matrix is None:
            return None
        matrix._load_codes(n - len(batch), batch)
        matrix.valid[:n] = True
        matrix.index = {memory_id: i for i, memory_id in enumerate(matrix.ids)}
        return matrix

    @classmethod
    def _empty(cls, dim: int, capacity: int, generation: int, quantise_at: int | None) -> VectorMatrix:
        quantised = quantise_at is not None and capacity >= quantise_at
        kept = quantised and capacity < EXACT_KEPT_ROWS
        return cls(dim=dim, generation=generation, quantise_at=quantise_at,
                   matrix=np.zeros((0, dim), np.float32) if quantised else np.empty((capacity, dim), np.float32),
                   valid=np.zeros(capacity, dtype=bool),
                   codes=Int8Rows(dim, capacity) if quantised else None,
                   exact=np.empty((capacity, dim), np.float32) if kept else None)  # fmt: skip

    def _load_codes(self, start: int, batch: list[bytes]) -> None:
        if batch and self.codes is not None:
            vectors = np.frombuffer(b"".join(batch), dtype=np.float32).reshape(-1, self.dim)
            self.codes.set(start, vectors)
            if self.exact is not None:
                self.exact[start : start + len(vectors)] = vectors
            batch.clear()

    def _grow(self, extra: int) -> None:
        self.valid = np.concatenate([self.valid, np.zeros(extra, dtype=bool)])
        if self.codes is None:
            self.matrix = np.vstack([self.matrix, np.zeros((extra, self.dim), dtype=np.float32)])
        else:
            self.codes.grow(len(self.valid))
            if self.exact is not None:  # (past `EXACT_KEPT_ROWS`, candidates are read back from the store)
                grown = len(self.valid) < EXACT_KEPT_ROWS
                self.exact = np.vstack([self.exact, np.zeros((extra, self.dim), np.float32)]) if grown else None

    def upsert(self, row: VectorRow) -> None:
        pos = self.index.get(row.id)
        if pos is None:
            pos = len(self.ids)
            if pos >= len(self.valid):
                self._grow(max(16, len(self.valid)))
            self.ids.append(row.id)
            self.user_ids.append(row.user_id)
            self.workflow_ids.append(row.workflow_id)
            self.categories.append(row.category)
            self.index[row.id] = pos
        else:
            self.user_ids[pos], self.workflow_ids[pos] = row.user_id, row.workflow_id
            self.categories[pos] = row.category
        if self.codes is None:
            self.matrix[pos] = row.vector
        else:
            self.codes.set(pos, np.asarray(row.vector, dtype=np.float32)[None, :])
            if self.exact is not None:
                self.exact[pos] = row.vector
        self.valid[pos] = True
        if self.codes is None and self.quantise_at is not None and self.size >= self.quantise_at:
            self.codes = Int8Rows.of(self.matrix[: self.size], len(self.valid))
            self.exact = self.matrix if len(self.valid) < EXACT_KEPT_ROWS else None
            self.matrix = np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self.ann is BUILDING:
                self._dirty.add(pos)
            elif self.ann:
                self.ann.put(pos, self.index_rows(pos + 1)[pos])

    def remove(self, memory_id: str) -> None:
        pos = self.index.get(memory_id)
        if pos is not None:
            self.valid[pos] = False

    def index_rows(self, n: int) -> np.ndarray:
        """The first `n` rows as the index takes them (int8 codes or float32; a view, not a copy)."""
        return self.matrix[:n] if self.codes is None else self.codes.codes[:n]

    def float_rows(self, rows: np.ndarray) -> np.ndarray:
        """Float32 rows at `rows` (dequantised codes for a matrix that holds codes)."""
        if self.codes is None:
            return self.matrix[rows]
        return self.codes.codes[rows].astype(np.float32) * self.codes.scales[rows, None]

    def scan(self, query: np.ndarray, n: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Every one of the first `n` rows' score (or of `rows`): exact cosines, or int8 estimates."""
        if self.codes is not None:
            return self.codes.scores(query, n, rows)
        with single_blas_thread():
            return (self.matrix[:n] if rows is None else self.matrix[rows]) @ query

    def search(
        self, query: np.ndarray, k: int, mask: np.ndarray | None = None, fetch: Fetch | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (id, cosine) among valid rows, and among `mask` rows when given. A matrix holding int8
        codes rescores its candidates with the float32 vectors `fetch` returns for their ids."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        keep = self.valid[:n] if mask is None else (self.valid[:n] & mask)
        count = int(np.count_nonzero(keep))
        if count == 0:
            return []
        k = min(k, count)
        ann = self._ann(count)
        if ann is not None and count * 4 >= n:
            found = self._approximate(ann, query, k, keep, n / count)
            if found is not None:
                return self._best(found, self.scan(query, n, found), query, k, fetch)
        rows: np.ndarray | None = None
        if count * 4 < n:  # a filter that keeps few rows: read only those
            rows = np.flatnonzero(keep)
            sims = self.scan(query, n, rows)
        else:
            sims = self.scan(query, n)  # a fresh array
            if count < n:
                sims[~keep] = -np.inf
        wanted = min(len(sims), k if self.codes is None else k + QUANT_MARGIN)
        best = sims.argpartition(len(sims) - wanted)[len(sims) - wanted :]  # no negated copy of sims
        sims = sims[best]
        best = best if rows is None else rows[best]
        finite = np.isfinite(sims)
        return self._best(best[finite], sims[finite], query, k, fetch)

    def _best(
        self, rows: np.ndarray, sims: np.ndarray, query: np.ndarray, k: int, fetch: Fetch | None
    ) -> list[tuple[str, float]]:
        """The k best of `rows` by exact cosine, given `sims` from `scan`: exact already for float32 rows;
        for codes, the `k + QUANT_MARGIN` best estimates are rescored with their float32 rows (`exact`, or
        the vectors `fetch` returns)."""
        if self.codes is None:
            return self._top(rows, sims, k)
        if len(rows) > k + QUANT_MARGIN:
            rows = rows[(-sims).argpartition(k + QUANT_MARGIN - 1)[: k + QUANT_MARGIN]]
        if self.exact is not None:
            rows = rows.astype(np.int64, copy=False)
            with single_blas_thread():
                return self._top(rows, self.exact[rows] @ query, k)
        if fetch is None:
            raise StorageError("a quantised vector matrix needs `fetch` to rescore its candidates")
        blobs = fetch([self.ids[r] for r in rows])
        width = self.dim * 4
        found = [(r, blob) for r in rows.tolist() if len(blob := blobs.get(self.ids[r], b"")) == width]
        if not found:
            return []
        vectors = np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32).reshape(-1, self.dim)
        with single_blas_thread():
            return self._top(np.array([r for r, _ in found], dtype=np.int64), vectors @ query, k)

    def _top(self, rows: np.ndarray, sims: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k best of `rows` (positions) by `sims`, best first; ties keep row order."""
        if len(rows) <= _SORTED_IN_PYTHON and np.isfinite(sims).all():  # (a few dozen: one sort, not ~10 numpy calls)
            ranked = sorted(zip((-sims).tolist(), rows.tolist(), strict=True))
            # the k best are one set unless the k-th ties with the next (argpartition then chooses, as below)
            if len(ranked) <= k or ranked[k - 1][0] != ranked[k][0]:
                ids = self.ids
                return [(ids[at], -negated) for negated, at in ranked[:k]]
        if len(rows) > k:
            part = (-sims).argpartition(k - 1)[:k]
            rows, sims = rows[part], sims[part]
        order = np.lexsort((rows, -sims))
        ids, positions, scores = self.ids, rows[order].tolist(), sims[order].tolist()  # (Python ints and floats)
        return [(ids[at], score) for at, score in zip(positions, scores, strict=True)]

    def _ann(self, count: int) -> AnnIndex | None:
        """The HNSW index, built on the search that makes this matrix a steady large one."""
        if self.ann is None and count >= APPROX_MIN_ROWS:
            self.searches += 1
            if self.searches >= APPROX_AFTER_SEARCHES:
                with self._lock:
                    # rows written while the index builds are put again after it
                    self.ann, size = BUILDING, self.size
                thread = threading.Thread(target=self._build, args=(size,), name="alma-ann", daemon=True)
                _BUILDERS.add(thread)
                thread.start()
        return self.ann if self.ann and self.ann is not BUILDING and count >= APPROX_MIN_ROWS else None

    def _build(self, n: int) -> None:
        """Build the index off the search path (searches stay exhaustive meanwhile), then catch up on writes.
        A build that fails (usearch out of memory, ...) is logged and the matrix stays exhaustive: it used to
        stay "building" for good, collecting every later write's row as one to catch up on."""
        try:
            ann = AnnIndex.build(self, n, APPROX_MIN_RECALL)
        except Exception:
            log.warning("HNSW index build failed for %d rows; searches stay exhaustive", n, exc_info=True)
            ann = None
        finally:
            _BUILDERS.discard(threading.current_thread())
        with self._lock:
            if ann is not None:
                for pos in sorted(self._dirty):
                    ann.put(pos, self.index_rows(pos + 1)[pos])
            self._dirty.clear()
            self.ann = ann or False

    def _approximate(
        self, ann: AnnIndex, query: np.ndarray, k: int, keep: np.ndarray, spread: float
    ) -> np.ndarray | None:
        """Candidate rows from the index that pass the filter; None when fewer than k (search exhaustively)."""
        rows = ann.candidates(query, int(max(128, k * APPROX_FETCH) * spread))
        rows = rows[(rows >= 0) & (rows < len(keep))]
        rows = rows[keep[rows]]
        return rows if len(rows) >= k else None

    def column_mask(self, column: str, allowed: AbstractSet[str | None]) -> np.ndarray:
        values = getattr(self, column)
        return np.fromiter((v in allowed for v in values), dtype=bool, count=len(values))
