"""AlmaStorage: CrewAI 1.15's StorageBackend over ALMA, driven through a real `crewai.memory.Memory`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("crewai")

from crewai.llms.base_llm import BaseLLM
from crewai.memory import Memory
from crewai.memory.storage.backend import StorageBackend
from crewai.memory.types import MemoryRecord

from alma_core import ALMA, MemoryType, ScopeViolation, ValidationError
from alma_crewai import AlmaStorage, alma_memory

HELENA = "/crew/qa/agent/helena"


class SilentLLM(BaseLLM):
    """An LLM that must not be needed: every field is given, recall is shallow."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"unexpected LLM call: {messages!r}"[:300])


@pytest.fixture
def storage(alma: ALMA) -> AlmaStorage:
    return AlmaStorage(alma, agent="qa_lead", root_scope="/crew/qa")


@pytest.fixture
def memory(storage: AlmaStorage):
    mem = Memory(storage=storage, embedder=storage.embedder, llm=SilentLLM(model="silent"))
    yield mem
    mem.close()


def remember(memory: Memory, content: str, scope: str = HELENA, category: str = "testing_strategies") -> MemoryRecord:
    record = memory.remember(content, scope=scope, categories=[category], importance=0.7, metadata={"k": "v"})
    assert record is not None
    return record


def test_implements_the_storage_backend_protocol(storage: AlmaStorage) -> None:
    assert isinstance(storage, StorageBackend)


def test_remember_stores_alma_knowledge_for_the_scope_agent(alma: ALMA, memory: Memory) -> None:
    record = remember(memory, "Retry flaky login tests once before failing")
    stored = alma.get(record.id)  # the record's id is its ALMA id
    assert stored.memory_type is MemoryType.KNOWLEDGE
    assert (stored.agent, stored.text, stored.category) == ("helena", record.content, "testing_strategies")
    again = memory._storage.get_record(record.id)
    assert again is not None
    assert (again.scope, again.categories, again.metadata, again.importance) == (
        HELENA, ["testing_strategies"], {"k": "v"}, 0.7,
    )  # fmt: skip


def test_recall_goes_through_alma_retrieve(alma: ALMA, memory: Memory) -> None:
    remember(memory, "Use data-testid selectors for login buttons", category="selector_patterns")
    remember(memory, "Mock the payment gateway in checkout tests")
    matches = memory.recall("login button selectors", scope=HELENA, depth="shallow", limit=1)
    assert [m.record.content for m in matches] == ["Use data-testid selectors for login buttons"]
    assert memory.recall("login", scope=HELENA, categories=["nothing-like-this"], depth="shallow") == []


def test_refused_write_raises_scope_violation_and_stores_nothing(alma: ALMA, memory: Memory) -> None:
    with pytest.raises(ScopeViolation):
        remember(memory, "Index the orders table", category="backend_logic")
    good = MemoryRecord(content="fine", scope=HELENA, categories=["testing_strategies"])
    bad = MemoryRecord(content="not fine", scope=HELENA, categories=["backend_logic"])
    with pytest.raises(ScopeViolation):
        memory._storage.save([good, bad])  # all or none
    assert alma.stats().total == 0


def test_learned_memories_read_back_as_typed_records(alma: ALMA, storage: AlmaStorage, memory: Memory) -> None:
    alma.learn("helena", "Test the login form", "success", "page objects", task_type="testing_strategies")
    alma.add_anti_pattern("helena", "sleep(5) in tests", why_bad="flaky", task_type="testing_strategies")
    records = storage.list_records(HELENA)
    by_type = {r.categories[0]: r for r in records}
    assert set(by_type) == {"outcome", "anti_pattern"}
    assert by_type["outcome"].categories == ["outcome", "testing_strategies"]
    assert "succeeded using: page objects" in by_type["outcome"].content
    assert by_type["anti_pattern"].content.startswith("Don't: sleep(5) in tests")
    found = memory.recall("Test the login form", scope="/crew/qa", depth="shallow")
    assert {m.record.id for m in found} == {r.id for r in records}


def test_scopes_categories_and_counts(storage: AlmaStorage, memory: Memory) -> None:
    remember(memory, "a helena fact")
    remember(memory, "a deeper helena fact", scope=f"{HELENA}/login")
    remember(memory, "a victor fact", scope="/crew/qa/agent/victor", category="api_patterns")
    assert storage.list_scopes("/") == ["/crew"]
    assert storage.list_scopes("/crew/qa/agent") == ["/crew/qa/agent/helena", "/crew/qa/agent/victor"]
    info = storage.get_scope_info(HELENA)
    assert (info.record_count, info.categories, info.child_scopes) == (2, ["testing_strategies"], [f"{HELENA}/login"])
    assert storage.list_categories() == {"testing_strategies": 2, "api_patterns": 1}
    assert (storage.count(), storage.count(HELENA), storage.count("/crew/qa/agent/hel")) == (3, 2, 0)
    assert [r.content for r in storage.list_records(limit=1, offset=0)] == ["a victor fact"]  # newest first


def test_delete_update_and_reset(alma: ALMA, storage: AlmaStorage, memory: Memory) -> None:
    old = remember(memory, "old fact")
    keep = remember(memory, "kept fact", scope="/crew/qa/agent/victor", category="api_patterns")
    assert storage.delete(older_than=datetime.utcnow() - timedelta(days=1)) == 0
    updated = memory.update(old.id, content="new fact")
    assert alma.get(updated.id).text == "new fact"
    assert [r.content for r in storage.list_records(HELENA)] == ["new fact"]
    assert storage.delete(record_ids=[updated.id]) == 1
    memory.reset(scope=HELENA)
    assert storage.count() == 1
    storage.reset()
    assert storage.count() == 0 and storage.get_record(keep.id) is None


def test_learned_memories_cannot_be_rewritten(alma: ALMA, storage: AlmaStorage) -> None:
    outcome = alma.learn("helena", "Test the login form", "success", "page objects", task_type="testing_strategies")
    record = storage.get_record(outcome.id)
    assert record is not None
    with pytest.raises(ValidationError):
        storage.update(record.model_copy(update={"content": "rewritten"}))
    assert alma.get(outcome.id).text == outcome.text


class WordEmbedder:
    """A crew's own embedder (not ALMA's): one dimension per known word."""

    WORDS = ("login", "selector", "button", "payment", "gateway", "checkout", "orders", "index")

    def __call__(self, input: list[str]) -> list[list[float]]:
        return [[float(w in text.lower()) + 0.01 for w in self.WORDS] for text in input]


def test_a_crew_with_its_own_embedder_searches_by_its_vectors(alma: ALMA, storage: AlmaStorage) -> None:
    memory = Memory(storage=storage, embedder=WordEmbedder(), llm=SilentLLM(model="silent"))
    try:
        login = remember(memory, "Use data-testid selectors for the login button", category="selector_patterns")
        remember(memory, "Mock the payment gateway in checkout tests")
        remember(memory, "Index the orders table by date", scope="/crew/qa/agent/victor", category="api_patterns")
        found = memory.recall("login button selector", scope=HELENA, depth="shallow", limit=5)
        assert found[0].record.id == login.id and found[0].score > found[-1].score
        assert all("orders" not in m.record.content for m in found)  # victor's: not helena's to read
        assert storage.search([1.0, 0, 0, 0, 0, 0, 0], scope_prefix=HELENA) == []  # another dimension
        storage.delete(record_ids=[login.id])
        assert login.id not in {m.record.id for m in memory.recall("login", scope=HELENA, depth="shallow")}
    finally:
        memory.close()


def test_an_agent_scope_reads_what_alma_shares_with_the_agent(alma: ALMA, memory: Memory) -> None:
    remember(memory, "Helena's login checklist")  # helena shares with qa_lead
    found = memory.recall("login checklist", scope="/crew/qa/agent/qa_lead", depth="shallow")
    assert [m.record.content for m in found] == ["Helena's login checklist"]
    assert memory.recall("login checklist", scope="/crew/qa/agent/victor", depth="shallow") == []


def test_a_free_category_is_filed_under_the_agents_domain(alma: ALMA, storage: AlmaStorage, memory: Memory) -> None:
    record = remember(memory, "Flaky tests hide real bugs", category="flakiness")  # not a can_learn entry
    assert alma.get(record.id).category == "testing_strategies"  # helena's first can_learn
    assert storage.get_record(record.id).categories == ["flakiness"]  # type: ignore[union-attr]
    storage.domains["helena"] = "selector_patterns"  # the task's category, when the crew knows it
    assert alma.get(remember(memory, "Another note", category="misc").id).category == "selector_patterns"


def test_count_of_the_whole_store_reads_no_memory(alma: ALMA, storage: AlmaStorage) -> None:
    alma.learn("helena", "Test the login form", "success", "page objects", task_type="testing_strategies")
    storage.save([MemoryRecord(content=f"fact {i}", scope=HELENA, categories=["testing_strategies"]) for i in range(3)])
    assert storage.count() == storage.count("/") == 4 == alma.stats().total
    assert [r.content for r in storage.list_records(limit=2, offset=1)] == ["fact 1", "fact 0"]


async def test_async_twins(storage: AlmaStorage) -> None:
    record = MemoryRecord(content="async fact", scope=HELENA, categories=["testing_strategies"])
    await storage.asave([record])
    vector = storage.embedder(["async fact"])[0]
    found = await storage.asearch(vector, scope_prefix=HELENA)
    assert [r.id for r, _ in found] == [record.id]
    assert await storage.adelete(scope_prefix=HELENA) == 1


def test_alma_memory_builds_a_memory_on_alma(alma: ALMA) -> None:
    memory = alma_memory(alma, llm=SilentLLM(model="silent"), agent="qa_lead")
    try:
        memory.remember("project-wide fact", scope="/notes", categories=["general"], importance=0.5)
        assert [m.agent for m in alma.list_memories()] == ["qa_lead"]
    finally:
        memory.close()
