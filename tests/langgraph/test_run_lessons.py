"""Lessons from finished runs: a LangGraph agent's finished thread becomes an outcome citing its checkpoint."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from alma_core import ALMA, MemoryType
from alma_core.run_lessons import RuleExtractor, RunLesson
from alma_langgraph import AlmaSaver, RunLessons

TASK = "Test the login form"
ANSWER = "Use page objects and one assertion per field"


def agent(saver: AlmaSaver, *, ask_first: bool = False, fail: bool = False) -> Any:
    """A one-model-node LangGraph agent over `saver` (optionally pausing for a human, or failing)."""
    model = FakeMessagesListChatModel(responses=[AIMessage(ANSWER)])

    def think(state: MessagesState) -> dict[str, Any]:
        if ask_first:
            interrupt("approve?")
        if fail:
            raise RuntimeError("the browser crashed")
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("think", think)
    graph.add_edge(START, "think")
    return graph.compile(checkpointer=saver)


def outcomes(alma: ALMA) -> list[Any]:
    return alma.list_memories(agent="helena", memory_types=[MemoryType.OUTCOME])


def thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def test_a_finished_thread_becomes_a_lesson_that_cites_its_checkpoint(alma: ALMA) -> None:
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))
    agent(saver).invoke({"messages": [("user", TASK)]}, thread("t1"))
    [lesson] = outcomes(alma)
    assert (lesson.task, lesson.success, lesson.strategy_used) == (TASK, True, ANSWER)
    last = saver.get_tuple(thread("t1"))
    assert last is not None
    assert lesson.metadata["run"] == {"source": "langgraph", "thread_id": "t1", "checkpoint_ns": "",
                                      "checkpoint_id": last.config["configurable"]["checkpoint_id"]}  # fmt: skip
    [found] = alma.retrieve(TASK, "helena", memory_types=[MemoryType.OUTCOME]).outcomes
    opened = saver.get_tuple(RunLessons.config_of(found))  # where the lesson came from, opened
    assert opened is not None and opened.checkpoint["channel_values"]["messages"][-1].content == ANSWER


def test_without_lessons_the_saver_learns_nothing(alma: ALMA) -> None:
    agent(AlmaSaver(alma)).invoke({"messages": [("user", TASK)]}, thread("t1"))
    assert outcomes(alma) == []


def test_a_paused_run_is_learned_only_when_it_finishes(alma: ALMA) -> None:
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))
    graph = agent(saver, ask_first=True)
    graph.invoke({"messages": [("user", TASK)]}, thread("t2"))
    assert outcomes(alma) == []  # waiting for a human: not finished
    graph.invoke(Command(resume="yes"), thread("t2"))
    assert [o.task for o in outcomes(alma)] == [TASK]


def test_a_failed_run_is_learned_as_a_failure_with_its_error(alma: ALMA) -> None:
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))
    with pytest.raises(RuntimeError):
        agent(saver, fail=True).invoke({"messages": [("user", TASK)]}, thread("t3"))
    deadline = time.monotonic() + 60  # LangGraph writes the error from its background writer, maybe after
    while not outcomes(alma) and time.monotonic() < deadline:  # raising: it always comes, 60 s is a hang
        time.sleep(0.05)
    [lesson] = outcomes(alma)
    assert (lesson.task, lesson.success) == (TASK, False)
    assert lesson.error_message == "RuntimeError: the browser crashed"
    assert lesson.metadata["run"]["thread_id"] == "t3"


async def test_async_runs_are_learned_too(alma: ALMA) -> None:
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))
    await agent(saver).ainvoke({"messages": [("user", TASK)]}, thread("t4"))
    assert [(o.task, o.metadata["run"]["thread_id"]) for o in outcomes(alma)] == [(TASK, "t4")]


def test_a_chat_model_extracts_the_lesson_and_the_rules_catch_a_bad_answer(alma: ALMA) -> None:
    llm = FakeListChatModel(responses=[
        '{"task": "Check login validation", "success": true, "strategy": "table-driven cases", "error": null}',
        "I cannot answer in JSON.",
    ])  # fmt: skip
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena", llm=llm))
    agent(saver).invoke({"messages": [("user", TASK)]}, thread("t5"))
    agent(saver).invoke({"messages": [("user", "Test the signup form")]}, thread("t6"))
    assert sorted((o.task, o.strategy_used) for o in outcomes(alma)) == [
        ("Check login validation", "table-driven cases"), ("Test the signup form", ANSWER),
    ]  # fmt: skip


def test_rules_read_the_usual_state_shapes() -> None:
    rules = RuleExtractor()
    assert rules({"question": "Q?", "answer": "A."}) == RunLesson("Q?", True, "A.")
    assert rules({"task": "T", "error": "boom"}) == RunLesson("T", False, "", "boom")
    assert rules({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) == (
        RunLesson("hi", True, "yo")
    )
    assert rules({"count": 3}) is None  # no task: nothing to learn


@pytest.mark.parametrize("order", ["error first", "checkpoint first"])
def test_a_failure_is_learned_once_whichever_lands_first(alma: ALMA, order: str) -> None:
    """LangGraph's background writer may store a node's error before the checkpoint the node started from."""
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))
    base = saver.put(thread("t7") | {}, empty_checkpoint(), {"source": "input", "step": -1}, {})
    start = empty_checkpoint()
    start["channel_values"] = {"messages": [HumanMessage(TASK)], "branch:to:think": None}
    config = {"configurable": {**base["configurable"], "checkpoint_id": start["id"]}}

    def put() -> None:
        saver.put(base, start, {"source": "loop", "step": 0}, {})

    def fail() -> None:
        saver.put_writes(config, [("__error__", RuntimeError("the browser crashed"))], "task-1")

    for step in (fail, put) if order == "error first" else (put, fail):
        step()
    assert [(o.task, o.success, o.error_message) for o in outcomes(alma)] == [
        (TASK, False, "RuntimeError: the browser crashed")
    ]
