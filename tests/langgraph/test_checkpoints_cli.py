"""`alma checkpoints import|list|show`: a SqliteSaver user's threads move into ALMA's store and resume."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from test_typed_state import Priority, Ticket, _assert_typed, _cfg, _start, _triage

from alma_core import ALMA
from alma_core._config import STARTER_CONFIG
from alma_core.cli import main
from alma_langgraph import AlmaSaver


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(STARTER_CONFIG.replace("embedding_provider: local", "embedding_provider: mock"), encoding="utf-8")
    return path


def _alma(config: Path) -> ALMA:
    from alma_core.cli import open_alma

    return open_alma(config)


def test_a_sqlite_saver_file_is_imported_and_its_threads_resume(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "langgraph.db"
    with sqlite3.connect(source, check_same_thread=False) as conn:
        saver = SqliteSaver(conn)
        _start(saver, "t1")  # paused at its interrupt, typed state inside
        expected = _triage().compile(checkpointer=saver).get_state(_cfg("t1"))
    assert main(["checkpoints", "import", str(source), "--config", str(config)]) == 0
    assert "imported 1 threads" in capsys.readouterr().out
    assert main(["checkpoints", "import", str(source), "--config", str(config)]) == 0  # idempotent
    capsys.readouterr()

    alma = _alma(config)
    try:
        graph = _triage().compile(checkpointer=AlmaSaver(alma))
        state = graph.get_state(_cfg("t1"))
        assert state.values == expected.values and state.next == ("escalate",)
        _assert_typed(state.values)
        history = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(_cfg("t1"))]
        assert len(history) == len(list(SqliteSaver(sqlite3.connect(source)).list(_cfg("t1"))))
        done = graph.invoke(Command(resume="db team"), _cfg("t1"))
        assert done["ticket"] == Ticket(title="disk", priority=Priority.HIGH)
        assert alma.resume("t1")["messages"][-1].content == "db team"
    finally:
        alma.close()

    assert main(["checkpoints", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.split() == ["t1"]
    assert main(["checkpoints", "list", "t1", "--config", str(config)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(history) + 1  # the resumed step added one
    assert main(["checkpoints", "show", "t1", "--config", str(config)]) == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert shown["values"]["route"] == "high" and shown["values"]["ticket"]["title"] == "disk"


def test_importing_a_missing_file_is_a_clear_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checkpoints", "import", "/nonexistent/lg.db", "--config", str(config)]) == 1
    assert "no SqliteSaver file" in capsys.readouterr().err


_LAST = "WHERE rowid = (SELECT max(rowid) FROM checkpoints)"
HOSTILE: list[tuple[str, str | bytes, str]] = [
    ("not_sqlite", b"hello world" * 100, "not a SqliteSaver file: file is not a database"),
    ("no_tables", "DROP TABLE checkpoints; DROP TABLE writes;", "no such table: checkpoints"),
    ("no_writes_table", "DROP TABLE writes;", "no such table: writes"),  # checkpoints were written first
    ("metadata_not_json", "UPDATE checkpoints SET metadata = '{{{' " + _LAST, "checkpoints row"),
    ("metadata_list", "UPDATE checkpoints SET metadata = '[1, 2]' " + _LAST, "not an object"),
    ("metadata_nan", "UPDATE checkpoints SET metadata = '{\"a\": NaN}' " + _LAST, "NaN"),
    ("metadata_deep", "UPDATE checkpoints SET metadata = '" + '{"a":' * 3000 + "1" + "}" * 3000 + "' " + _LAST,
     "nested too deeply"),
    ("blob_text", "UPDATE checkpoints SET checkpoint = 'text' " + _LAST, "not bytes"),
    ("type_pickle", "UPDATE checkpoints SET type = 'pickle' " + _LAST, "never unpickles"),
    ("writes_idx_text", "UPDATE writes SET idx = 'x' " + _LAST.replace("checkpoints", "writes"), "writes row"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "change", "match"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_sqlite_saver_file_is_a_validation_error_and_imports_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    name: str, change: str | bytes, match: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "langgraph.db"
    with closing(sqlite3.connect(source, check_same_thread=False)) as conn:
        _start(SqliteSaver(conn), "t1")
    if isinstance(change, bytes):
        source.write_bytes(change)
    else:
        with sqlite3.connect(source) as conn:
            conn.executescript(change)
    assert main(["checkpoints", "import", str(source), "--config", str(config)]) == 1  # was a traceback (or 0)
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err, err
    assert main(["checkpoints", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.split() == []  # nothing half-imported: no thread at all


def test_sweep_deletes_expired_threads_and_cuts_long_ones(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    monkeypatch.chdir(tmp_path)
    alma = _alma(config)
    try:
        saver = AlmaSaver(alma)
        conf: Any = {"configurable": {"thread_id": "gone", "checkpoint_ns": "", "ttl": 1e-9}}  # expired at once
        saver.put(conf, empty_checkpoint(), {}, {})
        parent = None
        for _ in range(4):
            long: Any = {"configurable": {"thread_id": "long", "checkpoint_ns": "", "checkpoint_id": parent}}
            parent = saver.put(long, empty_checkpoint(), {}, {})["configurable"]["checkpoint_id"]
    finally:
        alma.close()
    assert main(["checkpoints", "sweep", "--keep-last", "2", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "swept 1 expired threads, 2 checkpoints beyond --keep-last"
    assert main(["checkpoints", "list", "long", "--config", str(config)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["checkpoints", "sweep", "--keep-last", "0", "--config", str(config)]) == 1
    assert "--keep-last must be at least 1" in capsys.readouterr().err


def test_diff_shows_what_a_checkpoint_changed_and_what_changed_between_two(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_dropin import _graph

    monkeypatch.chdir(tmp_path)
    alma = _alma(config)
    try:
        graph = _graph(AlmaSaver(alma))
        graph.invoke({"n": 0, "log": []}, _cfg("t"))
        ids = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(_cfg("t"))]  # newest first
    finally:
        alma.close()
    assert main(["checkpoints", "diff", "t", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{ids[1]} -> {ids[0]}", "~ n: 1 -> 2", '~ log: +1 items: ["two"]']
    assert main(["checkpoints", "diff", "t", ids[-1], "--config", str(config)]) == 0  # the input checkpoint
    assert capsys.readouterr().out.splitlines()[0] == f"(empty) -> {ids[-1]}"
    assert main(["checkpoints", "diff", "t", ids[-2], ids[0], "--json", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["from"], out["to"], out["added"], out["removed"]) == (ids[-2], ids[0], {}, {})
    assert out["changed"] == {"n": [0, 2], "log": [[], ["one", "two"]]}
    assert main(["checkpoints", "diff", "t", "nope", "--config", str(config)]) == 1
    assert "no checkpoint nope" in capsys.readouterr().err
