"""Memories parsed from stored JSON, kept while their row is unchanged.

A retrieve loads ~100 candidates to return ~10, and the same memories come back query after query:
validating each one's JSON with pydantic costs more than ranking it. A store keeps the last `size`
memories it parsed, keyed by (project, id), with the exact JSON text and type they were parsed from. A
row whose text is unchanged is answered with the kept memory itself when the caller only reads it
(`SearchMemories.shared`: the retriever copies the few it returns), else with a copy (`copy_memory`:
nothing mutable shared); any other row is validated as before. A changed row never matches (its text
differs), so nothing needs invalidating.

A retrieve ranks `Candidate`s (`alma_core._candidates`): they are made from the row's columns (its JSON
is read as plain data when ranking first needs it), without validation, and kept the same way; only the
few memories a retrieve returns are then validated (`Candidate.build`, once per kept candidate).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._cache import copy_memory
from .._candidates import Candidate
from .._models import Memory, MemoryType, memory_class

if TYPE_CHECKING:
    from ._lexindex import LexicalIndex

__all__ = ["ROW_COLUMNS", "ParsedMemories"]

_MODELS: dict[str, Any] = {t.value: memory_class(t) for t in MemoryType}
# The columns of a `memories` row that `candidate` reads, in its order.
ROW_COLUMNS = "id, type, agent, text, user_id, category, confidence, updated_at, data"
Row = tuple[str, str, str, str, "str | None", "str | None", float, float, str]


def _candidate(row: Row) -> Candidate:
    """The candidate of a row (`ROW_COLUMNS`); raises KeyError for an unknown type."""
    memory_id, mtype, agent, text, user_id, category, confidence, updated_at, data = row
    return Candidate.of_row(mtype, memory_id, agent, text, user_id, category, confidence, updated_at, data)


class ParsedMemories:
    """An LRU of parsed memories (at most `size`; 0 disables it). Thread-safe.

    An entry parsed in a read transaction also keeps the project's generation it was read at (every
    memory write moves it, in any process): while the generation has not moved, the row need not even
    be read again (`current`).
    """

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[str, str, Memory, int | None]] = OrderedDict()
        # candidates by "project\x1fid": a str key and the candidate itself (its row's JSON and type are its
        # own fields, the generation it was read at `kept_at`): one object the garbage collector tracks per
        # entry, not three (a retrieve keeps ~20-100 new ones; collections followed their number)
        self._rows: OrderedDict[str, Candidate] = OrderedDict()
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

    def candidate(self, project_id: str, row: Row, generation: int | None = None, tick: int | None = None) -> Candidate:
        """The candidate of a stored row (`ROW_COLUMNS`), kept while the row's JSON is unchanged (shared:
        never changed by callers). `generation`: as for `parse`; `tick`: the lexical index's, when it is
        current for the read transaction (see `current_candidates`). Raises KeyError for an unknown type."""
        made, bad = self.candidates(project_id, [row], generation, tick)
        if bad:
            raise bad[0][1]
        return made[row[0]]

    def candidates(
        self,
        project_id: str,
        rows: Iterable[Row],
        generation: int | None = None,
        tick: int | None = None,
        into: dict[str, Candidate] | None = None,
    ) -> tuple[dict[str, Candidate], list[tuple[Row, KeyError]]]:
        """`candidate` of each row, by id (added to `into` when given), under one lock; and the rows of an
        unknown type, with their error."""
        out: dict[str, Candidate] = {} if into is None else into
        bad: list[tuple[Row, KeyError]] = []
        prefix = f"{project_id}\x1f"
        with self._lock:
            items = self._rows
            for row in rows:
                key = prefix + row[0]
                hit = items.get(key)
                if hit is not None and hit.data == row[8] and hit.memory_type == row[1]:
                    items.move_to_end(key)
                else:
                    try:
                        hit = _candidate(row)
                    except KeyError as exc:
                        bad.append((row, exc))
                        continue
                    if self.size > 0:
                        items[key] = hit
                        if len(items) > self.size:
                            items.popitem(last=False)
                hit.kept_at, hit.seen = generation, tick
                out[row[0]] = hit
        return out, bad

    def current_candidates(
        self, project_id: str, ids: Iterable[str], generation: int, index: LexicalIndex | None = None, tick: int = 0
    ) -> dict[str, Candidate]:
        """The kept candidates among `ids` read at `generation` (see `current`), or, with `index` (the
        store's lexical index, current for the read transaction at its `tick`), kept at an earlier tick
        when the index has seen no write or delete of their row since (a learn moves the generation but
        rewrites a few rows: the rest stay). Those found are marked current at `generation` and `tick`."""
        out: dict[str, Candidate] = {}
        prefix = f"{project_id}\x1f"
        with self._lock:
            get = self._rows.get
            if index is None:
                for memory_id in ids:
                    hit = get(prefix + memory_id)
                    if hit is not None and hit.kept_at == generation:
                        out[memory_id] = hit
                return out
            # (the index's per-rowid ticks read inline: ~100 candidates a retrieve)
            rowid_of, version = index.ids.get(project_id, {}), index.version
            for memory_id in ids:
                hit = get(prefix + memory_id)
                if hit is None:
                    continue
                if hit.kept_at == generation or (
                    (seen := hit.seen) is not None
                    and (rowid := rowid_of.get(memory_id)) is not None
                    and version[rowid] <= seen
                ):
                    hit.kept_at, hit.seen = generation, tick
                    out[memory_id] = hit
        return out

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._rows.clear()
