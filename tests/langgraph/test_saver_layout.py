"""What a put and a task's writes leave in SQLite's b-trees: one `records` row each, and no entry in the
`records_seq` index (migration 7: checkpoints and writes are unsequenced, ordered by their keys)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from alma_langgraph import AlmaSaver


def _cells(path: Path, name: str) -> int:
    """Entries of a b-tree: the cells of all its pages (`dbstat`; an index keeps entries in interior pages)."""
    with sqlite3.connect(path) as raw:
        try:
            (n,) = raw.execute("SELECT sum(ncell) FROM dbstat WHERE name = ?", (name,)).fetchone()
        except sqlite3.OperationalError:  # pragma: no cover - SQLite built without dbstat
            pytest.skip("this SQLite has no dbstat")
    return int(n or 0)


def test_puts_and_writes_leave_no_seq_index_entry(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    with AlmaSaver.from_conn_string(str(path)) as saver:
        config: dict = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
        for step in range(5):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"doc": "x" * 5000 + str(step), "step": step}
            checkpoint["channel_versions"] = {"doc": step + 1, "step": step + 1}
            config = saver.put(config, checkpoint, {"step": step}, checkpoint["channel_versions"])  # type: ignore[assignment]
            saver.put_writes(config, [("doc", "y"), ("step", step)], f"task{step}")  # type: ignore[arg-type]
        assert saver.get_tuple(config) is not None
    assert _cells(path, "records_seq") == 0
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*), max(seq) FROM records").fetchone() == (15, 0)  # 5 rows + 10 writes
