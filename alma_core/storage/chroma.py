"""Chroma store (extra `chroma`): memories and their vectors in one Chroma collection per project.

- Embedded (`chromadb.PersistentClient`, telemetry off) or client-server (`host`/`port`); ALMA's
  embedder supplies every vector (`embedding_function=None`).
- Dense search is Chroma's HNSW (cosine) with agent, type and the other filters in `where` clauses.
- Lexical search is not offered (Chroma has substring matching, not ranking): the capability is
  missing and `SearchMemories` returns no lexical hits, so hybrid retrieval falls back to dense.
- Records (checkpoints, sessions, LangGraph checkpoints...), generations and write serialization live
  in a sidecar SQLite file (`records.db`). Chroma has no transactions: a transaction that fails undoes
  its memory writes from an in-memory undo log (atomic within the process, not across a crash).
- Each project's memory counts by (agent, type) are a sidecar record, updated in the sidecar transaction
  of every memory write, so `CountMemories` by project, agents and types reads one record, not the
  collection. A project written before the counts were kept is counted once, at its next write (until
  then counts read the collection).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MissingDependency, StorageError
from .._models import Memory, MemoryType, memory_from_dict
from ._base import (
    SYSTEM_PROJECT,
    BaseStorage,
    CountMemories,
    DeleteMemories,
    FindMemories,
    GetRecord,
    MemoryFilter,
    Op,
    PutMemories,
    PutRecord,
    Record,
    SearchHits,
    SearchMemories,
    StoreVersion,
    user_filter,
)
from ._filters import matches_nothing
from .sqlite import SQLiteStorage

if TYPE_CHECKING:
    from .._config import ChromaConfig

__all__ = ["ChromaStorage"]

_MEMORY_OPS = (PutMemories, DeleteMemories, FindMemories, CountMemories, SearchMemories)
_INCLUDE_ALL = ["embeddings", "metadatas", "documents"]
_EXACT_BELOW = 2_000  # a filtered dense search over at most this many rows is exact
_CHROMA_OPS = {"=": "$eq", "<": "$lt", ">=": "$gte"}
_COUNTS = "chroma/memory-counts"  # sidecar namespace (of SYSTEM_PROJECT): a project's counts, keyed by project


def _where(f: MemoryFilter) -> dict[str, Any] | None:
    """A Chroma `where` clause for a MemoryFilter (ids are passed separately)."""
    clauses: list[dict[str, Any]] = []
    for key, values in (("agent", f.agents), ("type", f.types), ("category", f.categories)):
        if values is not None:
            clauses.append({key: {"$in": [str(v) for v in values]}})
    for column, op, value in f.scalar_conditions():
        clauses.append({column: {_CHROMA_OPS[op]: value}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _metadata(m: Memory) -> dict[str, Any]:
    data = m.to_dict()
    data.pop("type")
    meta: dict[str, Any] = {
        "agent": m.agent, "type": m.memory_type.value, "confidence": m.confidence,
        "created_at": m.created_at.timestamp(), "updated_at": m.updated_at.timestamp(),
        "data": json.dumps(data, separators=(",", ":")),
    }  # fmt: skip
    for key, value in (("category", m.category), ("user_id", m.user_id_value), ("workflow_id", m.workflow_id)):
        if value is not None:  # Chroma metadata cannot hold None
            meta[key] = value
    return meta


class _Tx:
    """A transaction: records and generations in the sidecar SQLite transaction, memories in Chroma."""

    def __init__(self, store: ChromaStorage, sidecar: Any, write: bool) -> None:
        self.store, self.sidecar, self.write = store, sidecar, write
        self.undo: list[tuple[str, str, dict[str, Any] | None]] = []  # (project, id, previous state)

    def execute(self, op: Op) -> Any:
        if isinstance(op, StoreVersion):  # the sidecar's version does not cover what Chroma holds
            return None
        if not isinstance(op, _MEMORY_OPS):
            return self.sidecar.execute(op)
        if isinstance(op, (PutMemories, DeleteMemories)) and not self.write:
            raise StorageError(f"{type(op).__name__} needs a write transaction")
        try:
            return getattr(self, "_" + type(op).__name__.lower())(op)
        except StorageError:
            raise
        except Exception as exc:  # chromadb raises plain exceptions (ValueError, InvalidArgumentError...)
            raise StorageError(f"Chroma error in {type(op).__name__}: {exc}") from exc

    def _snapshot(self, project_id: str, ids: list[str]) -> dict[str, Any]:
        """Remember the memories' current state for rollback; returns their current metadata by id."""
        got = self.store._collection(project_id).get(ids=ids, include=_INCLUDE_ALL)  # type: ignore[arg-type]
        before = {i: (e, m, d) for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"],  # type: ignore[arg-type]
                                                      got["documents"], strict=True)}  # type: ignore[arg-type]  # fmt: skip
        for memory_id in ids:
            prev = before.get(memory_id)
            state = None if prev is None else {"embedding": prev[0], "metadata": prev[1], "document": prev[2]}
            self.undo.append((project_id, memory_id, state))
        return {i: prev[1] for i, prev in before.items()}

    def _putmemories(self, op: PutMemories) -> int:
        by_project: dict[str, list[Memory]] = {}
        for m in op.memories:
            if m.embedding is None:
                raise StorageError(f"memory {m.id}: Chroma stores memories with their embeddings; embed first")
            by_project.setdefault(m.project_id, []).append(m)
        for project_id, memories in by_project.items():
            ids = [m.id for m in memories]
            before = self._snapshot(project_id, ids)
            metadatas = [_metadata(m) for m in memories]
            moved = [(str(before[i]["agent"]), str(before[i]["type"]), -1) for i in ids if i in before]
            self._count(project_id, [*moved, *((str(m["agent"]), str(m["type"]), 1) for m in metadatas)])
            now = time.time_ns()
            for i, (memory_id, meta) in enumerate(zip(ids, metadatas, strict=True)):
                meta["seq"] = before[memory_id]["seq"] if memory_id in before else now + i  # insertion order
            self.store._collection(project_id).upsert(
                ids=ids, embeddings=[np.asarray(m.embedding, dtype=np.float32) for m in memories],  # type: ignore[misc]
                metadatas=metadatas, documents=[m.text for m in memories],
            )  # fmt: skip
            self.sidecar.bump(project_id)
        return len(op.memories)

    def _deletememories(self, op: DeleteMemories) -> int:
        if matches_nothing(op.filter):
            return 0
        col = self.store._collection(op.filter.project_id)
        ids = col.get(ids=list(op.filter.ids) if op.filter.ids else None, where=_where(op.filter), include=[])["ids"]
        if ids:
            before = self._snapshot(op.filter.project_id, ids)
            self._count(op.filter.project_id, [(str(m["agent"]), str(m["type"]), -1) for m in before.values()])
            col.delete(ids=ids)
            self.sidecar.bump(op.filter.project_id)
        return len(ids)

    def _get(self, f: MemoryFilter, include: list[str]) -> Any:
        col = self.store._collection(f.project_id)
        return col.get(ids=list(f.ids) if f.ids else None, where=_where(f), include=include)  # type: ignore[arg-type]

    def _findmemories(self, op: FindMemories) -> list[Memory]:
        if matches_nothing(op.filter):
            return []
        include = ["metadatas", "embeddings"] if op.with_embeddings else ["metadatas"]
        got = self._get(op.filter, include)
        vectors = got["embeddings"] if op.with_embeddings else [None] * len(got["ids"])
        rows = list(zip(got["metadatas"], vectors, got["ids"], strict=True))
        rows.sort(key=lambda r: (r[0][op.order_by], r[0]["seq"]), reverse=op.descending)
        out: list[Memory] = []
        for meta, vector, memory_id in rows[: op.limit]:
            try:
                memory = memory_from_dict({"type": meta["type"], **json.loads(meta["data"])})
            except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                self.store.bad_rows.report(op.filter.project_id, memory_id, meta.get("data"), exc)
                continue
            if vector is not None:
                memory.embedding = np.asarray(vector, dtype=np.float32)
            out.append(memory)
        return out

    def _counts(self, project_id: str) -> dict[tuple[str, str], int] | None:
        """The project's memory counts by (agent, type) as the sidecar keeps them; None for a project
        written before they were kept (counted at its next write)."""
        record = self.sidecar.execute(GetRecord(SYSTEM_PROJECT, _COUNTS, project_id))
        return None if record is None else {(a, t): n for a, t, n in record.metadata["counts"]}

    def _count(self, project_id: str, changes: list[tuple[str, str, int]]) -> None:
        """Add a write's changes ((agent, type, +-1), before the write reaches Chroma) to the project's
        counts, in the sidecar transaction; a project without counts is counted first, as it stands."""
        counts = self._counts(project_id)
        if counts is None:
            counts = {}
            for meta in self.store._collection(project_id).get(include=["metadatas"])["metadatas"]:
                key = (str(meta["agent"]), str(meta["type"]))
                counts[key] = counts.get(key, 0) + 1
        for agent, mtype, n in changes:
            counts[(agent, mtype)] = counts.get((agent, mtype), 0) + n
        kept = [[agent, mtype, n] for (agent, mtype), n in sorted(counts.items()) if n]
        self.sidecar.execute(PutRecord(Record(SYSTEM_PROJECT, _COUNTS, project_id, None, {"counts": kept})))

    def _countmemories(self, op: CountMemories) -> dict[tuple[str, MemoryType], int]:
        counts: dict[tuple[str, MemoryType], int] = {}
        f = op.filter
        if matches_nothing(f):
            return counts
        by_scope = f.ids is None and f.categories is None and not f.scalar_conditions()
        kept = self._counts(f.project_id) if by_scope else None
        if kept is not None:  # by project, agents and types: the sidecar's counts
            types = None if f.types is None else {t.value for t in f.types}
            return {
                (agent, MemoryType(mtype)): n for (agent, mtype), n in kept.items()
                if (f.agents is None or agent in f.agents) and (types is None or mtype in types)
            }  # fmt: skip
        for meta in self._get(op.filter, ["metadatas"])["metadatas"]:
            key = (str(meta["agent"]), MemoryType(meta["type"]))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _searchmemories(self, op: SearchMemories) -> SearchHits:
        """Dense top-k of each type, one Chroma query per type (no lexical search: see the module
        docstring); the candidates come back with the query (no second read)."""
        f = op.filter
        out = SearchHits()
        if op.k <= 0 or op.vector is None or matches_nothing(f):
            return out
        vector = np.asarray(op.vector, dtype=np.float32)
        include = ["metadatas", "embeddings"] if op.with_embeddings else ["metadatas"]
        for t in list(MemoryType) if f.types is None else list(dict.fromkeys(f.types)):
            scoped = replace(f, types=(t,), user_id=user_filter(f, t, op.user_types))
            hits = self._dense(scoped, vector, op.k, include)
            out.dense[t] = [(memory.id, score) for memory, score in hits]
            out.memories.update((memory.id, memory) for memory, _ in hits)
        return out

    def _dense(self, f: MemoryFilter, vector: np.ndarray, k: int, include: list[str]) -> list[tuple[Memory, float]]:
        if f.ids or self._small_filter(f):  # exact cosine here: see _small_filter
            got = self._get(f, ["metadatas", "embeddings"])
            if not got["ids"]:
                return []
            sims = (np.asarray(got["embeddings"], dtype=np.float32) @ vector).tolist()
            metas, vectors = got["metadatas"], got["embeddings"] if "embeddings" in include else None
        else:
            col = self.store._collection(f.project_id)
            total = col.count()
            if total == 0:
                return []
            found = col.query(query_embeddings=[vector], n_results=min(k, total), where=_where(f),
                              include=[*include, "distances"])  # type: ignore[list-item]  # fmt: skip
            sims = [1.0 - float(d) for d in found["distances"][0]]  # type: ignore[index]
            metas = found["metadatas"][0]  # type: ignore[index]
            vectors = found["embeddings"][0] if "embeddings" in include else None  # type: ignore[index]
        hits = []
        for i, (meta, sim) in enumerate(zip(metas, sims, strict=True)):
            memory = memory_from_dict({"type": meta["type"], **json.loads(str(meta["data"]))})
            if vectors is not None:
                memory.embedding = np.asarray(vectors[i], dtype=np.float32)
            hits.append((memory, float(sim)))
        hits.sort(key=lambda h: (-h[1], h[0].id))
        return hits[:k]

    def _small_filter(self, f: MemoryFilter) -> bool:
        """True when a where filter matches few rows. Chroma's filtered HNSW search can return fewer than k
        rows when the filter is rare (it walks the graph, then filters), and it fails on ids it does not
        hold, so a small filtered set is searched exactly instead."""
        where = _where(f)
        if where is None:
            return False
        matching = self.store._collection(f.project_id).get(where=where, limit=_EXACT_BELOW + 1, include=[])
        return len(matching["ids"]) <= _EXACT_BELOW

    def rollback(self) -> None:
        for project_id, memory_id, state in reversed(self.undo):
            col = self.store._collection(project_id)
            if state is None:
                col.delete(ids=[memory_id])
            else:
                col.upsert(ids=[memory_id], embeddings=[state["embedding"]], metadatas=[state["metadata"]],
                           documents=[state["document"]])  # fmt: skip


class ChromaStorage(BaseStorage):
    """ALMA's memories in Chroma, records in a sidecar SQLite file. One process at a time (embedded)."""

    name = "chroma"
    capabilities = frozenset({"memories", "records", "dense", "sidecar-records"})

    def __init__(self, path: str | os.PathLike[str] = ".alma/chroma", *, config: ChromaConfig | None = None) -> None:
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as exc:  # pragma: no cover - the extra is installed in CI
            raise MissingDependency(exc.name or "chromadb", "chroma") from None
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        settings = Settings(anonymized_telemetry=False)
        try:
            if config is not None and config.host:
                self.client = chromadb.HttpClient(host=config.host, port=config.port, settings=settings)
            else:
                self.client = chromadb.PersistentClient(path=str(self.path), settings=settings)
        except Exception as exc:
            raise StorageError(
                f"cannot open Chroma at {config.host if config and config.host else path}: {exc}"
            ) from exc
        self.sidecar = SQLiteStorage(self.path / "records.db")
        self._collections: dict[str, Any] = {}
        self._local = threading.local()
        self._seq = 0

    def _collection(self, project_id: str) -> Any:
        col = self._collections.get(project_id)
        if col is None:
            name = "alma_" + hashlib.sha256(project_id.encode()).hexdigest()[:32]
            col = self.client.get_or_create_collection(
                name, embedding_function=None, metadata={"hnsw:space": "cosine", "project_id": project_id}
            )
            self._collections[project_id] = col
        return col

    def setup(self) -> None:
        self.sidecar.setup()

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Tx]:
        """The sidecar's transaction (writes serialized by `BEGIN IMMEDIATE`) plus Chroma's writes,
        undone if the block fails. Re-entrant on the same thread."""
        active: _Tx | None = getattr(self._local, "tx", None)
        if active is not None:
            if write and not active.write:
                raise StorageError("cannot write inside a read transaction")
            yield active
            return
        with self.sidecar.transaction(write) as sidecar:
            tx = self._local.tx = _Tx(self, sidecar, write)
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise
            finally:
                self._local.tx = None

    def generation(self, project_id: str) -> int:
        return self.sidecar.generation(project_id)

    @property
    def closed(self) -> bool:
        return self.sidecar.closed

    def close(self) -> None:
        self.sidecar.close()
        self._collections.clear()
