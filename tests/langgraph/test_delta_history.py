"""`get_delta_channel_history` (LangGraph's DeltaChannel): AlmaSaver's paged reads give exactly what
LangGraph's reference walk (`BaseCheckpointSaver.get_delta_channel_history`, one `get_tuple` per
ancestor) gives, at every checkpoint of a thread with parallel writers, a fork and an `update_state`,
on SQLite and PostgreSQL, sync and async. (langgraph-checkpoint-conformance 0.0.2, the newest, has no
capability for it yet: this is its stand-in.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest_pg import drop_schemas, new_schema
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from alma_core.storage import BaseStorage, SQLiteStorage
from alma_langgraph import AlmaSaver


def _extend(state: list[str], writes: list[list[str]]) -> list[str]:
    return [*state, *(item for write in writes for item in write)]


class Log(TypedDict):
    items: Annotated[list[str], DeltaChannel(_extend, snapshot_frequency=3)]
    other: Annotated[list[str], DeltaChannel(_extend, snapshot_frequency=5)]
    turn: int


def _graph(saver: Any) -> Any:
    builder = StateGraph(Log)
    builder.add_node("left", lambda s: {"items": [f"L{s['turn']}"], "other": ["o"]})
    builder.add_node("right", lambda s: {"items": [f"R{s['turn']}a", f"R{s['turn']}b"]})
    builder.add_node("join", lambda s: {"items": [f"J{s['turn']}"], "turn": s["turn"] + 1})
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge(["left", "right"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=saver)


def _run(saver: Any) -> Any:
    """Four turns, an `update_state`, a fork from the second turn's end, two turns on the fork."""
    graph, cfg = _graph(saver), {"configurable": {"thread_id": "t"}}
    for turn in range(4):
        graph.invoke({"turn": turn}, cfg)
    graph.update_state(cfg, {"items": ["manual"]})
    second = next(s for s in graph.get_state_history(cfg) if s.values.get("turn") == 2 and not s.next)
    fork = graph.invoke({"turn": 10}, second.config)
    graph.invoke({"turn": 20}, {"configurable": {"thread_id": "t", "checkpoint_id": None}})
    return graph, cfg, fork


@pytest.fixture(params=["sqlite", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStorage]:
    """One store (two savers on it are two processes' worth of memory: nothing shared but the store)."""
    if request.param == "sqlite":
        with SQLiteStorage(tmp_path / "a.db") as storage:
            yield storage
        return
    from alma_core.storage.postgres import PostgresStorage

    uri, schema = request.getfixturevalue("pg_uri"), new_schema()
    storage = PostgresStorage(uri, schema=schema, min_pool_size=0, max_pool_size=2)
    yield storage
    storage.close()
    drop_schemas(uri, schema)


def test_the_graph_runs_as_on_langgraphs_own_saver(conn: Any) -> None:
    ours = _graph(AlmaSaver(conn))
    _, cfg, fork = _run(ours.checkpointer)
    _, _, reference_fork = _run(InMemorySaver())
    assert fork == reference_fork
    again = _graph(AlmaSaver(conn))  # another saver (process) resumes from the store alone
    assert again.get_state(cfg).values == ours.get_state(cfg).values


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_history_equals_the_reference_walk_at_every_checkpoint(conn: Any, mode: str) -> None:
    saver = AlmaSaver(conn)
    graph, cfg, _ = _run(saver)
    configs = [s.config for s in graph.get_state_history(cfg)]
    assert len(configs) > 15
    channels = ["items", "other", "turn", "absent"]
    seeded = 0
    for config in configs:
        if mode == "sync":
            ours = saver.get_delta_channel_history(config=config, channels=channels)
        else:
            ours = await saver.aget_delta_channel_history(config=config, channels=channels)
        reference = BaseCheckpointSaver.get_delta_channel_history(saver, config=config, channels=channels)
        assert ours == reference, config
        seeded += "seed" in ours["items"]
    assert 0 < seeded < len(configs)  # some walks end at a snapshot, some reach the root
    latest = {"configurable": {"thread_id": "t"}}
    reference_latest = BaseCheckpointSaver.get_delta_channel_history(saver, config=latest, channels=["items"])
    assert saver.get_delta_channel_history(config=latest, channels=["items"]) == reference_latest
    assert saver.get_delta_channel_history(config=cfg, channels=[]) == {}
    missing = {"configurable": {"thread_id": "nobody"}}
    assert saver.get_delta_channel_history(config=missing, channels=["items"]) == {"items": {"writes": []}}
