"""`GraphIndex`: keeps a project's graph in step with its memories, and expands queries through it.

ALMA calls it when a graph is configured: `index(memories)` after every write (extraction "sync", on a
background thread "background", or "off"), `forget(memory_ids)` / `forget_user(user_id)` after deletes,
and `expand(query, readers)` at retrieval. Every entity and edge carries the memory it came from, its
agent and its user, so the graph obeys the memories' scopes: a query only walks the readers' graph.

expand: the query's entities (rule extraction, plus its words and word pairs as ids) are looked up;
from them the walk goes `hops` steps along edges and along co-mentions (two entities named in one
memory). A memory that names an entity reached at distance d scores 0.5**d, divided by
1 + ln(number of memories naming that entity) (a hub tells little), summed over its entities, then
scaled so the best memory scores 1.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from .._models import Memory
from ._backend import create_graph_backend
from ._extract import EntityExtractor
from ._models import Entity, EntityQuery, GraphScope, RelationQuery, Relationship, entity_id, evolve
from ._store import BackendGraphStore, replace_store

__all__ = ["Extractor", "GraphIndex"]

log = logging.getLogger("alma_core.graph")
Mode = Literal["off", "sync", "background"]
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
        self.errors = 0  # background extractions that failed (logged)
        self._queue: queue.Queue[list[Memory] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # ---- writes -------------------------------------------------------------------------------------

    def index(self, memories: Sequence[Memory]) -> None:
        """Add what `memories` say to the graph, now or on the background thread (per `mode`)."""
        if self.mode == "off" or not memories:
            return
        if self.mode == "sync":
            self._index_now(list(memories))
            return
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="alma-graph-index", daemon=True)
            self._worker.start()
        self._queue.put([m.model_copy() for m in memories])

    def _index_now(self, memories: list[Memory]) -> None:
        entities: list[Entity] = []
        relationships: list[Relationship] = []
        for memory in memories:
            found, rels = self.extractor.extract(memory.text)
            stamp: dict[str, Any] = {"project_id": memory.project_id, "agent": memory.agent,
                                     "user_id": memory.user_id_value, "memory_ids": [memory.id]}  # fmt: skip
            entities += [evolve(e, **stamp) for e in found]
            relationships += [evolve(r, valid_from=memory.created_at, **stamp) for r in rels]
        if entities or relationships:
            self.store.add(entities, relationships)

    def _run(self) -> None:
        """The background worker: whatever queued up meanwhile goes to the graph in one write."""
        stop = False
        while not stop:
            batches = [self._queue.get()]
            while len(batches) < 256:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batches
            memories = [m for batch in batches if batch is not None for m in batch]
            try:
                if memories:
                    self._index_now(memories)
            except Exception:  # a failed extraction never stops the worker; it is logged and counted
                self.errors += 1
                log.exception("graph extraction failed for %d memories", len(memories))
            finally:
                for _ in batches:
                    self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued memory is in the graph (background mode)."""
        if self._worker is not None and self._worker.is_alive():
            self._queue.join()

    def forget(self, memory_ids: Iterable[str]) -> int:
        """Remove what these memories taught the graph; returns how many entities and edges went."""
        self.flush()
        return self.store.delete_by_memory(memory_ids)

    def forget_user(self, user_id: str) -> int:
        """Remove the entities and edges that belong to one user alone."""
        self.flush()
        return self.store.delete_by_user(user_id)

    def close(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()
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
