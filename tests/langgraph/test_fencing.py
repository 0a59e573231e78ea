"""Puts that would fork a history are refused: with `fencing=True`, a checkpoint whose parent is no longer
the thread's head (from this process or another); and always, a LangGraph thread under the id of an ALMA
workflow (the other direction of test_dropin's one-id test)."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from _procs import fenced_put, run_all
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from alma_core import ALMA, CheckpointConflict
from alma_langgraph import AlmaSaver, AsyncAlmaSaver


class State(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    def ask(s: State) -> dict[str, Any]:
        return {"log": [str(interrupt("who?"))]}

    builder = StateGraph(State)
    builder.add_node("one", lambda s: {"n": s["n"] + 1, "log": ["one"]})
    builder.add_node("ask", ask)
    builder.add_edge(START, "one")
    builder.add_edge("one", "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=saver)


def _cfg(thread: str, checkpoint_id: str | None = None) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}


def _ids(saver: AlmaSaver, thread: str) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in saver.list({"configurable": {"thread_id": thread}})]


def test_without_fencing_a_stale_parent_forks_silently(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db")
    root = saver.put(_cfg("t"), empty_checkpoint(), {}, {})
    saver.put(root, empty_checkpoint(), {}, {})
    saver.put(root, empty_checkpoint(), {}, {})  # a second child of the root: LangGraph's default
    assert len(_ids(saver, "t")) == 3


def test_with_fencing_a_put_whose_parent_is_not_the_head_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", fencing=True)
    root = saver.put(_cfg("t"), empty_checkpoint(), {}, {})
    child = saver.put(root, empty_checkpoint(), {}, {})
    before = _ids(saver, "t")
    with pytest.raises(CheckpointConflict, match="moved on"):
        saver.put(root, empty_checkpoint(), {}, {})
    with pytest.raises(CheckpointConflict, match="moved on"):
        saver.put(_cfg("t"), empty_checkpoint(), {}, {})  # no parent, but the thread has a head
    assert _ids(saver, "t") == before
    saver.put(child, empty_checkpoint(), {}, {})  # the head's child goes through
    assert len(_ids(saver, "t")) == 3


def test_a_fenced_graph_runs_interrupts_and_resumes_but_may_not_fork_the_past(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", fencing=True)
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"n": 0, "log": []}, config)
    assert graph.get_state(config).next == ("ask",)
    graph.update_state(config, {"log": ["note"]})
    assert graph.invoke(Command(resume="ann"), config)["log"] == ["one", "note", "ann"]
    first = list(graph.get_state_history(config))[-2].config  # time travel: run again from an old checkpoint
    with pytest.raises(CheckpointConflict):
        graph.invoke(None, first)
    assert graph.get_state(config).values["log"] == ["one", "note", "ann"]


def test_a_fenced_graph_with_a_subgraph_and_parallel_branches_never_conflicts_with_itself(tmp_path: Path) -> None:
    inner = StateGraph(State)
    inner.add_node("a", lambda s: {"log": ["inner-a"]})
    inner.add_node("b", lambda s: {"log": ["inner-b"]})
    inner.add_edge(START, "a")
    inner.add_edge("a", "b")
    outer = StateGraph(State)
    outer.add_node("left", lambda s: {"log": ["left"]})
    outer.add_node("right", lambda s: {"log": ["right"]})
    outer.add_node("sub", inner.compile(checkpointer=True))  # its own checkpoint namespace, kept per thread
    outer.add_edge(START, "left")
    outer.add_edge(START, "right")
    outer.add_edge(["left", "right"], "sub")
    outer.add_edge("sub", END)
    saver = AlmaSaver(tmp_path / "a.db", fencing=True)
    graph = outer.compile(checkpointer=saver)
    for run in range(2):  # the second run continues the thread (and the subgraph's namespace)
        out = graph.invoke({"n": run, "log": []}, {"configurable": {"thread_id": "t"}})
        assert out["log"][-2:] == ["inner-a", "inner-b"] and {"left", "right"} <= set(out["log"])
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list({"configurable": {"thread_id": "t"}})}
    assert len(namespaces) >= 2  # the subgraph's checkpoints were fenced too


async def test_async_fenced_puts_are_checked_too(tmp_path: Path) -> None:
    async with AsyncAlmaSaver.from_conn_string(tmp_path / "a.db") as saver:
        saver.fencing = True
        root = await saver.aput(_cfg("t"), empty_checkpoint(), {}, {})
        await saver.aput(root, empty_checkpoint(), {}, {})
        with pytest.raises(CheckpointConflict):
            await saver.aput(root, empty_checkpoint(), {}, {})


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_putting_on_one_head_one_wins_one_gets_a_conflict(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = str(tmp_path / "a.db") if backend == "sqlite" else str(request.getfixturevalue("pg_database"))
    with AlmaSaver.from_conn_string(db) as saver:
        saver.setup()
        saver.put(_cfg("t"), empty_checkpoint(), {}, {})
    reports = run_all(fenced_put, [(db, "t"), (db, "t")])
    assert sorted(kind for kind, _ in reports) == ["conflict", "ok"]
    with AlmaSaver.from_conn_string(db) as saver:
        winner = next(detail for kind, detail in reports if kind == "ok")
        assert _ids(saver, "t")[0] == winner and len(_ids(saver, "t")) == 2


def test_fencing_holds_on_postgres(pg_uri: str) -> None:
    from conftest_pg import drop_schemas, new_schema

    from alma_core.storage import PostgresStorage

    schema = new_schema()
    storage = PostgresStorage(pg_uri, schema=schema)
    try:
        saver = AlmaSaver(storage, fencing=True)
        saver.setup()
        root = saver.put(_cfg("t"), empty_checkpoint(), {}, {})
        saver.put(root, empty_checkpoint(), {}, {})
        with pytest.raises(CheckpointConflict):
            saver.put(root, empty_checkpoint(), {}, {})
    finally:
        storage.close()
        drop_schemas(pg_uri, schema)


def test_a_langgraph_thread_under_an_alma_workflow_id_is_refused(alma: ALMA) -> None:
    alma.checkpoint("wf", {"step": 1})
    graph = _graph(AlmaSaver(alma))
    with pytest.raises(CheckpointConflict, match=r"alma\.checkpoint"):
        graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "wf"}})
    assert AlmaSaver(alma).thread_ids() == []  # nothing written
    assert alma.resume("wf") == {"step": 1}
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "other"}})
    assert AlmaSaver(alma).thread_ids() == ["other"]
