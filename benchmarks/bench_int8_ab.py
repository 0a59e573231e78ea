"""One tree, float32 matrices against int8 codes: retrieve CPU and wall p50, the first search's load, VmRSS.

    .venv/bin/python benchmarks/bench_int8_ab.py float32 100000   # QUANT_MIN_ROWS out of reach: float32
    .venv/bin/python benchmarks/bench_int8_ab.py int8 100000      # the store's settings

`bench_core.py`'s fill (random unit vectors, one agent), then 200 distinct retrieves (top_k 5, mock
embedder). Run one process per mode, so VmRSS is that mode's alone, and the modes alternately.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import fill, rss_mb, task_text, vm_rss_mb

from alma_core import ALMA, MockEmbedder
from alma_core.storage import _vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["float32", "int8"])
    parser.add_argument("n", type=int, help="memories in the store")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if args.mode == "float32":
        _vectors.QUANT_MIN_ROWS = 10**9
    rng = np.random.default_rng(107)
    queries = [task_text(rng, 8) for _ in range(args.runs + 1)]
    with tempfile.TemporaryDirectory() as tmp, ALMA("bench", storage=Path(tmp) / "r.db", embedder=MockEmbedder()) as a:
        fill(a, args.n, a.embedder.dim)
        start = time.thread_time()
        a.retrieve(queries[-1], "a", top_k=5)
        first = time.thread_time() - start
        cpu, wall = [], []
        for query in queries[:-1]:
            start, began = time.thread_time(), time.perf_counter()
            a.retrieve(query, "a", top_k=5)
            cpu.append((time.thread_time() - start) * 1000)
            wall.append((time.perf_counter() - began) * 1000)
        resident = vm_rss_mb()  # the store open, its matrix loaded
    print(f"{args.mode} @ {args.n:,}: first retrieve (matrix load) {first:.2f} s CPU; retrieve p50 CPU "
          f"{statistics.median(cpu):.2f} ms, wall {statistics.median(wall):.2f} ms; VmRSS {resident:.0f} MB, "
          f"max RSS {rss_mb():.0f} MB; load {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
