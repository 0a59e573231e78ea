"""Bad configs and bad arguments: each raises a typed error that says where and what, and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, ConfigError, NotFound, ScopeViolation, UnknownAgent, ValidationError, load_config

GOOD_AGENTS = """
  agents:
    helena:
      can_learn: [testing_strategies]
    qa_lead: {}
"""

# (id, yaml text, key path the message must name)
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("unknown_key", "alma:\n  storag: sqlite\n", "alma.storag"),
    ("unknown_agent_key", "alma:\n  agents:\n    helena:\n      can_lern: [x]\n", "alma.agents.helena.can_lern"),
    ("wrong_type_dim", "alma:\n  embedding_dim: big\n", "alma.embedding_dim"),
    ("wrong_type_list", "alma:\n  agents:\n    helena:\n      can_learn: 5\n", "alma.agents.helena.can_learn"),
    ("dim_out_of_range", "alma:\n  embedding_dim: 2\n", "alma.embedding_dim"),
    ("bad_storage", "alma:\n  storage: mongodb\n", "alma.storage"),
    ("bad_provider", "alma:\n  embedding_provider: openai\n", "alma.embedding_provider"),
    ("bad_project_id", "alma:\n  project_id: 'has spaces'\n", "alma.project_id"),
    ("negative_weight", "alma:\n  retrieval:\n    w_relevance: -1\n", "alma.retrieval.w_relevance"),
    ("bad_mode", "alma:\n  retrieval:\n    mode: fuzzy\n", "alma.retrieval.mode"),
    ("db_name_a_path", "alma:\n  db_name: ../../elsewhere.db\n", "alma.db_name"),
    ("db_name_absolute", "alma:\n  db_name: /tmp/elsewhere.db\n", "alma.db_name"),
    ("db_name_dot_dot", "alma:\n  db_name: '..'\n", "alma.db_name"),
    ("agents_differing_in_case", "alma:\n  agents:\n    Helena: {}\n    helena: {}\n", "alma.agents"),
    ("inherit_self", "alma:\n  agents:\n    a:\n      inherit_from: [a]\n", "alma.agents.a.inherit_from"),
    ("inherit_cycle",
     "alma:\n  agents:\n    a:\n      inherit_from: [b]\n    b:\n      inherit_from: [c]\n"
     "    c:\n      inherit_from: [a]\n", "alma.agents"),
    ("scope_overlap", "alma:\n  agents:\n    a:\n      can_learn: [x]\n      cannot_learn: [x]\n", "alma.agents.a"),
    ("bad_agent_name", "alma:\n  agents:\n    'has space': {}\n", "alma.agents"),
    ("missing_var", "alma:\n  project_id: ${ALMA_TEST_UNSET_VAR}\n", "alma.project_id"),
    ("missing_var_nested", "alma:\n  agents:\n    a:\n      can_learn: [x, '${ALMA_TEST_UNSET_VAR}']\n",
     "alma.agents.a.can_learn[1]"),
    ("bad_yaml", "alma:\n  project_id: [unclosed\n", "YAML"),
    ("other_top_level_key", "alma:\n  project_id: p\nextra: 1\n", "extra"),
    ("top_level_not_alma_only", "project_id: p\nstorage: sqlite\ntypo: 1\n", "alma.typo"),
    ("alma_not_mapping", "alma: [1, 2]\n", "alma"),
    ("document_not_mapping", "- just\n- a list\n", "alma"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_raises_config_error_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str
) -> None:
    monkeypatch.delenv("ALMA_TEST_UNSET_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        ALMA.from_config(path, embedder="mock")
    message = str(info.value)
    assert str(path) in message
    assert where in message
    assert "\n" not in message
    assert not (tmp_path / ".alma").exists()  # nothing written


def test_missing_config_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alma init"):
        load_config(tmp_path / "nope.yaml")


def test_missing_var_message_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALMA_TEST_UNSET_VAR", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("alma:\n  project_id: ${ALMA_TEST_UNSET_VAR}\n")
    with pytest.raises(ConfigError, match=r"ALMA_TEST_UNSET_VAR is not set.*:-default"):
        load_config(path)


def test_var_expansion_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMA_TEST_PROJECT", "from-env")
    monkeypatch.delenv("ALMA_TEST_UNSET_VAR", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        "alma:\n  project_id: ${ALMA_TEST_PROJECT}\n  storage_dir: ${ALMA_TEST_UNSET_VAR:-"
        + str(tmp_path / "st")
        + "}\n  db_name: ${ALMA_TEST_UNSET_VAR:-x.db}\n  embedding_provider: mock\n"
        + GOOD_AGENTS
    )
    config = load_config(path)
    assert config.project_id == "from-env"
    assert config.db_path == tmp_path / "st" / "x.db"
    with ALMA.from_config(path) as alma:
        alma.learn(agent="helena", task="test login", outcome=True)
    assert (tmp_path / "st" / "x.db").exists()


def test_bare_mapping_without_alma_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("project_id: bare\nembedding_provider: mock\n")
    assert load_config(path).project_id == "bare"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agents": {"a": {"inherit_from": ["a"]}}}, r"alma\.agents\.a\.inherit_from: an agent cannot list itself"),
        ({"agents": {"a": {"bogus": 1}}}, r"agents\.a\.bogus"),
        ({"agents": {"a": {"can_learn": "x"}}}, r"agents\.a\.can_learn"),
        ({"project_id": ""}, r"project_id"),
        ({"embedder": "openai"}, r"embedding_provider must be"),
        ({"embedder": object()}, r"embed_documents\(\) and embed_query\(\)"),
        ({"storage": 42}, r"storage must be a path or a storage object"),
    ],
    ids=["inherit_self", "unknown_agent_key", "can_learn_not_a_list", "empty_project", "bad_embedder_name",
         "bad_embedder_object", "bad_storage"],
)  # fmt: skip
def test_bad_constructor_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    kwargs.setdefault("storage", tmp_path / "alma.db")
    kwargs.setdefault("embedder", "mock")
    with pytest.raises(ConfigError, match=match):
        ALMA(**kwargs)
    assert not (tmp_path / "alma.db").exists()


# ---- bad arguments to an existing store: typed error, counts unchanged -------------------------------------


def _bad_jsonl(tmp: Path) -> Path:
    path = tmp / "bad.jsonl"
    good = {"type": "outcome", "agent": "helena", "task": "ok", "success": True, "task_type": "testing_strategies"}
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps(good) + "\n")
    return path


def _unknown_type_jsonl(tmp: Path) -> Path:
    path = tmp / "bad_type.jsonl"
    good = {"type": "outcome", "agent": "helena", "task": "ok", "success": True, "task_type": "testing_strategies"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "type": "dream"}) + "\n")
    return path


def _missing_field_jsonl(tmp: Path) -> Path:
    path = tmp / "bad_field.jsonl"
    good = {"type": "outcome", "agent": "helena", "task": "ok", "success": True, "task_type": "testing_strategies"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"type": "outcome", "agent": "helena"}) + "\n")
    return path


def _scope_jsonl(tmp: Path) -> Path:
    path = tmp / "bad_scope.jsonl"
    good = {"type": "outcome", "agent": "helena", "task": "ok", "success": True, "task_type": "testing_strategies"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "task_type": "backend_logic"}) + "\n")
    return path


GOOD_ITEM = {"agent": "helena", "task": "test login", "outcome": "success", "task_type": "testing_strategies"}

BadCall = Callable[[ALMA, Path], Any]
BAD_CALLS: list[tuple[str, BadCall, type[Exception]]] = [
    ("bad_outcome_value", lambda a, t: a.learn(agent="helena", task="test login", outcome="maybe"), ValidationError),
    ("outcome_not_str", lambda a, t: a.learn(agent="helena", task="test login", outcome=3), ValidationError),
    ("empty_task", lambda a, t: a.learn(agent="helena", task="", outcome=True), ValidationError),
    ("blank_task", lambda a, t: a.learn(agent="helena", task="   ", outcome=True), ValidationError),
    ("negative_duration", lambda a, t: a.learn(agent="helena", task="test x", outcome=True, duration_ms=-1),
     ValidationError),
    ("timestamp_not_datetime", lambda a, t: a.learn(agent="helena", task="test x", outcome=True, timestamp="today"),
     ValidationError),
    ("learn_unknown_agent", lambda a, t: a.learn(agent="ghost", task="test x", outcome=True), UnknownAgent),
    ("learn_out_of_scope", lambda a, t: a.learn(agent="helena", task="x", outcome=True, task_type="backend_logic"),
     ScopeViolation),
    ("learn_many_bad_outcome", lambda a, t: a.learn_many([GOOD_ITEM, GOOD_ITEM, {**GOOD_ITEM, "outcome": "maybe"}]),
     ValidationError),
    ("learn_many_unknown_arg", lambda a, t: a.learn_many([GOOD_ITEM, {**GOOD_ITEM, "colour": "red"}]),
     ValidationError),
    ("learn_many_out_of_scope", lambda a, t: a.learn_many([GOOD_ITEM, {**GOOD_ITEM, "task_type": "backend_logic"}]),
     ScopeViolation),
    ("learn_many_unknown_agent", lambda a, t: a.learn_many([GOOD_ITEM, {**GOOD_ITEM, "agent": "ghost"}]),
     UnknownAgent),
    ("import_bad_json_line", lambda a, t: a.import_(_bad_jsonl(t)), ValidationError),
    ("import_unknown_type", lambda a, t: a.import_(_unknown_type_jsonl(t)), ValidationError),
    ("import_missing_field", lambda a, t: a.import_(_missing_field_jsonl(t)), ValidationError),
    ("import_out_of_scope", lambda a, t: a.import_(_scope_jsonl(t)), ScopeViolation),
    ("import_missing_file", lambda a, t: a.import_(t / "nope.jsonl"), ValidationError),
    ("retrieve_empty_task", lambda a, t: a.retrieve(task="", agent="helena"), ValidationError),
    ("top_k_zero", lambda a, t: a.retrieve(task="login", agent="helena", top_k=0), ValidationError),
    ("top_k_too_big", lambda a, t: a.retrieve(task="login", agent="helena", top_k=1001), ValidationError),
    ("top_k_str", lambda a, t: a.retrieve(task="login", agent="helena", top_k="5"), ValidationError),
    ("top_k_bool", lambda a, t: a.retrieve(task="login", agent="helena", top_k=True), ValidationError),
    ("bad_memory_types", lambda a, t: a.retrieve(task="login", agent="helena", memory_types=["dreams"]),
     ValidationError),
    ("bad_mode", lambda a, t: a.retrieve(task="login", agent="helena", mode="fuzzy"), ValidationError),
    ("knowledge_confidence", lambda a, t: a.add_domain_knowledge(agent="qa_lead", domain="d", fact="f",
                                                                  confidence=1.5), ValidationError),
    ("knowledge_empty_fact", lambda a, t: a.add_domain_knowledge(agent="qa_lead", domain="d", fact=""),
     ValidationError),
    ("preference_empty_user", lambda a, t: a.add_user_preference(user_id="", preference="p"), ValidationError),
    ("anti_pattern_empty", lambda a, t: a.add_anti_pattern(agent="qa_lead", pattern=""), ValidationError),
    ("get_missing", lambda a, t: a.get("no-such-id"), NotFound),
    ("delete_missing", lambda a, t: a.delete("no-such-id"), NotFound),
    ("forget_no_criteria", lambda a, t: a.forget(), ValidationError),
    ("forget_negative_days", lambda a, t: a.forget(older_than_days=-1), ValidationError),
    ("forget_bad_confidence", lambda a, t: a.forget(below_confidence=2), ValidationError),
    ("delete_user_empty", lambda a, t: a.delete_user(""), ValidationError),
    ("stats_unknown_agent", lambda a, t: a.stats(agent="ghost"), UnknownAgent),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_argument_raises_typed_error_and_writes_nothing(
    alma: ALMA, tmp_path: Path, call: BadCall, error: type[Exception]
) -> None:
    seed = alma.learn(agent="helena", task="test the seed", outcome=True, strategy_used="seeded",
                      timestamp=datetime(2020, 1, 1, tzinfo=UTC))  # fmt: skip
    before = alma.stats().model_dump()
    with pytest.raises(error):
        call(alma, tmp_path)
    assert alma.stats().model_dump() == before
    assert alma.get(seed.id).strategy_used == "seeded"


def test_not_found_and_validation_errors_are_builtin_compatible(alma: ALMA) -> None:
    with pytest.raises(KeyError):
        alma.get("missing")
    with pytest.raises(ValueError):
        alma.retrieve(task="", agent="helena")
    with pytest.raises(PermissionError):
        alma.learn(agent="helena", task="x", outcome=True, task_type="backend_logic")


@pytest.mark.parametrize("call", ["list_memories", "forget"])
def test_an_unknown_memory_type_is_a_validation_error_everywhere(alma, call: str) -> None:
    from alma_core import ValidationError

    kwargs = {"memory_types": ["outcome", "nonsense"]}
    if call == "forget":
        kwargs["older_than_days"] = 0
    with pytest.raises(ValidationError, match="memory_types"):
        getattr(alma, call)(**kwargs)
