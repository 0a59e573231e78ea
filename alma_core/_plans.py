"""Plans: ALMA's logic written once, run sync or natively async.

A plan is a generator that yields steps and receives their results:

- a list of storage ops: their results;
- `Compute(fn, *args)`: CPU work (embedding, a reranker), its return value; `Light(fn, *args)` the same for
  work of a few milliseconds (ranking ~50 candidates per type), which `arun` does on the event loop:
  handing it to a thread and back measured slower than doing it (GIL handoffs);
- `Generation(project_id)`: the project's generation number (it moves with every write of the project);
- `WRITE`: open the plan's write transaction now, so the reads that follow see what it will write;
- `InTransaction(fn, *args)`: sync code `fn(tx, *args)` run against the write transaction (the learner's
  read-modify-write of evidence), its return value;
- `After(fn, *args)`: work for after the commit (events, graph memory); receives None.

Ops steps before the write transaction are read batches, each its own snapshot. The write transaction
opens at `WRITE`, at `InTransaction` or at the first ops step that writes (so embedding before it happens
outside the write lock); every later step runs in it, and it commits when the plan returns. `After`
steps then run in order. An exception rolls it back.

`run` is the sync runner. `arun` on a backend with a native async driver (`capabilities` has "async":
PostgreSQL) runs storage steps on the event loop (`abatch` for reads, `atransaction` for the write
transaction: the same async connection pool) and only CPU work on worker threads; an `InTransaction`
step runs on a worker thread whose every `tx.execute(op)` is executed on the loop, on the async
connection holding the transaction. On other backends `arun` runs the whole plan on a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .storage._base import WRITE_OPS

if TYPE_CHECKING:
    from .storage._base import BaseStorage, Op

__all__ = ["WRITE", "After", "Compute", "Generation", "InTransaction", "Light", "Plan", "arun", "native_async", "run"]

_T = TypeVar("_T")


class Compute:
    """A plan step: CPU work, `fn(*args, **kwargs)`, whose result the plan receives."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class Light(Compute):
    """A plan step: CPU work too small to be worth a worker thread under `arun`."""

    __slots__ = ()


class InTransaction(Compute):
    """A plan step: `fn(tx, *args, **kwargs)` with the plan's write transaction (opening it)."""

    __slots__ = ()


class After(Compute):
    """A plan step: work to do once the plan's transaction has committed (announce, index)."""

    __slots__ = ()


class Generation:
    """A plan step: the project's generation."""

    __slots__ = ("project_id",)

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id


class _Write:
    """The `WRITE` step."""

    __slots__ = ()


WRITE = _Write()
Step = Sequence["Op"] | Compute | Generation | _Write
Plan = Generator[Step, Any, _T]


def native_async(storage: BaseStorage) -> bool:
    """Whether the store runs transactions on an async connection (PostgreSQL's psycopg pool)."""
    return "async" in storage.capabilities and hasattr(storage, "atransaction")


def _opens(step: Step) -> bool:
    """Whether the step needs the write transaction."""
    if isinstance(step, (_Write, InTransaction)):
        return True
    return isinstance(step, Sequence) and any(isinstance(op, WRITE_OPS) for op in step)


def run(storage: BaseStorage, plan: Plan[_T]) -> _T:
    """Run a plan synchronously (see the module docstring)."""
    after: list[After] = []
    with contextlib.ExitStack() as stack:
        tx: Any = None
        result: Any = None
        try:
            while True:
                step = plan.send(result)
                if tx is None and _opens(step):
                    tx = stack.enter_context(storage.transaction(write=True))
                if isinstance(step, After):
                    after.append(step)
                    result = None
                elif isinstance(step, InTransaction):
                    result = step.fn(tx, *step.args, **step.kwargs)
                elif isinstance(step, Compute):
                    result = step()
                elif isinstance(step, Generation):
                    result = storage.generation(step.project_id)
                elif isinstance(step, _Write):
                    result = None
                elif tx is not None:
                    result = [tx.execute(op) for op in step]
                else:
                    result = storage.batch(step) if step else []
        except StopIteration as stop:
            value: _T = stop.value
    for done in after:
        done()
    return value


class _LoopTransaction:
    """A sync `Transaction` for a worker thread, executing each op on the event loop's async transaction.
    Closed when the awaiting task is cancelled: the thread's next op raises, before the transaction ends."""

    def __init__(self, tx: Any, loop: Any) -> None:
        self.tx, self.loop, self.closed = tx, loop, False

    def execute(self, op: Op) -> Any:
        import asyncio

        from ._errors import StorageError

        if self.closed:
            raise StorageError("the transaction's task was cancelled")
        return asyncio.run_coroutine_threadsafe(self.tx.execute(op), self.loop).result()


async def _in_thread(step: InTransaction, tx: Any) -> Any:
    """Run `step` on a worker thread against `tx`; if the task is cancelled, let the thread stop (its
    next op raises) before the cancellation reaches the transaction, so no op outlives it."""
    import asyncio

    bridge = _LoopTransaction(tx, asyncio.get_running_loop())
    future = asyncio.ensure_future(asyncio.to_thread(step.fn, bridge, *step.args, **step.kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        bridge.closed = True
        with contextlib.suppress(BaseException):
            await future
        raise


async def arun(storage: BaseStorage, plan: Plan[_T]) -> _T:
    """Run a plan without blocking the event loop (see the module docstring)."""
    import asyncio  # here, not at the top: asyncio is ~10% of a cold `from alma_core import ALMA`

    if not native_async(storage):
        return await asyncio.to_thread(run, storage, plan)
    after: list[After] = []
    async with contextlib.AsyncExitStack() as stack:
        tx: Any = None
        result: Any = None
        try:
            while True:
                step = plan.send(result)
                if tx is None and _opens(step):
                    tx = await stack.enter_async_context(storage.atransaction(write=True))  # type: ignore[attr-defined]
                if isinstance(step, After):
                    after.append(step)
                    result = None
                elif isinstance(step, InTransaction):
                    result = await _in_thread(step, tx)
                elif isinstance(step, Light):
                    result = step()
                elif isinstance(step, Compute):
                    result = await asyncio.to_thread(step)
                elif isinstance(step, Generation):
                    result = await storage.ageneration(step.project_id)
                elif isinstance(step, _Write):
                    result = None
                elif tx is not None:
                    result = [await tx.execute(op) for op in step]
                else:
                    result = await storage.abatch(step) if step else []
        except StopIteration as stop:
            value: _T = stop.value
    for done in after:
        done()
    return value
