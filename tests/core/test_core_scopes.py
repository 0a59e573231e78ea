"""Scopes and sharing: every write path enforces can_learn / cannot_learn; reads follow inherit_from /
share_with, one hop, marked `shared_from`; nobody reads an agent that shares with nobody."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, Memory, ScopeViolation, UnknownAgent

AGENTS = {
    "helena": {
        "domain": "coding",
        "can_learn": ["testing_strategies", "selector_patterns"],
        "cannot_learn": ["backend_logic"],
        "share_with": ["qa_lead"],
    },
    "victor": {"can_learn": ["api_patterns"], "cannot_learn": ["frontend_styling"], "inherit_from": ["qa_lead"]},
    "qa_lead": {"cannot_learn": ["deployment"]},
    "loner": {},
}

Write = Callable[[ALMA, str, str, Path], Any]


def _learn(alma: ALMA, agent: str, category: str, _: Path) -> Any:
    return alma.learn(agent=agent, task=f"task about {category}", outcome="success", strategy_used="s",
                      task_type=category)  # fmt: skip


def _learn_many(alma: ALMA, agent: str, category: str, _: Path) -> Any:
    ok = {"agent": agent, "task": "first", "outcome": True, "task_type": "testing_strategies"}
    if agent != "helena":
        ok["task_type"] = category
    return alma.learn_many([ok, {"agent": agent, "task": "second", "outcome": False, "task_type": category}])


def _preference(alma: ALMA, agent: str, category: str, _: Path) -> Any:
    return alma.add_user_preference(user_id="u1", preference="dark mode", category=category, agent=agent)


def _knowledge(alma: ALMA, agent: str, category: str, _: Path) -> Any:
    return alma.add_domain_knowledge(agent=agent, domain=category, fact="a fact")


def _anti_pattern(alma: ALMA, agent: str, category: str, _: Path) -> Any:
    return alma.add_anti_pattern(agent=agent, pattern="sleep(5)", why_bad="flaky", task_type=category)


def _import(alma: ALMA, agent: str, category: str, tmp: Path) -> Any:
    path = tmp / f"import-{agent}-{category}.jsonl"
    lines = [
        {"type": "outcome", "agent": agent, "task": "ok one", "success": True, "task_type": "testing_strategies"},
        {"type": "knowledge", "agent": agent, "domain": category, "fact": "imported fact"},
    ]
    if agent != "helena":
        lines[0]["task_type"] = category
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return alma.import_(path)


WRITES: list[Write] = [_learn, _learn_many, _preference, _knowledge, _anti_pattern, _import]
WRITE_IDS = ["learn", "learn_many", "add_user_preference", "add_domain_knowledge", "add_anti_pattern", "import_"]


@pytest.fixture
def scoped(tmp_path: Path):
    instance = ALMA(project_id="scopes", agents=AGENTS, storage=tmp_path / "alma.db", embedder="mock")
    yield instance
    instance.close()


@pytest.mark.parametrize("write", WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    ("agent", "category"),
    [("helena", "backend_logic"), ("helena", "cooking"), ("victor", "frontend_styling"), ("qa_lead", "deployment")],
    ids=["cannot_learn", "not_in_can_learn", "cannot_learn_victor", "cannot_learn_open_agent"],
)
def test_out_of_scope_write_raises_and_stores_nothing(
    scoped: ALMA, tmp_path: Path, write: Write, agent: str, category: str
) -> None:
    with pytest.raises(ScopeViolation) as info:
        write(scoped, agent, category, tmp_path)
    assert info.value.agent == agent
    assert info.value.category == category
    assert scoped.stats().total == 0


@pytest.mark.parametrize("write", WRITES, ids=WRITE_IDS)
@pytest.mark.parametrize(
    ("agent", "category"),
    [("helena", "testing_strategies"), ("victor", "api_patterns"), ("qa_lead", "anything_goes")],
)
def test_in_scope_write_is_stored(scoped: ALMA, tmp_path: Path, write: Write, agent: str, category: str) -> None:
    write(scoped, agent, category, tmp_path)
    stats = scoped.stats()
    assert stats.total >= 1
    assert set(stats.by_agent) == {agent}


@pytest.mark.parametrize("write", WRITES, ids=WRITE_IDS)
def test_unknown_agent_raises_and_stores_nothing(scoped: ALMA, tmp_path: Path, write: Write) -> None:
    with pytest.raises(UnknownAgent) as info:
        write(scoped, "mallory", "testing_strategies", tmp_path)
    assert info.value.agent == "mallory"
    assert "mallory" in str(info.value) and "helena" in str(info.value)
    assert scoped.stats().total == 0


def test_unknown_agent_on_reads_too(scoped: ALMA) -> None:
    with pytest.raises(UnknownAgent):
        scoped.retrieve(task="anything", agent="mallory")
    with pytest.raises(UnknownAgent):
        scoped.stats(agent="mallory")


@pytest.mark.parametrize("write", WRITES, ids=WRITE_IDS)
def test_no_agents_configured_means_every_agent_is_open(tmp_path: Path, write: Write) -> None:
    with ALMA(project_id="open", storage=tmp_path / "open.db", embedder="mock") as alma:
        write(alma, "anyone", "backend_logic", tmp_path)
        assert set(alma.stats().by_agent) == {"anyone"}


def test_preference_without_agent_is_project_wide_and_not_scope_checked(scoped: ALMA) -> None:
    pref = scoped.add_user_preference(user_id="u1", preference="tabs not spaces", category="backend_logic")
    for reader in AGENTS:
        found = scoped.retrieve(task="tabs or spaces", agent=reader, user_id="u1", memory_types=["preference"])
        assert [p.id for p in found.preferences] == [pref.id]
        assert "shared_from" not in found.preferences[0].metadata


DOMAIN = {"helena": "testing_strategies", "victor": "api_patterns"}


def _remember(alma: ALMA, agent: str, fact: str) -> Memory:
    return alma.add_domain_knowledge(agent=agent, domain=DOMAIN.get(agent, "general"), fact=fact)


def _visible(alma: ALMA, reader: str, include_shared: bool = True) -> dict[str, Memory]:
    found = alma.retrieve(task="login form fact", agent=reader, top_k=50, include_shared=include_shared)
    return {m.id: m for m in found}


def test_reads_follow_share_with_and_inherit_from_marked_shared_from(scoped: ALMA) -> None:
    own = {name: _remember(scoped, name, f"login form fact of {name}") for name in AGENTS}

    qa = _visible(scoped, "qa_lead")  # helena shares with qa_lead
    assert set(qa) == {own["qa_lead"].id, own["helena"].id}
    assert qa[own["helena"].id].metadata["shared_from"] == "helena"
    assert "shared_from" not in qa[own["qa_lead"].id].metadata

    victor = _visible(scoped, "victor")  # victor inherits from qa_lead; one hop, so not helena's
    assert set(victor) == {own["victor"].id, own["qa_lead"].id}
    assert victor[own["qa_lead"].id].metadata["shared_from"] == "qa_lead"

    assert set(_visible(scoped, "helena")) == {own["helena"].id}  # sharing is not symmetric
    assert set(_visible(scoped, "loner")) == {own["loner"].id}


def test_nobody_reads_an_unshared_agents_memories(scoped: ALMA) -> None:
    secret = _remember(scoped, "loner", "login form fact nobody else may see")
    for reader in ("helena", "victor", "qa_lead"):
        assert secret.id not in _visible(scoped, reader)


def test_include_shared_false_returns_only_own(scoped: ALMA) -> None:
    mine = _remember(scoped, "qa_lead", "login form fact of qa")
    _remember(scoped, "helena", "login form fact of helena")
    assert set(_visible(scoped, "qa_lead", include_shared=False)) == {mine.id}


def test_shared_marker_is_never_written_back(scoped: ALMA) -> None:
    memory = _remember(scoped, "helena", "login form fact of helena")
    assert _visible(scoped, "qa_lead")[memory.id].metadata["shared_from"] == "helena"
    assert "shared_from" not in scoped.get(memory.id).metadata
    assert scoped.stats().by_agent == {"helena": 1}
