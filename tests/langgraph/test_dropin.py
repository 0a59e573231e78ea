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


def test_large_blobs_are_zstd_compressed_and_read_back(tmp_path: Path, monkeypatch: Any) -> None:
    import pytest

    from alma_core import MissingDependency
    from alma_core.storage import ListRecords

    big = {"n": 0, "log": ["abcdefgh " * 2000]}
    plain, packed = AlmaSaver(tmp_path / "p.db", compress_above=None), AlmaSaver(tmp_path / "z.db")
    for saver in (plain, packed):
        _graph(saver).invoke(big, CFG)
    sizes = [sum(len(r.value or b"") for r in s.storage.execute(ListRecords("default", "lg", prefix=True)))
             for s in (plain, packed)]  # fmt: skip
    assert sizes[1] * 5 < sizes[0]
    assert _graph(packed).get_state(CFG).values["log"][0] == big["log"][0]
    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)  # a reader without the extra fails clearly
    with pytest.raises(MissingDependency, match=r"alma-core\[zstd\]"):
        AlmaSaver(tmp_path / "z.db", compress_above=None).get_tuple(CFG)


def test_one_id_one_history_an_alma_checkpoint_on_a_langgraph_thread_is_refused(alma: ALMA) -> None:
    import pytest

    from alma_core import CheckpointConflict

    _graph(AlmaSaver(alma)).invoke({"n": 0, "log": []}, CFG)
    with pytest.raises(CheckpointConflict, match="fork"):
        alma.checkpoint("t", {"n": 99})
    assert alma.resume("t") == {"n": 2, "log": ["one", "two"]}  # the thread's history is untouched
    assert alma.checkpoint("another", {"n": 1}).workflow_id == "another"
