"""A worker process of the reliability tests and benchmarks (`python _worker.py SPEC_JSON`).

Modes:
- `write`: `n` mixed writes (learn, add_domain_knowledge, a workflow checkpoint, a work item, a LangGraph
  checkpoint put when `langgraph` is set), printing one line per acknowledged write (`<kind> <id>`)
  right after the call returns, so a parent that kills the worker knows exactly what was acknowledged.
- `fill_disk`: limit the file size (RLIMIT_FSIZE) to the store's size plus `room` bytes, then write until
  a write fails; prints the acknowledged writes, then `error <ExceptionClass> <is StorageError>`.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from typing import Any

from alma_core import ALMA, ProgressTracker, StorageError


def _open(spec: dict[str, Any]) -> ALMA:
    storage: Any = spec["db"]
    if spec.get("pg_uri"):
        from alma_core.storage.postgres import PostgresStorage

        storage = PostgresStorage(spec["pg_uri"], schema=spec["schema"], min_pool_size=0, max_pool_size=2)
    return ALMA(project_id=spec.get("project", "p"), storage=storage, embedder="mock")


def _ack(kind: str, ident: str) -> None:
    sys.stdout.write(f"{kind} {ident}\n")
    sys.stdout.flush()


def _langgraph_put(alma: ALMA, tag: str, i: int) -> str:
    from langgraph.checkpoint.base import empty_checkpoint

    from alma_langgraph import AlmaSaver

    saver = AlmaSaver(alma)
    checkpoint = empty_checkpoint()
    config = {"configurable": {"thread_id": f"{tag}-{i}", "checkpoint_ns": ""}}
    saver.put(config, checkpoint, {"source": "input", "step": i}, {})  # type: ignore[arg-type]
    return f"{tag}-{i}/{checkpoint['id']}"


def write(spec: dict[str, Any]) -> None:
    alma = _open(spec)
    tag, kinds = spec["tag"], 5 if spec.get("langgraph") else 4
    tracker = ProgressTracker(alma=alma)
    for i in range(spec["n"]):
        kind = i % kinds
        if kind == 0:
            outcome = "success" if i % 3 else "failure"
            m = alma.learn(f"agent-{tag}", f"task {i % 7} of {tag}", outcome, f"strategy {i % 5}",
                           error_message=None if outcome == "success" else f"error {i % 2}")  # fmt: skip
            _ack("memory", m.id)
        elif kind == 1:
            k = alma.add_domain_knowledge(f"agent-{tag}", "facts", f"fact {i} from {tag}")
            _ack("memory", k.id)
        elif kind == 2:
            cp = alma.checkpoint(f"wf-{tag}", {"step": i, "by": tag})
            _ack("checkpoint", f"wf-{tag}/{cp.id}")
        elif kind == 3:
            _ack("work", tracker.create_work_item(f"item {i} of {tag}").id)
        else:
            _ack("thread", _langgraph_put(alma, tag, i))
    alma.close()


def fill_disk(spec: dict[str, Any]) -> None:
    alma = _open(spec)
    alma.learn("a", "warm up", "success", "s")  # the schema and first pages exist before the limit
    import os

    size = sum(os.path.getsize(spec["db"] + suffix) for suffix in ("", "-wal") if os.path.exists(spec["db"] + suffix))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + spec["room"], resource.RLIM_INFINITY))
    try:
        for i in range(100_000):
            m = alma.add_domain_knowledge("a", "d", f"fact {i} " + "x" * 2000)
            _ack("memory", m.id)
    except Exception as exc:  # the type is what we report
        _ack("error", f"{type(exc).__name__} {isinstance(exc, StorageError)}")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        alma.close()


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    {"write": write, "fill_disk": fill_disk}[spec["mode"]](spec)
