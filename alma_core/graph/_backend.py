"""The graph backend protocol, the in-memory backend, and `create_graph_backend`.

A backend stores and finds; it implements five methods:

    upsert(entities, relationships)   write nodes and edges by key (entity: project, agent, id;
                                      relationship: project, id); edge endpoints already exist
    find_entities(EntityQuery)        nodes matching every criterion of the query
    find_relationships(RelationQuery) edges matching every criterion of the query
    delete(scope, entities, relationship_ids)
                                      remove nodes (with their edges) and edges; returns how many
    close()

Everything else (supersession and history, k-hop neighbours, provenance, delete by memory, user or
project, scopes) is built once on top of these, in `BackendGraphStore`. Neo4j or Memgraph plug in by
implementing the five methods over a Cypher driver (docs/graph.md).
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .._errors import ValidationError
from ._models import Entity, EntityQuery, GraphScope, RelationQuery, Relationship

__all__ = ["GraphBackend", "InMemoryGraphBackend", "create_graph_backend"]

EntityKey = tuple[str, str]  # (agent, id) within a scope's project


@runtime_checkable
class GraphBackend(Protocol):
    """What a graph database must do for ALMA (see the module docstring)."""

    name: str

    def upsert(self, entities: Sequence[Entity] = (), relationships: Sequence[Relationship] = ()) -> None: ...

    def find_entities(self, query: EntityQuery) -> list[Entity]: ...

    def find_relationships(self, query: RelationQuery) -> list[Relationship]: ...

    def delete(
        self, scope: GraphScope, entities: Sequence[EntityKey] = (), relationship_ids: Sequence[str] = ()
    ) -> int: ...

    def close(self) -> None: ...


def entity_matches(query: EntityQuery, entity: Entity) -> bool:
    """Whether `entity` answers `query` (the reference semantics every backend implements)."""
    return (
        query.scope.sees(entity)
        and (query.ids is None or entity.id in query.ids)
        and (query.name is None or query.name.lower() in entity.name.lower())
        and (query.entity_type is None or entity.entity_type == query.entity_type)
        and (query.memory_ids is None or not set(entity.memory_ids).isdisjoint(query.memory_ids))
        and (query.user_id is None or entity.user_id == query.user_id)
    )


def relation_matches(query: RelationQuery, rel: Relationship) -> bool:
    """Whether `rel` answers `query` (the reference semantics every backend implements)."""
    if query.entity_ids is not None:
        out = rel.source_id in query.entity_ids and query.direction in ("out", "both")
        into = rel.target_id in query.entity_ids and query.direction in ("in", "both")
        if not (out or into):
            return False
    return (
        query.scope.sees(rel)
        and (query.relation_types is None or rel.relation_type in query.relation_types)
        and (query.include_history or rel.valid_to is None)
        and (query.ids is None or rel.id in query.ids)
        and (query.memory_ids is None or not set(rel.memory_ids).isdisjoint(query.memory_ids))
        and (query.user_id is None or rel.user_id == query.user_id)
    )


def _copy(item: Any) -> Any:
    clone = copy.copy(item)
    clone.properties, clone.memory_ids = copy.deepcopy(item.properties), list(item.memory_ids)
    return clone


class InMemoryGraphBackend:
    """A graph in this process's memory (tests, short-lived agents): nothing survives the process."""

    name = "memory"

    def __init__(self) -> None:
        self._entities: dict[tuple[str, str, str], Entity] = {}  # (project, agent, id)
        self._relationships: dict[tuple[str, str], Relationship] = {}  # (project, id)
        self._lock = threading.Lock()

    def upsert(self, entities: Sequence[Entity] = (), relationships: Sequence[Relationship] = ()) -> None:
        with self._lock:
            for entity in entities:
                self._entities[(str(entity.project_id), str(entity.agent), entity.id)] = _copy(entity)
            for rel in relationships:
                self._relationships[(str(rel.project_id), rel.id)] = _copy(rel)

    def find_entities(self, query: EntityQuery) -> list[Entity]:
        with self._lock:
            pool: Iterable[Entity] = self._entities.values()
            if query.ids is not None:  # by key, not by scanning the graph
                agents = query.scope.agents if query.scope.agents is not None else {a for _, a, _ in self._entities}
                keys = ((query.scope.project_id, a, i) for a in agents for i in query.ids)
                pool = [self._entities[k] for k in keys if k in self._entities]
            found = [_copy(e) for e in pool if entity_matches(query, e)]
        found.sort(key=lambda e: (e.id, str(e.agent)))
        return found[: query.limit] if query.limit is not None else found

    def find_relationships(self, query: RelationQuery) -> list[Relationship]:
        with self._lock:
            found = [_copy(r) for r in self._relationships.values() if relation_matches(query, r)]
        found.sort(key=lambda r: (r.valid_from, r.id))
        return found

    def delete(
        self, scope: GraphScope, entities: Sequence[EntityKey] = (), relationship_ids: Sequence[str] = ()
    ) -> int:
        project = scope.project_id
        with self._lock:
            doomed = {(project, agent, entity) for agent, entity in entities} & self._entities.keys()
            for entity_key in doomed:
                del self._entities[entity_key]
            ends = {(agent, entity) for _, agent, entity in doomed}
            rels = {(project, i) for i in relationship_ids} & self._relationships.keys()
            rels |= {
                key
                for key, r in self._relationships.items()
                if key[0] == project and ((r.agent, r.source_id) in ends or (r.agent, r.target_id) in ends)
            }
            for key in rels:
                del self._relationships[key]
        return len(doomed) + len(rels)

    def close(self) -> None:
        """Nothing to release."""


def create_graph_backend(backend: str = "memory", **options: Any) -> GraphBackend:
    """A graph backend by name: "memory" (this process) or "kuzu" (embedded, `database_path=` a directory).

    "neo4j" and "memgraph" are not bundled: implement `GraphBackend` over their driver (docs/graph.md)."""
    kind = backend.lower() if isinstance(backend, str) else backend
    if kind in ("memory", "in-memory", "in_memory", "inmemory"):
        if options:
            raise ValidationError(f"the memory graph backend takes no options, got {sorted(options)}")
        return InMemoryGraphBackend()
    if kind == "kuzu":
        from ._kuzu import KuzuGraphBackend

        path = options.pop("database_path", None) or options.pop("path", None)
        if path is None:
            raise ValidationError('create_graph_backend("kuzu") needs database_path= (a directory)')
        return KuzuGraphBackend(os.fspath(path), **options)
    if kind in ("neo4j", "memgraph"):
        raise ValidationError(
            f"the {kind} graph backend is not bundled; implement alma_core.graph.GraphBackend over the {kind} "
            f"driver (five methods, see docs/graph.md), or use create_graph_backend('kuzu', database_path=...)"
        )
    raise ValidationError(f"unknown graph backend {backend!r}; choose memory or kuzu (or plug in your own)")
