"""AlmaSaver vs LangGraph's SqliteSaver, side by side in one run (sync and async savers).

    .venv/bin/python benchmarks/bench_checkpointer.py [--quick]

Workload: THREADS threads x CHECKPOINTS checkpoints of ~20 KB each (puts/s), then get_tuple of a
thread's latest checkpoint (p50/p95), list(limit=100) of a thread (p50), and a 200-step graph run.
Each saver gets its own fresh file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _common import atimed_ms, percentile, timed_ms
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from alma_langgraph import AlmaSaver, AsyncAlmaSaver

PAYLOAD = 20_000


def _checkpoint(i: int, rng: random.Random) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = {"doc": "".join(rng.choices("abcdefghij ", k=PAYLOAD)), "step": i}
    cp["channel_versions"] = {"doc": i + 1, "step": i + 1}
    return cp


def _sync_suite(saver: Any, threads: int, checkpoints: int, rng: random.Random) -> dict[str, float]:
    cps = [_checkpoint(i, rng) for i in range(checkpoints)]
    start = time.perf_counter()
    for t in range(threads):
        config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        for i, cp in enumerate(cps):
            cp = {**cp, "id": empty_checkpoint()["id"]}
            config = saver.put(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
    puts = threads * checkpoints / (time.perf_counter() - start)
    gets = timed_ms(lambda _: saver.get_tuple(_thread(rng, threads)), 300)
    lists = timed_ms(lambda _: list(saver.list(_thread(rng, threads), limit=100)), 30)
    return {"puts/s": puts, "get p50 ms": percentile(gets, 50), "get p95 ms": percentile(gets, 95),
            "list p50 ms": percentile(lists, 50), "graph 200 steps s": _graph_run(saver)}  # fmt: skip


def _thread(rng: random.Random, threads: int) -> Any:
    """The config of a random thread (its latest checkpoint)."""
    return {"configurable": {"thread_id": f"t{rng.randrange(threads)}"}}


class Loop(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def _loop_graph(saver: Any) -> Any:
    builder = StateGraph(Loop)
    builder.add_node("step", lambda s: {"n": s["n"] + 1, "log": ["x" * 100]})
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 200 else "step")
    return builder.compile(checkpointer=saver)


def _graph_run(saver: Any) -> float:
    graph = _loop_graph(saver)
    t0 = time.perf_counter()
    graph.invoke({"n": 0, "log": []}, {"configurable": {"thread_id": "graph"}, "recursion_limit": 500})
    return time.perf_counter() - t0


async def _async_suite(saver: Any, threads: int, checkpoints: int, rng: random.Random) -> dict[str, float]:
    cps = [_checkpoint(i, rng) for i in range(checkpoints)]
    start = time.perf_counter()
    for t in range(threads):
        config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        for i, cp in enumerate(cps):
            cp = {**cp, "id": empty_checkpoint()["id"]}
            config = await saver.aput(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
    puts = threads * checkpoints / (time.perf_counter() - start)
    gets = await atimed_ms(lambda _: saver.aget_tuple(_thread(rng, threads)), 300)

    async def list_one(_: int) -> list[Any]:
        return [c async for c in saver.alist(_thread(rng, threads), limit=100)]

    lists = await atimed_ms(list_one, 30)
    graph = _loop_graph(saver)
    t0 = time.perf_counter()
    await graph.ainvoke({"n": 0, "log": []}, {"configurable": {"thread_id": "graph"}, "recursion_limit": 500})
    return {"puts/s": puts, "get p50 ms": percentile(gets, 50), "get p95 ms": percentile(gets, 95),
            "list p50 ms": percentile(lists, 50), "graph 200 steps s": time.perf_counter() - t0}  # fmt: skip


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    names = list(rows)
    metrics = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'metric':<20}" + "".join(f"{n:>18}" for n in names) + f"{'alma/sqlite':>14}")
    for m in metrics:
        a, b = rows[names[0]][m], rows[names[1]][m]
        ratio = a / b if m == "puts/s" else b / a  # > 1 means ALMA is better
        print(f"{m:<20}" + "".join(f"{rows[n][m]:>18.3f}" for n in names) + f"{ratio:>13.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 threads x 20 checkpoints")
    args = parser.parse_args()
    threads, checkpoints = (10, 20) if args.quick else (50, 100)
    print(f"{threads} threads x {checkpoints} checkpoints of ~{PAYLOAD // 1000} KB")
    with tempfile.TemporaryDirectory() as tmp:
        with AlmaSaver.from_conn_string(Path(tmp) / "alma.db") as alma_saver:
            alma = _sync_suite(alma_saver, threads, checkpoints, random.Random(1))
        conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
        sqlite_saver = SqliteSaver(conn)
        sqlite_saver.setup()
        lg = _sync_suite(sqlite_saver, threads, checkpoints, random.Random(1))
        conn.close()
        _table("sync", {"AlmaSaver": alma, "SqliteSaver": lg})

        async def run_async() -> dict[str, dict[str, float]]:
            async with AsyncAlmaSaver.from_conn_string(Path(tmp) / "alma-async.db") as saver:
                a = await _async_suite(saver, threads, checkpoints, random.Random(1))
            async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "lg-async.db")) as saver:
                b = await _async_suite(saver, threads, checkpoints, random.Random(1))
            return {"AsyncAlmaSaver": a, "AsyncSqliteSaver": b}

        _table("async", asyncio.run(run_async()))


if __name__ == "__main__":
    main()
