"""Dense search at scale: exact float32 product, int8 scan, HNSW index over the codes (both rescored exactly).

    .venv/bin/python benchmarks/bench_vectors.py            # 20k and 100k rows, 200 queries
    .venv/bin/python benchmarks/bench_vectors.py --quick    # 20k rows, 50 queries

Two data sets of 384-d unit vectors: "clustered" (points around 200 topic centres, the shape of real
sentence embeddings) and "random" (independent Gaussian directions: the worst case for any graph index,
where every neighbour is about as far as any other). recall@10 is measured against exact search on the
same matrix, with the store's settings (`alma_core.storage._vectors`; the index is used here whatever the
store's row threshold); times are per query (wall, p50), one thread. The int8 matrix rescores from an
in-memory copy of the float32 rows (the store reads them from its database).
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


def quantised(vectors: np.ndarray) -> tuple[VectorMatrix, _vectors.Fetch]:
    rows = ((str(i), v.tobytes(), None, None, None) for i, v in enumerate(vectors))
    m = VectorMatrix.from_rows(rows, len(vectors), 1, quantise_at=1)
    assert m is not None
    return m, lambda ids: {i: vectors[int(i)].tobytes() for i in ids}


def row(kind: str, n: int, k: int, runs: int, queries: np.ndarray, exact_m: VectorMatrix) -> None:
    codes_m, fetch = quantised(exact_m.matrix)
    codes_m.ann = False
    exact = [{h[0] for h in exact_m.search(q, k)} for q in queries]

    def measure(m: VectorMatrix) -> tuple[float, float]:
        found = [len({h[0] for h in m.search(q, k, fetch=fetch)} & e) / k for q, e in zip(queries, exact, strict=True)]
        return float(np.mean(found)), percentile(timed_ms(lambda i: m.search(queries[i], k, fetch=fetch), runs), 50)

    t_exact = percentile(timed_ms(lambda i: exact_m.search(queries[i], k), runs), 50)
    r_scan, t_scan = measure(codes_m)
    start = time.process_time()
    codes_m.ann = AnnIndex.build(codes_m, n) or False
    build = time.process_time() - start
    kept = bool(codes_m.ann) and codes_m.ann.recall(codes_m, n) >= _vectors.APPROX_MIN_RECALL
    r_index, t_index = measure(codes_m)
    print(f"  {kind:<9} {n:>7,} rows: p50 exact {t_exact:.2f} ms; int8 scan recall@10 {r_scan:.4f} p50 "
          f"{t_scan:.2f} ms; HNSW recall@10 {r_index:.4f} p50 {t_index:.2f} ms, build {build:.1f} s CPU, "
          f"self-check {'keeps' if kept else 'drops'} it", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k rows and 50 queries only")
    args = parser.parse_args()
    sizes, runs, dim, k = ([20_000], 50, 384, 10) if args.quick else ([20_000, 100_000], 200, 384, 10)
    print(f"dense search benchmark: dim {dim}, k {k}, {runs} queries, store's index threshold "
          f"{_vectors.APPROX_MIN_ROWS} rows, int8 pool k+{_vectors.QUANT_MARGIN}, index fetch max(128, "
          f"k*{_vectors.APPROX_FETCH}), usearch i8 cos M=16 ef_add=128 ef_search=128; "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    _vectors.APPROX_MIN_ROWS = 0  # an index set on a matrix is used at any size here
    for kind in ("clustered", "random"):
        for n in sizes:
            rng = np.random.default_rng(n)
            vectors = data(kind, n, dim, rng)
            noise = rng.normal(size=(runs, dim)) * 0.05
            queries = vectors[rng.integers(0, n, runs)] + noise.astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            exact_m = matrix(vectors)
            exact_m.ann = False
            row(kind, n, k, runs, queries, exact_m)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
