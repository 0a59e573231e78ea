"""Fault drills shared by tests/reliability/test_faults.py (small forms) and benchmarks/reliability_soak.py
(long forms): writer processes that report every acknowledged write, SIGKILL rounds, load runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from alma_core import ALMA, ProgressTracker, SQLiteStorage

WORKER = Path(__file__).with_name("_worker.py")


def start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """A `_worker.py` process running `spec`."""
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def acked(lines: list[str]) -> list[tuple[str, str]]:
    """(kind, id) of each acknowledged write a worker printed."""
    return [tuple(line.strip().split(" ", 1)) for line in lines if line.strip()]  # type: ignore[misc]


def open_target(target: dict[str, Any]) -> ALMA:
    if target.get("pg_uri"):
        from alma_core.storage.postgres import PostgresStorage

        storage: Any = PostgresStorage(target["pg_uri"], schema=target["schema"], min_pool_size=0, max_pool_size=2)
        return ALMA(project_id="p", storage=storage, embedder="mock")
    return ALMA(project_id="p", storage=target["db"], embedder="mock")


def assert_present(alma: ALMA, writes: list[tuple[str, str]]) -> None:
    """Every acknowledged write is in the store (memories, checkpoints, work items)."""
    tracker = ProgressTracker(alma=alma)
    for kind, ident in writes:
        if kind == "memory":
            alma.get(ident)
        elif kind == "checkpoint":
            workflow, checkpoint_id = ident.split("/")
            alma.get_checkpoint(workflow, checkpoint_id)
        elif kind == "work":
            tracker.get_item(ident)


def load(target: dict[str, Any], processes: int, writes: int, langgraph: bool) -> list[tuple[str, str]]:
    """`processes` workers x `writes` mixed writes at once; asserts every one is present. Returns them."""
    open_target(target).close()  # schema in place before the race
    workers = [start({**target, "mode": "write", "tag": f"w{i}", "n": writes, "langgraph": langgraph and i == 0})
               for i in range(processes)]  # fmt: skip
    results = [w.communicate(timeout=3600) for w in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
    done = [w for out, _ in results for w in acked(out.splitlines())]
    assert len(done) == processes * writes
    alma = open_target(target)
    try:
        assert_present(alma, done)
        memories = {ident for kind, ident in done if kind == "memory"}
        assert {m.id for m in alma.list_memories(memory_types=["outcome", "knowledge"])} == memories
    finally:
        alma.close()
    return done


def sigkill_rounds(db: str, rounds: int, seed: int = 18) -> list[tuple[str, str]]:
    """Kill a writer at a random point `rounds` times; after each, the file passes SQLite's integrity
    check and every acknowledged write is present. Returns the acknowledged writes."""
    ALMA(project_id="p", storage=db, embedder="mock").close()
    rng = random.Random(seed)
    writes: list[tuple[str, str]] = []
    for round_ in range(rounds):
        worker = start({"db": db, "mode": "write", "tag": f"k{round_}", "n": 100_000})
        assert worker.stdout is not None
        lines: list[str] = []
        goal = rng.randint(5, 40)
        while len(lines) < goal:
            line = worker.stdout.readline()
            assert line, worker.stderr.read() if worker.stderr else ""
            lines.append(line)
        time.sleep(rng.random() * 0.05)  # mid-write, somewhere
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
        writes.extend(acked(lines + worker.stdout.read().splitlines()))  # what it acknowledged before dying
        assert worker.returncode == -signal.SIGKILL
        storage = SQLiteStorage(db)
        assert storage.integrity_check() == "ok"
        alma = ALMA(project_id="p", storage=storage, embedder="mock")
        try:
            assert_present(alma, writes)
        finally:
            alma.close()
    return writes
