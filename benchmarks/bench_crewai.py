"""CrewAI adapter costs: where an offline two-agent kickoff spends its time, and `AlmaStorage` at N memories.

    python benchmarks/bench_crewai.py            # kickoff phases (fresh process) + storage at 1k and 5k memories
    python benchmarks/bench_crewai.py --quick    # storage at 1k only, 5 samples

The kickoff runs examples/crewai_memory.py's crew (scripted fake LLM, mock embedder) in a fresh
interpreter and prints each phase: `import crewai`, importing ALMA and the adapter, and each kickoff.
`PYTHONDONTWRITEBYTECODE` is printed beside the figures: without cached bytecode every process
compiles crewai's ~2,000 modules again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import percentile, timed_ms

ROOT = Path(__file__).resolve().parent.parent

_KICKOFF = """
import sys, tempfile, time
t0 = time.perf_counter()
import crewai
t1 = time.perf_counter()
sys.path.insert(0, "examples")
import crewai_memory as example
from alma_core import ALMA
t2 = time.perf_counter()
llm = example.ScriptedLLM(model="scripted")
with tempfile.TemporaryDirectory() as tmp, ALMA(project_id="b", agents=example.AGENTS, storage=tmp + "/a.db",
                                                embedder="mock") as alma:
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        example.kickoff(alma, llm)
        runs.append(time.perf_counter() - start)
print(f"RESULT import crewai {t1 - t0:.2f} s | ALMA + adapter {t2 - t1:.2f} s | "
      f"kickoff 1 {runs[0]:.2f} s | kickoff 2 {runs[1]:.2f} s | total {time.perf_counter() - t0:.2f} s")
"""


def kickoff_phases() -> str:
    env = {**os.environ, "CREWAI_DISABLE_TELEMETRY": "true", "CREWAI_TRACING_ENABLED": "false",
           "CREWAI_DISABLE_VERSION_CHECK": "true", "OTEL_SDK_DISABLED": "true"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _KICKOFF], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return next(line for line in out.splitlines() if line.startswith("RESULT")).removeprefix("RESULT ")


def storage_figures(n: int, samples: int, store: Callable[[str], Any] | None = None) -> dict[str, float]:
    """`AlmaStorage` at `n` memories (4 agents' scopes, mock embedder): p50 ms of its reads. `store(tmp)`
    opens the ALMA store in a temporary directory (default: a SQLite file there)."""
    from crewai.memory.types import MemoryRecord

    from alma_core import ALMA
    from alma_crewai import AlmaStorage

    with (
        tempfile.TemporaryDirectory() as tmp,
        ALMA(project_id="b", storage=store(tmp) if store else f"{tmp}/a.db", embedder="mock") as alma,
    ):
        storage = AlmaStorage(alma, agent="crew", root_scope="/crew/b")
        scopes = [f"/crew/b/agent/a{i % 4}" for i in range(n)]
        for start in range(0, n, 500):
            storage.save([MemoryRecord(content=f"fact {i} about topic {i % 97}", scope=scopes[i], categories=["c"])
                          for i in range(start, min(n, start + 500))])  # fmt: skip
        count = timed_ms(lambda _: storage.count(), samples)
        agent = timed_ms(lambda _: storage.count("/crew/b/agent/a1"), samples)
        listed = timed_ms(lambda _: storage.list_records(limit=20), samples)
        newest = storage.list_records(limit=1)[0].id
        by_id = timed_ms(lambda _: storage.get_record(newest), samples)
    return {"count()": percentile(count, 50), "count(agent scope)": percentile(agent, 50),
            "list_records(limit=20)": percentile(listed, 50), "get_record": percentile(by_id, 50)}  # fmt: skip


def storage_at(n: int, samples: int) -> str:
    figures = storage_figures(n, samples)
    return f"{n:>6} memories: " + " | ".join(f"{name} p50 {ms:.1f} ms" for name, ms in figures.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="storage at 1k memories only, no kickoff")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}, mock embedder")  # fmt: skip
    if not args.quick:
        print("kickoff (fresh process):", kickoff_phases())
    for n in (1000,) if args.quick else (1000, 5000):
        print(storage_at(n, 5 if args.quick else 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
