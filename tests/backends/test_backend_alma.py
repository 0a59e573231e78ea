"""ALMA on every backend: scopes, sharing, project isolation, ranking, heuristic formation, forgetting,
consolidation and the workflow layer behave the same whatever the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alma_core import ALMA, Heuristic, ScopeViolation
from alma_core.consolidation import ConsolidationEngine
from alma_core.storage import BaseStorage, ListRecords, PutRecord, Record

AGENTS = {
    "helena": {
        "domain": "coding",
        "can_learn": ["testing_strategies", "selector_patterns"],
        "cannot_learn": ["backend_logic"],
        "min_occurrences_for_heuristic": 3,
        "share_with": ["qa_lead"],
    },
    "victor": {"domain": "coding", "can_learn": ["api_patterns"], "inherit_from": ["qa_lead"]},
    "qa_lead": {"domain": "coding"},
}
TT = "testing_strategies"


@pytest.fixture
def make_alma(make_store: Callable[..., BaseStorage]) -> Iterator[Callable[..., ALMA]]:
    made: list[ALMA] = []

    def make(project_id: str = "p", store: BaseStorage | None = None, **kw: object) -> ALMA:
        alma = ALMA(project_id=project_id, agents=AGENTS, storage=store or make_store(), embedder="mock", **kw)
        made.append(alma)
        return alma

    yield make
    for alma in made:
        alma.close()


@pytest.fixture
def alma(make_alma: Callable[..., ALMA]) -> ALMA:
    return make_alma()


def test_scope_violation_stores_nothing(alma: ALMA) -> None:
    with pytest.raises(ScopeViolation):
        alma.learn("helena", "Refactor the ORM", True, strategy_used="raw SQL", task_type="backend_logic")
    assert alma.stats().total == 0


def test_sharing_and_inheritance(alma: ALMA) -> None:
    alma.add_domain_knowledge("helena", "selector_patterns", "Login buttons carry data-testid attributes")
    alma.add_domain_knowledge("qa_lead", "process", "Every login change needs a regression run")
    for_qa = alma.retrieve("login buttons", "qa_lead")
    shared = [m for m in for_qa.knowledge if m.agent == "helena"]
    assert shared and shared[0].metadata["shared_from"] == "helena"
    victor = alma.retrieve("login regression run", "victor")
    assert {m.agent for m in victor.knowledge} == {"qa_lead"}  # inherits qa_lead, not helena
    assert alma.retrieve("login buttons", "victor", include_shared=False).knowledge == []


def test_projects_are_isolated_on_one_store(make_alma: Callable[..., ALMA], make_store) -> None:
    store = make_store()
    a = make_alma("alpha", store)
    b = ALMA(project_id="beta", agents=AGENTS, storage=store, embedder="mock")  # shares the store object
    a.add_domain_knowledge("qa_lead", "auth", "Alpha tokens expire after an hour")
    b.add_domain_knowledge("qa_lead", "auth", "Beta tokens never expire")
    assert [m.fact for m in a.retrieve("tokens expire", "qa_lead").knowledge] == ["Alpha tokens expire after an hour"]
    assert [m.fact for m in b.retrieve("tokens expire", "qa_lead").knowledge] == ["Beta tokens never expire"]
    assert b.stats().total == 1


def test_retrieval_ranks_the_relevant_memory_first(alma: ALMA) -> None:
    facts = [
        "Postgres uses MVCC for concurrency control",
        "Login forms need CSRF tokens",
        "Redis keys can expire with a TTL",
        "Playwright waits for network idle before asserting",
        "Kubernetes pods restart on liveness failures",
    ]
    for fact in facts:
        alma.add_domain_knowledge("qa_lead", "misc", fact)
    for query, wanted in [("postgres concurrency MVCC", facts[0]), ("redis TTL expire keys", facts[2])]:
        got = alma.retrieve(query, "qa_lead", top_k=3).knowledge
        assert got[0].fact == wanted, query
        assert got[0].score is not None and all(got[0].score >= m.score for m in got)


def test_heuristic_forms_after_min_occurrences(alma: ALMA) -> None:
    def heuristics() -> list[Heuristic]:
        return [m for m in alma.list_memories(agent="helena", memory_types=["heuristic"]) if isinstance(m, Heuristic)]

    for i in range(2):
        alma.learn("helena", f"Test form {i}", True, strategy_used="Use data-testid selectors", task_type=TT)
    assert heuristics() == []
    alma.learn("helena", "Test form 3", True, strategy_used="Use data-testid selectors", task_type=TT)
    (heuristic,) = heuristics()
    assert (heuristic.success_count, heuristic.occurrence_count) == (3, 3)
    alma.learn_many(
        [dict(agent="helena", task=f"more {i}", outcome=True, strategy_used="use data-testid selectors", task_type=TT)
         for i in range(2)]
    )  # fmt: skip
    (heuristic,) = heuristics()
    assert heuristic.occurrence_count == 5
    assert alma.retrieve("test the form", "helena").heuristics[0].id == heuristic.id


def test_forgetting_by_age_and_confidence(alma: ALMA) -> None:
    old = datetime.now(UTC) - timedelta(days=90)
    alma.learn("qa_lead", "ancient task", True, timestamp=old)
    alma.learn("qa_lead", "fresh task", True)
    alma.add_domain_knowledge("qa_lead", "misc", "shaky fact", confidence=0.1)
    assert {m.text for m in alma.forget(older_than_days=30, dry_run=True)} == {"ancient task"}
    assert alma.stats().total == 3
    assert {m.text for m in alma.forget(older_than_days=30)} == {"ancient task"}
    assert {m.text for m in alma.forget(below_confidence=0.5)} == {"shaky fact"}
    assert [m.text for m in alma.list_memories()] == ["fresh task"]


def test_delete_user_removes_preferences_and_records(alma: ALMA, require: Callable[..., None]) -> None:
    require(alma.storage, "records")
    alma.add_user_preference("u1", "dark mode", "ui", agent="qa_lead")
    alma.add_user_preference("u2", "light mode", "ui", agent="qa_lead")
    for user in ("u1", "u2"):
        alma.storage.execute(PutRecord(Record(alma.project_id, "sessions/s1", user, b"v", {"user_id": user})))
    erased = alma.delete_user("u1")
    assert (erased.memories, erased.records) == (1, 1)
    assert [m.preference for m in alma.retrieve("mode", "qa_lead", user_id="u2").preferences] == ["light mode"]
    assert alma.retrieve("mode", "qa_lead", user_id="u1").preferences == []
    kept = alma.storage.execute(ListRecords(alma.project_id, "sessions/s1"))
    assert [r.key for r in kept] == ["u2"]


def test_consolidation_merges_duplicates(alma: ALMA) -> None:
    for _ in range(3):
        alma.add_domain_knowledge("qa_lead", "auth", "Access tokens expire after one hour")
    alma.add_domain_knowledge("qa_lead", "db", "Postgres uses MVCC for concurrency control")
    result = ConsolidationEngine(alma).consolidate_sync("qa_lead", memory_type="knowledge")
    assert result.groups_found == 1 and len(result.merges[0].merged_ids) == 2  # two merged into the kept one
    assert sorted(m.text for m in alma.list_memories(memory_types=["knowledge"])) == [
        "Access tokens expire after one hour", "Postgres uses MVCC for concurrency control"
    ]  # fmt: skip


def test_workflow_checkpoints_merge_and_artifacts(alma: ALMA, make_alma: Callable[..., ALMA], require) -> None:
    require(alma.storage, "records")
    first = alma.checkpoint("wf", {"step": 1, "findings": ["a"]})
    second = alma.checkpoint("wf", {"step": 2, "findings": ["b"]}, agent="helena", parent_id=first.id)
    assert alma.resume("wf") == {"step": 2, "findings": ["b"]}
    assert alma.resume("wf", first.id)["step"] == 1
    assert [c.id for c in alma.list_checkpoints("wf")] == [second.id, first.id]
    assert [c.id for c in alma.list_checkpoints("wf", before=second.sequence)] == [first.id]
    merged = alma.merge_states("wf", [("helena", {"findings": ["x"]}), ("victor", {"findings": ["y"]})],
                               reducer={"findings": "merge_lists"})  # fmt: skip
    assert alma.resume("wf")["findings"] == ["x", "y"] and merged.sequence == 3
    assert [a["agent"] for a in merged.metadata["merged_from"]] == ["helena", "victor"]
    alma.link_artifact("wf", "code", "src/app.py")
    alma.link_artifact("wf", "test", "tests/test_app.py")
    assert [a.ref for a in alma.get_artifacts("wf", "test")] == ["tests/test_app.py"]
    assert len(alma.get_artifacts("wf")) == 2
    other = make_alma("other-project", alma.storage)
    assert other.list_checkpoints("wf") == []


async def test_async_twins(alma: ALMA) -> None:
    await alma.alearn("qa_lead", "async task", True, strategy_used="await it")
    got = await alma.aretrieve("async task", "qa_lead")
    assert [m.task for m in got.outcomes] == ["async task"]
