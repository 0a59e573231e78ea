"""A real two-agent Crew with ALMA as its memory: outcomes are learned from task events and the next
kickoff (in another process) sees them in its prompts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from _helpers import EXAMPLES, run_example
from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM

from alma_core import ALMA, MemoryType
from alma_crewai import AlmaCrewMemory

SCOPE_ERRORS = ("learning error", "may not learn", "Failed to save")  # refused learning, dropped memory save
DOCS_AGENTS = {"researcher": {"can_learn": ["research"]}, "writer": {"can_learn": ["briefs"]}}  # docs/crewai.md


class EchoLLM(BaseLLM):
    """Answers every agent prompt with a fixed final answer (and CrewAI's analysis with '{}')."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        text = messages if isinstance(messages, str) else "\n".join(str(m.get("content", "")) for m in messages)
        return "Thought: done\nFinal Answer: used checklist A" if "Current Task:" in text else "{}"


class NotesLLM(BaseLLM):
    """Like EchoLLM, but CrewAI's memory analysis extracts one note and gives it no category."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        text = messages if isinstance(messages, str) else "\n".join(str(m.get("content", "")) for m in messages)
        if "Current Task:" in text:
            return "Thought: done\nFinal Answer: read the docs first"
        if "extract discrete" in text:
            return json.dumps({"memories": ["WAL readers never block the writer"]})
        return json.dumps({"suggested_scope": "/", "categories": [], "importance": 0.5})


def make_crew(llm: EchoLLM, name: str = "qa") -> Crew:
    agents = [Agent(role=r, goal="g", backstory="b", llm=llm) for r in ("Helena", "Victor")]
    tasks = [
        Task(description="Test the login form", expected_output="report", agent=agents[0]),
        Task(description="Check the orders API", expected_output="report", agent=agents[1]),
    ]
    return Crew(name=name, agents=agents, tasks=tasks)


def kickoff_in_a_process(db: Path, prompts: Path) -> dict[str, Any]:
    """One kickoff of examples/crewai_memory.py in its own process: the prompts it saw and whether it passed."""
    out = run_example("crewai_memory.py", "--db", str(db), "--runs", "1", "--prompts", str(prompts))
    assert not any(sign in out for sign in SCOPE_ERRORS), out
    return json.loads(prompts.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def kickoff_here(db: Path, prompts: Path, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The same kickoff in this process (crewai is already imported: one interpreter start saved)."""
    spec = importlib.util.spec_from_file_location("crewai_memory_example", EXAMPLES / "crewai_memory.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--db", str(db), "--runs", "1", "--prompts", str(prompts)]) == 0
    out = capfd.readouterr().out
    assert "kickoff 1" in out and not any(sign in out for sign in SCOPE_ERRORS), out
    return json.loads(prompts.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def agent_prompt(run: dict[str, Any], role: str) -> str:
    return next(p for p in run["prompts"] if "Current Task:" in p and f"You are {role}" in p)


def test_second_kickoff_in_another_process_sees_what_the_first_learned(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crew.db"
    first = kickoff_here(db, tmp_path / "first.json", capfd)
    second = kickoff_in_a_process(db, tmp_path / "second.json")
    assert first["passed"] == [False] and second["passed"] == [True]  # the crew got better
    assert "must cite its source" not in agent_prompt(first, "Writer")
    assert "→ failed (error: Task failed guardrail" in agent_prompt(second, "Writer")
    researcher = agent_prompt(second, "Researcher")
    assert "→ succeeded using: WAL lets readers keep reading" in researcher
    assert "categories: heuristic, research" in researcher  # a heuristic formed (min_occurrences 1)
    assert "succeeded using: WAL lets readers" not in agent_prompt(second, "Writer")  # each reads its own
    assert "→ failed" not in researcher
    with ALMA(project_id="research-crew", storage=db, embedder="mock") as alma:
        outcomes = alma.list_memories(memory_types=[MemoryType.OUTCOME])
        assert sorted((o.agent, o.success) for o in outcomes) == [
            ("researcher", True), ("researcher", True), ("writer", False), ("writer", True),
        ]  # fmt: skip
        facts = alma.list_memories(memory_types=[MemoryType.KNOWLEDGE])  # CrewAI's own saves, none dropped
        assert sorted((f.agent, f.category, f.metadata["crewai"]["categories"][0]) for f in facts) == [
            ("researcher", "research", "sqlite"), ("researcher", "research", "sqlite"),
            ("writer", "briefs", "sqlite"), ("writer", "briefs", "sqlite"),
        ]  # fmt: skip


def test_attach_learns_each_task_outcome_for_its_agent(open_alma: ALMA) -> None:
    llm = EchoLLM(model="echo")
    memory = AlmaCrewMemory(open_alma, agents={"victor": "api_agent"})
    crew = memory.attach(make_crew(llm))
    other = make_crew(llm, name="other")  # not attached: not learned from
    try:
        crew.kickoff()
        other.kickoff()
    finally:
        memory.detach()
    outcomes = {o.agent: o for o in open_alma.list_memories(memory_types=["outcome"])}
    assert set(outcomes) == {"helena", "api_agent"}
    assert outcomes["helena"].task == "Test the login form"
    assert outcomes["helena"].success and outcomes["helena"].strategy_used == "used checklist A"
    assert memory.errors == []


def test_detach_stops_learning(open_alma: ALMA) -> None:
    llm = EchoLLM(model="echo")
    memory = AlmaCrewMemory(open_alma)
    crew = memory.attach(make_crew(llm))
    memory.detach()
    crew.kickoff()
    assert open_alma.list_memories(memory_types=["outcome"]) == []


def test_refused_learning_is_recorded_and_stores_nothing(alma: ALMA) -> None:
    llm = EchoLLM(model="echo")
    memory = AlmaCrewMemory(alma, task_type=lambda task: "backend_logic")  # helena may not learn it
    crew = memory.attach(make_crew(llm))
    try:
        crew.kickoff()
    finally:
        memory.detach()
    assert alma.list_memories(memory_types=["outcome"]) == []
    assert {type(e).__name__ for e in memory.errors} == {"ScopeViolation"}


def test_the_docs_scoped_config_learns_every_task_without_a_scope_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Descriptions that name no category and an LLM that picks none: each agent's can_learn decides."""
    llm = NotesLLM(model="notes")
    agents = [Agent(role=r, goal="g", backstory="b", llm=llm) for r in ("Researcher", "Writer")]
    tasks = [
        Task(description="Summarise the WAL documentation", expected_output="notes", agent=agents[0]),
        Task(description="Explain WAL to engineers", expected_output="text", agent=agents[1]),
    ]
    with ALMA(project_id="docs", agents=DOCS_AGENTS, storage=tmp_path / "a.db", embedder="mock") as alma:
        memory = AlmaCrewMemory(alma)
        crew = memory.attach(Crew(name="research", agents=agents, tasks=tasks))
        try:
            crew.kickoff()
        finally:
            memory.detach()
        assert memory.errors == []
        outcomes = {o.agent: o.task_type for o in alma.list_memories(memory_types=["outcome"])}
        assert outcomes == {"researcher": "research", "writer": "briefs"}
        facts = {(f.agent, f.category) for f in alma.list_memories(memory_types=["knowledge"])}
        assert facts == {("researcher", "research"), ("writer", "briefs")}  # CrewAI's saves kept
    out = capfd.readouterr().out
    assert not any(sign in out for sign in SCOPE_ERRORS), out


def test_task_category_from_a_mapping_or_the_task_name(tmp_path: Path) -> None:
    config = {"researcher": {"can_learn": ["research", "sources"]}, "writer": {"can_learn": ["briefs"]}}
    llm = EchoLLM(model="echo")
    researcher = Agent(role="Researcher", goal="g", backstory="b", llm=llm)
    named = Task(name="sources", description="Find papers", expected_output="list", agent=researcher)
    plain = Task(description="Find papers", expected_output="list", agent=researcher)
    with ALMA(project_id="docs", agents=config, storage=tmp_path / "a.db", embedder="mock") as alma:
        assert AlmaCrewMemory(alma).task_category(named) == "sources"  # the task names a learnable category
        assert AlmaCrewMemory(alma).task_category(plain) == "research"  # else the agent's first can_learn
        assert AlmaCrewMemory(alma, task_type={"Find papers": "sources"}).task_category(plain) == "sources"
