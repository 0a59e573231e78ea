"""A store written in format 2 (blob records, before one row per put) by an earlier ALMA opens, reads
back what SqliteSaver reads, and goes on in format 3: new rows point to the old blobs, and prune and
delete_for_runs keep what the remaining checkpoints need. The store is `data/saver-format2.db` (see
`data/make_saver_format2.py`)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from test_channel_blobs import _cfg, _chat, _graph, _values

from alma_core.storage import ListRecords
from alma_langgraph import AlmaSaver
from alma_langgraph._rows import ROWS

STORE = Path(__file__).parent / "data" / "saver-format2.db"


def _runs(saver: Any, turns: range) -> None:
    """The "runs" thread of the stored file: two turns of run "keep", then two of run "drop"."""
    graph = _graph(saver)
    for turn in turns:
        run_id = "keep" if turn < 2 else "drop"
        message = HumanMessage(f"r{turn} " + "q" * 300, id=f"r-{turn}")
        graph.invoke({"messages": [message]}, {**_cfg("runs"), "metadata": {"run_id": run_id}})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """What SqliteSaver reads back of the same threads, and of the chat carried on to 12 turns."""
    conn = sqlite3.connect(tmp_path_factory.mktemp("ref") / "lg.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    _chat(saver, range(8))
    _runs(saver, range(4))
    found = {"chat": _values(saver), "runs": _values(saver, "runs")}
    _chat(saver, range(8, 12))
    found["chat12"] = _values(saver)
    conn.close()
    return found


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(STORE, path)
    return path


def _formats(saver: AlmaSaver, thread: str) -> list[int]:
    records = saver.storage.execute(ListRecords(saver.project_id, f"lg/{thread}/", prefix=True, order_by="key"))
    return [int(r.metadata["__lg"].get("v", 1)) for r in records]


def test_a_format_2_store_reads_back_what_sqlite_saver_reads(store: Path, reference: dict[str, list[Any]]) -> None:
    with AlmaSaver.from_conn_string(store) as saver:
        assert set(_formats(saver, "chat")) == {2}
        assert _values(saver) == reference["chat"]
        assert _values(saver, "runs") == reference["runs"]


def test_a_format_2_thread_goes_on_in_rows_that_point_to_its_blobs(
    store: Path, reference: dict[str, list[Any]]
) -> None:
    with AlmaSaver.from_conn_string(store) as saver:
        _chat(saver, range(8, 12))
        assert _values(saver) == reference["chat12"]
        newest = saver.storage.execute(ListRecords(saver.project_id, "lg/chat/", order_by="key", limit=1))[0]
        assert newest.metadata["__lg"]["v"] == ROWS and set(_formats(saver, "chat")) == {2, ROWS}
    with AlmaSaver.from_conn_string(store) as fresh:  # another process
        assert _values(fresh) == reference["chat12"]


def test_prune_and_delete_for_runs_on_a_mixed_thread(store: Path, reference: dict[str, list[Any]]) -> None:
    with AlmaSaver.from_conn_string(store) as saver:
        _chat(saver, range(8, 12))
        saver.prune(["chat"], strategy="keep_latest")
        assert _values(saver) == reference["chat12"][:1]
        runs = {t.config["configurable"]["checkpoint_id"]: t.metadata.get("run_id") for t in saver.list(_cfg("runs"))}
        saver.delete_for_runs(["drop"])
        kept = [v for (cid, v) in zip(runs, reference["runs"], strict=True) if runs[cid] != "drop"]
        assert _values(saver, "runs") == kept
    with AlmaSaver.from_conn_string(store) as fresh:
        assert _values(fresh) == reference["chat12"][:1]
        _chat(fresh, range(12, 14))  # goes on from what was kept
        assert [m.id for m in _values(fresh)[0]["messages"]][-4:] == ["h-12", "ai-26", "h-13", "ai-28"]
