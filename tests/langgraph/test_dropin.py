"""AlmaSaver takes what SqliteSaver takes: a path, an open `sqlite3.Connection`, `from_conn_string`,
an awaitable `setup()` on the async saver; `alma.resume(thread)` gives the graph's state values."""

from __future__ import annotations

import operator
import sqlite3
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from alma_core import ALMA
from alma_langgraph import AlmaSaver, AsyncAlmaSaver


class Counter(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    builder = StateGraph(Counter)
    builder.add_node("one", lambda s: {"n": s["n"] + 1, "log": ["one"]})
    builder.add_node("two", lambda s: {"n": s["n"] + 1, "log": ["two"]})
    builder.add_edge(START, "one")
    builder.add_conditional_edges("one", lambda s: "two" if s["n"] < 5 else END)
    builder.add_edge("two", END)
    return builder.compile(checkpointer=saver)


CFG: Any = {"configurable": {"thread_id": "t"}}


def test_an_open_connection_works_and_stays_open() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    saver = AlmaSaver(conn)
    assert _graph(saver).invoke({"n": 0, "log": []}, CFG) == {"n": 2, "log": ["one", "two"]}
    saver.storage.close()
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] > 0  # still open, holding the thread
    conn.close()


def test_a_path_is_enough(tmp_path: Path) -> None:
    _graph(AlmaSaver(tmp_path / "a.db")).invoke({"n": 0, "log": []}, CFG)
    with AlmaSaver.from_conn_string(tmp_path / "a.db") as again:
        assert _graph(again).get_state(CFG).values["log"] == ["one", "two"]


async def test_async_setup_is_awaitable(tmp_path: Path) -> None:
    async with AsyncAlmaSaver.from_conn_string(tmp_path / "a.db") as saver:
        await saver.setup()
        out = await _graph(saver).ainvoke({"n": 0, "log": []}, CFG)
        assert out["log"] == ["one", "two"]


def test_resume_gives_state_values_at_every_checkpoint(alma: ALMA) -> None:
    graph = _graph(AlmaSaver(alma))
    graph.invoke({"n": 0, "log": []}, CFG)
    snapshots = {s.config["configurable"]["checkpoint_id"]: s.values for s in graph.get_state_history(CFG)}
    assert len(snapshots) >= 4
    for checkpoint_id, values in snapshots.items():
        # no `__start__`, no `branch:to:two`; a reducer channel never written (LangGraph shows its
        # empty default, `log: []`, at the input checkpoint) is absent
        got = alma.resume("t", checkpoint_id)
        assert got == {k: values[k] for k in got}
        assert {k for k in values if k not in got} <= {k for k, v in values.items() if v == []}
    assert alma.resume("t") == {"n": 2, "log": ["one", "two"]}
