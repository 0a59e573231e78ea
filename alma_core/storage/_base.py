"""The storage protocol: typed operations run inside a transaction.

A backend implements four things: `setup()`, `transaction()` (whose `execute(op)` runs one of the
operations below), `generation(project_id)` and `close()`. Everything else ALMA does (scoring, scopes,
sharing, learning, workflows, LangGraph checkpoints) is built once, in the core, from these operations.

Two spaces live in a store:
- memories: the five memory types, with a vector (dense search) and text (lexical search);
- records: a generic keyed, versioned space `(project_id, namespace, key) -> value, metadata, seq`,
  where `seq` is a strict per-namespace sequence assigned by the store. Checkpoints, artifacts,
  sessions, handoffs, work items, chat histories and LangGraph checkpoints are records.

Every operation carries a project_id: nothing crosses projects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

from .._candidates import Candidate
from .._config import agent_key
from .._models import Memory, MemoryType

__all__ = [
    "BadRows",
    "BaseStorage",
    "CountMemories",
    "DeleteMemories",
    "DeleteRecords",
    "FindMemories",
    "GetRecord",
    "Head",
    "Linked",
    "ListLinked",
    "ListNamespaces",
    "ListRecords",
    "MemoryFilter",
    "Op",
    "PutMemories",
    "PutRecord",
    "PutRecords",
    "Record",
    "SearchHits",
    "SearchMemories",
    "SearchRecords",
    "Storage",
    "StoreVersion",
    "Transaction",
    "WriteIf",
    "expand_linked",
    "expand_write_if",
    "linked_spaces",
]

SYSTEM_PROJECT = "__alma__"  # store-wide metadata (embedder name and dimension) lives here

_log = logging.getLogger("alma_core.storage")


class BadRows:
    """Stored memories a backend could not decode (written by an older version, or edited by hand).

    Reads skip them, so one bad row never makes the rest unreadable; each is logged once and counted
    here, and `ALMA.repair()` (`alma repair`) quarantines them. Thread-safe."""

    _KEEP = 10_000  # rows remembered for repair (the count keeps going)

    def __init__(self) -> None:
        self.count = 0  # reads that skipped a bad row
        self.rows: dict[tuple[str, str], tuple[str, str]] = {}  # (project, id) -> (raw data, error)
        self._lock = threading.Lock()

    def report(self, project_id: str, memory_id: str, raw: Any, error: BaseException) -> None:
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        with self._lock:
            self.count += 1
            if (project_id, memory_id) in self.rows or len(self.rows) >= self._KEEP:
                return
            text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
            self.rows[(project_id, memory_id)] = (text, why)
        _log.warning("skipped unreadable memory %s of project %s (%s); run `alma repair`", memory_id, project_id, why)

    def take(self, project_id: str) -> dict[str, tuple[str, str]]:
        """The bad rows seen in one project, forgotten here (repair has dealt with them)."""
        with self._lock:
            mine = {k[1]: v for k, v in self.rows.items() if k[0] == project_id}
            for memory_id in mine:
                del self.rows[(project_id, memory_id)]
            return mine


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """Which memories an operation applies to. Every None means "any"."""

    project_id: str
    agents: tuple[str, ...] | None = None
    types: tuple[MemoryType, ...] | None = None
    ids: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    user_id: str | None = None
    workflow_id: str | None = None
    created_before: datetime | None = None
    updated_before: datetime | None = None
    created_after: datetime | None = None  # inclusive: with created_before, a time window
    confidence_below: float | None = None

    def __post_init__(self) -> None:
        if self.agents is not None:  # agent names are case-insensitive (see _scopes)
            object.__setattr__(self, "agents", tuple(agent_key(a) for a in self.agents))

    def narrowed(self, **changes: Any) -> MemoryFilter:
        """This filter with some fields changed, as `dataclasses.replace` would make it, without
        normalising the agents again (they already are): a retrieve narrows its filter per type."""
        narrow = object.__new__(MemoryFilter)
        for name in _FILTER_FIELDS:
            object.__setattr__(narrow, name, changes[name] if name in changes else getattr(self, name))
        return narrow

    def scalar_conditions(self) -> list[tuple[str, str, Any]]:
        """The single-value conditions as (column, "=" | "<" | ">=", value), for each backend to render."""
        stamps = [("created_at", "<", self.created_before), ("updated_at", "<", self.updated_before),
                  ("created_at", ">=", self.created_after)]  # fmt: skip
        found = [("user_id", "=", self.user_id), ("workflow_id", "=", self.workflow_id),
                 *((column, op, t.timestamp()) for column, op, t in stamps if t is not None),
                 ("confidence", "<", self.confidence_below)]  # fmt: skip
        return [(column, op, value) for column, op, value in found if value is not None]


_FILTER_FIELDS = tuple(f.name for f in fields(MemoryFilter))


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of the record space. `seq` and timestamps are assigned by the store on write."""

    project_id: str
    namespace: str
    key: str
    value: bytes | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None


# ---- memory operations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutMemories:
    """Insert or replace memories (by id). Their embeddings must be set."""

    memories: Sequence[Memory]


@dataclass(frozen=True, slots=True)
class DeleteMemories:
    """Delete every memory matching the filter; returns how many went."""

    filter: MemoryFilter


@dataclass(frozen=True, slots=True)
class FindMemories:
    """Memories matching the filter, ordered; returns a list of models (embeddings loaded if asked)."""

    filter: MemoryFilter
    limit: int | None = None
    order_by: Literal["created_at", "updated_at", "confidence"] = "created_at"
    descending: bool = True
    with_embeddings: bool = False


@dataclass(frozen=True, slots=True)
class CountMemories:
    """Counts grouped by type and agent: returns {(agent, type): n}."""

    filter: MemoryFilter


@dataclass(frozen=True, slots=True)
class SearchMemories:
    """One retrieve's whole question, answered by the backend in as few statements as it can.

    Among the memories matching `filter` (agents, types, categories, time window...), the `k` best of
    each type by cosine similarity to `vector` (None: no dense search) and by the store's full-text rank
    of `terms` (empty: no lexical search; the store keeps the rarest of them within its postings budget,
    `_lexical.choose_terms`). `filter.user_id` applies to the types in `user_types` only (None: to all).
    Returns `SearchHits`: raw scores, best first, per type, and the candidate memories themselves
    (vectors loaded when `with_embeddings`). Fusion and ranking are the core's, never the backend's.
    `shared`: the caller only reads the candidates (it copies those it changes or returns), so the store
    may hand out memories it keeps for later reads instead of building each one (SQLite does). `rows`:
    the caller ranks `Candidate`s and builds only the memories it returns, so the store may answer with
    `SearchHits.candidates` made from its rows (`Candidate.of_row`) instead of `SearchHits.memories`.
    """

    filter: MemoryFilter
    vector: np.ndarray | None = None
    terms: tuple[str, ...] = ()
    k: int = 50
    user_types: tuple[MemoryType, ...] | None = None
    with_embeddings: bool = False
    shared: bool = False
    rows: bool = False


Hits = list[tuple[str, float]]


@dataclass(slots=True)
class SearchHits:
    """What `SearchMemories` returns: per type, the dense and the lexical candidates `[(id, score)]`
    best first (cosine similarity; the backend's full-text score, higher is better), and every
    candidate memory by id: as models in `memories`, or (when the search asked for `rows`) as
    `Candidate`s in `candidates`, which the caller then reads instead."""

    dense: dict[MemoryType, Hits] = field(default_factory=dict)
    lexical: dict[MemoryType, Hits] = field(default_factory=dict)
    memories: dict[str, Memory] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)

    def flat(self, kind: Literal["dense", "lexical"], k: int | None = None) -> Hits:
        """One list over every type, best first (ties by id), at most `k` long."""
        hits = [hit for per_type in getattr(self, kind).values() for hit in per_type]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]


def user_filter(f: MemoryFilter, memory_type: MemoryType, user_types: tuple[MemoryType, ...] | None) -> str | None:
    """The user a search keeps for `memory_type` (see `SearchMemories.user_types`)."""
    return f.user_id if user_types is None or memory_type in user_types else None


# ---- record operations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutRecord:
    """Insert or replace a record; returns the stored Record with its new seq.

    With `if_absent=True` an existing (unexpired) record of that key is kept and returned unchanged:
    write-once semantics in one operation, atomic without a read before the write.
    """

    record: Record
    if_absent: bool = False


@dataclass(frozen=True, slots=True)
class PutRecords:
    """Insert or replace many records at once (one statement where the backend can): each gets its
    namespace's next seq, as with `PutRecord`, but nothing is read back (returns None). The write path
    of callers that only append, such as a LangGraph checkpoint with its channel blobs. Records apply
    in order, as that many `PutRecord`s would. `if_absent=True`: a live record of a key is kept.
    `sequenced=False`: the records need no seq (their keys order them, such as uuid6 checkpoint ids),
    so the backend may store 0 and skip the namespace's sequence upkeep (SQLite and PostgreSQL do; others
    may number them).
    """

    records: tuple[Record, ...]
    if_absent: bool = False
    sequenced: bool = True


@dataclass(frozen=True, slots=True)
class GetRecord:
    """Returns the Record, or None (expired records count as absent)."""

    project_id: str
    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class ListRecords:
    """Records of a namespace (or of every namespace starting with it), newest seq first by default.

    `where` matches top-level metadata keys by equality. `order_by="key"` orders by key instead of seq
    (for keys that sort by time, such as uuid6 ids); `before_key` keeps keys that sort below it.
    `keys` keeps only these keys (many records by key in one statement); `namespaces`, when set, reads
    the records of these namespaces instead of `namespace` (many small namespaces in one statement).
    `per_namespace` (a plan hint, with `prefix` and a `limit`): the prefix holds a few namespaces of
    many records each (a thread's checkpoint namespaces), so the backend reads each namespace in its
    index's order up to `limit + offset` records and merges them, instead of sorting every record under
    the prefix. The records returned are the same; a backend may ignore it.
    """

    project_id: str
    namespace: str
    prefix: bool = False
    where: dict[str, Any] | None = None
    before_seq: int | None = None
    before_key: str | None = None
    order_by: Literal["seq", "key"] = "seq"
    updated_before: float | None = None
    limit: int | None = None
    offset: int = 0
    descending: bool = True
    with_values: bool = True
    keys: tuple[str, ...] | None = None
    namespaces: tuple[str, ...] | None = None
    per_namespace: bool = False


@dataclass(frozen=True, slots=True)
class ListLinked:
    """`records` and, in the same read, what each record found links to: one statement on a backend
    with the "linked" capability (PostgreSQL, SQLite), where reading a record and then what it names would
    cost a round trip per step. For a found record of namespace `ns` (which starts with `base`) and key
    `key`, with `rest = ns[len(base):]`:

    - its children: the live records of namespace `children + rest + "/" + key` (a checkpoint's writes);
    - its references: the live records of namespace `refs + rest` whose keys its metadata names under
      the path `refs_path`: a JSON list of keys, or an object whose values are keys (empty ones are
      skipped), such as a checkpoint's channel blobs or the rows holding its channel values.

    Returns `Linked`: each record's children come in key order on every backend. A backend without the
    capability answers it from `ListRecords` (`expand_linked`).
    """

    records: ListRecords
    base: str
    children: str | None = None
    refs: str | None = None
    refs_path: tuple[str, ...] = ()


@dataclass(slots=True)
class Linked:
    """What `ListLinked` returns: the records found, in `ListRecords` order; the children of each by
    their namespace, in key order; the referenced records by (namespace, key)."""

    records: list[Record] = field(default_factory=list)
    children: dict[str, list[Record]] = field(default_factory=dict)
    refs: dict[tuple[str, str], Record] = field(default_factory=dict)


def linked_spaces(op: ListLinked, record: Record) -> tuple[str | None, str | None, list[str]]:
    """A found record's children namespace, references namespace and referenced keys (see `ListLinked`)."""
    if not record.namespace.startswith(op.base):
        return None, None, []
    rest = record.namespace[len(op.base) :]
    children = None if op.children is None else f"{op.children}{rest}/{record.key}"
    if op.refs is None:
        return children, None, []
    keys: Any = record.metadata
    for part in op.refs_path:
        keys = keys.get(part) if isinstance(keys, dict) else None
    if isinstance(keys, dict):
        keys = list(keys.values())
    listed = [k for k in keys if isinstance(k, str) and k] if isinstance(keys, list) else []
    return children, op.refs + rest, listed


def _key(record: Record) -> str:
    return record.key


def expand_linked(op: ListLinked, chunk: int = 500) -> Generator[list[Any], list[Any], Linked]:
    """`op` answered with `ListRecords` in two steps (a plan: yields ops, receives their results), for
    backends without the "linked" capability. `chunk`: namespaces or keys per `ListRecords`."""
    (records,) = yield [op.records]
    out = Linked(list(records))
    spaces: list[str] = []
    wanted: dict[str, set[str]] = {}
    for r in out.records:
        children, refs, keys = linked_spaces(op, r)
        if children is not None:
            spaces.append(children)
        if refs is not None and keys:
            wanted.setdefault(refs, set()).update(keys)
    pid = op.records.project_id
    ops: list[Any] = [
        ListRecords(pid, "", namespaces=tuple(spaces[i : i + chunk])) for i in range(0, len(spaces), chunk)
    ]
    n_children = len(ops)
    for namespace, listed in wanted.items():
        ordered = sorted(listed)
        ops += [ListRecords(pid, namespace, keys=tuple(ordered[i : i + chunk])) for i in range(0, len(ordered), chunk)]
    if not ops:
        return out
    results = yield ops
    for found in results[:n_children]:
        for r in found:
            out.children.setdefault(r.namespace, []).append(r)
    for kids in out.children.values():
        kids.sort(key=_key)
    for found in results[n_children:]:
        out.refs.update(((r.namespace, r.key), r) for r in found)
    return out


@dataclass(frozen=True, slots=True)
class DeleteRecords:
    """Delete records of a namespace (or namespaces starting with it), all or the given keys."""

    project_id: str
    namespace: str
    keys: tuple[str, ...] | None = None
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Head:
    """A condition of `WriteIf`: the newest live record (greatest key) of a namespace is one of `keys`;
    None among `keys`: the namespace may hold no live record."""

    project_id: str
    namespace: str
    keys: tuple[str | None, ...]

    def holds(self, head: str | None) -> bool:
        return head in self.keys


@dataclass(frozen=True, slots=True)
class WriteIf:
    """Compare and set: run the writes `ops` only if every condition holds, checked in the same write
    transaction (which excludes every other write, in any process). Returns the head key each condition
    found (None: no live record); the writes ran if and only if each head holds. A backend with the
    "write_if" capability runs it alone in one round trip (PostgreSQL: one pipeline); on any other,
    `expand_write_if` runs it as a read, then the writes, in the caller's write transaction."""

    conditions: tuple[Head, ...]
    ops: tuple[Op, ...]

    def holds(self, heads: Sequence[str | None]) -> bool:
        return all(c.holds(h) for c, h in zip(self.conditions, heads, strict=True))


def expand_write_if(op: WriteIf) -> Generator[list[Any], list[Any], tuple[str | None, ...]]:
    """`op` as plain operations (a plan step of reads, then one of writes if the heads hold), for
    backends without the "write_if" capability; run it inside one write transaction."""
    found = yield [
        ListRecords(c.project_id, c.namespace, order_by="key", limit=1, with_values=False) for c in op.conditions
    ]
    heads = tuple(rows[0].key if rows else None for rows in found)
    if op.holds(heads):
        yield list(op.ops)
    return heads


@dataclass(frozen=True, slots=True)
class ListNamespaces:
    """Distinct namespaces starting with `prefix`, sorted."""

    project_id: str
    prefix: str = ""
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SearchRecords:
    """Live records of every namespace starting with `namespace` whose JSON value (an object) matches
    `filter`, newest seq first; with `vector`, ranked by cosine similarity to it (records without a
    vector come last, unscored). Returns `[(Record, score or None)]` for the page `offset:offset + limit`.

    A record's vector is the value (float32 bytes) of the record with the same key in the namespace
    `vectors + <the record's namespace after the prefix>`: kept apart, the searched rows stay small.
    `filter` is LangGraph's: `{"k": v}` equality, nested dicts for nested keys, and per-key operators
    `{"k": {"$gt": 3}}` (`$eq $ne $gt $gte $lt $lte`). Backends filter in their query where they can.
    """

    project_id: str
    namespace: str
    filter: dict[str, Any] | None = None
    vector: np.ndarray | None = None
    vectors: str | None = None
    limit: int = 10
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StoreVersion:
    """In a write transaction: `(before, after)`, tokens of the store's whole state when this transaction
    began and once it commits (if nothing else writes in between); in a read transaction `(now, now)`;
    None when the backend cannot tell cheaply. A token read before a read is never newer than what the
    read sees, so a cache stamped with it is dropped, never wrongly kept, when a commit falls in between.
    A cache of what a transaction read and wrote is still right in a later transaction whose `before`
    equals that transaction's `after`: nothing was written in between, by any process (the learner's
    evidence cache, `alma_core._evidence_cache`)."""


Op = (
    PutMemories
    | DeleteMemories
    | FindMemories
    | CountMemories
    | SearchMemories
    | PutRecord
    | PutRecords
    | GetRecord
    | ListRecords
    | ListLinked
    | DeleteRecords
    | ListNamespaces
    | SearchRecords
    | StoreVersion
    | WriteIf
)

WRITE_OPS = (PutMemories, DeleteMemories, PutRecord, PutRecords, DeleteRecords, WriteIf)


class Transaction(Protocol):
    """Operations run through one transaction see each other's writes and commit together."""

    def execute(self, op: Op) -> Any: ...


class Storage(Protocol):
    """What a backend provides. See the module docstring."""

    name: str
    capabilities: frozenset[str]

    def setup(self) -> None: ...

    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[Transaction]: ...

    def batch(self, ops: Sequence[Op]) -> list[Any]: ...

    async def abatch(self, ops: Sequence[Op]) -> list[Any]: ...

    def generation(self, project_id: str) -> int: ...

    def close(self) -> None: ...


class BaseStorage(ABC):
    """Builds `batch` / `abatch` on `transaction`. Backends override `abatch` when they have a native
    async driver; the default runs the batch on a worker thread so the event loop never blocks."""

    name: str = "base"
    capabilities: frozenset[str] = frozenset()
    _bad_rows: BadRows | None = None

    @property
    def bad_rows(self) -> BadRows:
        """Rows reads had to skip (see `BadRows`)."""
        if self._bad_rows is None:
            self._bad_rows = BadRows()
        return self._bad_rows

    @abstractmethod
    def setup(self) -> None: ...

    @abstractmethod
    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[Transaction]: ...

    @abstractmethod
    def generation(self, project_id: str) -> int:
        """A number that changes whenever anything of the project changes, in any process."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once `close()` has run: every later call raises `StorageError` (background workers
        use it to tell a closed store from a failing one)."""
        return bool(getattr(self, "_closed", False))

    def batch(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction (a write transaction if any op writes)."""
        write = any(isinstance(op, WRITE_OPS) for op in ops)
        with self.transaction(write=write) as tx:
            return [tx.execute(op) for op in ops]

    def execute(self, op: Op) -> Any:
        return self.batch([op])[0]

    async def abatch(self, ops: Sequence[Op]) -> list[Any]:
        return await asyncio.to_thread(self.batch, ops)

    async def aexecute(self, op: Op) -> Any:
        return (await self.abatch([op]))[0]

    async def ageneration(self, project_id: str) -> int:
        """`generation` without blocking the event loop (a worker thread unless the backend overrides it)."""
        return await asyncio.to_thread(self.generation, project_id)

    def __enter__(self) -> BaseStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
