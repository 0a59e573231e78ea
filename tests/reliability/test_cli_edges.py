"""The command line's edges: a missing explicit config, a closed pipe, bad files, and `alma repair`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import run_cli

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CONFIG = "alma:\n  project_id: p\n  embedding_provider: mock\n"


run = run_cli


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    err = result.stderr
    assert result.returncode != 0 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("alma: error: ") and fragment in err, err


def test_an_explicit_config_that_does_not_exist_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    one_line_error(run(tmp_path, "stats", "--config", "missing.yaml"), "missing.yaml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"alma:\n  project_id: caf\xe9\n", "UTF-8"), (b"alma: " + b"[" * 700 + b"]" * 700, "nested")],
)
def test_a_bad_config_file_is_one_line(tmp_path: Path, content: bytes, fragment: str) -> None:
    (tmp_path / "c.yaml").write_bytes(content)
    one_line_error(run(tmp_path, "stats", "--config", "c.yaml"), fragment)


def test_bad_files_and_targets_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    cfg = ("--config", "c.yaml")
    one_line_error(run(tmp_path, "import", "/dev/zero", *cfg), "longer than")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"type": "knowledge", "fact": "caf\xe9"}\n')
    one_line_error(run(tmp_path, "import", "latin1.jsonl", *cfg), "UTF-8")
    one_line_error(run(tmp_path, "export", "", *cfg), "empty")
    (tmp_path / "d").mkdir()
    one_line_error(run(tmp_path, "export", "d", *cfg), "directory")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".alma")) == [
        "c.yaml", "d", "latin1.jsonl"]  # fmt: skip


def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    for i in range(40):
        (tmp_path / "rows.jsonl").open("a").write(
            json.dumps({"type": "knowledge", "agent": "a", "domain": "d", "fact": f"login form fact {i} " * 40}) + "\n"
        )
    assert run(tmp_path, "import", "rows.jsonl", "--config", "c.yaml").returncode == 0
    script = (
        f"{sys.executable} -m alma_core retrieve 'login form' --agent a --top-k 40 --json --config c.yaml | head -c 10"
    )
    result = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=ENV, capture_output=True, timeout=120)
    assert result.stderr == b"", result.stderr.decode()
    assert len(result.stdout) == 10


def test_alma_repair_quarantines_a_poisoned_row(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    assert (
        run(tmp_path, "learn", "--agent", "a", "--task", "t", "--outcome", "success", "--config", "c.yaml").returncode
        == 0
    )
    with sqlite3.connect(tmp_path / ".alma" / "alma.db") as conn:
        conn.execute('UPDATE memories SET data = \'{"broken": "\\ud800"}\'')
    stats = run(tmp_path, "retrieve", "t", "--agent", "a", "--json", "--config", "c.yaml")
    assert stats.returncode == 0 and json.loads(stats.stdout) == []
    result = run(tmp_path, "repair", "--json", "--config", "c.yaml")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["quarantined"]) == 1 and report["integrity"] == "ok"
    assert "1 unreadable" not in run(tmp_path, "repair", "--config", "c.yaml").stdout
