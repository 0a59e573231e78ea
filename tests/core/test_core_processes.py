"""Several processes on one SQLite file: no lost writes, no "database is locked", crash safety, and a
retrieve that sees another process's write at once (the vector cache follows the file)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alma_core import ALMA

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")

ROOT = Path(__file__).resolve().parents[2]


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


LEARNER = """
    import sys
    from alma_core import ALMA
    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with ALMA(project_id="mp", storage=path, embedder="mock") as alma:
        for i in range(count):
            alma.learn(agent=name, task=f"{name} task {i}", outcome=i % 3 != 0, strategy_used=f"strategy {i % 7}")
    print("done")
"""


def test_two_processes_500_learns_each_lose_nothing(db_path: Path) -> None:
    children = [_spawn(LEARNER, str(db_path), name, "500") for name in ("alpha", "beta")]
    results = [child.communicate(timeout=240) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert "locked" not in err
        assert child.returncode == 0, err
        assert out.strip() == "done"
    with ALMA(project_id="mp", storage=db_path, embedder="mock") as alma:
        stats = alma.stats()
        assert stats.outcomes == 1000
        assert alma.stats(agent="alpha").outcomes == alma.stats(agent="beta").outcomes == 500
        tasks = {m.task for m in alma.list_memories(memory_types=["outcome"])}
        assert len(tasks) == 1000


ACKING_WRITER = """
    import sys
    from alma_core import ALMA
    with ALMA(project_id="crash", storage=sys.argv[1], embedder="mock") as alma:
        i = 0
        while True:
            memory = alma.learn(agent="w", task=f"task {i} " + "padding " * 50, outcome=True, strategy_used="s")
            print(memory.id, flush=True)
            i += 1
"""


def test_writer_killed_with_sigkill_loses_no_acknowledged_write(db_path: Path) -> None:
    child = _spawn(ACKING_WRITER, str(db_path))
    assert child.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < 150:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            acked.append(line.strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with ALMA(project_id="crash", storage=db_path, embedder="mock") as alma:
        for memory_id in acked:
            assert alma.get(memory_id).agent == "w"
        assert alma.stats().outcomes >= len(acked)
        assert alma.retrieve(task="task 3 padding", agent="w", mode="dense")  # the index still works


ONE_WRITE = """
    import sys
    from alma_core import ALMA
    with ALMA(project_id="cache", storage=sys.argv[1], embedder="mock") as alma:
        if sys.argv[2] == "learn":
            m = alma.learn(agent="reader", task="configure the flux capacitor", outcome=True,
                           strategy_used="set it to 1.21 gigawatts")
            print(m.id)
        else:
            alma.delete(sys.argv[3])
            print(sys.argv[3])
"""


def _run(code: str, *args: str) -> str:
    child = _spawn(code, *args)
    out, err = child.communicate(timeout=240)
    assert child.returncode == 0, err
    return out.strip()


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_another_process_write_is_visible_at_once(db_path: Path, mode: str) -> None:
    with ALMA(project_id="cache", storage=db_path, embedder="mock") as alma:
        for i in range(20):
            alma.learn(agent="reader", task=f"unrelated chore {i}", outcome=True, strategy_used="whatever")
        warm = alma.retrieve(task="flux capacitor gigawatts", agent="reader", top_k=50, mode=mode)
        assert len(warm.outcomes) > 0  # dense always finds something: the cache is warm now

        new_id = _run(ONE_WRITE, str(db_path), "learn")
        seen = alma.retrieve(task="flux capacitor gigawatts", agent="reader", top_k=1, mode=mode)
        assert [m.id for m in seen.outcomes] == [new_id]

        _run(ONE_WRITE, str(db_path), "delete", new_id)
        after = alma.retrieve(task="flux capacitor gigawatts", agent="reader", top_k=50, mode=mode)
        assert new_id not in {m.id for m in after}
