"""The learner's evidence cache and the SQLite write path keep behaviour: learning with the cache equals
learning without it, any write between two learns (another connection, another ALMA on the store, a
failed learn) is seen, and a memory's upsert re-indexes only what changed."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _helpers import lexical
from test_core_batching import STREAM, _learned

from alma_core import ALMA
from alma_core._learning import Learner, evidence_namespace
from alma_core.storage import (
    FindMemories,
    GetRecord,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    StoreVersion,
)

GOOD = {"agent": "bot", "task": "log in", "outcome": True, "task_type": "auth", "strategy_used": "wait for the form"}


def _evidence(alma: ALMA) -> dict[str, Any]:
    """The one strategy record of GOOD's task type (and its metadata)."""
    records = alma.storage.execute(ListRecords(alma.project_id, evidence_namespace("bot", "auth")))
    (record,) = [r for r in records if r.metadata.get("kind") == "strategy"]
    return record.metadata


def _heuristic(alma: ALMA) -> Any:
    (heuristic,) = alma.list_memories(memory_types=["heuristic"])
    return heuristic


def test_learning_with_the_cache_equals_learning_without_it(tmp_path: Path) -> None:
    cached = ALMA(project_id="p", storage=tmp_path / "cached.db", embedder="mock")
    uncached = ALMA(project_id="p", storage=tmp_path / "uncached.db", embedder="mock")
    uncached.learner._evidence.keep = lambda cache: None  # type: ignore[method-assign]  # every learn reads the store
    for item in STREAM:
        cached.learn(**item)
        uncached.learn(**item)
    kept = cached.learner._evidence._cache
    assert kept is not None and kept.records and kept.memories  # the cache was in use
    assert _learned(cached, STREAM) == _learned(uncached, STREAM)
    cached.close()
    uncached.close()


@pytest.mark.parametrize("writer", ["another_connection", "same_store"])
def test_a_record_written_between_two_learns_is_seen(tmp_path: Path, writer: str) -> None:
    alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
    other = ALMA(project_id="p", storage=tmp_path / "a.db" if writer == "another_connection" else alma.storage,
                 embedder="mock")  # fmt: skip
    for _ in range(3):
        alma.learn(**GOOD)
    key = _heuristic(other).metadata["evidence_key"]
    record = other.storage.execute(GetRecord("p", evidence_namespace("bot", "auth"), key))
    other.storage.execute(PutRecord(replace(record, metadata={**record.metadata, "successes": 10})))
    alma.learn(**GOOD)
    assert _evidence(alma)["successes"] == 11 and _heuristic(alma).success_count == 11
    if writer == "another_connection":
        other.close()
    alma.close()


def test_evidence_forgotten_by_another_process_between_two_learns_starts_again(tmp_path: Path) -> None:
    alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
    for _ in range(3):
        alma.learn(**GOOD)
    with ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock") as other:
        assert len(other.forget(memory_types=["heuristic"], below_confidence=1.0)) == 1  # and its evidence
    alma.learn(**GOOD)
    assert _evidence(alma)["successes"] == 1 and not alma.list_memories(memory_types=["heuristic"])
    alma.close()


def test_a_learn_that_fails_leaves_nothing_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
    for _ in range(3):
        alma.learn(**GOOD)

    def fail(*args: Any) -> None:  # after the heuristic (a cached object) was changed, before the commit
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(Learner, "_anti_pattern", fail)
        with pytest.raises(RuntimeError, match="boom"):
            alma.learn(**GOOD)
    alma.learn(**GOOD)
    assert _evidence(alma)["successes"] == 4 and _heuristic(alma).success_count == 4
    alma.close()


def test_the_store_version_moves_with_every_write_from_anywhere(tmp_path: Path) -> None:
    alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
    store = alma.storage
    now, same = store.execute(StoreVersion())  # a read transaction: the state it reads, twice
    assert now == same
    with store.transaction() as tx:
        before, after = tx.execute(StoreVersion())
    assert before == now
    with store.transaction() as tx:
        assert tx.execute(StoreVersion())[0] == after != before  # our own commit, and nothing else
        after = tx.execute(StoreVersion())[1]
    alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")  # this process, this store
    with store.transaction() as tx:
        assert tx.execute(StoreVersion())[0] != after
        after = tx.execute(StoreVersion())[1]
    raw = sqlite3.connect(tmp_path / "a.db")  # another connection
    raw.execute("UPDATE memories SET confidence = 0.5")
    raw.commit()
    raw.close()
    with store.transaction() as tx:
        assert tx.execute(StoreVersion())[0] != after
    alma.close()


def _fts_statements(alma: ALMA, memory: Any) -> list[str]:
    """The writes to the full-text index's own tables (FTS5's statements, from the triggers or the store's
    insert of new rows' entries) that putting `memory` runs."""
    seen: list[str] = []
    conn = alma.storage._conn  # type: ignore[attr-defined]
    conn.set_trace_callback(seen.append)
    try:
        alma.storage.execute(PutMemories([memory]))
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if "'memories_fts_" in s]


def test_an_upsert_rewrites_the_full_text_entry_only_when_the_text_changed(open_alma: ALMA) -> None:
    fact = open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    assert not _fts_statements(open_alma, fact.model_copy(update={"confidence": 0.5}))
    assert _fts_statements(open_alma, fact.model_copy(update={"fact": "Sessions rotate nightly"}))
    base = MemoryFilter(project_id=open_alma.project_id)
    assert [i for i, _ in lexical(open_alma.storage, base, "sessions", 5)] == [fact.id]
    assert not lexical(open_alma.storage, base, "tokens", 5)


def test_an_upsert_that_changes_indexed_columns_moves_the_memory(open_alma: ALMA) -> None:
    facts = [open_alma.add_domain_knowledge("bot", "auth", f"Fact {i}") for i in range(3)]
    moved = facts[1].model_copy(update={"metadata": {"user_id": "u2"}, "workflow_id": "wf"})
    open_alma.storage.execute(PutMemories([facts[0].model_copy(update={"confidence": 0.5}), moved]))
    project = open_alma.project_id
    by_user = open_alma.storage.execute(FindMemories(MemoryFilter(project_id=project, user_id="u2")))
    by_workflow = open_alma.storage.execute(FindMemories(MemoryFilter(project_id=project, workflow_id="wf")))
    assert [m.id for m in by_user] == [m.id for m in by_workflow] == [facts[1].id]
    assert open_alma.get(facts[0].id).confidence == 0.5


def test_an_id_lookup_is_one_whose_filter_holds_nothing_but_ids() -> None:
    from dataclasses import fields
    from datetime import UTC, datetime

    from alma_core._batching import is_id_lookup

    base = MemoryFilter(project_id="p", ids=("m1",))
    assert is_id_lookup(FindMemories(base, with_embeddings=True))
    assert not is_id_lookup(FindMemories(base, order_by="confidence"))
    samples = {"agents": ("bot",), "types": (), "categories": ("auth",), "user_id": "u", "workflow_id": "w",
               "created_before": datetime.now(UTC), "updated_before": datetime.now(UTC),
               "created_after": datetime.now(UTC), "confidence_below": 0.5}  # fmt: skip
    others = [f.name for f in fields(MemoryFilter) if f.name not in ("project_id", "ids")]
    assert sorted(others) == sorted(samples)  # a new filter field needs a look at is_id_lookup
    for name in others:
        assert not is_id_lookup(FindMemories(replace(base, **{name: samples[name]}))), name
