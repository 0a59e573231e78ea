"""Workers that tests start as real processes (spawned, so each imports ALMA afresh)."""

from __future__ import annotations

import multiprocessing
from typing import Any

from alma_core import CheckpointConflict


def sweep(store: str, now: float, start: Any, out: Any) -> None:
    """Wait for the others at `start`, sweep once, report the counts."""
    from alma_langgraph import AlmaSaver

    with AlmaSaver.from_conn_string(store) as saver:
        start.wait(timeout=120)
        out.put(saver.sweep(now=now))


def fenced_put(store: str, thread_id: str, start: Any, out: Any) -> None:
    """Read the thread's head, wait for the other writer to have read it too, then put a child of it."""
    from langgraph.checkpoint.base import empty_checkpoint

    from alma_langgraph import AlmaSaver

    with AlmaSaver.from_conn_string(store, fencing=True) as saver:
        head = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        assert head is not None
        start.wait(timeout=120)
        try:
            saved = saver.put(head.config, empty_checkpoint(), {"step": 1}, {})
            out.put(("ok", saved["configurable"]["checkpoint_id"]))
        except CheckpointConflict as exc:
            out.put(("conflict", str(exc)))


def run_all(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Run `target(*a, start, out)` in one spawned process per `a`, all released together; their reports."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, start, out)) for a in args]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]  # a real hang only: each worker reports once
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    return results
