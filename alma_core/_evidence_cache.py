"""`EvidenceCache`: what the learner read and wrote in its last transaction, kept for the next one.

A learn reads the evidence record of its strategy, the heuristic and anti-pattern that record backs
and, for anti-patterns, every strategy record of its task type; then it writes most of them back. While
nothing else writes to the store between two learns, those reads would return exactly what the
previous learn wrote, so the cache answers them instead. The store says when that holds: `StoreVersion`
gives a token of its state when the transaction began and one for once it commits; a cache whose
`version` is not the new transaction's `before` is dropped. A backend that cannot tell cheaply answers
None, and the learner reads as before (PostgreSQL, Chroma).

`CachedTransaction` wraps the write transaction: reads the cache holds are answered from it with the
very objects (shared: the learner never changes one without putting it back, as with
`BufferedTransaction(shared=True)`), writes go to the store and into the cache (write-through), and
everything else goes to the store. Any other write, or a transaction that does not commit, drops the cache.
"""

from __future__ import annotations

import threading
from typing import Any

from ._batching import is_id_lookup, is_plain_listing
from ._models import Memory, MemoryType
from .storage._base import (
    WRITE_OPS,
    FindMemories,
    GetRecord,
    ListRecords,
    Op,
    PutMemories,
    PutRecord,
    Record,
    StoreVersion,
    Transaction,
)

__all__ = ["CacheSlot", "CachedTransaction", "EvidenceCache"]

MAX_ENTRIES = 20_000  # records, listed records and memories a cache holds before it starts over
_DERIVED = (MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN)


class EvidenceCache:
    """Records, namespace listings and derived memories as the store held them at `version`."""

    def __init__(self, version: Any = None) -> None:
        self.version = version
        self.records: dict[tuple[str, str, str], Record | None] = {}  # GetRecord answers (None: absent)
        self.listings: dict[tuple[str, str], list[Record]] = {}  # a namespace's records, no values, newest first
        self.memories: dict[tuple[str, str], Memory | None] = {}  # id lookups (None: absent)

    def full(self) -> bool:
        listed = sum(len(listing) for listing in self.listings.values())
        return len(self.records) + len(self.memories) + listed > MAX_ENTRIES


class CacheSlot:
    """Where a learner keeps its cache between transactions. Taken, not shared: a concurrent learn starts
    its own, and a transaction that fails never gives its cache back."""

    def __init__(self) -> None:
        self._cache: EvidenceCache | None = None
        self._lock = threading.Lock()

    def take(self, tx: Transaction) -> EvidenceCache | None:
        """The kept cache if the store has not changed since, else a new one; None when the store
        cannot tell. Ready for the state `tx` will commit."""
        version = tx.execute(StoreVersion())
        with self._lock:
            cache, self._cache = self._cache, None
        if version is None:
            return None
        before, after = version
        if cache is None or cache.version != before or cache.full():
            cache = EvidenceCache()
        cache.version = after
        return cache

    def keep(self, cache: EvidenceCache | None) -> None:
        """After the commit: `cache` holds the store's state as its transaction left it."""
        if cache is not None:
            with self._lock:
                self._cache = cache


class CachedTransaction:
    """A write `Transaction` whose learner reads come from an `EvidenceCache` (see the module docstring)."""

    def __init__(self, tx: Transaction, cache: EvidenceCache) -> None:
        self.tx = tx
        self.cache = cache

    def execute(self, op: Op) -> Any:
        if isinstance(op, GetRecord):
            return self._get_record(op)
        if isinstance(op, ListRecords) and not op.with_values and is_plain_listing(op):
            return self._list_records(op)
        if isinstance(op, FindMemories) and op.with_embeddings and is_id_lookup(op) and len(op.filter.ids or ()) == 1:
            return self._find_memory(op)
        if isinstance(op, PutRecord):
            return self._put_record(op)
        if isinstance(op, PutMemories):
            return self._put_memories(op)
        if isinstance(op, WRITE_OPS):  # a delete, or records put without being read back
            self._drop()
        return self.tx.execute(op)

    def _get_record(self, op: GetRecord) -> Record | None:
        key = (op.project_id, op.namespace, op.key)
        if key in self.cache.records:
            return self.cache.records[key]
        found: Record | None = self.tx.execute(op)
        if found is None or found.expires_at is None:  # one that expires may vanish without a write
            self.cache.records[key] = found
        return found

    def _list_records(self, op: ListRecords) -> list[Record]:
        """A whole namespace without values: the caller only reads the list."""
        listing = self.cache.listings.get((op.project_id, op.namespace))
        if listing is None:
            listing = self.tx.execute(op)
            if all(r.expires_at is None for r in listing):
                self.cache.listings[(op.project_id, op.namespace)] = listing
        return listing

    def _find_memory(self, op: FindMemories) -> list[Memory]:
        key = (op.filter.project_id, (op.filter.ids or ("",))[0])
        if key in self.cache.memories:
            memory = self.cache.memories[key]
            return [] if memory is None else [memory]
        memories: list[Memory] = self.tx.execute(op)
        self.cache.memories[key] = memories[0] if memories else None
        return memories

    def _put_memories(self, op: PutMemories) -> int:
        count: int = self.tx.execute(op)
        for memory in op.memories:
            key = (memory.project_id, memory.id)
            if memory.memory_type in _DERIVED or key in self.cache.memories:
                self.cache.memories[key] = memory
        return count

    def _put_record(self, op: PutRecord) -> Record:
        cache = self.cache
        stored: Record = self.tx.execute(op)
        r = stored
        key, ns = (r.project_id, r.namespace, r.key), (r.project_id, r.namespace)
        if op.if_absent or r.expires_at is not None:
            cache.records.pop(key, None)
            cache.listings.pop(ns, None)
            return stored
        cache.records[key] = stored
        listing = cache.listings.get(ns)
        if listing is not None:  # its new seq is the namespace's highest: first, newest first
            listed = Record(r.project_id, r.namespace, r.key, None, r.metadata, r.seq, r.created_at, r.updated_at)
            cache.listings[ns] = [listed, *(x for x in listing if x.key != r.key)]
        return stored

    def _drop(self) -> None:
        self.cache.records.clear()
        self.cache.listings.clear()
        self.cache.memories.clear()
