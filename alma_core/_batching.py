"""`BufferedTransaction`: coalesce a batch's repeated writes into one write per memory and record.

Learning many outcomes rewrites the same heuristic, anti-pattern and evidence record once per
outcome. Wrapped in a `BufferedTransaction`, those writes stay in memory (later reads through the
wrapper see them, exactly as they would see the store's) and `flush()` writes each memory and record
once, the memories in one `PutMemories`. Any operation the buffer cannot answer from memory flushes
first, so the wrapped code sees the same results as without it. Records written through the buffer get
one `seq` each at the flush instead of one per rewrite.

With `shared=True` nothing is copied: reads return the very objects that were put (and puts keep the
caller's objects). For callers that never change an object after putting it, nor change a read one
without putting it back: the learner, whose copies and JSON round trips cost more than its logic.

`DeferredTransaction` does the same for one outcome: its memory writes go in one `PutMemories`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ._cache import copy_memory
from ._models import Memory
from .storage._base import FindMemories, GetRecord, ListRecords, Op, PutMemories, PutRecord, Record, Transaction

__all__ = ["BufferedTransaction", "DeferredTransaction"]


class BufferedTransaction:
    """A `Transaction` that holds memory and record writes until `flush()` (see the module docstring)."""

    def __init__(self, tx: Transaction, shared: bool = False) -> None:
        self.tx = tx
        self.shared = shared
        self._memories: dict[tuple[str, str], Memory] = {}
        self._records: dict[tuple[str, str, str], tuple[Record, str]] = {}  # with its metadata as JSON
        self._listed: dict[ListRecords, list[tuple[Record, str]]] = {}  # store listings, metadata as JSON
        self._peeked: dict[tuple[str, str], list[Record]] = {}  # `peek_records` answers, kept up to date

    def execute(self, op: Op) -> Any:
        if isinstance(op, PutMemories):
            for memory in op.memories:
                self._memories[(memory.project_id, memory.id)] = memory if self.shared else copy_memory(memory)
            return len(op.memories)
        if isinstance(op, PutRecord) and not op.if_absent:  # write-once puts go to the store (after a flush)
            r = op.record
            key = (r.project_id, r.namespace, r.key)
            self._records.pop(key, None)  # newest write last, like the store's seq
            self._records[key] = (r, "" if self.shared else json.dumps(r.metadata, default=str))
            peeked = self._peeked.get(key[:2])
            if peeked is not None:  # the newest first, its older write gone: what `peek_records` would build
                self._peeked[key[:2]] = [r, *(x for x in peeked if x.key != r.key)]
            return r
        if isinstance(op, GetRecord):  # a key not buffered reads the same from the store
            key = (op.project_id, op.namespace, op.key)
            return self._record(key, with_value=True) if key in self._records else self.tx.execute(op)
        if isinstance(op, ListRecords) and is_plain_listing(op):
            return self._list_records(op)
        if isinstance(op, FindMemories) and is_id_lookup(op):
            return self._find_memories(op)
        self.flush()
        return self.tx.execute(op)

    def flush(self) -> None:
        """Write what is buffered: every memory in one `PutMemories`, then each record once."""
        memories, records = list(self._memories.values()), list(self._records.values())
        self._memories.clear()
        self._records.clear()
        self._listed.clear()
        self._peeked.clear()
        if memories:
            self.tx.execute(PutMemories(memories))
        for record, _ in records:
            self.tx.execute(PutRecord(record))

    def _record(self, key: tuple[str, str, str], with_value: bool) -> Record:
        record, metadata = self._records[key]
        if self.shared:
            return record if with_value or record.value is None else replace(record, value=None)
        return _fresh(record, metadata, record.value if with_value else None)

    def peek_records(self, project_id: str, namespace: str) -> list[Record]:
        """The namespace's records without their values, as `ListRecords` would list them, but shared,
        not copied: for callers that only read them (the learner's best-alternative scan, once per
        outcome, would otherwise decode every record's metadata each time). The list is shared too."""
        peeked = self._peeked.get((project_id, namespace))
        if peeked is not None:  # kept current by `execute` (the learner asks once per failing outcome)
            return peeked
        op = ListRecords(project_id, namespace, with_values=False)
        stored = self._listed.get(op)
        if stored is None:
            stored = self._listed[op] = [(r, json.dumps(r.metadata)) for r in self.tx.execute(op)]
        mine = [self._records[k][0] for k in reversed(self._records) if k[0] == project_id and k[1] == namespace]
        keys = {r.key for r in mine}
        peeked = self._peeked[(project_id, namespace)] = mine + [r for r, _ in stored if r.key not in keys]
        return peeked

    def _list_records(self, op: ListRecords) -> list[Record]:
        """The namespace as the store would list it after a flush; every record a fresh copy (the
        store's listing is kept with its metadata as JSON, read once per flush)."""
        mine = [k for k in reversed(self._records) if k[0] == op.project_id and k[1] == op.namespace]
        stored = self._listed.get(op)
        if stored is None:
            stored = self._listed[op] = [(r, json.dumps(r.metadata)) for r in self.tx.execute(op)]
        keys = {k[2] for k in mine}
        return [self._record(k, op.with_values) for k in mine] + [
            _fresh(r, metadata, r.value) for r, metadata in stored if r.key not in keys
        ]

    def _find_memories(self, op: FindMemories) -> list[Memory]:
        ids, project = op.filter.ids or (), op.filter.project_id
        if self.shared and op.with_embeddings and len(ids) == 1 and (project, ids[0]) in self._memories:
            return [self._memories[(project, ids[0])]][: op.limit]  # the learner's lookup of one memory
        copy = (lambda m: m) if self.shared and op.with_embeddings else copy_memory
        mine = [copy(self._memories[(project, i)]) for i in ids if (project, i) in self._memories]
        if not mine:
            return self.tx.execute(op)  # type: ignore[no-any-return]
        for memory in mine:
            if not op.with_embeddings:
                memory.embedding = None
        rest = tuple(i for i in ids if (project, i) not in self._memories)
        found = self.tx.execute(replace(op, filter=replace(op.filter, ids=rest), limit=None)) if rest else []
        out = sorted([*mine, *found], key=lambda m: m.created_at, reverse=op.descending)
        return out[: op.limit] if op.limit is not None else out


def _fresh(r: Record, metadata: str, value: bytes | None) -> Record:
    """A copy of `r` with `value` and its metadata decoded from JSON (no container shared)."""
    return Record(r.project_id, r.namespace, r.key, value, json.loads(metadata), r.seq, r.created_at,
                  r.updated_at, r.expires_at)  # fmt: skip


def is_plain_listing(op: ListRecords) -> bool:
    """A whole namespace, newest first, unfiltered: what the buffer can merge its records into."""
    return op == ListRecords(op.project_id, op.namespace, with_values=op.with_values)


def is_id_lookup(op: FindMemories) -> bool:
    """Memories by id and nothing else (the fields compared one by one: a filter built to compare with
    cost more than the rest of a learn's lookups)."""
    f = op.filter
    return (
        f.ids is not None and op.order_by == "created_at" and f.agents is None and f.types is None
        and f.categories is None and f.user_id is None and f.workflow_id is None and f.created_before is None
        and f.updated_before is None and f.created_after is None and f.confidence_below is None
    )  # fmt: skip


class DeferredTransaction:
    """A single outcome's transaction: its memory writes wait for `flush()` (or for the next operation
    that could see them: a lookup of a pending id, a search) and then go in one `PutMemories`, so one
    learn writes the outcome, its heuristic and its anti-pattern in one statement. Each memory is put
    once per outcome and not changed after, so nothing is copied; records pass straight through."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self._pending: list[Memory] = []

    def execute(self, op: Op) -> Any:
        if isinstance(op, PutMemories):
            self._pending.extend(op.memories)
            return len(op.memories)
        if isinstance(op, FindMemories) and is_id_lookup(op):
            pending = {(m.project_id, m.id) for m in self._pending}
            if any((op.filter.project_id, i) in pending for i in op.filter.ids or ()):
                self.flush()
        elif not isinstance(op, (GetRecord, ListRecords, PutRecord)):  # it may see the memories table
            self.flush()
        return self.tx.execute(op)

    def flush(self) -> None:
        if self._pending:
            memories, self._pending = self._pending, []
            self.tx.execute(PutMemories(memories))
