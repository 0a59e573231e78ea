"""Memory nodes in a real graph: retrieve before the agent step, learn from its outcome, within scopes."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from alma_core import ALMA, ScopeViolation
from alma_langgraph import AlmaSaver, alma_learn_node, alma_retrieve_node


class Step(TypedDict, total=False):
    task: str
    memories: str
    strategy: str
    outcome: bool
    prompt: str


def _graph(alma: ALMA, agent: str, task_type: str) -> Any:
    def agent_step(state: Step) -> Step:
        return {"prompt": f"system: {state['memories']}", "strategy": "page objects", "outcome": True}

    builder = StateGraph(Step)
    builder.add_node("recall", alma_retrieve_node(alma, agent))
    builder.add_node("agent", agent_step)
    builder.add_node("learn", alma_learn_node(alma, agent, task_type=task_type))
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "agent")
    builder.add_edge("agent", "learn")
    builder.add_edge("learn", END)
    return builder.compile(checkpointer=AlmaSaver(alma))


def test_retrieve_then_learn_makes_the_next_run_see_the_lesson(alma: ALMA) -> None:
    graph = _graph(alma, "helena", "testing_strategies")
    first = graph.invoke({"task": "test the login form"}, {"configurable": {"thread_id": "n1"}})
    assert first["memories"] == ""
    assert alma.stats("helena").outcomes == 1

    second = graph.invoke({"task": "test the login form"}, {"configurable": {"thread_id": "n2"}})
    assert "test the login form" in second["memories"] and "page objects" in second["memories"]
    assert second["prompt"].startswith("system: ## Relevant memory")


def test_learning_outside_the_agents_scope_is_refused(alma: ALMA) -> None:
    graph = _graph(alma, "helena", "backend_logic")
    with pytest.raises(ScopeViolation):
        graph.invoke({"task": "tune the ORM"}, {"configurable": {"thread_id": "n3"}})
    assert alma.stats("helena").outcomes == 0


def test_retrieval_respects_scopes(alma: ALMA) -> None:
    alma.learn("victor", "design the login API", "success", "token bucket", task_type="api_patterns")
    node = alma_retrieve_node(alma, "helena", as_prompt=False)
    assert node({"task": "design the login API"})["memories"] == []
    assert alma_retrieve_node(alma, "victor", as_prompt=False)({"task": "design the login API"})["memories"]
