"""CPU time per learn and per learn_many outcome (mock embedder), and the SQL statements they run.

    .venv/bin/python benchmarks/bench_learn_cpu.py                 # 2,000 learns, 5,000 learn_many outcomes
    .venv/bin/python benchmarks/bench_learn_cpu.py --statements    # and the statements per outcome, by kind
    .venv/bin/python benchmarks/bench_learn_cpu.py --profile       # and the top of a cProfile of each
    PYTHONPATH=OTHER_TREE .venv/bin/python benchmarks/bench_learn_cpu.py   # the same for another tree

Wall-clock rates on a shared machine move with its load; the CPU time of the calling thread
(`time.thread_time`, SQLite runs on it too) moves much less, so two trees run alternately compare
fairly. On Linux the wall time per outcome is also split (`/proc/thread-self/schedstat`) into CPU, time
spent waiting for a CPU (the machine's load) and the rest, time blocked (disk syncs, locks): what an
idle machine would still wait for. The outcomes are `bench_core.py`'s (`learn_items`): one agent, 23
strategies, one in three a failure, zipf task texts; learn_many in batches of 1,000. Each run is made
twice, on fresh stores: with the mock embedder, then with its vectors remembered (embedding is a dict
lookup), which gives the rates excluding embedding and the wall and blocked figures. `--statements`
counts the statements the store's connection is given (an `executemany` is one) and their CPU time, in
a separate run (counting costs time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import alma_core  # first: the tree on PYTHONPATH (bench_core puts its own tree on sys.path)
from alma_core import ALMA, MockEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import RememberingEmbedder, learn_items


class _Counting:
    """A sqlite3 connection's stand-in that counts and times each statement, by its first words."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def _timed(self, kind: str, call: Any, sql: str, args: Any) -> Any:
        start = time.thread_time()
        try:
            return call(sql, args)
        finally:
            stat = self.stats[kind + " ".join(sql.split())[:60]]
            stat[0] += 1
            stat[1] += time.thread_time() - start

    def execute(self, sql: str, args: Any = ()) -> Any:
        return self._timed("", self.conn.execute, sql, args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._timed("(many) ", self.conn.executemany, sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _waited() -> float:
    """Seconds this thread has waited for a CPU (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run(
    path: Path, stream: list[dict[str, Any]], many: bool, embedder: Any, mode: str = ""
) -> tuple[float, float, float]:
    """(outcomes per CPU second, per wall second, seconds blocked per outcome) after one warm-up learn;
    `mode` "profile" prints a cProfile, "statements" the statements per outcome."""
    profiler = cProfile.Profile() if mode == "profile" else None
    with ALMA(project_id="bench", storage=path, embedder=embedder) as alma:
        alma.learn(**stream[0])
        counting = None
        if mode == "statements":
            counting = alma.storage._conn = _Counting(alma.storage._conn)  # type: ignore[attr-defined]
        cpu, wall, waited = time.thread_time(), time.perf_counter(), _waited()
        if profiler:
            profiler.enable()
        if many:
            for i in range(1, len(stream), 1000):
                alma.learn_many(stream[i : i + 1000])
        else:
            for item in stream[1:]:
                alma.learn(**item)
        if profiler:
            profiler.disable()
        cpu, wall, waited = time.thread_time() - cpu, time.perf_counter() - wall, _waited() - waited
        if counting is not None:
            alma.storage._conn = counting.conn  # type: ignore[attr-defined]
    n = len(stream) - 1
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    if counting is not None:
        total = sum(count for count, _ in counting.stats.values())
        spent = sum(t for _, t in counting.stats.values())
        print(f"  {total / n:.2f} statements per outcome, {spent / n * 1e3:.3f} ms CPU of {cpu / n * 1e3:.3f}:")
        for sql, (count, t) in sorted(counting.stats.items(), key=lambda kv: -kv[1][1]):
            print(f"    {count / n:6.2f} x {t / max(count, 1) * 1e6:6.1f} us  {sql}")
    return n / cpu, n / wall, max(0.0, wall - cpu - waited) / n


def runs(folder: Path, label: str, stream: list[dict[str, Any]], many: bool, i: int) -> tuple[float, ...]:
    """One run with the mock embedder, then the same stream on a fresh store with its vectors remembered
    (`bench_core.RememberingEmbedder`: embedding is a dict lookup): (CPU rate, CPU rate excluding
    embedding, wall rate, blocked seconds per outcome), the last two of the second run."""
    remembering = RememberingEmbedder(MockEmbedder())
    cpu, _, _ = run(folder / f"{label}-{i}.db", stream, many, remembering)
    bare, wall, blocked = run(folder / f"{label}-{i}-again.db", stream, many, remembering)
    return cpu, bare, wall, blocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learns", type=int, default=2000, help="learn() calls (default 2,000)")
    parser.add_argument("--many", type=int, default=5000, help="learn_many() outcomes (default 5,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each; the median is printed (default 3)")
    parser.add_argument("--statements", action="store_true", help="count the statements (a separate run)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile (a separate run)")
    args = parser.parse_args()
    print(f"tree {Path(alma_core.__file__).parent.parent}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, n, many in (("learn", args.learns, False), ("learn_many", args.many, True)):
            stream = learn_items(n + 1)
            results = [runs(Path(tmp), label, stream, many, i) for i in range(args.runs)]
            cpu, bare, wall, blocked = (statistics.median(r[i] for r in results) for i in range(4))
            print(f"{label}: {cpu:,.0f}/s CPU ({bare:,.0f}/s excl. embedding), {wall:,.0f}/s wall excl. embedding, "
                  f"{blocked * 1e6:,.0f} us blocked per outcome (median of {args.runs}, {n:,} outcomes)")  # fmt: skip
            for mode in ("statements", "profile"):
                if getattr(args, mode):
                    run(Path(tmp) / f"{label}-{mode}.db", stream, many, MockEmbedder(), mode)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
