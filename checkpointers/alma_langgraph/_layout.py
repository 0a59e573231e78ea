"""Where LangGraph checkpoints and writes live in ALMA's record space, and how plans run.

    checkpoint  namespace "lg/<thread_id>/<checkpoint_ns>"                   key checkpoint_id
    write       namespace "lgw/<thread_id>/<checkpoint_ns>/<checkpoint_id>"   key "<task_id>/<idx>"
    blob        namespace "lgb/<thread_id>/<checkpoint_ns>"                  key "<channel>/<version>"

A blob is one channel's value at one version, written once and shared by every checkpoint that has
that version (see `_channels`); a checkpoint record (format 2) holds the checkpoint without them.

thread_id and checkpoint_ns are escaped so they hold no "/", which makes "lg/<thread_id>/" the exact
prefix of one thread. Checkpoint ids are uuid6 (they sort by time), so the latest checkpoint is the
greatest key. A checkpoint record's metadata is the checkpoint's metadata (filterable with `where`)
plus one internal entry under `META`.

Saver logic is written once, as plans: generators that yield a list of storage operations and receive
their results. `run` executes a plan in one transaction (sync); `arun` sends each step through
`storage.abatch` (async, so a backend with a native async driver never blocks the event loop).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

from alma_core.storage import BaseStorage, DeleteRecords, Op, Record

__all__ = [
    "BLOBS",
    "CHECKPOINTS",
    "FORMAT",
    "META",
    "SPACES",
    "WRITES",
    "Plan",
    "arun",
    "blob_key",
    "blobs_ns",
    "checkpoint_ns",
    "erase_threads",
    "escape",
    "run",
    "run_steps",
    "thread_prefix",
    "unescape",
    "writes_ns",
]

CHECKPOINTS = "lg/"
WRITES = "lgw/"
BLOBS = "lgb/"
SPACES = (CHECKPOINTS, WRITES, BLOBS)  # everything a thread has
FORMAT = 2  # `META["v"]` of a checkpoint record without its channel values (they are blobs, see `_channels`)
META = "__lg"  # internal metadata entry of a checkpoint record: thread_id, checkpoint_ns, parent, type

_T = TypeVar("_T")
Plan = Generator[list[Op], list[Any], _T]


@functools.lru_cache(maxsize=4096)
def escape(part: str) -> str:
    """A namespace part without "/" (so prefixes stay exact). Cached: the same thread ids and channel
    names come back on every call."""
    return part.replace("%", "%25").replace("/", "%2F")


def unescape(part: str) -> str:
    return part.replace("%2F", "/").replace("%25", "%")


def thread_prefix(space: str, thread_id: str) -> str:
    """The prefix of every namespace of one thread in `space` (CHECKPOINTS or WRITES)."""
    return f"{space}{escape(str(thread_id))}/"


def erase_threads(project_id: str, records: Sequence[Record]) -> list[DeleteRecords]:
    """`delete_user` hook: a thread with a checkpoint tagged with the user goes whole (checkpoints, writes, blobs)."""
    threads = {r.namespace[len(CHECKPOINTS) :].split("/", 1)[0] for r in records if r.namespace.startswith(CHECKPOINTS)}
    return [DeleteRecords(project_id, f"{space}{t}/", prefix=True) for t in sorted(threads) for space in SPACES]


def checkpoint_ns(thread_id: str, ns: str) -> str:
    return f"{CHECKPOINTS}{escape(str(thread_id))}/{escape(ns)}"


def writes_ns(thread_id: str, ns: str, checkpoint_id: str) -> str:
    return f"{WRITES}{escape(str(thread_id))}/{escape(ns)}/{checkpoint_id}"


def blobs_ns(thread_id: str, ns: str) -> str:
    return f"{BLOBS}{escape(str(thread_id))}/{escape(ns)}"


def blob_key(channel: str, version: Any) -> str:
    return f"{escape(channel)}/{version}"


def run(storage: BaseStorage, plan: Plan[_T], *, write: bool) -> _T:
    """Run a plan synchronously, all its steps in one transaction."""
    with storage.transaction(write=write) as tx:
        try:
            ops = next(plan)
            while True:
                ops = plan.send([tx.execute(op) for op in ops])
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def run_steps(storage: BaseStorage, plan: Plan[_T]) -> _T:
    """Run a plan synchronously, each step one `batch` (one transaction; a lone one-statement read
    on PostgreSQL: one autocommit statement)."""
    try:
        ops = next(plan)
        while True:
            ops = plan.send(storage.batch(ops) if ops else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun(storage: BaseStorage, plan: Plan[_T]) -> _T:
    """Run a plan asynchronously, each step one `abatch` (one transaction). A store without a native
    async driver (SQLite) runs the steps the same way on one worker thread: one hand-off, not one a step."""
    if "async" not in storage.capabilities:
        return await asyncio.to_thread(run_steps, storage, plan)
    try:
        ops = next(plan)
        while True:
            ops = plan.send(await storage.abatch(ops) if ops else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
