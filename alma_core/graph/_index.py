"""`GraphIndex`: keeps a project's graph in step with its memories, and expands queries through it.

ALMA calls it when a graph is configured: `index(memories)` after every write (extraction "sync", on a
background thread "background": `_queue.ExtractionQueue`, `flush(timeout)`; or "off"), `forget(memory_ids)` /
`forget_user(user_id)` after deletes (dropping queued memories: never waiting on the extractor), and
`expand(query, readers)` at retrieval. Every entity and edge carries the memory it came from, its agent and
its user, so the graph obeys the memories' scopes: a query only walks the readers' graph.

expand: the query's entities (rule extraction, plus its words and word pairs as ids) are looked up;
from them the walk goes `hops` steps along edges and along co-mentions (two entities named in one
memory). A memory that names an entity reached at distance d scores 0.5**d, divided by
1 + ln(number of memories naming that entity) (a hub tells little), summed over its entities, then
scaled so the best memory scores 1.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from .._models import Memory
from ._backend import create_graph_backend
from ._extract import EntityExtractor
from ._models import Entity, EntityQuery, GraphScope, RelationQuery, Relationship, entity_id, evolve
from ._queue import FLUSH_TIMEOUT, ExtractionQueue
from ._store import BackendGraphStore, replace_store

__all__ = ["Extractor", "GraphIndex"]

Mode = Literal["off", "sync", "background"]
Extracted = tuple[list[Entity], list[Relationship]]
_WORD = re.compile(r"[A-Za-z0-9][\w.-]*[A-Za-z0-9]|[A-Za-z0-9]")
_STOP = frozenset(
    str.split(
        "a an the of in on at to for from by with and or is are was were be been who what where which when how why "
        "does do did has have had that this these those it its he she they them his her their my your our me we "
        "you i about into than then there here"
    )
)


class Extractor(Protocol):
    """What turns text into a graph: `EntityExtractor` (rules) or `LLMEntityExtractor` (a chat model)."""

    def extract(self, text: str) -> tuple[list[Entity], list[Relationship]]: ...


def query_entity_ids(text: str, extractor: EntityExtractor) -> list[str]:
    """Ids the query may name: its extracted entities, and its content words and word pairs and triples
    ("where does alice work" -> alice, work, ...), so a lowercase query still finds "Alice"."""
    ids = dict.fromkeys(extractor.entity_ids(text))
    words = [w.lower() for w in _WORD.findall(text)]
    for size in (1, 2, 3):
        for i in range(len(words) - size + 1):
            gram = words[i : i + size]
            if gram[0] not in _STOP and gram[-1] not in _STOP:
                ids.setdefault(entity_id(" ".join(gram)))
    return [i for i in ids if i]


def _by_id(entities: Iterable[Entity]) -> dict[str, Entity]:
    """One entity per id: the same id in several readable agents' graphs pools their memories."""
    merged: dict[str, Entity] = {}
    for entity in entities:
        if entity.id in merged:
            entity = evolve(merged[entity.id], memory_ids=[*merged[entity.id].memory_ids, *entity.memory_ids])
        merged[entity.id] = entity
    return merged


class GraphIndex:
    """A project's graph, fed from its memories (see the module docstring)."""

    def __init__(
        self,
        store: BackendGraphStore,
        extractor: Extractor | None = None,
        *,
        mode: Mode = "sync",
        hops: int = 2,
        entity_types: Iterable[object] = (),
    ) -> None:
        self.store, self.mode, self.hops = store, mode, hops
        self.rules = EntityExtractor(entity_types)
        self.extractor: Extractor = extractor or self.rules
        self._queue: ExtractionQueue[Extracted] = ExtractionQueue(self._extract, self._write)

    @property
    def errors(self) -> int:
        """Background extractions that failed (each logged)."""
        return self._queue.errors

    # ---- writes -------------------------------------------------------------------------------------

    def index(self, memories: Sequence[Memory]) -> None:
        """Add what `memories` say to the graph, now or on the background thread (per `mode`)."""
        if self.mode == "off" or not memories:
            return
        if self.mode == "sync":
            self._write([self._extract(m) for m in memories])
        else:
            self._queue.put(memories)

    def _extract(self, memory: Memory) -> Extracted:
        """One memory's entities and relationships, stamped with where they came from."""
        found, rels = self.extractor.extract(memory.text)
        stamp: dict[str, Any] = {"project_id": memory.project_id, "agent": memory.agent,
                                 "user_id": memory.user_id_value, "memory_ids": [memory.id]}  # fmt: skip
        return [evolve(e, **stamp) for e in found], [evolve(r, valid_from=memory.created_at, **stamp) for r in rels]

    def _write(self, extracted: list[Extracted]) -> None:
        entities = [e for found, _ in extracted for e in found]
        relationships = [r for _, rels in extracted for r in rels]
        if entities or relationships:
            self.store.add(entities, relationships)

    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> None:
        """Wait until every queued memory is in the graph (background mode). Raises `FlushTimeout` (naming
        the pending memories, which stay queued) when extraction makes no progress for `timeout` seconds
        (default 120; None waits for ever)."""
        self._queue.flush(timeout)

    def pending(self) -> list[str]:
        """Ids of the memories the background worker has not put in the graph yet."""
        return self._queue.pending()

    def forget(self, memory_ids: Iterable[str]) -> int:
        """Remove what these memories taught the graph; returns how many entities and edges went. Queued
        ones are dropped, so this never waits on the extractor."""
        doomed = set(memory_ids)
        with self._queue.dropping(lambda m: m.id in doomed):
            return self.store.delete_by_memory(doomed)

    def forget_user(self, user_id: str) -> int:
        """Remove the entities and edges that belong to one user alone (and drop the user's queued memories)."""
        with self._queue.dropping(lambda m: m.user_id_value == user_id):
            return self.store.delete_by_user(user_id)

    def close(self, timeout: float | None = FLUSH_TIMEOUT) -> None:
        """Flush and stop the background worker, then close the graph store. On `FlushTimeout` the store
        stays open, so the worker can still finish what it holds."""
        self._queue.close(timeout)
        self.store.close()

    # ---- reads --------------------------------------------------------------------------------------

    def expand(self, query: str, readers: Sequence[str], hops: int | None = None, limit: int = 50) -> dict[str, float]:
        """Memory id -> graph score in (0, 1] for the memories the query's entities lead to."""
        self.flush()
        scope = GraphScope(self.store.project_id, tuple(readers))
        backend = self.store.backend
        ids = tuple(query_entity_ids(query, self.rules))
        if not ids:
            return {}
        reached = _by_id(backend.find_entities(EntityQuery(scope, ids=ids)))
        distance = dict.fromkeys(reached, 0)
        frontier = list(reached.values())
        for hop in range(1, (self.hops if hops is None else hops) + 1):
            if not frontier:
                break
            ends = tuple(sorted({e.id for e in frontier}))
            linked = {r.target_id if r.source_id in ends else r.source_id
                      for r in backend.find_relationships(RelationQuery(scope, ends))}  # fmt: skip
            mids = tuple(sorted({m for e in frontier for m in e.memory_ids}))
            co = backend.find_entities(EntityQuery(scope, memory_ids=mids)) if mids else []
            new_ids = tuple(sorted(linked - distance.keys()))
            found = backend.find_entities(EntityQuery(scope, ids=new_ids)) if new_ids else []
            frontier = [e for i, e in _by_id([*co, *found]).items() if i not in distance]
            for entity in frontier:
                distance[entity.id], reached[entity.id] = hop, entity
        scores: dict[str, float] = {}
        for entity_key, entity in reached.items():
            weight = 0.5 ** distance[entity_key] / (1.0 + math.log(max(1, len(entity.memory_ids))))
            for memory_id in entity.memory_ids:
                scores[memory_id] = scores.get(memory_id, 0.0) + weight
        if not scores:
            return {}
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        top = best[0][1]
        return {memory_id: score / top for memory_id, score in best}


def open_graph(spec: Any, config: Any, storage: Any = None) -> GraphIndex:
    """The `GraphIndex` an `ALMA` uses: from `ALMA(graph=...)` (a `GraphIndex`, a `BackendGraphStore`, a
    `GraphBackend` or a backend name) or, when that is None, from the config's `graph:` section. A Kuzu
    graph without `graph.path` lives in `graph/` beside the SQLite file (`storage`, when a path)."""
    settings = config.graph
    if isinstance(spec, GraphIndex):
        if spec.store.project_id != config.project_id:  # the graph of ALMA's project, on the same backend
            spec.store = replace_store(spec.store)
            spec.store.project_id = config.project_id
        return spec
    if isinstance(spec, BackendGraphStore):
        spec = spec.backend
    if spec is None or spec is True:
        spec = settings.backend if settings.backend != "none" else "memory"
    if isinstance(spec, str):
        folder = Path(storage).parent if isinstance(storage, str | os.PathLike) else Path(config.storage_dir)
        options = {"database_path": settings.path or str(folder / "graph")} if spec == "kuzu" else {}
        spec = create_graph_backend(spec, **options)
    store = BackendGraphStore(spec, project_id=config.project_id)
    return GraphIndex(store, mode=settings.extraction, hops=settings.hops, entity_types=settings.entity_types)
