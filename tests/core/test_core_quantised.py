"""Large scopes of a SQLite store search int8 codes, then rescore the candidates from the stored vectors.

The threshold is lowered so a few thousand rows take the path of stores above `QUANT_MIN_ROWS`; every
answer is checked against brute force over the float32 vectors that were written.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from alma_core import MemoryType, Outcome
from alma_core.storage import (
    DeleteMemories,
    MemoryFilter,
    PutMemories,
    SearchMemories,
    SQLiteStorage,
    _quantised,
    _vectors,
)

P, N, DIM = "proj", 3000, 384
F = MemoryFilter(project_id=P, agents=("a",), types=(MemoryType.OUTCOME,))


def _needs(module: str) -> None:
    """Skip without importing `module` here: `import usearch` loads numkong's library with RTLD_GLOBAL,
    and an onnxruntime imported after it in this process (a later embedder test) would crash (segfault);
    ALMA itself imports onnxruntime before usearch (`_vectors._onnxruntime_first`)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _data(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, queries): random unit vectors and random queries, or points around 60 topic centres and
    queries near stored points (what embeddings of remembered things look like)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return _unit(rng.normal(size=(N, DIM))), _unit(rng.normal(size=(40, DIM)))
    centres = rng.normal(size=(60, DIM))
    rows = _unit(centres[rng.integers(0, 60, N)] + 0.5 * rng.normal(size=(N, DIM)))
    return rows, _unit(rows[rng.integers(0, N, 40)] + 0.5 * rng.normal(size=(40, DIM)) / np.sqrt(DIM))


def _outcome(i: int, vector: np.ndarray, agent: str = "a") -> Outcome:
    memory = Outcome(project_id=P, id=f"m{i}", agent=agent, task=f"task {i}", success=True, strategy_used="s",
                     metadata={"user_id": f"u{i % 10}"})  # fmt: skip
    memory.embedding = vector
    return memory


@pytest.fixture(params=["kept", "read back"])
def quantised(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Codes from 1,000 rows; candidates rescored with the float32 rows kept beside them (below
    `EXACT_KEPT_ROWS`) or read back from the store (above it)."""
    monkeypatch.setattr(_vectors, "QUANT_MIN_ROWS", 1000)
    if request.param == "read back":
        monkeypatch.setattr(_vectors, "EXACT_KEPT_ROWS", 0)
    return str(request.param)


@pytest.fixture
def store(tmp_path: Path, quantised: str) -> Iterator[SQLiteStorage]:
    with SQLiteStorage(tmp_path / "q.db") as s:
        yield s


def _fill(store: SQLiteStorage, rows: np.ndarray) -> None:
    store.execute(PutMemories([_outcome(i, v) for i, v in enumerate(rows)]))


def _dense(store: SQLiteStorage, query: np.ndarray, k: int, f: MemoryFilter = F) -> list[tuple[str, float]]:
    return store.execute(SearchMemories(f, vector=query, k=k)).flat("dense", k)


def _exact(rows: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None = None) -> list[str]:
    sims = rows @ query if keep is None else np.where(keep, rows @ query, -np.inf)
    return [f"m{i}" for i in np.argsort(-sims, kind="stable")[:k] if np.isfinite(sims[i])]


def _matrix(store: SQLiteStorage) -> _vectors.VectorMatrix:
    return store._matrices[f"{P}\x1fa\x1foutcome"]


@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_a_large_scope_scans_int8_codes_and_returns_exact_cosines(
    store: SQLiteStorage, kind: str, quantised: str
) -> None:
    rows, queries = _data(kind)
    _fill(store, rows)
    found = 0
    for query in queries:
        hits = _dense(store, query, 10)
        found += len({i for i, _ in hits} & set(_exact(rows, query, 10)))
        for memory_id, score in hits:  # rescored from the stored float32 vector: the exact cosine
            assert score == pytest.approx(float(rows[int(memory_id[1:])] @ query), abs=1e-6)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    matrix = _matrix(store)
    assert matrix.codes is not None and matrix.matrix.size == 0  # the scan reads codes only
    assert (matrix.exact is not None) == (quantised == "kept")  # rescored from memory, or from the store
    assert found / (10 * len(queries)) >= 0.98


def test_writes_and_deletes_are_seen_by_the_next_search(store: SQLiteStorage, tmp_path: Path) -> None:
    rows, queries = _data("random")
    _fill(store, rows)
    _dense(store, queries[0], 5)  # the matrix is now cached, as codes
    fresh = queries[1]
    store.execute(PutMemories([_outcome(N, fresh)]))  # appended in place
    assert _dense(store, fresh, 1)[0][0] == f"m{N}"
    store.execute(PutMemories([_outcome(7, queries[2])]))  # m7's vector overwritten in place
    top = _dense(store, queries[2], 1)[0]
    assert top[0] == "m7" and top[1] == pytest.approx(1.0, abs=1e-6)
    store.execute(DeleteMemories(MemoryFilter(project_id=P, ids=(f"m{N}",))))
    assert f"m{N}" not in {i for i, _ in _dense(store, fresh, 10)}
    assert _matrix(store).codes is not None
    with SQLiteStorage(tmp_path / "q.db") as other:  # another connection's write: the matrix is read again
        other.execute(PutMemories([_outcome(N + 1, queries[3])]))
    assert _dense(store, queries[3], 1)[0][0] == f"m{N + 1}"


def test_filters_and_agent_scopes_are_respected(store: SQLiteStorage) -> None:
    rows, queries = _data("clustered", seed=1)
    _fill(store, rows)
    store.execute(PutMemories([_outcome(N + i, v, agent="b") for i, v in enumerate(queries[:5])]))
    users = np.array([i % 10 for i in range(N)])
    for query in queries[:10]:
        assert _dense(store, query, 10) and {i for i, _ in _dense(store, query, 10)} <= {f"m{i}" for i in range(N)}
        one = _dense(store, query, 10, MemoryFilter(project_id=P, agents=("a",), user_id="u3"))  # a tenth: rows read
        assert [i for i, _ in one] == _exact(rows, query, 10, users == 3)
    both = _dense(store, queries[0], 1, MemoryFilter(project_id=P, agents=("a", "b")))
    assert both[0][0] == f"m{N}"  # agent b's copy of the query itself


def test_without_numkong_the_numpy_scan_finds_the_same(store: SQLiteStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    _needs("numkong")  # (without it both runs below would be the numpy scan: nothing compared)
    rows, queries = _data("random", seed=2)
    _fill(store, rows)
    assert _quantised.numkong() is not None
    kernel = [_dense(store, q, 10) for q in queries[:10]]
    monkeypatch.setitem(_quantised._kernel, "numkong", None)
    assert _quantised.numkong() is None
    assert [_dense(store, q, 10) for q in queries[:10]] == kernel


def test_the_kernel_lookup_survives_a_missing_numkong(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "numkong", None)  # import fails as if not installed
    monkeypatch.delitem(_quantised._kernel, "numkong", raising=False)
    assert _quantised.numkong() is None
    rows, queries = _data("random", seed=3)
    m = _vectors.VectorMatrix.from_rows(((f"m{i}", r.tobytes(), None, None, None) for i, r in enumerate(rows)),
                                        N, 1, quantise_at=1)  # fmt: skip
    assert m is not None and m.codes is not None
    fetch = {f"m{i}": r.tobytes() for i, r in enumerate(rows)}
    hits = m.search(queries[0], 10, fetch=lambda ids: {i: fetch[i] for i in ids})
    assert [i for i, _ in hits] == _exact(rows, queries[0], 10)


def test_the_hnsw_index_over_codes_is_rescored_from_the_store(
    store: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs("usearch")
    monkeypatch.setattr(_vectors, "APPROX_MIN_ROWS", 1000)
    monkeypatch.setattr(_vectors, "APPROX_AFTER_SEARCHES", 1)
    rows, queries = _data("clustered", seed=4)
    _fill(store, rows)
    _dense(store, queries[0], 10)  # starts the build; searches scan the codes meanwhile
    matrix = _matrix(store)
    deadline = time.monotonic() + 120
    while matrix.ann is _vectors.BUILDING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert matrix.ann  # clustered data passes the index's self-check
    found = 0
    for query in queries:
        hits = _dense(store, query, 10)
        found += len({i for i, _ in hits} & set(_exact(rows, query, 10)))
        for memory_id, score in hits:
            assert score == pytest.approx(float(rows[int(memory_id[1:])] @ query), abs=1e-6)
    assert found / (10 * len(queries)) >= 0.95


def test_a_retrieve_rescores_by_rowid_once_the_lexical_index_is_current(
    store: SQLiteStorage, quantised: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With query words, the lexical search checks the in-memory index first: vectors to rescore are then
    read by rowid (one b-tree), and the hits equal those of a search by vector alone (read by id)."""
    from alma_core.storage._sqlite_search import MemoryReads

    rows, queries = _data("clustered", seed=2)
    _fill(store, rows)
    indexed: list[bool] = []
    read = MemoryReads._stored_vectors
    monkeypatch.setattr(
        MemoryReads, "_stored_vectors", lambda self, p, i, ids: indexed.append(i) or read(self, p, i, ids)
    )
    for n, query in enumerate(queries[:8]):
        if n == 4:  # a write of this store: the index follows it (new rowid), the matrix too
            store.execute(PutMemories([_outcome(N, query), _outcome(3, queries[7])]))
        hits = store.execute(SearchMemories(F, vector=query, terms=("task",), k=10)).dense[MemoryType.OUTCOME]
        assert hits == _dense(store, query, 10)
        assert n != 4 or hits[0][0] == f"m{N}"
    assert (quantised == "read back") == any(indexed)  # (kept float32 rows need no read)


def test_a_querys_codes_are_those_of_quantise() -> None:
    from alma_core.storage._quantised import quantise, quantise_query

    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(500, 384)).astype(np.float32) * rng.uniform(1e-4, 50, size=(500, 1)).astype(np.float32)
    vectors[0] = 0.0
    vectors[1] = 0.0
    vectors[1, 7] = -3.0
    for vector in vectors:
        assert np.array_equal(quantise_query(vector), quantise(vector)[0])
        assert quantise_query(vector).dtype == np.int8
