"""Faults: concurrent writer processes, SIGKILL at random points, a full disk.

In-suite forms are small (a few kills, short runs); `benchmarks/reliability_soak.py` runs the long forms
(4 processes x 1,000 writes, 20 kills, on SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_pg import drop_schemas, new_schema

from alma_core import ALMA, NotFound, ProgressTracker, SQLiteStorage

WORKER = Path(__file__).with_name("_worker.py")


def start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def acked(lines: list[str]) -> list[tuple[str, str]]:
    return [tuple(line.strip().split(" ", 1)) for line in lines if line.strip()]  # type: ignore[misc]


def assert_present(alma: ALMA, writes: list[tuple[str, str]]) -> None:
    """Every acknowledged write is in the store."""
    tracker = ProgressTracker(alma=alma)
    for kind, ident in writes:
        if kind == "memory":
            alma.get(ident)
        elif kind == "checkpoint":
            workflow, checkpoint_id = ident.split("/")
            alma.get_checkpoint(workflow, checkpoint_id)
        elif kind == "work":
            tracker.get_item(ident)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"db": str(tmp_path / "a.db")}
        return
    uri, schema = request.getfixturevalue("pg_uri"), new_schema()
    yield {"db": "", "pg_uri": uri, "schema": schema}
    drop_schemas(uri, schema)


def _open(target: dict[str, Any]) -> ALMA:
    if target.get("pg_uri"):
        from alma_core.storage.postgres import PostgresStorage

        storage: Any = PostgresStorage(target["pg_uri"], schema=target["schema"], min_pool_size=0, max_pool_size=2)
        return ALMA(project_id="p", storage=storage, embedder="mock")
    return ALMA(project_id="p", storage=target["db"], embedder="mock")


def test_concurrent_writer_processes_lose_nothing(target: dict[str, Any]) -> None:
    _open(target).close()  # schema in place before the race
    langgraph = "pg_uri" not in target  # LangGraph puts on SQLite here; both backends in the long form
    workers = [start({**target, "mode": "write", "tag": f"w{i}", "n": 25, "langgraph": langgraph and i == 0})
               for i in range(4)]  # fmt: skip
    results = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
    writes = [w for out, _ in results for w in acked(out.splitlines())]
    assert len(writes) == 100
    alma = _open(target)
    assert_present(alma, writes)
    memories = [ident for kind, ident in writes if kind == "memory"]
    assert len({m.id for m in alma.list_memories(memory_types=["outcome", "knowledge"])}) == len(memories)
    alma.close()


def test_sigkill_at_random_points_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    ALMA(project_id="p", storage=db, embedder="mock").close()
    rng = random.Random(18)
    writes: list[tuple[str, str]] = []
    for round_ in range(2):
        worker = start({"db": db, "mode": "write", "tag": f"k{round_}", "n": 100_000})
        lines: list[str] = []
        assert worker.stdout is not None
        goal = rng.randint(5, 40)
        while len(lines) < goal:
            line = worker.stdout.readline()
            assert line, worker.stderr.read() if worker.stderr else ""
            lines.append(line)
        time.sleep(rng.random() * 0.05)  # mid-write, somewhere
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
        rest = worker.stdout.read()  # acknowledged after our last read, before the kill
        writes.extend(acked(lines + rest.splitlines()))
        assert worker.returncode == -signal.SIGKILL
        storage = SQLiteStorage(db)
        assert storage.integrity_check() == "ok"
        alma = ALMA(project_id="p", storage=storage, embedder="mock")
        assert_present(alma, writes)
        alma.close()


def test_a_full_disk_is_a_storage_error_and_the_store_still_opens(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    worker = start({"db": db, "mode": "fill_disk", "room": 400_000})
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    writes = acked(out.splitlines())
    kind, error = writes[-1]
    assert kind == "error" and error == "StorageError True", err
    assert len(writes) > 1  # it did write until the disk was full
    storage = SQLiteStorage(db)
    assert storage.integrity_check() == "ok"
    alma = ALMA(project_id="p", storage=storage, embedder="mock")
    assert_present(alma, writes[:-1])
    alma.add_domain_knowledge("a", "d", "room again")  # the limit is gone: writable again
    with pytest.raises(NotFound):
        alma.get("never-written")
    alma.close()
