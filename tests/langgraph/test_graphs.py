"""Real compiled LangGraph graphs on AlmaSaver: interrupts, history, time travel, subgraphs, processes."""

from __future__ import annotations

import operator
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from alma_core import ALMA
from alma_langgraph import AlmaSaver, AsyncAlmaSaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    approved: bool


def _pipeline() -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("draft", lambda s: {"steps": ["draft"]})
    builder.add_node("review", lambda s: {"steps": ["review"], "approved": interrupt({"question": "ship it?"})})
    builder.add_node("ship", lambda s: {"steps": ["ship" if s["approved"] else "rejected"]})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "ship")
    builder.add_edge("ship", END)
    return builder


def _cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def test_interrupt_then_resume_with_human_answer(alma: ALMA) -> None:
    graph = _pipeline().compile(checkpointer=AlmaSaver(alma))
    first = graph.invoke({"steps": [], "approved": False}, _cfg("hitl"))
    assert first["__interrupt__"][0].value == {"question": "ship it?"}
    assert graph.get_state(_cfg("hitl")).next == ("review",)

    done = graph.invoke(Command(resume=True), _cfg("hitl"))
    assert done["steps"] == ["draft", "review", "ship"]
    assert graph.get_state(_cfg("hitl")).next == ()


def test_history_time_travel_and_update_state(alma: ALMA) -> None:
    graph = _pipeline().compile(checkpointer=AlmaSaver(alma))
    graph.invoke({"steps": [], "approved": False}, _cfg("tt"))
    graph.invoke(Command(resume=False), _cfg("tt"))
    assert graph.get_state(_cfg("tt")).values["steps"] == ["draft", "review", "rejected"]

    history = list(graph.get_state_history(_cfg("tt")))
    assert [h.metadata["step"] for h in history] == sorted((h.metadata["step"] for h in history), reverse=True)
    before_review = next(h for h in history if h.next == ("review",))

    # fork from the checkpoint before the review, and answer differently
    graph.invoke(None, before_review.config)
    forked = graph.invoke(Command(resume=True), _cfg("tt"))
    assert forked["steps"] == ["draft", "review", "ship"]
    assert len(list(graph.get_state_history(_cfg("tt")))) > len(history)

    updated = graph.update_state(_cfg("tt"), {"steps": ["audited"]})
    assert graph.get_state(updated).values["steps"][-1] == "audited"
    assert graph.get_state(_cfg("tt")).metadata["source"] == "update"


def test_subgraph_state_lives_in_its_own_namespace(alma: ALMA) -> None:
    class Inner(TypedDict):
        steps: Annotated[list[str], operator.add]

    inner = StateGraph(Inner)
    inner.add_node("think", lambda s: {"steps": ["think"]})
    inner.add_node("ask", lambda s: {"steps": [f"asked:{interrupt('more?')}"]})
    inner.add_edge(START, "think")
    inner.add_edge("think", "ask")
    outer = StateGraph(Inner)
    outer.add_node("agent", inner.compile())
    outer.add_edge(START, "agent")
    graph = outer.compile(checkpointer=AlmaSaver(alma))

    graph.invoke({"steps": []}, _cfg("sub"))
    state = graph.get_state(_cfg("sub"), subgraphs=True)
    child = state.tasks[0].state
    assert child is not None and child.values["steps"] == ["think"]
    assert child.config["configurable"]["checkpoint_ns"].startswith("agent:")

    assert graph.invoke(Command(resume="yes"), _cfg("sub"))["steps"] == ["think", "asked:yes"]


async def test_async_graph_on_async_saver(db_path: Path) -> None:
    async with AsyncAlmaSaver.from_conn_string(db_path) as saver:
        graph = _pipeline().compile(checkpointer=saver)
        await graph.ainvoke({"steps": [], "approved": False}, _cfg("a"))
        done = await graph.ainvoke(Command(resume=True), _cfg("a"))
        assert done["steps"][-1] == "ship"
        assert len([c async for c in saver.alist(_cfg("a"))]) >= 4


def test_graph_resumes_in_a_second_process(db_path: Path) -> None:
    with AlmaSaver.from_conn_string(db_path) as saver:
        graph = _pipeline().compile(checkpointer=saver)
        graph.invoke({"steps": [], "approved": False}, _cfg("proc"))

    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_graphs import _pipeline, _cfg
        from langgraph.types import Command
        from alma_langgraph import AlmaSaver
        with AlmaSaver.from_conn_string({str(db_path)!r}) as saver:
            out = _pipeline().compile(checkpointer=saver).invoke(Command(resume=True), _cfg("proc"))
        print(",".join(out["steps"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "draft,review,ship"

    with AlmaSaver.from_conn_string(db_path) as saver:
        state = _pipeline().compile(checkpointer=saver).get_state(_cfg("proc"))
        assert state.values["steps"] == ["draft", "review", "ship"] and state.next == ()


def test_checkpoints_share_the_memory_file_and_deleting_a_thread_leaves_nothing(alma: ALMA, db_path: Path) -> None:
    saver = AlmaSaver(alma)
    graph = _pipeline().compile(checkpointer=saver)
    for thread in ("gone", "kept"):
        graph.invoke({"steps": [], "approved": False}, _cfg(thread))
        graph.invoke(Command(resume=True), _cfg(thread))
    alma.learn("helena", "test the login form", "success", "page objects", task_type="testing_strategies")

    def rows(thread: str) -> int:
        with sqlite3.connect(db_path) as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM records WHERE namespace LIKE ? OR namespace LIKE ?",
                    (f"lg/{thread}/%", f"lgw/{thread}/%"),
                ).fetchone()[0]
            )

    assert rows("gone") > 0 and rows("kept") > 0
    saver.delete_thread("gone")
    assert rows("gone") == 0
    assert graph.get_state(_cfg("gone")).values == {}
    assert graph.get_state(_cfg("kept")).values["steps"][-1] == "ship"
    assert alma.stats("helena").outcomes == 1


def test_thread_ids_with_slashes_do_not_leak_into_each_other(alma: ALMA) -> None:
    saver = AlmaSaver(alma)
    graph = _pipeline().compile(checkpointer=saver)
    graph.invoke({"steps": [], "approved": False}, _cfg("a"))
    graph.invoke({"steps": [], "approved": False}, _cfg("a/b"))
    saver.delete_thread("a")
    assert graph.get_state(_cfg("a/b")).next == ("review",)
    assert list(saver.list(_cfg("a"))) == []
