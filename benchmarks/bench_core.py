"""Core benchmark: import time, learn throughput, retrieve latency at 1k / 10k / 100k memories, RSS.

    .venv/bin/python benchmarks/bench_core.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_core.py --quick    # short run (1k and 10k only, fewer samples)
    .venv/bin/python benchmarks/bench_core.py --no-local # skip MiniLM
    .venv/bin/python benchmarks/bench_core.py --peer-path DIR  # and alma-memory 0.11 beside it (bench_peer.py)

Large stores are filled through the storage protocol (`PutMemories`) with pre-computed random unit
vectors, so filling takes seconds; queries then go through `ALMA.retrieve` like any caller's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import percentile, timed_ms  # noqa: E402

from alma_core import ALMA, LocalEmbedder, MockEmbedder, Outcome  # noqa: E402
from alma_core.storage import PutMemories  # noqa: E402

AIMS = {
    "from alma_core import ALMA": "<= 150 ms",
    "learn/s mock": ">= 1000/s",
    "learn_many/s mock": ">= 5000/s",
    "retrieve 10k mock": "p50 <= 2 ms excl. embedding",
    "retrieve 100k mock": "p50 <= 10 ms excl. embedding",
    "retrieve local": "<= 1.2x query embedding",
}
ROWS: list[tuple[str, str, str]] = []


def row(name: str, value: str, aim: str = "") -> None:
    ROWS.append((name, value, aim))
    print(f"  {name:<38} {value:<34} {aim}", flush=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_rss_mb() -> float:
    """The resident set now (Linux: /proc/self/status VmRSS), NaN elsewhere."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "nan")
    return float(kb) / 1024


# ---- import time ------------------------------------------------------------------------------------------


def import_time(statement: str, runs: int, env: dict[str, str] | None = None) -> float:
    """Median ms of `statement` in fresh interpreters (`env`: extra environment variables)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                             check=True).stdout)
        for _ in range(runs)
    ]  # fmt: skip
    return statistics.median(times) * 1000


# ---- learn ------------------------------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(3000)] + ["login", "form", "email", "password", "selector", "api", "query"]


def task_text(rng: np.random.Generator, n_words: int = 10) -> str:
    picks = np.minimum(rng.zipf(1.3, size=n_words), len(WORDS)) - 1
    return " ".join(WORDS[i] for i in picks)


def learn_items(n: int) -> list[dict[str, Any]]:
    """The learn stream: one agent, 23 strategies, one in three a failure, zipf task texts."""
    rng = np.random.default_rng(1)
    return [{"agent": "a", "task": task_text(rng), "outcome": bool(i % 3), "strategy_used": f"strategy {i % 23}"}
            for i in range(n)]  # fmt: skip


class RememberingEmbedder:
    """An embedder that remembers every vector it computes, so a second run of the same stream embeds
    nothing: what embedding then costs is a dict lookup. The rate of that run is the rate excluding
    embedding, measured; subtracting the embedder's own time from a run only estimated it (the
    allocations, collections and cold CPU caches an embedding call leaves behind fall on either side)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder, self.dim, self.name = embedder, embedder.dim, embedder.name
        self.vectors: dict[str, np.ndarray] = {}
        self.misses = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.misses += len(missing)
            self.vectors.update(zip(missing, self.embedder.embed_documents(missing), strict=True))
        if len(texts) == 1:  # (a learn asks for one text: np.stack of one row costs ~10-50 us)
            return self.vectors[texts[0]][None, :]
        return np.stack([self.vectors[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def learn_pass(embedder: Any, items: list[dict[str, Any]], many: bool, path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) to learn `items` into a fresh store, after one warm-up
    learn (model load, schema); learn_many in batches of 1,000."""
    with ALMA(project_id="bench", storage=path, embedder=embedder) as alma:
        alma.learn(**items[0])
        start, cpu = time.perf_counter(), time.thread_time()
        if many:
            for i in range(0, len(items), 1000):
                alma.learn_many(items[i : i + 1000])
        else:
            for item in items:
                alma.learn(**item)
        return time.perf_counter() - start, time.thread_time() - cpu


def learn_rate(embedder: Any, n: int, many: bool, tmp: Path) -> tuple[float, float]:
    """Outcomes per second, and per second excluding embedding (the aims' terms): the same stream again
    on a fresh store with every vector remembered from the first run (`RememberingEmbedder`)."""
    items = learn_items(n)
    remembering = RememberingEmbedder(embedder)
    first, _ = learn_pass(remembering, items, many, tmp / f"learn-{time.monotonic_ns()}.db")
    remembering.misses = 0
    second, _ = learn_pass(remembering, items, many, tmp / f"learn-{time.monotonic_ns()}.db")
    assert remembering.misses == 0, "the second run embedded again"
    return n / first, n / second


def rate_row(name: str, rates: tuple[float, float], aim: str = "") -> None:
    row(name, f"{rates[0]:,.0f}/s (excl. embed {rates[1]:,.0f}/s)", aim)


# ---- retrieve ---------------------------------------------------------------------------------------------


def fill(alma: ALMA, n: int, dim: int) -> None:
    """n outcomes of one agent with random unit vectors (the worst case: one big matrix)."""
    rng = np.random.default_rng(n)
    for start in range(0, n, 5000):
        batch = []
        vectors = rng.normal(size=(min(5000, n - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for vector in vectors:
            memory = Outcome(project_id=alma.project_id, agent="a", task=task_text(rng),
                             success=bool(rng.random() < 0.7), strategy_used=task_text(rng, 5))  # fmt: skip
            memory.embedding = vector
            batch.append(memory)
        alma.storage.execute(PutMemories(batch))


def time_calls(fn: Callable[[int], object], runs: int) -> list[float]:
    fn(-1)  # warm caches (matrices, query path)
    return timed_ms(fn, runs)


def retrieve_bench(embedder: object, n: int, runs: int, tmp: Path, label: str) -> None:
    rng = np.random.default_rng(7 + n)  # queries differ between stores too: no query-vector cache hits
    queries = [task_text(rng, 8) for _ in range(runs + 1)]  # distinct: no query or result cache hits
    with ALMA(project_id="bench", storage=tmp / f"r-{label}-{n}.db", embedder=embedder) as alma:
        fill(alma, n, alma.embedder.dim)
        total = time_calls(lambda i: alma.retrieve(task=queries[i], agent="a", top_k=5), runs)
        resident = vm_rss_mb()  # the store open, its matrices loaded
        embed_q = [f"{q} (embed)" for q in queries]
        embed = time_calls(lambda i: alma.embedder.embed_documents([embed_q[i]]), runs)
    p50, p95, e50 = percentile(total, 50), percentile(total, 95), percentile(embed, 50)
    size = f"{n // 1000}k" if n >= 1000 else str(n)
    if label == "mock":
        aim = AIMS.get(f"retrieve {n // 1000}k mock", "")
        row(f"retrieve p50/p95 @ {size} ({label})",
            f"{p50:.2f} / {p95:.2f} ms (excl. embed {p50 - e50:.2f})", aim)  # fmt: skip
        row(f"  VmRSS after the retrieves @ {size}", f"{resident:.0f} MB", "<= 400 MB at 100k" if n >= 100_000 else "")
    else:
        row(f"retrieve p50/p95 @ {size} ({label})", f"{p50:.1f} / {p95:.1f} ms", "")
        row(f"  query embedding alone p50 @ {size}", f"{e50:.1f} ms (ratio {p50 / e50:.2f}x)",
            AIMS["retrieve local"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run: fewer samples, no 100k store")
    parser.add_argument("--no-local", action="store_true", help="skip the MiniLM (local) figures")
    parser.add_argument("--sizes", help="store sizes to retrieve from, comma-separated (e.g. 100000)")
    parser.add_argument("--peer-path", help="also run alma-memory 0.11 installed in this dir (bench_peer.py)")
    args = parser.parse_args()
    runs = 30 if args.quick else 200
    sizes = [300, 1_000, 10_000] if args.quick else [300, 1_000, 10_000, 100_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    print(f"ALMA core benchmark ({'quick' if args.quick else 'full'}), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  {'measure':<38} {'value':<34} aim")
    row("import alma_core (cold, median of 5)", f"{import_time('import alma_core', 5):.0f} ms")
    row("from alma_core import ALMA (cold)", f"{import_time('from alma_core import ALMA', 5):.0f} ms",
        AIMS["from alma_core import ALMA"])  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n_learn = 300 if args.quick else 2000
        rate_row("learn/s (mock)", learn_rate(MockEmbedder(), n_learn, False, tmp), AIMS["learn/s mock"])
        rate_row("learn_many/s (mock)", learn_rate(MockEmbedder(), n_learn * 5, True, tmp), AIMS["learn_many/s mock"])
        for n in sizes:
            retrieve_bench(MockEmbedder(), n, runs, tmp, "mock")
        row("max RSS after mock runs", f"{rss_mb():.0f} MB")
        if not args.no_local:
            local = LocalEmbedder()
            n_local = 50 if args.quick else 200
            rate_row("learn/s (local MiniLM)", learn_rate(local, n_local, False, tmp))
            rate_row("learn_many/s (local MiniLM)", learn_rate(local, n_local * 5, True, tmp))
            for n in sizes[1:3]:
                retrieve_bench(local, n, max(20, runs // 4), tmp, "local")
            row("max RSS after local runs", f"{rss_mb():.0f} MB")
    if args.peer_path:  # the seed's own package beside ours, same run and settings
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peer.py"), "--peer-path", args.peer_path,
                        "--n", "300,1000,10000" if args.quick else "300,1000,10000,100000", "--learned", "300",
                        "--runs", str(min(runs, 50))], check=True)  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
