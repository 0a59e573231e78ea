"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OPENAI_API_KEY": ""}


def run_example(name: str, *args: str) -> str:
    """Run `python examples/<name> ARGS` from the repository root, offline, as a user would; its stdout.
    A non-zero exit fails the calling test with the example's stderr."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env={**os.environ, **OFFLINE},
                            capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def dense(target: Any, f: Any, vector: Any, k: int) -> list[tuple[str, float]]:
    """A store's (or transaction's) dense top-k over every type of `f`, one list best first."""
    from alma_core.storage import SearchMemories

    return target.execute(SearchMemories(f, vector=vector, k=k)).flat("dense", k)  # type: ignore[no-any-return]


def lexical(target: Any, f: Any, query: str, k: int) -> list[tuple[str, float]]:
    """A store's (or transaction's) lexical top-k for `query` over every type of `f`, one list best first."""
    from alma_core.storage import SearchMemories

    return target.execute(SearchMemories(f, terms=tuple(query.split()), k=k)).flat("lexical", k)  # type: ignore[no-any-return]


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `alma ARGS` as `main(ARGS)` in this process, in `cwd` (the console script's code path without its
    interpreter start-up); an escaping exception fails the test."""
    from alma_core.cli import main

    out, err, previous = io.StringIO(), io.StringIO(), Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["alma", *args], code, out.getvalue(), err.getvalue())


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process: terminate, and kill it if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
