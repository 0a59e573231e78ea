"""A real two-agent Crew with ALMA as its memory: outcomes are learned from task events and the next
kickoff (in another process) sees them in its prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from _helpers import run_example
from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM

from alma_core import ALMA, MemoryType
from alma_crewai import AlmaCrewMemory


class EchoLLM(BaseLLM):
    """Answers every agent prompt with a fixed final answer (and CrewAI's analysis with '{}')."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        text = messages if isinstance(messages, str) else "\n".join(str(m.get("content", "")) for m in messages)
        return "Thought: done\nFinal Answer: used checklist A" if "Current Task:" in text else "{}"


def make_crew(llm: EchoLLM, name: str = "qa") -> Crew:
    agents = [Agent(role=r, goal="g", backstory="b", llm=llm) for r in ("Helena", "Victor")]
    tasks = [
        Task(description="Test the login form", expected_output="report", agent=agents[0]),
        Task(description="Check the orders API", expected_output="report", agent=agents[1]),
    ]
    return Crew(name=name, agents=agents, tasks=tasks)


def kickoff_in_a_process(db: Path, prompts: Path) -> dict[str, Any]:
    """One kickoff of examples/crewai_memory.py in its own process: the prompts it saw and whether it passed."""
    run_example("crewai_memory.py", "--db", str(db), "--runs", "1", "--prompts", str(prompts))
    return json.loads(prompts.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def agent_prompt(run: dict[str, Any], role: str) -> str:
    return next(p for p in run["prompts"] if "Current Task:" in p and f"You are {role}" in p)


def test_second_kickoff_in_another_process_sees_what_the_first_learned(tmp_path: Path) -> None:
    db = tmp_path / "crew.db"
    first = kickoff_in_a_process(db, tmp_path / "first.json")
    second = kickoff_in_a_process(db, tmp_path / "second.json")
    assert first["passed"] == [False] and second["passed"] == [True]  # the crew got better
    assert "must cite its source" not in agent_prompt(first, "Writer")
    assert "→ failed (error: Task failed guardrail" in agent_prompt(second, "Writer")
    researcher = agent_prompt(second, "Researcher")
    assert "→ succeeded using: WAL lets readers keep reading" in researcher
    assert "categories: heuristic, research" in researcher  # a heuristic formed (min_occurrences 1)
    with ALMA(project_id="research-crew", storage=db, embedder="mock") as alma:
        outcomes = alma.list_memories(memory_types=[MemoryType.OUTCOME])
        assert sorted((o.agent, o.success) for o in outcomes) == [
            ("researcher", True), ("researcher", True), ("writer", False), ("writer", True),
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
