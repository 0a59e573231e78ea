"""A bounded, TTL'd cache of retrieval results, keyed by everything that changes the answer.

Every key includes the project's store generation, which every memory write bumps in any process, so a
write anywhere makes older entries unreachable (they age out of the LRU). Hits return deep copies, so
callers can't corrupt the cache.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["RetrievalCache"]

_V = TypeVar("_V")


class RetrievalCache(Generic[_V]):
    """LRU of at most `size` entries, each valid for `ttl` seconds (size 0 disables it)."""

    def __init__(self, size: int = 512, ttl: float = 300.0) -> None:
        self.size, self.ttl = size, ttl
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
        return copy.deepcopy(value)

    def put(self, key: Hashable, value: _V) -> None:
        """Store a copy of `value` (later changes by the caller don't reach the cache)."""
        if self.size <= 0:
            return
        stored = copy.deepcopy(value)
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
