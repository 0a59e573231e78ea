"""Dense search on int8 codes against exact float32: recall, scan CPU time, and a store's dense search.

    .venv/bin/python benchmarks/bench_quantised.py                    # random vectors, 10k and 100k rows
    .venv/bin/python benchmarks/bench_quantised.py --quick            # random vectors, 10k rows
    .venv/bin/python benchmarks/bench_quantised.py --sizes 2000,5000  # other sizes (where int8 starts to pay)
    .venv/bin/python benchmarks/bench_quantised.py --vectors F.npy    # also these (e.g. MiniLM) vectors

A matrix of int8 codes (`alma_core/storage/_quantised.py`) proposes k + margin candidates that are then
rescored exactly; recall@k is measured against the exact float32 top k, on dev queries (the first half:
where the store's `QUANT_MARGIN` was chosen) and test queries (the second half), for several margins.
Times are CPU time of the calling thread per query (`time.thread_time`: the machine may be shared), one
BLAS thread: the exact float32 product, the int8 scan with numkong (extra `ann`) and with numpy alone.
The store rows time `SearchMemories` with a vector only (no lexical side) through SQLiteStorage: int8
scan plus rescoring from the database, against the float32 matrix (the same store, the threshold moved).

`--vectors` takes an .npy of unit vectors (rows); its last `--queries` rows are the queries. The MiniLM
figures in docs/performance.md used `benchmarks/gen_minilm_vectors.py minilm.npy` (110,000 docstring
sentences of the installed packages, embedded with `LocalEmbedder`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alma_core import MemoryType, Outcome  # noqa: E402
from alma_core._blas import single_blas_thread  # noqa: E402
from alma_core.storage import MemoryFilter, PutMemories, SearchMemories, SQLiteStorage, _quantised, _vectors  # noqa: E402  # noqa: E402
from alma_core.storage._vectors import VectorMatrix  # noqa: E402

MARGINS = (0, 4, 8, 16, 32)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def cpu_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    fn(queries[0])
    times = []
    for q in queries:
        start = time.thread_time()
        fn(q)
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def quantised(vectors: np.ndarray) -> tuple[VectorMatrix, _vectors.Fetch]:
    rows = ((f"m{i}", v.tobytes(), None, None, None) for i, v in enumerate(vectors))
    m = VectorMatrix.from_rows(rows, len(vectors), 1, quantise_at=1)
    assert m is not None and m.codes is not None
    return m, lambda ids: {i: vectors[int(i[1:])].tobytes() for i in ids}


def recall(m: VectorMatrix, fetch: _vectors.Fetch, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    found = 0
    for q in queries:
        exact = set(np.argpartition(-(vectors @ q), k)[:k].tolist())
        found += len(exact & {int(i[1:]) for i, _ in m.search(q, k, fetch=fetch)})
    return found / (len(queries) * k)


def matrix_rows(name: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    n = len(vectors)
    dev, test = queries[: len(queries) // 2], queries[len(queries) // 2 :]
    m, fetch = quantised(vectors)

    def exact(q: np.ndarray) -> object:
        with single_blas_thread():
            return np.argpartition(-(vectors @ q), 10)[:10]

    nk = _quantised.numkong()
    t_exact = cpu_ms(exact, queries[:50])
    t_nk = cpu_ms(lambda q: m.scan(q, n), queries[:50]) if nk else float("nan")
    _quantised._kernel["numkong"] = None  # the numpy scan, as without the extra
    t_np = cpu_ms(lambda q: m.scan(q, n), queries[:20])
    _quantised._kernel["numkong"] = nk
    t_search = cpu_ms(lambda q: m.search(q, 10, fetch=fetch), queries[:50])
    print(f"{name:>8} {n:>7,} | CPU per query: exact f32 {t_exact:.2f} ms, int8 scan numkong {t_nk:.2f} ms, "
          f"numpy {t_np:.2f} ms, int8 search k=10 incl. rescoring {t_search:.2f} ms", flush=True)  # fmt: skip
    saved = _vectors.QUANT_MARGIN
    try:
        for k in (10, 50):
            for margin in MARGINS:
                _vectors.QUANT_MARGIN = margin
                r_dev, r_test = recall(m, fetch, vectors, dev, k), recall(m, fetch, vectors, test, k)
                print(f"{'':>8} {'':>7} | k {k:>2} margin {margin:>2}: recall@{k} dev {r_dev:.4f} test {r_test:.4f}",
                      flush=True)  # fmt: skip
    finally:
        _vectors.QUANT_MARGIN = saved


def store_rows(vectors: np.ndarray, queries: np.ndarray, tmp: Path) -> None:
    n = len(vectors)
    with SQLiteStorage(tmp / f"q{n}.db") as store:
        for start in range(0, n, 5000):
            batch = []
            for i in range(start, min(n, start + 5000)):
                memory = Outcome(project_id="p", agent="a", task=f"task {i}", success=True, strategy_used="s")
                memory.embedding = vectors[i]
                batch.append(memory)
            store.execute(PutMemories(batch))
        f = MemoryFilter(project_id="p", agents=("a",), types=(MemoryType.OUTCOME,))
        times = {}
        for label, threshold in (("float32 matrix", n + 1), ("int8 codes", 1)):
            _vectors.QUANT_MIN_ROWS = threshold
            store._matrices.clear()  # type: ignore[attr-defined]
            times[label] = cpu_ms(lambda q: store.execute(SearchMemories(f, vector=q, k=50)), queries[:50])
        print(f"   store {n:>7,} | SearchMemories (vector only, k=50, candidates loaded) CPU p50: "
              + ", ".join(f"{label} {t:.2f} ms" for label, t in times.items()), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("--sizes", help="row counts, comma-separated (default 10000,100000)")
    parser.add_argument("--vectors", help="an .npy of unit vectors; its last --queries rows are the queries")
    parser.add_argument("--queries", type=int, default=400, help="queries per dataset, half dev, half test")
    parser.add_argument("--no-store", action="store_true", help="skip the SQLite store rows")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    print(f"int8 codes vs exact float32: dim 384, margins {MARGINS} (store: {_vectors.QUANT_MARGIN}), "
          f"{args.queries} queries (half dev, half test), numkong {'yes' if _quantised.numkong() else 'no'}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    rng = np.random.default_rng(0)
    data = {"random": (lambda n: unit(rng.normal(size=(n, 384))), unit(rng.normal(size=(args.queries, 384))))}
    if args.vectors:
        given = np.load(args.vectors, mmap_mode="r")
        data[Path(args.vectors).stem[:8]] = (lambda n: np.array(given[:n]), np.array(given[-args.queries :]))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (rows, queries) in data.items():
            for n in sizes:
                vectors = rows(n)
                matrix_rows(name, vectors, queries)
                if name == "random" and not args.no_store:
                    store_rows(vectors, queries, Path(tmp))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
