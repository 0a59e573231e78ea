"""The graph protocol suite: `BackendGraphStore` behaves the same over every bundled backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alma_core import ValidationError
from alma_core.graph import BackendGraphStore, Entity, EntityExtractor, GraphBackend, Relationship

JAN, MAR, JUN = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 3, 6))


def works_for(source: str, target: str, when: datetime, memory: str = "") -> Relationship:
    return Relationship(source_id=source, target_id=target, relation_type="WORKS_FOR", valid_from=when,
                        memory_ids=[memory] if memory else [])  # fmt: skip


def test_the_seed_block_runs_as_written(backend: GraphBackend) -> None:
    graph = BackendGraphStore(backend)
    extractor = EntityExtractor()
    entities, relationships = extractor.extract("Alice from Acme Corp reviewed the PR that Bob submitted.")
    for entity in entities:
        graph.add_entity(entity)
    for rel in relationships:
        graph.add_relationship(rel)
    alice_relations = graph.get_relationships("alice", relationship_type="WORKS_FOR")
    assert [(r.source_id, r.target_id) for r in alice_relations] == [("alice", "acme_corp")]
    assert graph.get_entity("acme_corp").entity_type == "organization"  # type: ignore[union-attr]
    assert {r.relation_type for r in graph.get_relationships("pr", direction="incoming")} == {"REVIEWED", "CREATED"}


def test_adding_an_entity_again_merges_its_provenance(graph: BackendGraphStore) -> None:
    graph.add_entity(Entity(name="Alice", memory_ids=["m1"]))
    graph.add_entity(Entity(name="Alice", entity_type="person", memory_ids=["m2"], properties={"team": "qa"}))
    [alice] = graph.find_entities(name="ali")
    assert (alice.id, alice.entity_type, alice.memory_ids, alice.properties) == ("alice", "person", ["m1", "m2"],
                                                                                 {"team": "qa"})  # fmt: skip


def test_the_same_current_edge_twice_is_one_edge_with_both_memories(graph: BackendGraphStore) -> None:
    first = graph.add_relationship(works_for("alice", "acme", JAN, "m1"))
    second = graph.add_relationship(works_for("alice", "acme", MAR, "m2"))
    assert first == second
    [edge] = graph.get_relationships("alice")
    assert edge.memory_ids == ["m1", "m2"]


def test_a_superseded_relation_keeps_its_history(graph: BackendGraphStore) -> None:
    graph.add_relationship(works_for("alice", "acme", JAN))
    graph.add_relationship(works_for("alice", "globex", JUN))
    assert [r.target_id for r in graph.get_relationships("alice", relationship_type="WORKS_FOR")] == ["globex"]
    history = graph.history("alice", "WORKS_FOR")
    assert [(r.target_id, r.valid_from, r.valid_to) for r in history] == [("acme", JAN, JUN), ("globex", JUN, None)]
    assert [r.target_id for r in graph.get_relationships("alice", at=MAR)] == ["acme"]


def test_an_older_fact_learned_late_goes_straight_to_history(graph: BackendGraphStore) -> None:
    graph.add_relationship(works_for("alice", "globex", JUN))
    graph.add_relationship(works_for("alice", "acme", JAN))
    assert [r.target_id for r in graph.get_relationships("alice")] == ["globex"]
    assert [r.target_id for r in graph.get_relationships("alice", at=MAR)] == ["acme"]


def test_non_exclusive_relations_accumulate(graph: BackendGraphStore) -> None:
    for tool in ("pytest", "playwright"):
        graph.add_relationship(Relationship(source_id="helena", target_id=tool, relation_type="uses"))
    assert sorted(r.target_id for r in graph.get_relationships("helena", relation_type="USES")) == [
        "playwright",
        "pytest",
    ]


def test_neighbours_to_k_hops(graph: BackendGraphStore) -> None:
    for source, target in [("alice", "acme"), ("acme", "berlin"), ("berlin", "germany")]:
        graph.add_relationship(Relationship(source_id=source, target_id=target, relation_type="RELATED_TO"))
    assert graph.neighbors(["alice"], hops=1).hops == {"alice": 0, "acme": 1}
    result = graph.traverse("alice", max_hops=2)
    assert result.hops == {"alice": 0, "acme": 1, "berlin": 2}
    assert sorted(e.id for e in result.entities) == ["acme", "alice", "berlin"]
    with pytest.raises(ValidationError):
        graph.neighbors(["alice"], hops=9)


def test_find_by_name_and_type(graph: BackendGraphStore) -> None:
    graph.add([Entity(name="Acme Corp", entity_type="organization"), Entity(name="Alice", entity_type="person"),
               Entity(name="Acme Labs", entity_type="Organization")])  # fmt: skip
    assert [e.id for e in graph.find_entities(name="ACME")] == ["acme_corp", "acme_labs"]
    assert [e.id for e in graph.find_entities(entity_type="person")] == ["alice"]
    assert [e.id for e in graph.find_entities(name="acme", limit=1)] == ["acme_corp"]


def test_delete_by_memory_keeps_what_other_memories_or_hands_added(graph: BackendGraphStore) -> None:
    graph.add(
        [Entity(name="Alice", memory_ids=["m1", "m2"]), Entity(name="Acme", memory_ids=["m1"]), Entity(name="Bob")],
        [Relationship(source_id="alice", target_id="acme", relation_type="WORKS_FOR", memory_ids=["m1"])],
    )
    assert graph.delete_by_memory(["m1"]) == 2  # acme and the edge
    assert graph.get_entity("acme") is None and graph.get_relationships("alice") == []
    assert graph.get_entity("alice").memory_ids == ["m2"]  # type: ignore[union-attr]
    assert graph.get_entity("bob") is not None  # added by hand: no memory to forget it with


def test_delete_by_user_and_by_project(backend: GraphBackend) -> None:
    mine, theirs = BackendGraphStore(backend, project_id="p1"), BackendGraphStore(backend, project_id="p2")
    mine.add([Entity(name="Ana", user_id="ana", memory_ids=["m1"]), Entity(name="Zed", memory_ids=["m2"])])
    theirs.add([Entity(name="Ana", user_id="ana", memory_ids=["m9"])])
    assert mine.delete_by_user("ana") == 1
    assert [e.id for e in mine.find_entities()] == ["zed"]
    assert [e.id for e in theirs.find_entities()] == ["ana"]  # another project: untouched
    assert mine.delete_project() == 1 and mine.find_entities() == []
    assert theirs.get_entity("ana") is not None


def test_projects_never_see_each_other(backend: GraphBackend) -> None:
    one, two = BackendGraphStore(backend, project_id="one"), BackendGraphStore(backend, project_id="two")
    one.add_relationship(works_for("alice", "acme", JAN))
    assert two.get_relationships("alice") == [] and two.get_entity("alice") is None
    with pytest.raises(ValidationError):
        two.add_entity(Entity(name="Alice", project_id="one"))


def test_agents_read_only_their_readers_graph(backend: GraphBackend) -> None:
    base = BackendGraphStore(backend, project_id="p1")
    base.scoped("helena").add_relationship(works_for("alice", "acme", JAN))
    base.scoped("victor").add_relationship(works_for("alice", "globex", JAN))
    helena = base.scoped("helena", readers=["helena"])
    assert [r.target_id for r in helena.get_relationships("alice")] == ["acme"]  # victor's edge is not superseding
    lead = base.scoped("qa_lead", readers=["qa_lead", "helena", "victor"])
    assert sorted(r.target_id for r in lead.get_relationships("alice")) == ["acme", "globex"]
    assert base.scoped("qa_lead", readers=["qa_lead"]).get_relationships("alice") == []


def test_bad_input_is_a_validation_error_and_stores_nothing(graph: BackendGraphStore) -> None:
    for bad in (
        lambda: Entity(),
        lambda: Entity(name="x" * 2000),
        lambda: Relationship(source_id="a", target_id="b", relation_type="works for!"),
        lambda: Relationship(source_id="a", target_id="b", confidence=float("nan")),
        lambda: Relationship(source_id="a", target_id="", relation_type="USES"),
        lambda: Relationship(source_id="a", target_id="b", valid_from=JUN, valid_to=JAN),
        lambda: Entity(name="Alice", memory_ids="m1"),
        lambda: Entity(name="Alice", user_id=" "),
        lambda: Entity(name="Alice", properties=[1]),
        lambda: Relationship(source_id="a", target_id="b", agent=5),
        lambda: Relationship(source_id="a", target_id="b", memory_ids="m1"),
        lambda: graph.get_relationships("alice", direction="sideways"),
    ):
        with pytest.raises(ValidationError):
            bad()
    assert graph.find_entities() == []
