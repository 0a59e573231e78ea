"""Start-up: `from alma_core import ALMA` loads no pydantic, numpy, yaml or asyncio (they are bound at the first
`ALMA(...)`), and `alma` commands that embed nothing never load the model; those that do say so on stderr.

Timed figures live in benchmarks/ and docs/performance.md; these tests check the causes, which do not flake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFERRED = ("numpy", "pydantic", "pydantic_core", "yaml", "asyncio", "sqlite3", "tokenizers")


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)  # fmt: skip


def _modules_after(code: str, cwd: Path) -> set[str]:
    result = _run(code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n", cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_the_facade_defers_pydantic_numpy_and_storage(tmp_path: Path) -> None:
    modules = _modules_after("from alma_core import ALMA", tmp_path)
    assert "alma_core._alma" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in DEFERRED)
    assert loaded == [], f"`from alma_core import ALMA` imports {loaded}: add them to alma_core/_deferred.py"
    assert "alma_core._deferred" not in modules


def test_the_first_alma_binds_everything_the_facade_uses(tmp_path: Path) -> None:
    result = _run(
        """
        import asyncio
        from alma_core import ALMA
        alma = ALMA("p", storage="a.db", embedder="mock")
        alma.learn("a", "test the login form", "success", "stable selectors")
        alma.checkpoint("wf", "step1", {"x": 1})
        print(len(alma.retrieve("login form", agent="a")), alma.resume("wf") is not None)
        print(len(asyncio.run(alma.aretrieve("login form", agent="a"))))
        alma.close()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["1", "True", "1"]


def test_from_config_works_before_any_alma_exists(tmp_path: Path) -> None:
    (tmp_path / "alma.yaml").write_text("alma:\n  project_id: cfg\n  embedding_provider: mock\n", encoding="utf-8")
    result = _run("from alma_core import ALMA\nprint(ALMA.from_config('alma.yaml').project_id)", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "cfg"


CLI = """
import sys
from alma_core.cli import main
code = main({args!r})
print("MODEL", "alma_core._minilm" in sys.modules, code)
"""


def test_cli_commands_that_embed_nothing_never_load_the_model(tmp_path: Path) -> None:
    result = _run(CLI.format(args=["stats"]), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MODEL False 0" in result.stdout
    assert "loading" not in result.stderr


def test_cli_commands_that_embed_say_they_are_loading_the_model(tmp_path: Path) -> None:
    args = ["learn", "--agent", "a", "--task", "test the login form", "--outcome", "success"]
    result = _run(CLI.format(args=args), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MODEL True 0" in result.stdout
    assert result.stderr.count("alma: loading local:all-MiniLM-L6-v2") == 1
