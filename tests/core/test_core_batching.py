"""The speed paths keep behaviour: batched learning equals one-by-one learning, buffered reads see
buffered writes, re-indexing follows text changes, search leaves the caller's BLAS threads alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _helpers import lexical
from conftest_pg import drop_schemas, new_schema

from alma_core import ALMA
from alma_core._batching import BufferedTransaction
from alma_core._blas import _blas_controllers, single_blas_thread
from alma_core.storage import (
    FindMemories,
    GetRecord,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    Record,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
ITEMS: list[dict[str, Any]] = [
    {"agent": "bot", "task": f"log in attempt {i}", "outcome": i % 4 != 3, "task_type": "auth",
     "strategy_used": ["wait for the form", "retry the click", "wait for the form then submit"][i % 3],
     "error_message": None if i % 4 != 3 else "timeout on submit", "timestamp": START + timedelta(minutes=i)}
    for i in range(24)
]  # fmt: skip
_STRATEGIES = ["wait for the form", "Waiting for forms", "retry the click", "click once and pray", ""]
_ERRORS = ["Timeout after 30000ms", "Timeout after 45000ms", "element 0xdeadbeef detached", "login refused"]
# Two agents, two task types each; repeated and paraphrased strategies (one normalised form); a strategy
# that fails into an anti-pattern and later recovers; one error (volatile numbers masked) recurring across
# strategies; outcomes without a strategy; a per-user outcome (counted in the evidence).
STREAM: list[dict[str, Any]] = [
    {"agent": ["bot", "helper"][i % 7 == 0], "task": f"task {i} on the login page",
     "task_type": ["auth", "search"][(i // 5) % 2], "strategy_used": _STRATEGIES[(i * 7) % 5],
     "outcome": (i * 7) % 5 != 3 and i % 6 != 5,
     "error_message": _ERRORS[i % 2] if i % 6 == 5 else _ERRORS[2 + i % 2] if (i * 7) % 5 == 3 else None,
     "timestamp": START + timedelta(minutes=i), "metadata": {"user_id": "u1"} if i % 9 == 0 else None}
    for i in range(40)
] + [
    {"agent": "bot", "task": f"task {i} on the login page", "task_type": "auth", "outcome": True,
     "strategy_used": "click once and pray", "timestamp": START + timedelta(minutes=i)}
    for i in range(40, 60)
]  # fmt: skip


def _learned(alma: ALMA, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Derived memories (without their write times) and every evidence record the items touched."""
    memories = alma.list_memories(memory_types=["heuristic", "anti_pattern"])
    derived = {m.id: m.model_dump(exclude={"created_at", "updated_at"}) for m in memories}
    spaces = sorted({f"learn/{item['agent']}/{item.get('task_type', 'general')}" for item in items})
    records = [r for ns in spaces for r in alma.storage.execute(ListRecords(alma.project_id, ns))]
    return {"memories": derived, "evidence": {(r.namespace, r.key): r.metadata for r in records}}


@pytest.fixture(params=["sqlite", "postgres"])
def make_alma(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], ALMA]]:
    """Empty ALMAs of one project on the backend under test (a file or a schema each)."""
    made: list[ALMA] = []
    schemas: list[str] = []

    def make(name: str) -> ALMA:
        if request.param == "sqlite":
            alma = ALMA(project_id="p", storage=tmp_path / f"{name}.db", embedder="mock")
        else:
            from alma_core.storage.postgres import PostgresStorage

            schemas.append(new_schema())
            store = PostgresStorage(request.getfixturevalue("pg_uri"), schema=schemas[-1], min_pool_size=0,
                                    max_pool_size=2)  # fmt: skip
            alma = ALMA(project_id="p", storage=store, embedder="mock")
        made.append(alma)
        return alma

    yield make
    for alma in made:
        alma.close()
    if schemas:
        drop_schemas(request.getfixturevalue("pg_uri"), *schemas)


@pytest.mark.parametrize("items", [ITEMS, STREAM], ids=["one_agent", "mixed_stream"])
def test_learn_many_equals_learning_one_by_one(make_alma: Callable[[str], ALMA], items: list[dict[str, Any]]) -> None:
    one = make_alma("one")
    for item in items:
        one.learn(**item)
    expected = _learned(one, items)
    many = make_alma("many")
    many.learn_many(items[:7])  # two batches: the second one starts from stored evidence
    many.learn_many(items[7:])
    got = _learned(many, items)
    kinds = {type(m).__name__ for m in many.list_memories(memory_types=["heuristic", "anti_pattern"])}
    assert kinds == {"Heuristic", "AntiPattern"} and expected["evidence"]
    if items is STREAM:  # the stream exercises the paths it is meant to
        anti = [m for m in many.list_memories(memory_types=["anti_pattern"])]
        assert any(m.metadata.get("kind") == "recurring_error" for m in anti)
        assert any(m.metadata.get("retired") for m in anti)  # the strategy that recovered
        assert any("users" in meta for meta in expected["evidence"].values())
    assert got == expected


def test_buffered_reads_see_buffered_writes_and_flush_writes_once(open_alma: ALMA) -> None:
    store, project = open_alma.storage, open_alma.project_id
    with store.transaction() as tx:
        buffered = BufferedTransaction(tx)
        for n in range(3):
            buffered.execute(PutRecord(Record(project, "ns", "k", b"v", {"n": n, "items": [n]})))
        got = buffered.execute(GetRecord(project, "ns", "k"))
        got.metadata["items"].append("tampered")
        assert buffered.execute(GetRecord(project, "ns", "k")).metadata == {"n": 2, "items": [2]}
        assert [r.key for r in buffered.execute(ListRecords(project, "ns"))] == ["k"]
        assert tx.execute(GetRecord(project, "ns", "k")) is None  # nothing written yet
        buffered.flush()
    stored = store.execute(GetRecord(project, "ns", "k"))
    assert stored.metadata == {"n": 2, "items": [2]} and stored.seq == 1


def test_peeked_records_follow_every_put_as_a_fresh_listing_would(open_alma: ALMA) -> None:
    store, project = open_alma.storage, open_alma.project_id
    store.execute(PutRecord(Record(project, "ns", "stored", None, {"n": -1})))
    with store.transaction() as tx:
        buffered = BufferedTransaction(tx, shared=True)
        assert [r.key for r in buffered.peek_records(project, "ns")] == ["stored"]
        for n, key in enumerate(["a", "b", "a", "stored", "c", "b"]):
            buffered.execute(PutRecord(Record(project, "ns", key, None, {"n": n})))
            buffered.execute(PutRecord(Record(project, "other", key, None, {"n": n})))
            peeked = [(r.key, r.metadata["n"]) for r in buffered.peek_records(project, "ns")]
            listed = [(r.key, r.metadata["n"]) for r in buffered.execute(ListRecords(project, "ns", with_values=False))]
            assert peeked == listed  # kept up to date, not rebuilt: the same as merging afresh
        assert peeked == [("b", 5), ("c", 4), ("stored", 3), ("a", 2)]
        buffered.flush()
        assert [(r.key, r.metadata["n"]) for r in buffered.peek_records(project, "ns")] == peeked
    assert [(r.key, r.metadata["n"]) for r in store.execute(ListRecords(project, "ns"))] == peeked


def test_buffered_memories_are_read_back_and_written_on_flush(open_alma: ALMA) -> None:
    fact = open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    by_id = FindMemories(MemoryFilter(project_id=open_alma.project_id, ids=(fact.id,)), with_embeddings=True)
    with open_alma.storage.transaction() as tx:
        buffered = BufferedTransaction(tx)
        changed = buffered.execute(by_id)[0]
        changed.metadata["checked"] = True
        buffered.execute(PutMemories([changed]))
        changed.metadata["after_put"] = True  # a change after the put is not written
        assert buffered.execute(by_id)[0].metadata == {"checked": True}
        lexical(buffered, MemoryFilter(project_id=open_alma.project_id), "tokens", 5)  # flushes
        assert tx.execute(by_id)[0].metadata == {"checked": True}


def test_an_updated_text_is_searched_by_its_new_words_only(open_alma: ALMA) -> None:
    fact = open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    open_alma.storage.execute(PutMemories([fact.model_copy(update={"fact": "Sessions rotate nightly"})]))
    base = MemoryFilter(project_id=open_alma.project_id)
    assert lexical(open_alma.storage, base, "sessions", 5) and not lexical(open_alma.storage, base, "tokens", 5)
    open_alma.storage.execute(PutMemories([fact.model_copy(update={"fact": "Sessions rotate nightly",
                                                                   "confidence": 0.5})]))  # fmt: skip
    assert [i for i, _ in lexical(open_alma.storage, base, "sessions", 5)] == [fact.id]


def test_search_runs_with_one_blas_thread_and_restores_the_callers_count(
    open_alma: ALMA, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alma_core.storage import _vectors

    controllers = _blas_controllers()
    assert controllers, "threadpoolctl (a dependency) found no BLAS library under numpy"
    original = [c.num_threads for c in controllers]
    seen: list[list[int]] = []

    class Watched(single_blas_thread):  # records the counts the search's products run with
        def __enter__(self) -> None:
            super().__enter__()
            seen.append([c.num_threads for c in controllers])

    monkeypatch.setattr(_vectors, "single_blas_thread", Watched)
    try:
        for c in controllers:
            c.set_num_threads(2)  # the caller's own setting, not 1: else nothing here could tell
        with single_blas_thread():
            assert [c.num_threads for c in controllers] == [1] * len(controllers)
            with single_blas_thread():
                pass
            assert [c.num_threads for c in controllers] == [1] * len(controllers)  # the inner exit kept it
        assert [c.num_threads for c in controllers] == [2] * len(controllers)
        open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
        assert open_alma.retrieve("token", "bot", mode="dense").knowledge
        assert seen and all(counts == [1] * len(controllers) for counts in seen)  # the search ran on one thread
        assert [c.num_threads for c in controllers] == [2] * len(controllers)  # and gave the caller's back
    finally:
        for c, n in zip(controllers, original, strict=True):
            c.set_num_threads(n)
