"""Retention for `AlmaSaver`: thread TTLs, `keep_last`, and a sweeper safe from several processes.

Conventions follow LangGraph Platform's `checkpointer.ttl` (langgraph.json): a TTL is in **minutes**,
`strategy` is `"delete"` (the expired thread goes whole) or `"keep_latest"` (it keeps only its latest
checkpoint, DeltaChannel-safe, see `AlmaSaver.prune`), and a TTL applies to threads written after it
is set. A thread's clock restarts with each checkpoint: it expires `ttl` minutes after its last one.

Each thread under a TTL has one index record in namespace `TTL_INDEX` (key: the escaped thread id,
metadata `{"ttl", "strategy", "exp"}`), written with the checkpoint in the put's transaction: once per
thread for a saver's default TTL (`if_absent`), on every put for a TTL given in the run's config
(`configurable["ttl"]`, which then sticks to the thread). `sweep()` reads the index, and for each
candidate whose `exp` has passed re-checks, inside one write transaction per chunk, that its index
record still exists and that its newest checkpoint is older than its TTL; only then does it delete the
thread and the index record together. Write transactions are serialized across processes (SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's advisory lock), so concurrent sweepers each delete a thread at most
once and the counts they return sum to the number of threads deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from alma_core import ValidationError
from alma_core.storage import DeleteRecords, GetRecord, ListRecords, Op, PutRecord, PutRecords, Record

from ._guards import arun_atomic
from ._layout import CHECKPOINTS, Plan, escape, run, thread_prefix, unescape

if TYPE_CHECKING:
    from ._saver import AlmaSaver

__all__ = ["TTL_INDEX", "CheckpointTTL", "Retention", "SweepResult"]

TTL_INDEX = "lgx/ttl"
STRATEGIES = ("delete", "keep_latest")
_CHUNK = 500  # threads decided and deleted per write transaction


class CheckpointTTL(TypedDict, total=False):
    """A saver's TTL, shaped like langgraph.json's `checkpointer.ttl`."""

    default_ttl: float
    """Minutes after a thread's last checkpoint at which it expires."""
    strategy: Literal["delete", "keep_latest"]
    """What expiry does: delete the thread (default) or keep only its latest checkpoint."""


class SweepResult(TypedDict):
    """What one `sweep()` did: threads expired (deleted or cut to their latest checkpoint) and
    checkpoints removed by `keep_last`."""

    threads: int
    checkpoints: int


def parse_ttl(ttl: float | Mapping[str, Any] | None) -> tuple[float | None, str]:
    """(minutes or None, strategy) from a number of minutes, a `CheckpointTTL`, or a per-thread
    `{"ttl": minutes, "strategy": ...}` (LangGraph SDK's `threads.create(ttl=...)` shape)."""
    if ttl is None:
        return None, "delete"
    if isinstance(ttl, Mapping):
        unknown = set(ttl) - {"default_ttl", "ttl", "strategy"}
        if "sweep_interval_minutes" in unknown:
            raise ValidationError(
                "AlmaSaver runs no background sweeper: call saver.sweep() on your schedule, or run "
                "`alma checkpoints sweep` from cron (several at once are safe); drop sweep_interval_minutes"
            )
        if unknown:
            raise ValidationError(f"unknown ttl keys {sorted(unknown)} (use default_ttl or ttl, and strategy)")
        strategy = ttl.get("strategy", "delete")
        minutes = ttl.get("default_ttl", ttl.get("ttl"))
    else:
        strategy, minutes = "delete", ttl
    if strategy not in STRATEGIES:
        raise ValidationError(f"ttl strategy must be one of {STRATEGIES}, got {strategy!r}")
    if minutes is None:
        return None, strategy
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
        raise ValidationError(f"ttl must be a positive number of minutes, got {minutes!r}")
    return float(minutes), strategy


def check_keep_last(keep_last: int | None) -> int | None:
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
        raise ValidationError(f"keep_last must be a positive int or None, got {keep_last!r}")
    return keep_last


class Retention:
    """The retention half of one saver: index writes at put time, and the sweeper."""

    def __init__(self, saver: AlmaSaver, ttl: float | Mapping[str, Any] | None, keep_last: int | None) -> None:
        self.saver = saver
        self.ttl, self.strategy = parse_ttl(ttl)
        self.keep_last = check_keep_last(keep_last)

    # ---- at put time -------------------------------------------------------------------------

    def on_put(self, config: Mapping[str, Any], thread_id: str) -> list[Op]:
        """The index write that goes into a put's transaction (none without a TTL)."""
        own = (config.get("configurable") or {}).get("ttl")
        if own is not None:
            minutes, strategy = parse_ttl(own if isinstance(own, Mapping) else {"ttl": own})
            return [self._index_put(thread_id, minutes, strategy, if_absent=False)] if minutes else []
        if self.ttl is None:
            return []
        return [self._index_put(thread_id, self.ttl, self.strategy, if_absent=True)]

    def _index_put(self, thread_id: str, minutes: float | None, strategy: str, *, if_absent: bool) -> PutRecords:
        """The thread's index record: unsequenced (the sweeper reads the whole index, in no order), so a
        put with it stays blind writes (one round trip on PostgreSQL)."""
        meta = {"ttl": minutes, "strategy": strategy, "exp": time.time() + (minutes or 0) * 60}
        record = Record(self.saver.project_id, TTL_INDEX, escape(thread_id), None, meta)
        return PutRecords((record,), if_absent=if_absent, sequenced=False)

    def set_ttl(self, thread_id: str, ttl: float | Mapping[str, Any] | None) -> None:
        """Give one thread its own TTL (minutes, or `{"ttl": minutes, "strategy": ...}`); None removes it."""
        minutes, strategy = parse_ttl(ttl if ttl is None or isinstance(ttl, Mapping) else {"ttl": ttl})
        if minutes is None:
            self.saver.storage.batch([DeleteRecords(self.saver.project_id, TTL_INDEX, (escape(thread_id),))])
        else:
            self.saver.storage.batch([self._index_put(thread_id, minutes, strategy, if_absent=False)])

    # ---- the sweeper -------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> SweepResult:
        """Expire the threads whose TTL has passed, then apply `keep_last`. Safe to run from several
        processes at once (see the module docstring). `now` (epoch seconds) is for tests and dry clocks."""
        now = time.time() if now is None else now
        storage, pid = self.saver.storage, self.saver.project_id
        threads = sum(run(storage, plan, write=True) for plan in self._expire_plans(storage.execute(_index(pid)), now))
        if not self.keep_last:
            return {"threads": threads, "checkpoints": 0}
        plans = self._keep_last_plans(storage.execute(_checkpoints(pid)), self.keep_last)
        return {"threads": threads, "checkpoints": sum(run(storage, plan, write=True) for plan in plans)}

    async def asweep(self, now: float | None = None) -> SweepResult:
        """`sweep` from async code: each chunk one write transaction on the backend's async driver."""
        now = time.time() if now is None else now
        storage, pid = self.saver.storage, self.saver.project_id
        threads = 0
        for plan in self._expire_plans(await storage.aexecute(_index(pid)), now):
            threads += await arun_atomic(storage, plan)
        checkpoints = 0
        if self.keep_last:
            for plan in self._keep_last_plans(await storage.aexecute(_checkpoints(pid)), self.keep_last):
                checkpoints += await arun_atomic(storage, plan)
        return {"threads": threads, "checkpoints": checkpoints}

    def _expire_plans(self, index: Sequence[Record], now: float) -> Iterator[Plan[int]]:
        due = [r.key for r in index if r.metadata.get("exp", 0) <= now]
        for start in range(0, len(due), _CHUNK):
            yield self._expire_plan(due[start : start + _CHUNK], now)

    def _expire_plan(self, keys: Sequence[str], now: float) -> Plan[int]:
        pid = self.saver.project_id
        entries: list[Record | None] = yield [GetRecord(pid, TTL_INDEX, k) for k in keys]
        live = [e for e in entries if e is not None]  # None: another sweeper got there first
        newest = yield [
            ListRecords(pid, thread_prefix(CHECKPOINTS, unescape(e.key)), prefix=True, order_by="key", limit=1,
                        with_values=False)
            for e in live
        ]  # fmt: skip
        ops: list[Op] = []
        gone: list[str] = []
        expired = 0
        doomed: list[str] = []  # deleted together: the saver forgets its caches of them in one pass
        for entry, latest in zip(live, newest, strict=True):
            ttl = float(entry.metadata.get("ttl") or 0) * 60
            if latest and latest[0].updated_at + ttl > now:  # written since by a saver without a TTL
                meta = {**entry.metadata, "exp": latest[0].updated_at + ttl}
                ops.append(PutRecord(Record(pid, TTL_INDEX, entry.key, None, meta)))
                continue
            gone.append(entry.key)
            if not latest:
                continue  # the thread is already gone (deleted by hand): only its index entry goes
            thread_id = unescape(entry.key)
            if entry.metadata.get("strategy") == "keep_latest":
                yield from self.saver._keep_latest_plan(thread_id)
            else:
                doomed.append(thread_id)
            expired += 1
        if doomed:
            yield from self.saver._delete_thread_plan(*doomed)
        if gone:
            ops.append(DeleteRecords(pid, TTL_INDEX, tuple(gone)))
        if ops:
            yield ops
        return expired

    def _keep_last_plans(self, records: Sequence[Record], n: int) -> Iterator[Plan[int]]:
        """One plan per thread with more than `n` checkpoints in a namespace, cutting it to its last `n`
        (each its own write transaction, so a concurrent sweeper finds nothing left to cut)."""
        counts: dict[str, int] = {}
        for r in records:
            counts[r.namespace] = counts.get(r.namespace, 0) + 1
        threads = sorted({ns[len(CHECKPOINTS) :].split("/", 1)[0] for ns, c in counts.items() if c > n})
        for t in threads:
            yield self._count_pruned(unescape(t), n)

    def _count_pruned(self, thread_id: str, n: int) -> Plan[int]:
        pid, prefix = self.saver.project_id, thread_prefix(CHECKPOINTS, thread_id)
        (before,) = yield [ListRecords(pid, prefix, prefix=True, with_values=False)]
        yield from self.saver._keep_latest_plan(thread_id, keep=n)
        (after,) = yield [ListRecords(pid, prefix, prefix=True, with_values=False)]
        return len(before) - len(after)


def _index(project_id: str) -> ListRecords:
    return ListRecords(project_id, TTL_INDEX, with_values=False)


def _checkpoints(project_id: str) -> ListRecords:
    return ListRecords(project_id, CHECKPOINTS, prefix=True, with_values=False)
