"""The checks a put makes inside its own write transaction, before it writes anything.

- **One id, one history.** The first checkpoint of a thread (no parent, root namespace) is refused
  with `CheckpointConflict` when ALMA's workflow API already keeps checkpoints under that id
  (`alma.checkpoint(thread_id, ...)`): the other direction, an ALMA checkpoint under a LangGraph
  thread id, is refused the same way by `ALMA.checkpoint`.
- **Fencing** (opt-in, `AlmaSaver(..., fencing=True)`): a checkpoint whose parent is no longer the
  head (the newest checkpoint) of its thread and namespace raises `CheckpointConflict` instead of
  starting a silent fork: another run wrote to the thread since this one read it.

Both read and write in one write transaction, and write transactions are serialized across processes
(SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory lock), so two writers can never both pass the check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

from alma_core import CheckpointConflict
from alma_core.storage import BaseStorage, ListRecords, Op
from alma_core.workflow import checkpoints_ns as workflow_ns

from ._layout import Plan, checkpoint_ns, run

__all__ = ["arun_atomic", "guarded_put", "needs_guard"]

_T = TypeVar("_T")


def needs_guard(fencing: bool, ns: str, parent: str | None) -> bool:
    """Whether a put must read before it writes (else it is one blind batch)."""
    return fencing or (parent is None and ns == "")


def guarded_put(
    project_id: str, thread_id: str, ns: str, checkpoint_id: str, parent: str | None, fencing: bool, ops: Sequence[Op]
) -> Plan[None]:
    """Check, then write `ops` (the put's records), in the transaction the plan runs in."""
    reads: list[Op] = []
    if fencing:
        reads.append(ListRecords(project_id, checkpoint_ns(thread_id, ns), order_by="key", limit=1, with_values=False))
    if parent is None and ns == "":
        reads.append(ListRecords(project_id, workflow_ns(thread_id), limit=1, with_values=False))
    found = yield reads
    if parent is None and ns == "" and found[-1]:
        raise CheckpointConflict(
            f"{thread_id!r} is a workflow kept by ALMA's checkpoints (alma.checkpoint): a LangGraph thread "
            "here would fork a second history; continue it with alma.checkpoint/resume, or use another thread id"
        )
    if fencing:
        head = found[0][0].key if found[0] else None
        if head not in (parent, checkpoint_id):
            raise CheckpointConflict(
                f"thread {thread_id!r} (namespace {ns!r}) moved on: its head is {head}, but this checkpoint's "
                f"parent is {parent}. Another run wrote to the thread first (fencing=True refuses the fork); "
                "reload the thread's state and run again"
            )
    yield list(ops)
    return None


async def arun_atomic(storage: BaseStorage, plan: Plan[_T]) -> _T:
    """Run a plan in ONE write transaction from async code: on the backend's native async
    transaction when it has one (PostgreSQL), else on a worker thread."""
    atransaction: Any = getattr(storage, "atransaction", None)
    if atransaction is None:
        return await asyncio.to_thread(run, storage, plan, write=True)
    async with atransaction(write=True) as tx:
        try:
            ops = next(plan)
            while True:
                ops = plan.send([await tx.execute(op) for op in ops])
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
