"""Dense search at scale: exact numpy product vs the HNSW index (usearch, int8, rescored exactly).

    .venv/bin/python benchmarks/bench_vectors.py            # 20k and 100k rows, 200 queries
    .venv/bin/python benchmarks/bench_vectors.py --quick    # 20k rows, 50 queries

Two data sets of 384-d unit vectors: "clustered" (points around 200 topic centres, the shape of real
sentence embeddings) and "random" (independent Gaussian directions: the worst case for any graph index,
where every neighbour is about as far as any other). recall@10 is measured against exact search on the
same matrix, with the store's settings (`alma_core.storage._vectors`); times are per query, one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import percentile, timed_ms  # noqa: E402

from alma_core.storage import _vectors  # noqa: E402
from alma_core.storage._vectors import AnnIndex, VectorMatrix  # noqa: E402


def data(kind: str, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "clustered":
        centres = rng.normal(size=(200, dim))
        x = centres[rng.integers(0, 200, n)] + 0.6 * rng.normal(size=(n, dim))
    else:
        x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def matrix(vectors: np.ndarray) -> VectorMatrix:
    m = VectorMatrix(dim=vectors.shape[1], matrix=vectors, valid=np.ones(len(vectors), dtype=bool))
    m.ids = [str(i) for i in range(len(vectors))]
    m.index = {memory_id: i for i, memory_id in enumerate(m.ids)}
    m.user_ids = m.workflow_ids = m.categories = [None] * len(vectors)  # type: ignore[assignment]
    return m


def row(kind: str, n: int, k: int, runs: int, queries: np.ndarray, exact_m: VectorMatrix, approx_m: VectorMatrix,
        build: float) -> None:  # fmt: skip
    exact = [exact_m.search(q, k) for q in queries]
    approx = [approx_m.search(q, k) for q in queries]
    recall = np.mean([len({h[0] for h in a} & {h[0] for h in e}) / k for a, e in zip(approx, exact, strict=True)])
    t_exact = timed_ms(lambda i: exact_m.search(queries[i], k), runs)
    t_approx = timed_ms(lambda i: approx_m.search(queries[i], k), runs)
    kept = approx_m.ann.recall(approx_m.matrix) >= _vectors.APPROX_MIN_RECALL
    print(f"  {kind:<9} {n:>7,} rows: recall@10 {recall:.4f}; p50 exact {percentile(t_exact, 50):.2f} ms, "
          f"approx {percentile(t_approx, 50):.2f} ms; index build {build:.1f} s CPU; "
          f"the store {'uses' if kept else 'drops'} it (self-check)", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k rows and 50 queries only")
    args = parser.parse_args()
    sizes, runs, dim, k = ([20_000], 50, 384, 10) if args.quick else ([20_000, 100_000], 200, 384, 10)
    print(f"dense search benchmark: dim {dim}, k {k}, {runs} queries, threshold {_vectors.APPROX_MIN_ROWS} rows, "
          f"fetch max(128, k*{_vectors.APPROX_FETCH}), usearch i8 M=16 ef_add=128 ef_search=128; "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for kind in ("clustered", "random"):
        for n in sizes:
            rng = np.random.default_rng(n)
            vectors = data(kind, n, dim, rng)
            noise = rng.normal(size=(runs, dim)) * 0.05
            queries = vectors[rng.integers(0, n, runs)] + noise.astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            exact_m, approx_m = matrix(vectors), matrix(vectors)
            start = time.process_time()
            approx_m.ann = AnnIndex.build(vectors)
            build = time.process_time() - start
            exact_m.ann = False
            row(kind, n, k, runs, queries, exact_m, approx_m, build)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
