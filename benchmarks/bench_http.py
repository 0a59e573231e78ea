"""Requests/s and latency of retrieve and learn over HTTP (`alma serve`, a local httpx client) beside the
same calls in process, on the same store with the same settings.

    .venv/bin/python benchmarks/bench_http.py [--quick] [--memories 2000] [--calls 300] [--clients 4]

One SQLite store with mock embeddings is seeded with `--memories` outcomes (learn_many). Each phase runs
on that store: in-process retrieve, HTTP retrieve (one keep-alive client, calls in sequence), HTTP
retrieve from `--clients` concurrent clients; then the same for learn. Every retrieve asks a different
task, so the retrieval cache never answers. The server is one uvicorn worker on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from _common import percentile, start_server, timed_ms

from alma_core import ALMA, load_config

TOKEN = "bench-token-0123456789"
PROJECT = "bench"
WORDS = "login form api cache retry checkout search upload token session payment profile export schema migration"
WORDS_LIST = [*WORDS.split(), "deploy", "queue", "worker", "index", "report", "email", "invoice"]


def write_config(directory: Path) -> Path:
    path = directory / "config.yaml"
    data = {"alma": {"project_id": PROJECT, "storage_dir": str(directory), "embedding_provider": "mock"}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def task(rng: np.random.Generator, i: int) -> str:
    return f"{' '.join(rng.choice(WORDS_LIST, 6))} #{i}"


def seed(config: Path, n: int) -> None:
    rng = np.random.default_rng(7)
    with ALMA(config=load_config(config)) as alma:
        for start in range(0, n, 500):
            batch = range(start, min(n, start + 500))
            alma.learn_many([{"agent": f"agent{i % 4}", "task": task(rng, i), "outcome": bool(i % 3),
                              "strategy_used": f"strategy {i % 25}"} for i in batch])  # fmt: skip


@contextmanager
def server(config: Path) -> Iterator[str]:
    cmd = [sys.executable, "-m", "alma_core.server", "--config", str(config), "--port", "0", "--token", TOKEN]
    proc, url = start_server(cmd, "alma serve: serving")
    try:
        httpx.get(f"{url}/v1/health", timeout=120).raise_for_status()  # waits in the backlog until it accepts
        yield f"{url}/v1/projects/{PROJECT}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def summary(label: str, samples: list[float], wall_s: float | None = None) -> None:
    rate = len(samples) / (wall_s if wall_s is not None else sum(samples) / 1000)
    print(f"  {label:<34} {rate:>8.0f} req/s   p50 {percentile(samples, 50):7.2f} ms   "
          f"p95 {percentile(samples, 95):7.2f} ms   n={len(samples)}")  # fmt: skip


def concurrent(base: str, clients: int, calls: int, body: Callable[[int], dict[str, Any]], path: str) -> None:
    samples: list[list[float]] = [[] for _ in range(clients)]

    def run(k: int) -> None:
        with client(base) as c:

            def one(i: int) -> None:
                c.post(path, json=body(k * calls + i)).raise_for_status()

            samples[k] = timed_ms(one, calls)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary(f"HTTP, {clients} concurrent clients", [s for part in samples for s in part], time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run: 500 memories, 100 calls per phase")
    parser.add_argument("--memories", type=int, default=None, help="outcomes in the store (default 2000)")
    parser.add_argument("--calls", type=int, default=None, help="calls per phase (default 300)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients in the last phase")
    args = parser.parse_args()
    memories = args.memories or (500 if args.quick else 2000)
    calls = args.calls or (100 if args.quick else 300)
    print(f"ALMA HTTP benchmark: python {sys.version.split()[0]}, {os.cpu_count()} cores; store: SQLite, mock "
          f"embedder (384-d), {memories} outcomes seeded; {calls} calls per phase; retrieve top_k=5 hybrid, a new "
          f"task each call (no cache hits); server: alma serve, 1 uvicorn worker, loopback, keep-alive httpx "
          f"client; learn: one outcome per call")  # fmt: skip
    rng = np.random.default_rng(11)
    tasks = [task(rng, 10_000 + i) for i in range(calls * (args.clients + 2))]
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp))
        seed(config, memories)

        def retrieve_body(i: int) -> dict[str, Any]:
            return {"task": tasks[i], "agent": f"agent{i % 4}", "top_k": 5}

        def learn_body(i: int) -> dict[str, Any]:
            return {"agent": f"agent{i % 4}", "task": tasks[i], "outcome": bool(i % 2), "strategy_used": f"s{i % 9}"}

        with ALMA(config=load_config(config)) as alma:
            inproc_retrieve = timed_ms(lambda i: alma.retrieve(**retrieve_body(i)), calls)
        with server(config) as base, client(base) as c:
            offset = calls  # fresh tasks for every phase
            http_retrieve = timed_ms(lambda i: c.post("/retrieve", json=retrieve_body(offset + i)).raise_for_status(),
                                     calls)  # fmt: skip
            print("retrieve")
            summary("in process (ALMA.retrieve)", inproc_retrieve)
            summary("HTTP, 1 client", http_retrieve)
            concurrent(base, args.clients, calls // args.clients, lambda i: retrieve_body(2 * calls + i), "/retrieve")
        with ALMA(config=load_config(config)) as alma:
            inproc_learn = timed_ms(lambda i: alma.learn(**learn_body(i)), calls)
        with server(config) as base, client(base) as c:
            http_learn = timed_ms(lambda i: c.post("/learn", json=learn_body(calls + i)).raise_for_status(), calls)
            print("learn")
            summary("in process (ALMA.learn)", inproc_learn)
            summary("HTTP, 1 client", http_learn)
            concurrent(base, args.clients, calls // args.clients, lambda i: learn_body(2 * calls + i), "/learn")


if __name__ == "__main__":
    main()
