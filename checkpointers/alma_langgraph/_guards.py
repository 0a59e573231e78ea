"""The checks a put makes inside its own write transaction, before it writes anything.

- **One id, one history.** The first checkpoint of a thread (no parent, root namespace) is refused
  with `CheckpointConflict` when ALMA's workflow API already keeps checkpoints under that id
  (`alma.checkpoint(thread_id, ...)`): the other direction, an ALMA checkpoint under a LangGraph
  thread id, is refused the same way by `ALMA.checkpoint`.
- **Fencing** (opt-in, `AlmaSaver(..., fencing=True)`): a checkpoint whose parent is no longer the
  head (the newest checkpoint) of its thread and namespace raises `CheckpointConflict` instead of
  starting a silent fork: another run wrote to the thread since this one read it.

Both are one `WriteIf` (a compare-and-set of the namespaces' heads): the check and the write in one
write transaction, and write transactions are serialized across processes (SQLite's `BEGIN IMMEDIATE`,
PostgreSQL's advisory lock), so two writers can never both pass the check. On a store with the
"write_if" capability (PostgreSQL) the put is that one operation, one round trip; elsewhere it is the
same read and write in a write transaction (`expand_write_if`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

from alma_core import CheckpointConflict
from alma_core.storage import BaseStorage, Head, Op, WriteIf, expand_write_if
from alma_core.workflow import checkpoints_ns as workflow_ns

from ._layout import Plan, checkpoint_ns, run

__all__ = ["Guard", "arun_atomic", "arun_guarded", "guarded_put", "needs_guard", "run_guarded"]

_T = TypeVar("_T")


def needs_guard(fencing: bool, ns: str, parent: str | None) -> bool:
    """Whether a put must read before it writes (else it is one blind batch)."""
    return fencing or (parent is None and ns == "")


class Guard:
    """The checks of one put as a `WriteIf` of its writes, and the error when a head did not hold."""

    def __init__(
        self, project_id: str, thread_id: str, ns: str, checkpoint_id: str, parent: str | None, fencing: bool
    ) -> None:
        self.thread_id, self.ns, self.parent, self.fencing = thread_id, ns, parent, fencing
        self.workflow = parent is None and ns == ""  # a thread's first checkpoint: one id, one history
        conditions = []
        if fencing:  # the head is the parent (or this checkpoint, put again)
            conditions.append(Head(project_id, checkpoint_ns(thread_id, ns), (parent, checkpoint_id)))
        if self.workflow:  # no workflow of ALMA's checkpoints under this id
            conditions.append(Head(project_id, workflow_ns(thread_id), (None,)))
        self.conditions = tuple(conditions)

    def op(self, ops: Sequence[Op]) -> WriteIf:
        return WriteIf(self.conditions, tuple(ops))

    def check(self, heads: Sequence[str | None]) -> None:
        """Raise `CheckpointConflict` for the first condition whose head did not hold."""
        if self.workflow and heads[-1] is not None:
            raise CheckpointConflict(
                f"{self.thread_id!r} is a workflow kept by ALMA's checkpoints (alma.checkpoint): a LangGraph "
                "thread here would fork a second history; continue it with alma.checkpoint/resume, or use "
                "another thread id"
            )
        if self.fencing and not self.conditions[0].holds(heads[0]):
            raise CheckpointConflict(
                f"thread {self.thread_id!r} (namespace {self.ns!r}) moved on: its head is {heads[0]}, but this "
                f"checkpoint's parent is {self.parent}. Another run wrote to the thread first (fencing=True "
                "refuses the fork); reload the thread's state and run again"
            )


def guarded_put(guard: Guard, ops: Sequence[Op]) -> Plan[None]:
    """Check, then write `ops` (the put's records), in the write transaction the plan runs in."""
    heads = yield from expand_write_if(guard.op(ops))
    guard.check(heads)
    return None


def run_guarded(storage: BaseStorage, guard: Guard, ops: Sequence[Op]) -> None:
    """A guarded put: one `WriteIf` where the store has the capability, else the plan in a write
    transaction."""
    if "write_if" in storage.capabilities:
        [heads] = storage.batch([guard.op(ops)])
        guard.check(heads)
    else:
        run(storage, guarded_put(guard, ops), write=True)


async def arun_guarded(storage: BaseStorage, guard: Guard, ops: Sequence[Op]) -> None:
    if "write_if" in storage.capabilities:
        [heads] = await storage.abatch([guard.op(ops)])
        guard.check(heads)
    else:
        await arun_atomic(storage, guarded_put(guard, ops))


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
