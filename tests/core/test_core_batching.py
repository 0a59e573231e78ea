"""The speed paths keep behaviour: batched learning equals one-by-one learning, buffered reads see
buffered writes, re-indexing follows text changes, search leaves the caller's BLAS threads alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from _helpers import lexical

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


def _learned(alma: ALMA) -> dict[str, Any]:
    """Derived memories (without their write times) and evidence records of the agent `bot`."""
    memories = alma.list_memories(memory_types=["heuristic", "anti_pattern"])
    derived = {m.id: m.model_dump(exclude={"created_at", "updated_at"}) for m in memories}
    records = alma.storage.execute(ListRecords(alma.project_id, "learn/bot/auth"))
    return {"memories": derived, "evidence": {r.key: r.metadata for r in records}}


def test_learn_many_equals_learning_one_by_one(tmp_path: Path) -> None:
    with ALMA(project_id="p", storage=tmp_path / "one.db", embedder="mock") as one:
        for item in ITEMS:
            one.learn(**item)
        expected = _learned(one)
    with ALMA(project_id="p", storage=tmp_path / "many.db", embedder="mock") as many:
        many.learn_many(ITEMS)
        got = _learned(many)
    assert expected["memories"] and expected["evidence"]
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


def test_search_runs_with_one_blas_thread_and_restores_the_callers_count(open_alma: ALMA) -> None:
    controllers = _blas_controllers()
    before = [c.num_threads for c in controllers]
    with single_blas_thread():
        assert all(c.num_threads == 1 for c in controllers)
        with single_blas_thread():
            pass
        assert all(c.num_threads == 1 for c in controllers)
    open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    assert open_alma.retrieve("token", "bot").knowledge
    assert [c.num_threads for c in controllers] == before
    assert np.ones((4, 4)) @ np.ones(4) is not None
