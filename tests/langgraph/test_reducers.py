"""ALMA's reducers as LangGraph channel reducers, with parallel branches writing one channel."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from alma_core import ALMA
from alma_core.workflow import reducers as core
from alma_langgraph import OWNERS, AlmaSaver, latest_wins, merge_lists, priority_agent


def test_reducers_are_the_core_ones() -> None:
    assert latest_wins is core.latest_wins and merge_lists is core.merge_lists
    assert isinstance(priority_agent(["lead"]), core.PriorityAgent)


class Team(TypedDict, total=False):
    findings: Annotated[list[str], merge_lists]
    decision: Annotated[dict[str, Any], priority_agent(["lead", "senior", "junior"])]
    notes: Annotated[dict[str, Any], latest_wins]


def _branch(agent: str, finding: str, verdict: str, extra: dict[str, Any]) -> Any:
    def node(state: Team) -> Team:
        return {"findings": [finding, "shared"], "decision": {"agent": agent, "verdict": verdict, **extra},
                "notes": {agent: True}}  # fmt: skip

    return node


@pytest.mark.parametrize("order", [("junior", "senior", "lead"), ("lead", "junior", "senior")])
def test_parallel_branches_merge_with_alma_reducers(alma: ALMA, order: tuple[str, ...]) -> None:
    specs = {
        "lead": ("f-lead", "ship", {}),
        "senior": ("f-senior", "hold", {"risk": "low"}),
        "junior": ("f-junior", "rewrite", {"risk": "high", "owner": "junior"}),
    }
    builder = StateGraph(Team)
    for agent in order:
        builder.add_node(agent, _branch(agent, *specs[agent]))
        builder.add_edge(START, agent)
    builder.add_node("join", lambda s: {})
    builder.add_edge(list(order), "join")
    builder.add_edge("join", END)
    graph = builder.compile(checkpointer=AlmaSaver(alma))

    out = graph.invoke({"findings": ["seed"]}, {"configurable": {"thread_id": "-".join(order)}})
    assert out["findings"][0] == "seed" and out["findings"].count("shared") == 1
    assert set(out["findings"]) == {"seed", "shared", "f-lead", "f-senior", "f-junior"}
    decision = out["decision"]
    assert decision["verdict"] == "ship"  # the lead wins, whatever order the branches ran in
    assert decision["risk"] == "low"  # senior outranks junior
    assert decision["owner"] == "junior"  # a key only the junior set survives
    assert decision[OWNERS]["verdict"] == "lead"
    assert out["notes"] == {"lead": True, "senior": True, "junior": True}


def test_priority_agent_without_agent_tags_is_latest_wins() -> None:
    reducer = priority_agent(["lead"])
    assert reducer({"a": 1}, {"a": 2, "b": 3}) == {"a": 2, "b": 3}
    assert reducer([1], [2]) == [2]
