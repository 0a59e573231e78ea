"""Retention: a thread expires `ttl` minutes after its last checkpoint, `keep_last` cuts long threads
(DeltaChannel threads still rebuild), and sweepers in several processes delete each thread once.

Time is never waited for: `sweep(now=...)` is given the clock it judges by."""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from _procs import run_all, sweep
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph

from alma_core import ValidationError
from alma_core.storage import PutRecord, Record
from alma_langgraph import AlmaSaver, AsyncAlmaSaver
from alma_langgraph._layout import escape
from alma_langgraph._retention import TTL_INDEX

HOUR = 3600.0


def _put(saver: AlmaSaver, thread: str, parent: str | None = None, **conf: Any) -> str:
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent, **conf}}
    saved = saver.put(config, empty_checkpoint(), {"step": 0}, {})
    return str(saved["configurable"]["checkpoint_id"])


def _count(saver: AlmaSaver, thread: str) -> int:
    return len(list(saver.list({"configurable": {"thread_id": thread}})))


class Loop(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def _loop(saver: AlmaSaver, steps: int = 6) -> Any:
    builder = StateGraph(Loop)
    builder.add_node("step", lambda s: {"n": s["n"] + 1, "log": [f"s{s['n']}"]})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else END)
    return builder.compile(checkpointer=saver)


def test_a_thread_expires_ttl_minutes_after_its_last_checkpoint(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", ttl=60)
    _put(saver, "old")
    assert saver.sweep(now=time.time()) == {"threads": 0, "checkpoints": 0}  # not yet
    assert _count(saver, "old") == 1
    assert saver.sweep(now=time.time() + HOUR + 1) == {"threads": 1, "checkpoints": 0}
    assert _count(saver, "old") == 0
    assert saver.sweep(now=time.time() + HOUR + 1)["threads"] == 0  # deleted once


def test_a_copied_thread_gets_the_saver_ttl_too(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", ttl=60)
    _put(AlmaSaver(tmp_path / "a.db"), "src")  # written without a TTL: never expires
    saver.copy_thread("src", "copy")
    assert saver.sweep(now=time.time() + HOUR + 1)["threads"] == 1
    assert saver.thread_ids() == ["src"]


def test_a_run_config_ttl_sticks_to_its_thread_and_set_ttl_changes_it(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db")  # no default TTL: only threads given one expire
    graph = _loop(saver, steps=2)
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "short", "ttl": 1}})
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "kept"}})
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "long"}})
    saver.set_ttl("long", {"ttl": 600, "strategy": "delete"})
    assert saver.sweep(now=time.time() + 120)["threads"] == 1
    assert saver.thread_ids() == ["kept", "long"]
    assert saver.sweep(now=time.time() + 601 * 60)["threads"] == 1
    assert saver.thread_ids() == ["kept"]


def test_a_thread_written_since_by_a_saver_without_ttl_is_kept(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", ttl=60)
    _put(saver, "t")
    stale = {"ttl": 60, "strategy": "delete", "exp": 0.0}  # as if written long ago, then touched without TTL
    saver.storage.batch([PutRecord(Record(saver.project_id, TTL_INDEX, escape("t"), None, stale))])
    assert saver.sweep(now=time.time())["threads"] == 0  # its newest checkpoint is recent: re-armed
    assert _count(saver, "t") == 1
    assert saver.sweep(now=time.time() + HOUR + 1)["threads"] == 1


def test_keep_latest_strategy_cuts_an_expired_thread_to_its_latest_checkpoint(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", ttl={"default_ttl": 5, "strategy": "keep_latest"})
    graph = _loop(saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"n": 0, "log": []}, config)
    before = graph.get_state(config).values
    assert saver.sweep(now=time.time() + 301) == {"threads": 1, "checkpoints": 0}
    assert _count(saver, "t") == 1
    assert graph.get_state(config).values == before


def test_keep_last_keeps_the_last_n_checkpoints_and_counts_what_it_removed(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", keep_last=3)
    graph = _loop(saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"n": 0, "log": []}, config)
    newest = [t.config["configurable"]["checkpoint_id"] for t in saver.list(config)]
    before = graph.get_state(config).values
    assert saver.sweep() == {"threads": 0, "checkpoints": len(newest) - 3}
    assert [t.config["configurable"]["checkpoint_id"] for t in saver.list(config)] == newest[:3]
    assert graph.get_state(config).values == before
    assert saver.sweep()["checkpoints"] == 0


def _concat(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    return [*state, *(x for w in writes for x in w)]


class DeltaState(TypedDict):
    n: int
    log: Annotated[list[str], DeltaChannel(_concat, snapshot_frequency=4)]


def test_keep_last_on_a_delta_channel_thread_keeps_what_rebuilds_the_channel(tmp_path: Path) -> None:
    saver = AlmaSaver(tmp_path / "a.db", keep_last=2)
    builder = StateGraph(DeltaState)
    builder.add_node("step", lambda s: {"n": s["n"] + 1, "log": [f"s{s['n']}"]})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] % 10 else END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"n": 0, "log": []}, config)
    total = _count(saver, "t")
    removed = saver.sweep()["checkpoints"]
    assert 0 < removed < total - 2  # ancestors back to the last snapshot stay
    assert graph.get_state(config).values["log"] == [f"s{i}" for i in range(10)]
    assert graph.invoke({"n": 10}, config)["log"] == [f"s{i}" for i in range(20)]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What several processes open at once: a SQLite file, or a database on the session's PostgreSQL."""
    return str(tmp_path / "a.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_database"))


def test_three_sweeping_processes_delete_each_expired_thread_once(store: str) -> None:
    with AlmaSaver.from_conn_string(store, ttl=1) as saver:
        saver.setup()
        for i in range(300):
            _put(saver, f"t{i}")
        saver.retention.ttl = 600
        _put(saver, "young")  # its own, longer TTL: no sweeper may take it
    reports = run_all(sweep, [(store, time.time() + 120)] * 3)
    assert sum(r["threads"] for r in reports) == 300
    with AlmaSaver.from_conn_string(store) as saver:
        assert saver.thread_ids() == ["young"]


async def test_asweep_runs_on_postgres_native_async_driver(pg_database: str) -> None:
    async with AsyncAlmaSaver.from_conn_string(pg_database, keep_last=1) as saver:
        await saver.setup()
        _put(saver, "a", ttl=1)
        first = _put(saver, "b")
        _put(saver, "b", parent=first)
        assert await saver.asweep(now=time.time() + 61) == {"threads": 1, "checkpoints": 1}
        assert saver.thread_ids() == ["b"]
        assert await saver.asweep(now=time.time() + 61) == {"threads": 0, "checkpoints": 0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"ttl": -1}, "positive"), ({"ttl": {"strategy": "archive", "default_ttl": 1}}, "strategy"),
     ({"ttl": {"sweep_every": 1}}, "unknown ttl"), ({"ttl": {"sweep_interval_minutes": 5}}, "cron"),
     ({"keep_last": 0}, "keep_last")],
)  # fmt: skip
def test_bad_retention_settings_raise_a_validation_error(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        AlmaSaver(tmp_path / "a.db", **kwargs)
