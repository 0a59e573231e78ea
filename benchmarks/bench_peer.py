"""ALMA beside the seed's own package (alma-memory 0.11) in one run, same settings, a fresh process each.

    .venv/bin/python benchmarks/bench_peer.py --peer-path DIR                  # 1k memories, 50 retrieves
    .venv/bin/python benchmarks/bench_peer.py --peer-path DIR --n 300,1000,10000  # several store sizes

alma-memory installs a console script named `alma` (it would replace ours), so it is installed into its own
directory, never into the project's venv:

    uv pip install --target DIR --no-deps alma-memory==0.11.0    # its core needs only pyyaml (and numpy)

Both systems: SQLite storage in a temp dir, their own mock embedder (hash based, 384-d, no model), the
same agent, the same task texts, the store filled through each system's public `learn()` (beyond the first
`--learned` memories, default 1000, the same outcomes are written in batches through each one's storage:
`PutMemories` / `save_outcomes`, vectors from its own mock embedder), then `retrieve()` with distinct queries
(no cache hits). Import time is `from <package> import ALMA` in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, resource, sys, time
import numpy as np
system, n, runs, tmp, learned = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t0 = time.perf_counter()
if system == "ours":
    from alma_core import ALMA
    imported = time.perf_counter() - t0
    alma = ALMA("bench", storage=os.path.join(tmp, "ours.db"), embedder="mock")
else:
    from alma import ALMA
    imported = time.perf_counter() - t0
    path = os.path.join(tmp, "peer.yaml")
    with open(path, "w") as fh:
        fh.write(f"alma:\n  project_id: bench\n  storage: sqlite\n  storage_dir: {tmp}\n  db_name: peer.db\n"
                 "  embedding_provider: mock\n  embedding_dim: 384\n  agents:\n    a:\n      domain: general\n")
    alma = ALMA.from_config(path)
rng = np.random.default_rng(1)
words = [f"w{i}" for i in range(3000)] + ["login", "form", "email", "password", "selector", "api", "query"]
def text(k):
    return " ".join(words[i] for i in np.minimum(rng.zipf(1.3, size=k), len(words)) - 1)
items = [(text(10), "success" if i % 3 else "failure", f"strategy {i % 23}") for i in range(n)]
alma.learn("a", items[0][0], items[0][1], items[0][2])
start = time.perf_counter()
for task, outcome, strategy in items[1:learned]:
    alma.learn("a", task, outcome, strategy)
learn_rate = (min(n, learned) - 1) / (time.perf_counter() - start)
for at in range(learned, n, 5000):  # the rest in batches through the storage (not timed)
    chunk = items[at : at + 5000]
    if system == "ours":
        from alma_core import Outcome
        from alma_core.storage import PutMemories
        outs = [Outcome(project_id="bench", agent="a", task=t, success=o == "success", strategy_used=s)
                for t, o, s in chunk]
        for out, vector in zip(outs, alma.embedder.embed_documents([o.text for o in outs])):
            out.embedding = vector
        alma.storage.execute(PutMemories(outs))
    else:
        import uuid
        from alma.types import Outcome
        embedder = alma.retrieval._embedder or alma.retrieval._init_embedder()
        alma.storage.save_outcomes([Outcome(id=uuid.uuid4().hex, agent="a", project_id="bench", task_type="general",
                                            task_description=t, success=o == "success", strategy_used=s,
                                            embedding=embedder.encode(t)) for t, o, s in chunk])
queries = [text(8) for _ in range(runs + 1)]
alma.retrieve(queries[-1], "a", top_k=5)
times = []
for q in queries[:runs]:
    start = time.perf_counter()
    alma.retrieve(q, "a", top_k=5)
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"import_ms": imported * 1000, "learn_per_s": learn_rate, "retrieve_p50_ms": float(np.median(times)),
                  "retrieve_p95_ms": float(np.percentile(times, 95)),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(system: str, n: int, runs: int, pythonpath: str, learned: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", WORKER, system, str(n), str(runs), tmp, str(learned)],
                             capture_output=True, text=True, env=env, cwd=tmp, timeout=3600)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{system} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-path", required=True, help="directory alma-memory 0.11 is installed in (--target)")
    parser.add_argument("--n", default="1000", help="memories before retrieving, comma-separated sizes (default 1000)")
    parser.add_argument("--runs", type=int, default=50, help="retrieves timed (default 50)")
    parser.add_argument("--learned", type=int, default=1000, help="memories filled through learn() (default 1000)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.n.split(",")]
    version = subprocess.run([sys.executable, "-c", "import alma; print(alma.__version__)"], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": args.peer_path}).stdout.strip()  # fmt: skip
    print(f"ALMA (alma_core) vs alma-memory {version}: sqlite, mock embedders (384-d), {args.n} memories (the "
          f"first {args.learned} learned), {args.runs} retrieves top_k=5; {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    start = time.perf_counter()
    print(f"  {'memories':>9}  {'measure':<28} {'alma_core':>12} {'alma-memory ' + version:>20}")
    for n in sizes:  # each system in turn at each size, a fresh process each
        ours = run("ours", n, args.runs, str(ROOT), args.learned)
        peer = run("peer", n, args.runs, args.peer_path, args.learned)
        for key, label in [("import_ms", "from ... import ALMA (ms)"), ("learn_per_s", "learn (/s)"),
                           ("retrieve_p50_ms", "retrieve p50 (ms)"), ("retrieve_p95_ms", "retrieve p95 (ms)"),
                           ("max_rss_mb", "max RSS (MB)")]:  # fmt: skip
            print(f"  {n:>9,}  {label:<28} {ours[key]:>12,.1f} {peer[key]:>20,.1f}", flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s; load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
