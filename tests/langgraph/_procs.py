"""Workers that tests start as real processes (spawned, so each imports ALMA afresh)."""

from __future__ import annotations

import multiprocessing
from typing import Any

from alma_core import CheckpointConflict


def sweep(store: str, now: float, start: Any, out: Any) -> None:
    """Wait for the others at `start`, sweep once, report the counts."""
    from alma_langgraph import AlmaSaver

    with AlmaSaver.from_conn_string(store) as saver:
        start.wait(timeout=600)
        out.put(saver.sweep(now=now))


def fenced_put(store: str, thread_id: str, start: Any, out: Any) -> None:
    """Read the thread's head, wait for the other writer to have read it too, then put a child of it."""
    from langgraph.checkpoint.base import empty_checkpoint

    from alma_langgraph import AlmaSaver

    with AlmaSaver.from_conn_string(store, fencing=True) as saver:
        head = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        assert head is not None
        start.wait(timeout=600)
        try:
            saved = saver.put(head.config, empty_checkpoint(), {"step": 1}, {})
            out.put(("ok", saved["configurable"]["checkpoint_id"]))
        except CheckpointConflict as exc:
            out.put(("conflict", str(exc)))


def _reporting(target: Any, args: tuple[Any, ...], start: Any, out: Any) -> None:
    """Run a worker; a failure is reported too (with its traceback), so the test never waits for it."""
    import traceback

    try:
        target(*args, start, out)
    except BaseException:
        start.abort()  # release the others at once
        out.put(("error", traceback.format_exc()))


def run_all(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Run `target(*a, start, out)` in one spawned process per `a`, all released together; their reports."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=_reporting, args=(target, a, start, out)) for a in args]
    for p in procs:
        p.start()
    results = [out.get(timeout=900) for _ in procs]  # a real hang only: each worker reports once
    for p in procs:
        p.join(timeout=600)
    errors = [r[1] for r in results if isinstance(r, tuple) and r[0] == "error"]
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results
