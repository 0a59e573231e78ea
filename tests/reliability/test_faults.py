"""Faults: concurrent writer processes, SIGKILL at random points, a full disk.

In-suite forms are small (2 kills, 4 x 25 writes); `benchmarks/reliability_soak.py` runs the long forms
(4 processes x 1,000 writes on SQLite and PostgreSQL, 20 kills, 10,000 isolation operations).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _faults import acked, assert_present, load, sigkill_rounds, start
from conftest_pg import drop_schemas, new_schema

from alma_core import ALMA, SQLiteStorage


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"db": str(tmp_path / "a.db")}
        return
    uri, schema = request.getfixturevalue("pg_uri"), new_schema()
    yield {"db": "", "pg_uri": uri, "schema": schema}
    drop_schemas(uri, schema)


def test_concurrent_writer_processes_lose_nothing(target: dict[str, Any]) -> None:
    # LangGraph puts ride along on SQLite here; the long form runs them on both backends
    done = load(target, processes=4, writes=25, langgraph="pg_uri" not in target)
    assert {kind for kind, _ in done} >= {"memory", "checkpoint", "work"}


def test_sigkill_at_random_points_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    assert len(sigkill_rounds(str(tmp_path / "a.db"), rounds=2)) >= 10


def test_a_full_disk_is_a_storage_error_and_the_store_still_opens(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    worker = start({"db": db, "mode": "fill_disk", "room": 400_000})
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    writes = acked(out.splitlines())
    kind, error = writes[-1]
    assert kind == "error" and error == "StorageError True", err
    assert len(writes) > 1  # it wrote until the file could not grow
    storage = SQLiteStorage(db)
    assert storage.integrity_check() == "ok"
    alma = ALMA(project_id="p", storage=storage, embedder="mock")
    assert_present(alma, writes[:-1])
    alma.add_domain_knowledge("a", "d", "room again")  # the limit is gone: writable again
    alma.close()
