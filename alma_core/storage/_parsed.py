"""Memories parsed from stored JSON, kept while their row is unchanged.

A retrieve loads ~100 candidates to return ~10, and the same memories come back query after query:
validating each one's JSON with pydantic costs more than ranking it. A store keeps the last `size`
memories it parsed, keyed by (project, id), with the exact JSON text and type they were parsed from. A
row whose text is unchanged is answered with the kept memory itself when the caller only reads it
(`SearchMemories.shared`: the retriever copies the few it returns), else with a copy (`copy_memory`:
nothing mutable shared); any other row is validated as before. A changed row never matches (its text
differs), so nothing needs invalidating.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from .._cache import copy_memory
from .._models import Memory, MemoryType, memory_class

__all__ = ["ParsedMemories"]

_MODELS: dict[str, Any] = {t.value: memory_class(t) for t in MemoryType}


class ParsedMemories:
    """An LRU of parsed memories (at most `size`; 0 disables it). Thread-safe.

    An entry parsed in a read transaction also keeps the project's generation it was read at (every
    memory write moves it, in any process): while the generation has not moved, the row need not even
    be read again (`current`).
    """

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[str, str, Memory, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def parse(
        self,
        project_id: str,
        memory_id: str,
        mtype: str,
        data: str,
        shared: bool = False,
        generation: int | None = None,
    ) -> Memory:
        """The memory stored as `data` (JSON without its type tag): a copy the caller owns, or with
        `shared` the kept memory itself, which the caller must not change. `generation`: the project's,
        when read in a read transaction. Raises pydantic's ValidationError (a ValueError) or KeyError
        (unknown type) for a bad row."""
        key = (project_id, memory_id)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[1] == data and hit[0] == mtype:
                self._items[key] = (mtype, data, hit[2], generation)
                self._items.move_to_end(key)
                return hit[2] if shared else copy_memory(hit[2])
        memory: Memory = _MODELS[mtype].model_validate_json(data)
        if self.size > 0:
            kept = memory if shared else copy_memory(memory)
            with self._lock:
                self._items[key] = (mtype, data, kept, generation)
                if len(self._items) > self.size:
                    self._items.popitem(last=False)
        return memory

    def current(self, project_id: str, ids: Iterable[str], generation: int) -> dict[str, Memory]:
        """The kept memories among `ids` read at `generation` (the project's now): unchanged since, so
        still right without reading their rows. Shared: the caller must not change them."""
        out: dict[str, Memory] = {}
        with self._lock:
            for memory_id in ids:
                hit = self._items.get((project_id, memory_id))
                if hit is not None and hit[3] == generation:
                    out[memory_id] = hit[2]
        return out

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
