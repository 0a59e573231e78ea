"""Domain schemas validate their input, and the factory scopes agents to a schema's categories."""

from __future__ import annotations

from pathlib import Path

import pytest

from alma_core import ALMA, DomainMemoryFactory, DomainSchema, ScopeViolation, ValidationError, create_schema
from alma_core.domains import get_schema, list_schemas

GOOD = {"entity_types": ["ticket", {"name": "customer", "attributes": ["tier"]}], "learning_categories": ["triage"]}


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("Bad Name", GOOD, "lowercase identifier"),
        ("ok", ["not", "a", "mapping"], "must be a mapping"),
        ("ok", {**GOOD, "colour": "red"}, "unknown keys"),
        ("ok", {"learning_categories": ["triage"]}, "entity_types must be a non-empty list"),
        ("ok", {**GOOD, "entity_types": []}, "entity_types must be a non-empty list"),
        ("ok", {**GOOD, "entity_types": ["ticket", "ticket"]}, "more than once"),
        ("ok", {**GOOD, "entity_types": [{"name": "t", "colour": 1}]}, "unknown keys"),
        ("ok", {**GOOD, "entity_types": [42]}, "must be a name or a mapping"),
        ("ok", {**GOOD, "learning_categories": []}, "non-empty list of names"),
        ("ok", {**GOOD, "learning_categories": "triage"}, "non-empty list of names"),
        ("ok", {**GOOD, "learning_categories": ["has space"]}, "lowercase identifier"),
        ("ok", {**GOOD, "learning_categories": ["a", "a"]}, "more than once"),
        ("ok", {**GOOD, "cannot_learn": ["triage"]}, "both learning_categories and cannot_learn"),
        ("ok", {**GOOD, "min_occurrences_for_heuristic": 0}, "min_occurrences_for_heuristic"),
        ("ok", {**GOOD, "min_occurrences_for_heuristic": True}, "min_occurrences_for_heuristic"),
    ],
)
def test_bad_schema_definitions_raise_a_typed_error_naming_the_problem(name: str, config: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        create_schema(name, config)  # type: ignore[arg-type]


def test_a_valid_schema_keeps_its_entities_and_categories() -> None:
    schema = create_schema("support", {**GOOD, "description": "Tickets", "cannot_learn": ["billing"]})
    assert [e.name for e in schema.entity_types] == ["ticket", "customer"]
    assert schema.entity_types[1].attributes == ("tier",)
    assert schema.learning_categories == ("triage",)
    assert schema.cannot_learn == ("billing",)
    assert "Learns: triage" in schema.to_prompt()


def test_the_six_prebuilt_schemas_exist_and_are_distinct() -> None:
    names = ["coding", "content_creation", "customer_support", "general", "research", "sales"]
    assert list_schemas() == names
    schemas = [get_schema(n) for n in names]
    assert all(isinstance(s, DomainSchema) and s.name == n for s, n in zip(schemas, names, strict=True))
    assert all(len(s.learning_categories) >= 6 and len(s.entity_types) >= 4 for s in schemas)
    assert "literature_review_patterns" in get_schema("research").learning_categories
    with pytest.raises(ValidationError, match="choose among"):
        get_schema("astrology")


def test_factory_agents_from_a_list_learn_every_category_of_the_schema(tmp_path: Path) -> None:
    schema = get_schema("research")
    with DomainMemoryFactory().create_alma(schema, "lit", ["scout", "critic"], tmp_path / "a.db", "mock") as alma:
        assert isinstance(alma, ALMA)
        assert alma.config.agents["scout"].can_learn == list(schema.learning_categories)
        assert alma.config.agents["critic"].domain == "research"
        alma.learn("scout", "Survey transformer papers", True, "snowball citations", task_type="citation_patterns")
        with pytest.raises(ScopeViolation):
            alma.learn("scout", "Close the deal", True, "discount", task_type="closing_techniques")
        assert alma.stats("scout").outcomes == 1


def test_factory_agents_from_a_mapping_get_a_subset_and_extra_fields(coding_alma: ALMA) -> None:
    helena = coding_alma.config.agents["helena"]
    assert helena.can_learn == ["testing_strategies", "selector_patterns"]
    assert helena.min_occurrences_for_heuristic == 2
    with pytest.raises(ScopeViolation):
        coding_alma.learn("helena", "Design the API", True, "REST", task_type="api_design_patterns")
    coding_alma.learn("victor", "Design the API", True, "REST", task_type="api_design_patterns")


def test_factory_refuses_categories_outside_the_schema_and_bad_agent_specs(tmp_path: Path) -> None:
    factory = DomainMemoryFactory()
    with pytest.raises(ValidationError, match="not learning categories of schema 'coding'"):
        factory.create_alma("coding", "p", {"helena": ["closing_techniques"]}, tmp_path / "a.db", "mock")
    with pytest.raises(ValidationError, match=r"agents\.helena"):
        factory.create_alma("coding", "p", {"helena": {"colour": "red"}}, tmp_path / "a.db", "mock")
    with pytest.raises(ValidationError, match="non-empty list"):
        factory.create_alma("coding", "p", "helena", tmp_path / "a.db", "mock")  # type: ignore[arg-type]
    assert not (tmp_path / "a.db").exists()  # nothing was opened for a bad definition


def test_factory_registers_custom_schemas_by_name(tmp_path: Path) -> None:
    factory = DomainMemoryFactory()
    factory.create_schema("support_lite", GOOD)
    assert "support_lite" in factory.list_schemas()
    with factory.create_alma("support_lite", "p", storage=tmp_path / "a.db", embedder="mock") as alma:
        assert alma.config.agents["support_lite"].can_learn == ["triage"]
