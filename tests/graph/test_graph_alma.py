"""ALMA with graph memory: every write feeds the graph, every delete reaches it, and the graph obeys the
memories' scopes (agents, users, projects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, ConfigError, ValidationError
from alma_core._config import parse_config
from alma_core.graph import BackendGraphStore, GraphIndex, create_graph_backend

AGENTS = {"helena": {"share_with": ["qa_lead"]}, "victor": {}, "qa_lead": {}}
QUESTION = "Where is the company that alice works for based?"


@pytest.fixture(params=["sync", "background"])
def alma(request: pytest.FixtureRequest, tmp_path: Path):
    graph = {"backend": "kuzu", "path": str(tmp_path / "graph"), "extraction": request.param}
    config = parse_config({"project_id": "g", "agents": AGENTS, "embedding_provider": "mock", "graph": graph})
    instance = ALMA(config=config, storage=tmp_path / "alma.db")
    yield instance
    instance.close()


def test_writes_feed_the_graph_with_provenance(alma: ALMA) -> None:
    fact = alma.add_domain_knowledge("helena", "testing_strategies", "Alice works for Acme Corp.")
    outcome = alma.learn("helena", "Test the Acme Corp checkout", "success", "used Playwright",
                         task_type="testing_strategies")  # fmt: skip
    alma.graph.flush()
    acme = alma.graph.store.get_entity("acme_corp")
    assert acme is not None and acme.agent == "helena" and acme.memory_ids == sorted([fact.id, outcome.id])
    [edge] = alma.graph.store.get_relationships("alice")
    assert (edge.relation_type, edge.memory_ids, edge.valid_from) == ("WORKS_FOR", [fact.id], fact.created_at)


def test_expansion_reaches_the_second_hop_and_only_the_readers_graph(alma: ALMA) -> None:
    first = alma.add_domain_knowledge("helena", "testing_strategies", "Alice works for Acme Corp.")
    second = alma.add_domain_knowledge("helena", "testing_strategies", "Acme Corp is headquartered in Berlin.")
    alma.add_domain_knowledge("helena", "testing_strategies", "Bob lives in Paris.")
    alma.add_domain_knowledge("victor", "api_patterns", "Alice works for Globex.")
    readers = [*alma.scopes.readable("helena", True), "*"]
    scores = alma.graph.expand(QUESTION, readers)
    assert list(scores) == [first.id, second.id]  # Bob's fact and victor's are not reached
    assert scores[first.id] == 1.0 and 0 < scores[second.id] < 1
    assert alma.graph.expand(QUESTION, ["victor"]) != {} and first.id not in alma.graph.expand(QUESTION, ["victor"])


def test_delete_forget_and_delete_user_reach_the_graph(alma: ALMA) -> None:
    kept = alma.add_domain_knowledge("helena", "testing_strategies", "Alice works for Acme Corp.")
    doomed = alma.add_domain_knowledge("helena", "testing_strategies", "Acme Corp is headquartered in Berlin.")
    alma.add_user_preference("ana", "Ana Souza wants reports from Zurich.")
    alma.graph.flush()
    alma.delete(doomed.id)
    store = alma.graph.store
    assert store.get_entity("berlin") is None and store.get_entity("acme_corp").memory_ids == [kept.id]  # type: ignore[union-attr]
    assert store.get_entity("ana_souza") is not None
    alma.delete_user("ana")
    assert store.get_entity("ana_souza") is None and store.get_entity("zurich") is None
    alma.forget(older_than_days=0)
    assert store.find_entities(limit=None) == []


def test_graph_memory_is_off_by_default(tmp_path: Path) -> None:
    plain = ALMA(project_id="g", storage=tmp_path / "a.db", embedder="mock")
    assert plain.graph is None  # (test_graph_kuzu checks, in a fresh process, that nothing of it is imported)
    plain.close()
    with pytest.raises(ConfigError):
        parse_config({"graph": {"backend": "neo4j"}})


def test_a_graph_object_or_name_can_be_passed_in(tmp_path: Path) -> None:
    store = BackendGraphStore(create_graph_backend("memory"), project_id="elsewhere")
    alma = ALMA(project_id="g", storage=tmp_path / "a.db", embedder="mock", graph=store)
    assert isinstance(alma.graph, GraphIndex) and alma.graph.store.project_id == "g"  # bound to ALMA's project
    alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    assert alma.graph.store.get_entity("alice") is not None
    alma.close()


def test_retrieve_with_the_graph_brings_in_the_second_hop_and_shows_the_factor(tmp_path: Path) -> None:
    alma = ALMA(project_id="g", agents=AGENTS, storage=tmp_path / "a.db", embedder="mock", graph="memory")
    alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    hop = alma.add_domain_knowledge("helena", "people", "Acme Corp is headquartered in Berlin.")
    for i in range(30):  # same-shaped distractors the text search cannot tell apart from the second hop
        alma.add_domain_knowledge("helena", "people", f"Company{i} Ltd is headquartered in Town{i}.")
    alma.add_domain_knowledge("victor", "people", "Alice works for Acme Corp and Acme Corp is private.")
    plain = alma.retrieve(QUESTION, "helena", top_k=3, memory_types=["knowledge"])
    assert hop.id not in {m.id for m in plain.knowledge}
    assert all("graph" not in (m.score_breakdown or {}) for m in plain.knowledge)
    linked = alma.retrieve(QUESTION, "helena", top_k=3, memory_types=["knowledge"], use_graph=True)
    by_id = {m.id: m for m in linked.knowledge}
    assert hop.id in by_id and 0 < by_id[hop.id].score_breakdown["graph"] < 1  # type: ignore[index]
    assert all(m.agent == "helena" for m in linked.knowledge)  # victor's memory is not helena's to read
    alma.close()


def test_use_graph_without_graph_memory_is_a_validation_error(open_alma: ALMA) -> None:
    with pytest.raises(ValidationError, match="graph"):
        open_alma.retrieve("anything", "helena", use_graph=True)


def test_a_kuzu_graph_lives_beside_the_sqlite_file_and_survives_reopening(tmp_path: Path) -> None:
    alma = ALMA(project_id="g", storage=tmp_path / "store" / "a.db", embedder="mock", graph="kuzu")
    fact = alma.add_domain_knowledge("helena", "people", "Alice works for Acme Corp.")
    alma.close()
    assert (tmp_path / "store" / "graph" / "graph.kuzu").exists()
    again = ALMA(project_id="g", storage=tmp_path / "store" / "a.db", embedder="mock", graph="kuzu")
    assert again.graph.store.get_entity("alice").memory_ids == [fact.id]  # type: ignore[union-attr]
    again.close()


def test_a_failed_background_extraction_is_logged_and_counted_and_the_worker_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The background worker survives an extractor that raises (an LLM extractor whose model is down)."""
    import logging

    graph = {"backend": "memory", "extraction": "background"}
    config = parse_config({"project_id": "g", "embedding_provider": "mock", "graph": graph})
    with ALMA(config=config, storage=tmp_path / "alma.db") as alma:
        assert alma.graph is not None
        rules = alma.graph.extractor

        class Flaky:
            def extract(self, text: str) -> tuple[list[Any], list[Any]]:
                if "Acme" in text:
                    raise RuntimeError("the extractor's model is down")
                return rules.extract(text)

        alma.graph.extractor = Flaky()
        with caplog.at_level(logging.ERROR, logger="alma_core.graph"):
            alma.add_domain_knowledge("helena", "testing_strategies", "Alice works for Acme Corp.")
            alma.graph.flush()
            later = alma.add_domain_knowledge("helena", "testing_strategies", "Bob lives in Paris.")
            alma.graph.flush()
        assert alma.graph.errors == 1 and "graph extraction failed for 1 memories" in caplog.text
        paris = alma.graph.store.get_entity("paris")
        assert paris is not None and paris.memory_ids == [later.id]
