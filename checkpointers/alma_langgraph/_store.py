"""`AlmaStore`: LangGraph's `BaseStore` over ALMA's record space, and ALMA's memories as a namespace.

- Items of namespace ("a", "b") are records of namespace "lgs/a/b/" (labels escaped), key = item key,
  value = the item's JSON, metadata = its TTL; its embedding (float32, from `alma.embedder`) is the
  record of the same key under "lgv/a/b/". A search is one `SearchRecords` op: the store filters in its
  query and ranks by cosine similarity to the embedded query (SQLite: from a cached vector matrix).
- Reads run in a read transaction (they never wait on a writer); writes, if any, in one write
  transaction after them.
- `("alma", "memories", <agent>)` is ALMA's memory of that agent, read-only: a search there is
  `alma.retrieve(query, agent)`, so it returns exactly what the agent's scopes let it read (its own
  memories, what it inherits and what is shared with it), ranked by ALMA's hybrid retrieval.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from alma_core import ALMA, SerializationError, ValidationError
from alma_core.storage import (
    DeleteRecords,
    GetRecord,
    ListNamespaces,
    PutRecord,
    Record,
    SearchRecords,
    encode_vector,
    matches_filter,
)
from alma_core.storage import Op as StorageOp

from ._layout import Plan, arun, escape, run, unescape

__all__ = ["MEMORY_NAMESPACE", "AlmaStore"]

STORE = "lgs/"
VECTORS = "lgv/"  # an item's vector: a record of the same key under "lgv/<labels>/" (float32 bytes)
MEMORY_NAMESPACE = ("alma", "memories")  # + (agent,): ALMA's memories, read through the agent's scopes


def _ns(namespace: tuple[str, ...]) -> str:
    return STORE + "".join(f"{escape(label)}/" for label in namespace)


def _labels(namespace: str) -> tuple[str, ...]:
    return tuple(unescape(p) for p in namespace[len(STORE) :].split("/")[:-1])


def _expires(ttl_minutes: float | None, now: float) -> float | None:
    """When an item with this TTL (LangGraph counts minutes) expires, as a timestamp; None: never."""
    return now + float(ttl_minutes) * 60 if ttl_minutes is not None else None


def _stamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _namespace_matches(condition: MatchCondition, labels: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(labels) < len(path):
        return False
    part = labels[: len(path)] if condition.match_type == "prefix" else labels[len(labels) - len(path) :]
    return all(p == "*" or p == label for p, label in zip(path, part, strict=True))


class AlmaStore(BaseStore):
    """`graph.compile(checkpointer=AlmaSaver(alma), store=AlmaStore(alma))`. See the module docstring."""

    supports_ttl = True

    def __init__(self, alma: ALMA, *, ttl: TTLConfig | None = None, index: bool = True) -> None:
        self.alma = alma
        self.ttl_config = ttl
        self.index = index  # embed items for query search (False: filter-only search, no embedder calls)
        from ._store_migrations import migrate_store  # (imports this module)

        migrate_store(alma.storage, alma.project_id)  # items of older versions: once per project

    # ---- the two BaseStore methods --------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Reads in a read transaction (never waiting on a writer), then the writes, if any, in one
        write transaction."""
        ops = list(ops)
        prepared = self._prepare(ops)
        plan = self._plan(ops, prepared)
        try:
            reads = next(plan)
            writes = plan.send(run(self.alma.storage, _step(reads), write=False) if reads else [])
            plan.send(self.alma.storage.batch(writes) if writes else [])
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        raise AssertionError("a store plan has two steps: reads, writes")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        prepared = await asyncio.to_thread(self._prepare, ops)  # embedding and ALMA retrieval
        return await arun(self.alma.storage, self._plan(ops, prepared))

    # ---- preparation outside the transaction: embeddings, memory searches -----------------------

    def _prepare(self, ops: Sequence[Op]) -> dict[int, Any]:
        prepared: dict[int, Any] = {}
        texts: dict[int, str] = {}
        for i, op in enumerate(ops):
            _check(op)
            if isinstance(op, PutOp) and op.value is not None:
                if op.namespace[:2] == MEMORY_NAMESPACE:
                    raise ValidationError("the ('alma', 'memories', ...) namespace is read-only; use ALMA.learn")
                if self.index and op.index is not False:
                    texts[i] = _text(op.value, op.index)
            elif isinstance(op, SearchOp) and op.namespace_prefix[:2] == MEMORY_NAMESPACE:
                prepared[i] = self._memory_search(op)
            elif isinstance(op, SearchOp) and op.query and self.index:
                texts[i] = op.query
        if texts:
            keys = list(texts)
            docs = [k for k in keys if isinstance(ops[k], PutOp)]
            queries = [k for k in keys if isinstance(ops[k], SearchOp)]
            if docs:
                vectors = self.alma.embedder.embed_documents([texts[k] for k in docs])
                prepared.update({k: np.asarray(v, dtype=np.float32) for k, v in zip(docs, vectors, strict=True)})
            for k in queries:
                prepared[k] = np.asarray(self.alma.embedder.embed_query(texts[k]), dtype=np.float32)
        return prepared

    def _memory_search(self, op: SearchOp) -> list[SearchItem]:
        if len(op.namespace_prefix) < 3:
            raise ValidationError("search ('alma', 'memories', <agent>) with an agent name")
        agent = op.namespace_prefix[2]
        if not op.query:
            memories = self.alma.list_memories(agent=agent, limit=op.offset + op.limit)
        else:
            memories = list(self.alma.retrieve(op.query, agent, top_k=max(1, min(op.offset + op.limit, 1000))))
            memories.sort(key=lambda m: -(m.score or 0.0))
        items = [
            SearchItem(
                namespace=(*MEMORY_NAMESPACE, agent), key=m.id, value={**m.to_dict(), "text": m.text},
                created_at=m.created_at, updated_at=m.updated_at, score=m.score,
            )
            for m in memories
        ]  # fmt: skip
        if op.filter:
            items = [it for it in items if all(matches_filter(it.value.get(k), v) for k, v in op.filter.items())]
        return items[op.offset : op.offset + op.limit]

    # ---- the plan: reads, then writes ----------------------------------------------------------

    def _plan(self, ops: Sequence[Op], prepared: dict[int, Any]) -> Plan[list[Result]]:
        pid = self.alma.project_id
        reads: dict[int, StorageOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                reads[i] = GetRecord(pid, _ns(op.namespace), op.key)
            elif isinstance(op, SearchOp) and op.namespace_prefix[:2] != MEMORY_NAMESPACE:
                prefix = _ns(op.namespace_prefix)
                reads[i] = SearchRecords(pid, prefix, op.filter or None, prepared.get(i), _vectors_ns(prefix),
                                         limit=op.limit, offset=op.offset)  # fmt: skip
            elif isinstance(op, ListNamespacesOp):
                reads[i] = ListNamespaces(pid, STORE)
        answers = yield list(reads.values())
        found = dict(zip(reads, answers, strict=True))
        results: list[Result] = []
        refresh: dict[tuple[str, str], Record] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                record = found[i]
                results.append(_item(record) if record else None)
                if record and self._refresh(op.refresh_ttl):
                    refresh[(record.namespace, record.key)] = record
            elif isinstance(op, SearchOp):
                if op.namespace_prefix[:2] == MEMORY_NAMESPACE:
                    results.append(prepared[i])
                    continue
                results.append([_hit(r, score) for r, score in found[i]])
                if self._refresh(op.refresh_ttl):
                    refresh.update({(r.namespace, r.key): r for r, _ in found[i]})
            elif isinstance(op, ListNamespacesOp):
                results.append(_list_namespaces(op, found[i]))
            else:
                results.append(None)
        writes: dict[tuple[str, str], StorageOp | list[StorageOp]] = {}
        now = time.time()
        for record in refresh.values():
            expires = _expires(record.metadata.get("ttl"), now)
            if expires is not None:
                writes[(record.namespace, record.key)] = PutRecord(
                    Record(pid, record.namespace, record.key, record.value, record.metadata,
                           created_at=record.created_at, updated_at=record.updated_at, expires_at=expires)
                )  # fmt: skip
        for i, op in enumerate(ops):
            if isinstance(op, PutOp):
                writes[(_ns(op.namespace), op.key)] = self._put(op, prepared.get(i), now)
        yield [w for ws in writes.values() for w in (ws if isinstance(ws, list) else [ws])]
        return results

    def _refresh(self, asked: bool | None) -> bool:
        if asked is not None:
            return asked
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def _put(self, op: PutOp, vector: np.ndarray | None, now: float) -> list[StorageOp]:
        """The item's record and its vector's (a record under VECTORS, so searched rows stay small)."""
        pid, namespace = self.alma.project_id, _ns(op.namespace)
        vectors = _vectors_ns(namespace)
        if op.value is None:
            return [DeleteRecords(pid, namespace, (op.key,)), DeleteRecords(pid, vectors, (op.key,))]
        ttl = op.ttl  # BaseStore.put already applied ttl_config's default_ttl
        value = _dumps(op.value)
        item = PutRecord(Record(pid, namespace, op.key, value, {"ttl": ttl}, expires_at=_expires(ttl, now)))
        if vector is None:
            return [item, DeleteRecords(pid, vectors, (op.key,))]
        return [item, PutRecord(Record(pid, vectors, op.key, encode_vector(vector)))]


def _check(op: Op) -> None:
    """What `batch` cannot store, refused before anything is written (`BaseStore`'s methods check the
    rest; ops passed to `batch` directly skip them): a label that is not text (as LangGraph's
    `InvalidNamespaceError`) and a value that is not a dict (a `TypeError`, as in InMemoryStore)."""
    if isinstance(op, PutOp) and op.value is not None and not isinstance(op.value, Mapping):
        raise SerializationError(f"a store item's value must be a dict, got {type(op.value).__name__}")
    paths = [getattr(op, "namespace", ()), getattr(op, "namespace_prefix", ())]
    paths += [c.path for c in getattr(op, "match_conditions", None) or ()]
    for label in (label for path in paths for label in path):
        if not isinstance(label, str):
            raise InvalidNamespaceError(f"namespace labels must be strings, got {label!r} ({type(label).__name__})")


def _dumps(value: Mapping[str, Any]) -> bytes:
    """An item's value as JSON that SQLite's JSON functions read: an infinite float as 1e999 (which
    reads back as inf), since SQLite rejects the `Infinity` Python writes; NaN, which JSON cannot
    hold, is refused."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False).encode()
    except ValueError:
        tag = uuid.uuid4().hex  # stands for an infinity while dumping: no value holds this string
        text = json.dumps(_tag_infinities(value, tag), ensure_ascii=False, default=str, allow_nan=False)
        return text.replace(f'"-{tag}"', "-1e999").replace(f'"{tag}"', "1e999").encode()


def _tag_infinities(value: Any, tag: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            raise ValidationError("a store value cannot hold NaN (JSON has none): use None or leave the key out")
        return tag if value > 0 else f"-{tag}"
    if isinstance(value, Mapping):
        return {k: _tag_infinities(v, tag) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_infinities(v, tag) for v in value]
    return value


def _vectors_ns(namespace: str) -> str:
    return VECTORS + namespace[len(STORE) :]


def _step(ops: list[StorageOp]) -> Plan[list[Any]]:
    """A one-step plan (run it in one read transaction)."""
    return (yield ops)


def _hit(record: Record, score: float | None) -> SearchItem:
    item = _item(record)
    return SearchItem(item.namespace, item.key, item.value, item.created_at, item.updated_at, score=score)


def _item(record: Record) -> Item:
    return Item(
        value=json.loads(record.value or b"{}"), key=record.key, namespace=_labels(record.namespace),
        created_at=_stamp(record.created_at), updated_at=_stamp(record.updated_at),
    )  # fmt: skip


def _text(value: Mapping[str, Any], fields: list[str] | None) -> str:
    """The text embedded for an item: the given top-level fields, or the whole value."""
    if fields:
        parts = [value.get(f.split(".")[0]) for f in fields]
        return " ".join(p if isinstance(p, str) else json.dumps(p, default=str) for p in parts if p is not None)
    return " ".join(str(v) if isinstance(v, str) else json.dumps(v, default=str) for v in value.values())


def _list_namespaces(op: ListNamespacesOp, names: list[str]) -> list[tuple[str, ...]]:
    namespaces = [_labels(n) for n in names]
    if op.match_conditions:
        namespaces = [ns for ns in namespaces if all(_namespace_matches(c, ns) for c in op.match_conditions)]
    if op.max_depth is not None:
        namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
    else:
        namespaces = sorted(set(namespaces))
    return namespaces[op.offset : op.offset + op.limit]
