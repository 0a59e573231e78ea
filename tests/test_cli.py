"""The `alma` command line, run as users run it: `python -m alma_core ...` in a subprocess, in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import run_cli

from alma_core._config import STARTER_CONFIG
from alma_core.cli import ProgressBar, build_parser, main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "error::DeprecationWarning"}
MOCK_CONFIG = STARTER_CONFIG.replace("embedding_provider: local", "embedding_provider: mock")
COMMANDS = ["demo", "init", "stats", "retrieve", "learn", "export", "import", "forget", "mcp", "serve", "reindex",
            "checkpoints", "webhooks", "repair"]  # fmt: skip


def alma_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m alma_core ARGS` in a subprocess, as users do."""
    return subprocess.run(
        [sys.executable, "-m", "alma_core", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
    )


alma = run_cli


def ok(cwd: Path, *args: str, process: bool = False) -> str:
    result = (alma_process if process else alma)(cwd, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alma: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with `.alma/config.yaml`: the starter config, with mock embeddings."""
    config = tmp_path / ".alma" / "config.yaml"
    config.parent.mkdir()
    config.write_text(MOCK_CONFIG, encoding="utf-8")
    return tmp_path


def learn(cwd: Path, task: str = "Test the login form", outcome: str = "success", *extra: str) -> str:
    return ok(cwd, "learn", "--agent", "helena", "--task", task, "--outcome", outcome,
              "--strategy", "Tested empty fields, invalid email, valid submission", *extra)  # fmt: skip


def total(cwd: Path, *extra: str) -> int:
    return int(json.loads(ok(cwd, "stats", "--json", *extra))["total"])


def test_init_writes_the_starter_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    ok(tmp_path, "init", process=True)
    config = tmp_path / ".alma" / "config.yaml"
    assert config.read_text(encoding="utf-8") == STARTER_CONFIG
    config.write_text("# mine\n", encoding="utf-8")
    assert_one_line_error(alma_process(tmp_path, "init"), "already exists", "--force")
    assert config.read_text(encoding="utf-8") == "# mine\n"
    ok(tmp_path, "init", "--force", "--config", str(config))
    assert config.read_text(encoding="utf-8") == STARTER_CONFIG


def test_learn_then_retrieve_shows_the_strategy_and_stats_count_it(project: Path) -> None:
    assert "learned success for helena (testing_strategies)" in learn(project)
    prompt = ok(project, "retrieve", "Test the login form validation", "--agent", "helena")
    assert "Tested empty fields, invalid email, valid submission" in prompt
    stats = json.loads(ok(project, "stats", "--json"))
    assert (stats["total"], stats["outcomes"], stats["by_agent"]) == (1, 1, {"helena": 1})
    assert "1 memories" in ok(project, "stats", "--agent", "helena")


def test_retrieve_json_and_shared_memories(project: Path) -> None:
    learn(project)
    rows = json.loads(ok(project, "retrieve", "login form", "--agent", "qa_lead", "--json"))
    assert [(r["agent"], r["metadata"]["shared_from"]) for r in rows] == [("helena", "helena")]
    assert json.loads(ok(project, "retrieve", "login form", "--agent", "qa_lead", "--json", "--no-shared")) == []
    assert "(no memories for this task)" in ok(project, "retrieve", "login form", "--agent", "victor",
                                               "--no-shared")  # fmt: skip


def test_export_then_import_into_another_project(project: Path, tmp_path: Path) -> None:
    learn(project)
    learn(project, "Test the signup form", "failure", "--error", "timeout")
    dump = tmp_path / "dump.jsonl"
    assert "exported 2 memories" in ok(project, "export", str(dump))
    other = tmp_path / "other.yaml"
    other.write_text(MOCK_CONFIG.replace("project_id: my-project", "project_id: other"), encoding="utf-8")
    assert "imported 2 memories" in ok(project, "import", str(dump), "--config", str(other))
    assert total(project, "--config", str(other)) == total(project) == 2
    again = tmp_path / "again.jsonl"
    ok(project, "export", str(again), "--config", str(other))
    strip = lambda path: sorted(  # noqa: E731
        ({k: v for k, v in json.loads(line).items() if k != "project_id"} for line in path.read_text().splitlines()),
        key=json.dumps,
    )
    assert strip(again) == strip(dump)


def test_forget_dry_run_deletes_nothing_then_forget_deletes(project: Path) -> None:
    learn(project)
    assert "would forget 1 memories" in ok(project, "forget", "--older-than-days", "0", "--dry-run")
    assert total(project) == 1
    assert "forgot 1 memories" in ok(project, "forget", "--older-than-days", "0", "--agent", "helena")
    assert total(project) == 0


def test_reindex_rebuilds_vectors_after_an_embedder_change(project: Path) -> None:
    learn(project)
    config = project / ".alma" / "config.yaml"
    config.write_text(MOCK_CONFIG.replace("embedding_dim: 384", "embedding_dim: 64"), encoding="utf-8")
    assert_one_line_error(alma_process(project, "retrieve", "login", "--agent", "helena"), "alma reindex")
    result = alma_process(project, "reindex")
    assert result.returncode == 0, result.stderr
    assert "re-embedded 1 memories with mock" in result.stdout
    assert "reindex [" in result.stderr  # the progress bar
    assert "Tested empty fields" in ok(project, "retrieve", "Test the login form", "--agent", "helena")


def test_defaults_apply_when_the_config_file_is_missing(tmp_path: Path) -> None:
    # No config: the default project, open agents; the store is created under .alma/.
    # (stats needs no embedding, so the default local embedder is never loaded.)
    assert "project default: 0 memories" in ok(tmp_path, "stats")
    assert (tmp_path / ".alma" / "alma.db").exists()


def test_demo_runs_the_scenario_with_mock_embeddings(tmp_path: Path) -> None:
    out = ok(tmp_path, "demo", "--embedder", "mock", "--dir", str(tmp_path / "demo"), process=True)
    assert "50 tasks" in out
    assert "total " in out and " outcomes" in out
    assert "ScopeViolation: agent 'helena' may not learn 'backend_logic'" in out
    assert "shared_from='helena'" in out
    assert "## Relevant memory" in out
    assert (tmp_path / "demo" / "alma.db").exists()
    # The same seed gives the same run.
    again = ok(tmp_path, "demo", "--embedder", "mock", "--dir", str(tmp_path / "demo2"))
    timeless = lambda text: [ln for ln in text.splitlines() if not any(w in ln for w in (" ms", "done in", "demo"))]  # noqa: E731
    assert timeless(again) == timeless(out)


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with one learned outcome, shared by the bad-input cases (none of which may write)."""
    root = tmp_path_factory.mktemp("learned")
    (root / ".alma").mkdir()
    (root / ".alma" / "config.yaml").write_text(MOCK_CONFIG, encoding="utf-8")
    (root / "bad.yaml").write_text("alma:\n  colour: blue\n", encoding="utf-8")
    (root / "broken.yaml").write_text("alma: [unclosed\n", encoding="utf-8")
    learn(root)
    return root


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["learn", "--agent", "helena", "--task", "Tune the pool", "--outcome", "success", "--task-type",
          "backend_logic"], ["may not learn 'backend_logic'"]),
        (["learn", "--agent", "mallory", "--task", "x", "--outcome", "success"], ["unknown agent 'mallory'"]),
        (["learn", "--agent", "helena", "--task", "x", "--outcome", "maybe"], ["invalid choice"]),
        (["learn", "--agent", "helena", "--task", "  ", "--outcome", "success"], ["task must be a non-empty"]),
        (["retrieve", "login", "--agent", "helena", "--top-k", "0"], ["positive integer"]),
        (["retrieve", "login"], ["--agent"]),
        (["import", "missing.jsonl"], ["missing.jsonl", "cannot read"]),
        (["forget"], ["--older-than-days"]),
        (["forget", "--below-confidence", "2"], ["below_confidence"]),
        (["stats", "--config", "bad.yaml"], ["bad.yaml", "alma.colour", "remove it"]),
        (["stats", "--config", "broken.yaml"], ["broken.yaml", "not valid YAML"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_a_non_zero_exit(learned: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(alma(learned, *args), *fragments)
    if args[0] in ("learn", "import", "forget"):
        assert total(learned) == 1  # nothing was written or deleted


def test_bad_import_file_imports_nothing(project: Path) -> None:
    learn(project)
    dump = project / "dump.jsonl"
    ok(project, "export", str(dump))
    bad_line = len(dump.read_text().splitlines()) + 1  # after the memory and its evidence record
    dump.write_text(dump.read_text() + '{"type": "outcome", "agent": "helena"}\n', encoding="utf-8")
    assert_one_line_error(alma(project, "import", str(dump)), f"dump.jsonl:{bad_line}")
    assert total(project) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_config(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--config PATH" in capsys.readouterr().out


def test_the_parser_knows_exactly_these_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)  # type: ignore[arg-type]


def test_progress_bar_prints_one_final_line_off_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "bar.txt"
    with path.open("w") as stream, ProgressBar(4, "work", width=8, stream=stream) as bar:
        for _ in range(4):
            bar.update()
    assert path.read_text().startswith("work [########] 4/4")
    assert path.read_text().count("\n") == 1


@pytest.mark.parametrize("args", [["webhooks", "deliveries"], ["checkpoints", "list"]], ids=lambda a: " ".join(a))
def test_store_commands_use_the_defaults_without_a_config_and_refuse_a_missing_one(
    tmp_path: Path, args: list[str]
) -> None:
    """As every command: no `--config` and no `.alma/config.yaml` means the built-in defaults; a path given
    that does not exist is an error, and nothing is created."""
    assert ok(tmp_path, *args).strip() in ("no deliveries", "")
    assert (tmp_path / ".alma" / "alma.db").exists()
    assert_one_line_error(alma(tmp_path, *args, "--config", "missing.yaml"), "missing.yaml")
    assert not (tmp_path / "missing.yaml").exists()
