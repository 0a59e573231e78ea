"""`ExtractionQueue`: the background thread of `GraphIndex`'s "background" mode.

Writes enqueue memories and return at once; one daemon thread extracts them (outside any lock: an LLM
extractor may take seconds) and writes whatever queued up meanwhile to the graph in one batch.

- `flush(timeout)` waits until every queued memory is in the graph. It raises `FlushTimeout`, naming the
  pending memory ids, when the worker makes no progress (no memory extracted) for `timeout` seconds: a
  hung extractor. The wait counts stalls, not total time, so a long queue behind a slow but working
  chat model never times out. Nothing is dropped: the queue stays as it was.
- `dropping(doomed)` lets a delete skip the wait: it removes the doomed memories from the queue, marks
  those being extracted so their result is not written, and holds the graph's writes while the caller
  deletes what is already there. A delete therefore never waits on an extractor, and a deleted memory
  never reappears in the graph.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from .._errors import FlushTimeout
from .._models import Memory

__all__ = ["FLUSH_TIMEOUT", "ExtractionQueue"]

log = logging.getLogger("alma_core.graph")
FLUSH_TIMEOUT = 120.0  # seconds without progress: far beyond one extraction by rules or a chat model
_BATCH = 1024  # memories per graph write at most
_SHOWN = 10  # pending ids named in a FlushTimeout's message
T = TypeVar("T")


class ExtractionQueue(Generic[T]):
    """Memories waiting for extraction, and the thread that extracts them (see the module docstring).

    `extract(memory)` gives one memory's graph items; `write(items)` adds a batch's to the graph."""

    def __init__(self, extract: Callable[[Memory], T], write: Callable[[list[T]], None]) -> None:
        self._extract, self._write = extract, write
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()  # held while the graph is written: a batch's add, a delete
        self._queued: deque[Memory] = deque()
        self._extracting: list[Memory] = []
        self._dropped: set[str] = set()  # ids of memories deleted while being extracted
        self._progress_at = 0.0  # monotonic time of the worker's last step
        self._closing = False
        self._thread: threading.Thread | None = None
        self.errors = 0  # batches whose extraction failed (logged)

    def put(self, memories: Sequence[Memory]) -> None:
        with self._cond:
            self._queued.extend(m.model_copy() for m in memories)
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._run, name="alma-graph-index", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _take(self) -> list[Memory] | None:
        """The next batch (None once closing and drained), marked as being extracted."""
        with self._cond:
            while not self._queued and not self._closing:
                self._cond.wait()
            if not self._queued:
                return None
            batch = [self._queued.popleft() for _ in range(min(_BATCH, len(self._queued)))]
            self._extracting, self._progress_at = batch, time.monotonic()
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                extracted: list[tuple[str, T]] = []
                for memory in batch:
                    extracted.append((memory.id, self._extract(memory)))
                    with self._cond:
                        self._progress_at = time.monotonic()
                with self._write_lock:
                    with self._cond:
                        dropped = set(self._dropped)
                    self._write([items for memory_id, items in extracted if memory_id not in dropped])
            except Exception:  # a failed extraction never stops the worker; it is logged and counted
                self.errors += 1
                log.exception("graph extraction failed for %d memories", len(batch))
            finally:
                with self._cond:
                    self._extracting, self._progress_at = [], time.monotonic()
                    self._dropped.clear()
                    self._cond.notify_all()

    def pending(self) -> list[str]:
        """Ids of the memories not in the graph yet: those being extracted, then the queued ones."""
        with self._cond:
            return [m.id for m in (*self._extracting, *self._queued)]

    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> None:
        """Wait until every queued memory is in the graph; `FlushTimeout` after `timeout` seconds without
        progress (None: wait for ever)."""
        started = time.monotonic()
        with self._cond:
            while (self._queued or self._extracting) and self._thread is not None and self._thread.is_alive():
                if timeout is None:
                    self._cond.wait()
                    continue
                left = max(self._progress_at, started) + timeout - time.monotonic()
                if left <= 0:
                    raise self._stalled(timeout)
                self._cond.wait(left)

    def _stalled(self, timeout: float) -> FlushTimeout:
        busy, queued = [m.id for m in self._extracting], [m.id for m in self._queued]
        pending = busy + queued
        more = f", ... ({len(pending) - _SHOWN} more)" if len(pending) > _SHOWN else ""
        return FlushTimeout(
            f"graph extraction made no progress for {timeout:g} s: {len(pending)} memories are not in the graph "
            f"yet ({len(busy)} being extracted, {len(queued)} queued: {', '.join(pending[:_SHOWN])}{more}). "
            "Nothing was dropped: they stay queued. Check the extractor (a chat model that does not answer?), "
            "then flush() again.",
            pending,
        )

    @contextmanager
    def dropping(self, doomed: Callable[[Memory], bool]) -> Iterator[None]:
        """Drop the doomed memories from the queue and from the batch being extracted, and hold the graph's
        writes for the caller's delete (see the module docstring)."""
        with self._write_lock:
            with self._cond:
                self._queued = deque(m for m in self._queued if not doomed(m))
                self._dropped.update(m.id for m in self._extracting if doomed(m))
                self._cond.notify_all()
            yield

    def close(self, timeout: float | None = FLUSH_TIMEOUT) -> None:
        """Flush (raising `FlushTimeout` as `flush` does: the thread then keeps its queue), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
