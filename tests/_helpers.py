"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
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


def started_url(proc: subprocess.Popen[bytes], log: Path, prefix: str, timeout: float = 120) -> str:
    """The URL on a server's start-up line (`<prefix> http://host:port...`), read from its stderr log.
    Started with `--port 0`, the server binds a free port itself and prints it: nothing can take the port
    in between. The line is printed once the socket listens, or the process exits (then: RuntimeError)."""
    pattern = re.compile(re.escape(prefix) + r" (https?://\S+)")
    deadline = time.monotonic() + timeout
    while not (match := pattern.search(log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return match.group(1)


# Python blocks of Markdown (docs/*.md, the seed README), run as a reader would run them.

MARKS = ("fragment", "continues", "pytest")


@dataclass(frozen=True)
class Block:
    """One ```python block: the nearest heading above it, the line of its fence, its code, and its mark:
    None (runs on its own), "fragment" (not run), "pytest" (a test module) or "continues" (runs after the
    block before it, in the same namespace), from an HTML comment on the line just above the fence."""

    title: str
    line: int
    code: str
    mark: str | None = None


def python_blocks(text: str) -> list[Block]:
    """Every ```python block of `text`, in order."""
    out: list[Block] = []
    heading = "top"
    pattern = r"^(#{1,4} [^\n]+)$|(?:^<!-- (\w+)[^\n]*-->\n)?^```python\n(.*?)^```"
    for match in re.finditer(pattern, text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("#").strip()
            continue
        mark = match.group(2)
        if mark is not None and mark not in MARKS:
            raise ValueError(f"unknown block mark <!-- {mark} --> above line {text.count(chr(10), 0, match.start())}")
        line = text.count("\n", 0, match.start(3))  # the fence's line
        out.append(Block(heading, line, match.group(3), mark))
    return out


def run_block(code: str, namespace: dict[str, Any], filename: str = "<block>") -> dict[str, Any]:
    """Run a block like a notebook cell (top-level `await` and `async with` allowed) in `namespace`."""
    compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return namespace
