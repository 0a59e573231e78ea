"""The SQLite store keeps what a read transaction derives from the generations (each project's generations,
the scopes each search reads) while the file is unchanged: SQLite's `data_version` and the store's own
commits key them (`TxState.snapshot`). Another connection's write, this store's own writes and deletes are
seen by the very next search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alma_core import DomainKnowledge, MemoryType, Outcome
from alma_core.storage import DeleteMemories, MemoryFilter, PutMemories, SearchMemories, SQLiteStorage

P = "proj"
EVERY = MemoryFilter(project_id=P, agents=("a", "b"))


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _outcome(i: int, agent: str = "a") -> Outcome:
    memory = Outcome(project_id=P, agent=agent, task=f"task {i} zephyr{i % 5}", success=True, strategy_used="s")
    memory.embedding = _vector(i)
    return memory


def _search(store: SQLiteStorage, seed: int = 0, terms: tuple[str, ...] = ("zephyr1",)) -> dict[MemoryType, list]:
    hits = store.execute(SearchMemories(EVERY, vector=_vector(seed), terms=terms, k=10))
    return {t: sorted({i for i, _ in [*hits.dense.get(t, []), *hits.lexical.get(t, [])]}) for t in MemoryType}


def _found(store: SQLiteStorage, kind: str) -> list[str]:
    """The knowledge ids the dense or the lexical search alone finds for `_vector(0)` / "zephyr1"."""
    if kind == "dense":
        return [i for i, _ in store.execute(SearchMemories(EVERY, vector=_vector(0), k=3)).dense[MemoryType.KNOWLEDGE]]
    return [i for i, _ in store.execute(SearchMemories(EVERY, terms=("zephyr1",), k=3)).lexical[MemoryType.KNOWLEDGE]]


@pytest.fixture
def store(db_path: Path):
    store = SQLiteStorage(db_path)
    store.execute(PutMemories([_outcome(i) for i in range(30)]))
    for seed in range(3):  # (the lexical index is built, the generations and scopes are kept)
        _search(store, seed)
    yield store
    store.close()


def _generation_reads(store: SQLiteStorage, seed: int) -> int:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        _search(store, seed)
    finally:
        store._conn.set_trace_callback(None)
    return sum("FROM generations" in statement for statement in seen)


def test_an_unchanged_file_is_searched_without_reading_the_generations_again(store: SQLiteStorage) -> None:
    assert _generation_reads(store, 5) == 0
    store.execute(PutMemories([_outcome(100)]))
    assert _generation_reads(store, 6) == 1  # (after a write: read once, then kept again)
    assert _generation_reads(store, 7) == 0


def test_another_connections_write_to_new_scopes_is_seen_at_once(store: SQLiteStorage, db_path: Path) -> None:
    fact = DomainKnowledge(project_id=P, agent="b", domain="d", fact="zephyr1 written elsewhere")
    fact.embedding = _vector(0)  # the query's own vector: the best dense hit
    other = SQLiteStorage(db_path)
    try:
        other.execute(PutMemories([fact, outcome := _outcome(200, agent="b")]))
    finally:
        other.close()
    assert _found(store, "dense") == _found(store, "lexical") == [fact.id]
    dense = store.execute(SearchMemories(EVERY, vector=_vector(200), k=1)).dense
    assert dense[MemoryType.OUTCOME] == [(outcome.id, pytest.approx(1.0))]  # (a scope of the type written before)


def test_this_stores_writes_and_deletes_are_seen_at_once(store: SQLiteStorage) -> None:
    fact = DomainKnowledge(project_id=P, agent="b", domain="d", fact="zephyr1 written here")
    fact.embedding = _vector(0)
    for kind in ("dense", "lexical"):
        store.execute(PutMemories([fact]))
        assert _found(store, kind) == [fact.id]
        fact.agent = "a" if fact.agent == "b" else "b"  # rewritten into another scope
        store.execute(PutMemories([fact]))
        assert _found(store, kind) == [fact.id]
        store.execute(DeleteMemories(MemoryFilter(project_id=P, ids=(fact.id,))))
        assert _found(store, kind) == []
