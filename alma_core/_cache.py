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

__all__ = ["RetrievalCache", "copy_memory", "copy_slice", "freeze_slice", "scored_copy"]

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


def scored_copy(memory: Memory, score: float, factors: dict[str, float], reader: str) -> Memory:
    """A retrieve's copy of `memory` for `reader`: its score and breakdown set, no vector, and
    `metadata["shared_from"]` naming the owner when another agent's memory is shared with the reader."""
    clone = copy_memory(memory)
    fields = clone.__dict__
    fields["score"], fields["score_breakdown"] = score, dict(factors)
    if clone.embedding is not None:  # (through pydantic's __setattr__: ~2 us, for the few that have one)
        clone.embedding = None  # vectors stay in the store; slices are for prompts
    if clone.agent not in (reader, "*"):
        clone.metadata["shared_from"] = clone.agent
    return clone


Sources = tuple[str, list[tuple[Memory, float, dict[str, float]]]]  # (reader, [(memory, score, factors)])


def copy_slice(result: MemorySlice) -> MemorySlice:
    """A `MemorySlice` whose lists and memories are copies (see `copy_memory`). A slice frozen for the
    retrieval cache (`freeze_slice`) is made again from the memories it was made of."""
    clone = copy.copy(result)
    frozen: Sources | None = result.__dict__.get("_frozen")
    if frozen is not None:
        del clone.__dict__["_frozen"]
        reader, sources = frozen
        for name in TYPE_FIELDS.values():
            setattr(clone, name, [])
        for memory, score, factors in sources:
            clone.add(scored_copy(memory, score, factors, reader))
        return clone
    for name in TYPE_FIELDS.values():
        setattr(clone, name, [copy_memory(m) for m in getattr(result, name)])
    return clone


def freeze_slice(result: MemorySlice) -> MemorySlice:
    """What the retrieval cache keeps of a retrieve's result: when the retriever recorded the memories it
    made the result from (`_sources`: shared memories nothing changes), only those, without copying them
    (`copy_slice` makes the memories at each hit); else a copy (`copy_slice`)."""
    sources: Sources | None = result.__dict__.get("_sources")
    if sources is None:
        return copy_slice(result)
    clone = copy.copy(result)
    del clone.__dict__["_sources"]
    for name in TYPE_FIELDS.values():
        setattr(clone, name, [])
    clone.__dict__["_frozen"] = sources
    return clone


class RetrievalCache(Generic[_V]):
    """LRU of at most `size` entries, each valid for `ttl` seconds (size 0 disables it). `copier` copies
    values on put and get (a deep copy unless told otherwise)."""

    def __init__(
        self,
        size: int = 512,
        ttl: float = 300.0,
        copier: Callable[[_V], _V] = copy.deepcopy,
        keeper: Callable[[_V], _V] | None = None,
    ) -> None:
        """`keeper`: what `put` stores of a value (default: `copier`'s copy)."""
        self.size, self.ttl, self._copy, self._keep = size, ttl, copier, keeper or copier
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
        stored = self._keep(value)
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
