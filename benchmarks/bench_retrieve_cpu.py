"""CPU time per retrieve (mock embedder), for before/after comparisons on a busy machine.

    .venv/bin/python benchmarks/bench_retrieve_cpu.py            # 300 learned memories and a 10k store
    PYTHONPATH=OTHER_TREE .venv/bin/python benchmarks/bench_retrieve_cpu.py   # the same for another tree
    .venv/bin/python benchmarks/bench_retrieve_cpu.py --fts5     # lexical search by FTS5's own bm25() statement

Wall-clock latency on a shared machine moves with its load; the CPU time of the calling thread
(`time.thread_time`) moves much less, so two trees run alternately compare fairly. Stores: 300 outcomes
learned through `learn()` (with the heuristics and anti-patterns they form: ~115 candidates per
retrieve) as in `bench_peer.py`, and 10k outcomes with random unit vectors as in `bench_core.py`.
Queries: distinct (no result-cache hits), the same for every tree. "Loop" is the agent loop on the
learned store: each retrieve is followed by a learn of its query (CPU of the retrieves only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import alma_core  # first: the tree on PYTHONPATH (bench_core puts its own tree on sys.path)
from alma_core import ALMA, MockEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import fill, task_text


def cpu_ms(alma: ALMA, queries: list[str]) -> float:
    """Median CPU ms per retrieve over `queries` (after one warm-up)."""
    alma.retrieve(queries[-1], "a", top_k=5)
    times = []
    for query in queries[:-1]:
        start = time.thread_time()
        alma.retrieve(query, "a", top_k=5)
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def loop_ms(alma: ALMA, queries: list[str]) -> float:
    """Median CPU ms per retrieve when each is followed by a learn (the agent loop)."""
    times = []
    for i, query in enumerate(queries):
        start = time.thread_time()
        alma.retrieve(query, "a", top_k=5)
        times.append((time.thread_time() - start) * 1000)
        alma.learn("a", query, "success" if i % 3 else "failure", f"strategy {i % 23}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="retrieves per store (default 200)")
    parser.add_argument("--filled", default="10000", help="sizes of the filled stores, comma-separated (10000)")
    parser.add_argument(
        "--fts5", action="store_true", help="rank with FTS5's bm25() statement, not the in-memory index"
    )
    args = parser.parse_args()
    if args.fts5:  # the index is then never built: every lexical search is the SQL statement it replaces
        from alma_core.storage import _lexindex

        _lexindex.BUILD_AFTER = 1 << 62
    print(f"tree {Path(alma_core.__file__).parent.parent}, load {os.getloadavg()[0]:.1f}, "
          f"lexical: {'FTS5 bm25()' if args.fts5 else 'in-memory index'}")  # fmt: skip
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        with ALMA("bench", storage=Path(tmp) / "learned.db", embedder=MockEmbedder()) as alma:
            for i in range(300):
                alma.learn("a", task_text(rng), "success" if i % 3 else "failure", f"strategy {i % 23}")
            learned = cpu_ms(alma, [task_text(rng, 8) for _ in range(args.runs + 1)])
            looped = loop_ms(alma, [task_text(rng, 8) for _ in range(args.runs)])
        filled = {}
        for n in (int(size) for size in args.filled.split(",")):
            with ALMA("bench", storage=Path(tmp) / f"filled-{n}.db", embedder=MockEmbedder()) as alma:
                fill(alma, n, alma.embedder.dim)
                filled[n] = cpu_ms(alma, [task_text(rng, 8) for _ in range(args.runs + 1)])
    print(f"CPU per retrieve p50: {learned:.2f} ms @ 300 learned | {looped:.2f} ms in the loop (retrieve, learn) | "
          + " | ".join(f"{ms:.2f} ms @ {n // 1000}k filled" for n, ms in filled.items()))  # fmt: skip


if __name__ == "__main__":
    main()
