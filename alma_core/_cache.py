"""A bounded, TTL'd cache of retrieval results, keyed by everything that changes the answer.

Every key includes the project's store generation, which every memory write bumps in any process, so a
write anywhere makes older entries unreachable (they age out of the LRU). Puts and hits copy the value
(`copy_slice` for retrieval results: ~20x cheaper than a deep copy), so callers can't corrupt the cache.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from ._models import TYPE_FIELDS, Memory
from ._slice import MemorySlice

__all__ = ["RetrievalCache", "copy_memory", "copy_slice"]

_V = TypeVar("_V")


_FLAT = (str, int, float, bool, type(None))  # immutable: shared by a copy


def _copy_value(value: Any) -> Any:
    """A metadata value copied deeply enough to share nothing mutable (a flat container: its `copy()`)."""
    if isinstance(value, dict):
        return value.copy() if all(type(v) in _FLAT for v in value.values()) else copy.deepcopy(value)
    if isinstance(value, (list, set)):
        return value.copy() if all(type(v) in _FLAT for v in value) else copy.deepcopy(value)
    return value


def copy_memory(memory: Memory) -> Memory:
    """A copy sharing nothing mutable with `memory` (its vector is shared: ALMA never changes one in place)."""
    clone = memory.__copy__()  # what `model_copy()` does, without its update handling
    fields = clone.__dict__
    fields["metadata"] = {k: _copy_value(v) for k, v in memory.metadata.items()}
    if memory.score_breakdown is not None:
        fields["score_breakdown"] = dict(memory.score_breakdown)
    return clone


def copy_slice(result: MemorySlice) -> MemorySlice:
    """A `MemorySlice` whose lists and memories are copies (see `copy_memory`)."""
    clone = copy.copy(result)
    for name in TYPE_FIELDS.values():
        setattr(clone, name, [copy_memory(m) for m in getattr(result, name)])
    return clone


class RetrievalCache(Generic[_V]):
    """LRU of at most `size` entries, each valid for `ttl` seconds (size 0 disables it). `copier` copies
    values on put and get (a deep copy unless told otherwise)."""

    def __init__(self, size: int = 512, ttl: float = 300.0, copier: Callable[[_V], _V] = copy.deepcopy) -> None:
        self.size, self.ttl, self._copy = size, ttl, copier
        self._items: OrderedDict[Hashable, tuple[float, _V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> _V | None:
        """A copy of the cached value, or None (a miss)."""
        if self.size <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None or (self.ttl > 0 and time.monotonic() - item[0] > self.ttl):
                if item is not None:
                    del self._items[key]
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            value = item[1]
        return self._copy(value)

    def put(self, key: Hashable, value: _V) -> None:
        """Store a copy of `value` (later changes by the caller don't reach the cache)."""
        if self.size <= 0:
            return
        stored = self._copy(value)
        with self._lock:
            self._items[key] = (time.monotonic(), stored)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def hit_ratio(self) -> float | None:
        """hits / lookups, or None before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None
