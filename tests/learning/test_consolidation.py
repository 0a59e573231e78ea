"""Consolidation: dry_run changes nothing; a real run merges, keeps provenance and future evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from alma_core import ALMA, Heuristic, ValidationError
from alma_core.consolidation import ConsolidationEngine
from alma_core.events import EventEmitter, MemoryEvent, MemoryEventType


@pytest.fixture
def alma(db_path: Path):  # type: ignore[no-untyped-def]
    instance = ALMA(project_id="c", storage=db_path, embedder="mock", emitter=EventEmitter())
    for _i in range(3):
        instance.add_domain_knowledge("bot", "auth", "Access tokens expire after one hour")
    instance.add_domain_knowledge("bot", "auth", "Access tokens expire after one hour exactly")
    instance.add_domain_knowledge("bot", "db", "Postgres uses MVCC for concurrency control")
    yield instance
    instance.close()


def _snapshot(alma: ALMA) -> list[dict]:  # type: ignore[type-arg]
    return sorted((m.to_dict() for m in alma.list_memories()), key=lambda d: d["id"])


async def test_dry_run_changes_nothing(alma: ALMA) -> None:
    before = _snapshot(alma)
    result = await ConsolidationEngine(alma).consolidate("bot", "c", "knowledge", 0.85, dry_run=True)
    assert result.groups_found == 1 and len(result.merges[0].merged_ids) == 3
    assert result.merged_count == 0
    assert _snapshot(alma) == before


def test_real_run_merges_and_keeps_provenance(alma: ALMA) -> None:
    seen: list[MemoryEvent] = []
    alma.events.subscribe(seen.append, [MemoryEventType.CONSOLIDATED])
    ids = {m.id for m in alma.list_memories(memory_types=["knowledge"]) if "tokens" in m.text}
    result = ConsolidationEngine(alma).consolidate_sync("bot", memory_type="knowledge")
    assert result.merged_count == 3
    remaining = alma.list_memories(memory_types=["knowledge"])
    assert len(remaining) == 2
    (kept,) = [m for m in remaining if m.id in ids]
    assert set(kept.metadata["merged_from"]) == ids - {kept.id}
    assert [e.memory_id for e in seen] == [kept.id]


async def test_llm_merges_the_text(alma: ALMA) -> None:
    llm = FakeListChatModel(responses=["Access tokens expire after exactly one hour"])
    result = await ConsolidationEngine(alma).consolidate("bot", "c", "knowledge", use_llm=True, llm=llm)
    assert result.merges[0].text == "Access tokens expire after exactly one hour"
    facts = {m.text for m in alma.list_memories(memory_types=["knowledge"])}
    assert "Access tokens expire after exactly one hour" in facts
    assert len(alma.retrieve("tokens expire exactly", "bot").knowledge) >= 1


def test_merged_heuristics_keep_counting_together(tmp_path: Path) -> None:
    with ALMA(project_id="h", storage=tmp_path / "h.db", embedder="mock") as alma:
        alma.config.learning.strategy_similarity = 1.0  # learning keeps them apart; consolidation merges
        for strategy in ("wait for network idle before asserting", "wait for network idle before asserting now"):
            for i in range(3):
                alma.learn("bot", f"t{i}", True, strategy_used=strategy, task_type="e2e")
        assert len(alma.list_memories(memory_types=["heuristic"])) == 2
        result = ConsolidationEngine(alma).consolidate_sync("bot", memory_type="heuristic", similarity_threshold=0.8)
        assert result.merged_count == 1
        alma.learn("bot", "t9", False, strategy_used="wait for network idle before asserting now", task_type="e2e")
        (heuristic,) = alma.list_memories(memory_types=["heuristic"])
        assert isinstance(heuristic, Heuristic)
        assert (heuristic.success_count, heuristic.occurrence_count) == (6, 7)


def test_bad_arguments_are_rejected(alma: ALMA) -> None:
    engine = ConsolidationEngine(alma)
    with pytest.raises(ValidationError):
        engine.consolidate_sync("bot", memory_type="outcome")
    with pytest.raises(ValidationError):
        engine.consolidate_sync("bot", memory_type="knowledge", use_llm=True)
    with pytest.raises(ValidationError):
        engine.consolidate_sync("bot", project_id="other", memory_type="knowledge")


async def test_the_seeds_shape_storage_llm_client_and_plural_type_names(alma: ALMA) -> None:
    llm = FakeListChatModel(responses=["Access tokens expire after exactly one hour"])
    engine = ConsolidationEngine(storage=alma.storage, llm_client=llm)
    with pytest.raises(ValidationError, match="needs consolidate\\(project_id"):
        await engine.consolidate(agent="bot", memory_type="domain_knowledge")
    result = await engine.consolidate(agent="bot", project_id="c", memory_type="domain_knowledge",
                                      similarity_threshold=0.85, use_llm=True, dry_run=False)  # fmt: skip
    assert (result.groups_found, result.merged_count) == (1, 3)
    facts = sorted(m.text for m in alma.list_memories(memory_types=["domain_knowledge"]))
    assert facts == ["Access tokens expire after exactly one hour", "Postgres uses MVCC for concurrency control"]
    assert (await engine.consolidate(agent="bot", project_id="c", memory_type="heuristics")).groups_found == 0
    with pytest.raises(ValidationError, match="memory_type"):
        await engine.consolidate(agent="bot", project_id="c", memory_type="outcomes")
