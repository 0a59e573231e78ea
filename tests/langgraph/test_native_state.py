"""A LangGraph thread seen through ALMA's workflow API: resume, list_checkpoints, merge and handoff."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from alma_core import ALMA, NotFound
from alma_langgraph import AlmaSaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    answer: str


def _graph(alma: ALMA):
    builder = StateGraph(State)
    builder.add_node("plan", lambda s: {"steps": ["plan"]})
    builder.add_node("act", lambda s: {"steps": ["act"], "answer": "42"})
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=AlmaSaver(alma))


def test_resume_returns_the_threads_latest_channel_values(open_alma: ALMA) -> None:
    _graph(open_alma).invoke({"steps": [], "answer": ""}, {"configurable": {"thread_id": "t-1"}})
    state = open_alma.resume("t-1")
    assert state["steps"] == ["plan", "act"]
    assert state["answer"] == "42"


def test_list_checkpoints_lists_the_threads_history_newest_first(open_alma: ALMA) -> None:
    graph = _graph(open_alma)
    config = {"configurable": {"thread_id": "t-2"}}
    graph.invoke({"steps": [], "answer": ""}, config)
    history = open_alma.list_checkpoints("t-2")
    native = list(graph.get_state_history(config))
    assert [c.id for c in history] == [s.config["configurable"]["checkpoint_id"] for s in native]
    assert [c.sequence for c in history] == list(range(len(history), 0, -1))
    assert history[0].metadata["source"] == "langgraph"
    assert history[0].parent_id == history[1].id
    assert open_alma.list_checkpoints("t-2", limit=2, before=history[0].id) == history[1:3]


def test_a_named_checkpoint_resumes_that_points_state(open_alma: ALMA) -> None:
    graph = _graph(open_alma)
    graph.invoke({"steps": [], "answer": ""}, {"configurable": {"thread_id": "t-3"}})
    after_plan = next(c for c in open_alma.list_checkpoints("t-3") if c.metadata.get("step") == 1)
    assert open_alma.resume("t-3", after_plan.id)["steps"] == ["plan"]


def test_a_langgraph_state_can_be_merged_into_an_alma_workflow(open_alma: ALMA) -> None:
    _graph(open_alma).invoke({"steps": [], "answer": ""}, {"configurable": {"thread_id": "t-4"}})
    merged = open_alma.merge_states(
        "review", [("graph", open_alma.resume("t-4")), ("human", {"steps": ["review"]})], reducer="merge_lists"
    )
    assert open_alma.resume("review")["steps"] == ["plan", "act", "review"]
    assert merged.metadata["merged_from"][0]["agent"] == "graph"


def test_unknown_threads_are_still_not_found(open_alma: ALMA) -> None:
    with pytest.raises(NotFound):
        open_alma.resume("no-such-thread")
    assert open_alma.list_checkpoints("no-such-thread") == []
