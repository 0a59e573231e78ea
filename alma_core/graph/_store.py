"""`BackendGraphStore`: the graph API agents use, built once over any `GraphBackend`.

    graph = BackendGraphStore(create_graph_backend("kuzu", database_path=".alma/graph"))
    graph.add_entity(Entity(name="Alice", entity_type="person"))
    graph.add_relationship(Relationship(source_id="alice", target_id="acme_corp", relation_type="WORKS_FOR"))
    graph.get_relationships("alice", relationship_type="WORKS_FOR")

A store is bound to a project, to the agent it writes as ("*": project-wide) and to the agents it
reads (None: all of the project): the same scopes as memories. Writes merge: the same entity (agent,
id) or the same current edge (agent, source, type, target) added again gains provenance
(`memory_ids`) instead of a duplicate. An edge of an exclusive type (a person WORKS_FOR one
organization at a time) supersedes the source's current edge of that type: the old one is closed
(`valid_to`), never deleted, so `history()` and `get_relationships(..., at=...)` still see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .._checks import as_utc
from .._errors import ValidationError
from ._backend import GraphBackend, create_graph_backend
from ._models import Entity, EntityQuery, GraphResult, GraphScope, RelationQuery, Relationship, evolve

__all__ = ["EXCLUSIVE_RELATIONS", "BackendGraphStore"]

# A source holds at most one current edge of these types; a new one closes the old (its history stays).
EXCLUSIVE_RELATIONS = frozenset({"WORKS_FOR", "LIVES_IN", "LOCATED_IN", "REPORTS_TO", "ASSIGNED_TO", "MEMBER_OF"})
_DIRECTIONS = {"both": "both", "out": "out", "outgoing": "out", "in": "in", "incoming": "in"}


def _merge_ids(*lists: Iterable[str]) -> list[str]:
    return sorted({i for ids in lists for i in ids})


def _merge_entity(old: Entity, new: Entity) -> Entity:
    """`old` with `new`'s provenance and properties; a specific type wins over "concept"."""
    kind = new.entity_type if old.entity_type == "concept" else old.entity_type
    user = old.user_id if old.user_id == new.user_id else None  # shared by several users: nobody's alone
    if not old.memory_ids:  # added by hand: belongs to nobody
        user = old.user_id
    return evolve(old, entity_type=kind, properties={**old.properties, **new.properties}, user_id=user,
                   memory_ids=_merge_ids(old.memory_ids, new.memory_ids))  # fmt: skip


class BackendGraphStore:
    """Entities and dated relationships of one project, over a pluggable `GraphBackend`."""

    def __init__(
        self,
        backend: GraphBackend | str = "memory",
        *,
        project_id: str = "default",
        agent: str = "*",
        readers: Sequence[str] | None = None,
        exclusive_types: Iterable[str] = EXCLUSIVE_RELATIONS,
    ) -> None:
        self.backend: GraphBackend = create_graph_backend(backend) if isinstance(backend, str) else backend
        self.project_id, self.agent = project_id, agent
        self.readers = tuple(readers) if readers is not None else None
        self.exclusive_types = frozenset(t.upper() for t in exclusive_types)

    def scoped(self, agent: str | None = None, readers: Sequence[str] | None = None) -> BackendGraphStore:
        """A view of the same graph that writes as `agent` and reads `readers` (None: every agent)."""
        view = replace_store(self)
        view.agent = agent or self.agent
        view.readers = tuple(readers) if readers is not None else None
        return view

    def scope(self, readers: Sequence[str] | None = None) -> GraphScope:
        """The scope reads use: this project and `readers` (default: the store's readers)."""
        return GraphScope(self.project_id, tuple(readers) if readers is not None else self.readers)

    def _own(self, item: Any) -> Any:
        if item.project_id not in (None, self.project_id):
            raise ValidationError(f"{type(item).__name__} {item.id!r} belongs to project {item.project_id!r}")
        return evolve(item, project_id=self.project_id, agent=item.agent or self.agent)

    # ---- writes -------------------------------------------------------------------------------------

    def add_entity(self, entity: Entity) -> str:
        """Add (or merge into) an entity; returns its id."""
        self.add([entity])
        return entity.id

    def add_relationship(self, relationship: Relationship, *, supersede: bool | None = None) -> str:
        """Add an edge (its endpoints are created if missing); returns the id it is stored under.

        `supersede`: close the source's current edges of this type to other targets (default: only
        for `exclusive_types`)."""
        return self.add([], [relationship], supersede=supersede)[0]

    def add(
        self, entities: Sequence[Entity], relationships: Sequence[Relationship] = (), *, supersede: bool | None = None
    ) -> list[str]:
        """Add entities and relationships in one backend write; returns the relationships' stored ids."""
        merged: dict[tuple[str, str], Entity] = {}
        for entity in map(self._own, entities):
            key = (entity.agent, entity.id)
            merged[key] = _merge_entity(merged[key], entity) if key in merged else entity
        rels = [self._own(r) for r in relationships]
        for rel in rels:  # endpoints exist before their edges
            for end in (rel.source_id, rel.target_id):
                if (rel.agent, end) not in merged:
                    merged[(rel.agent, end)] = Entity(id=end, name=end, project_id=self.project_id, agent=rel.agent,
                                                      user_id=rel.user_id, memory_ids=rel.memory_ids)  # fmt: skip
        stored = self._existing_entities(merged)
        to_write = [_merge_entity(stored[k], e) if k in stored else e for k, e in merged.items()]
        to_write = [e for e in to_write if e != stored.get((str(e.agent), e.id))]
        edges, ids = self._plan_edges(rels, supersede)
        self.backend.upsert(to_write, edges)
        return ids

    def _existing_entities(self, wanted: dict[tuple[str, str], Entity]) -> dict[tuple[str, str], Entity]:
        if not wanted:
            return {}
        agents = tuple(sorted({a for a, _ in wanted}))
        ids = tuple(sorted({i for _, i in wanted}))
        found = self.backend.find_entities(EntityQuery(GraphScope(self.project_id, agents), ids=ids))
        return {(str(e.agent), e.id): e for e in found if (e.agent, e.id) in wanted}

    def _plan_edges(self, rels: list[Relationship], supersede: bool | None) -> tuple[list[Relationship], list[str]]:
        """The edges to write for `rels`: merged into an equal current edge, or new, closing what they supersede."""
        if not rels:
            return [], []
        agents = tuple(sorted({str(r.agent) for r in rels}))
        sources = tuple(sorted({r.source_id for r in rels}))
        types = tuple(sorted({r.relation_type for r in rels}))
        query = RelationQuery(GraphScope(self.project_id, agents), sources, "out", types)
        current = {r.id: r for r in self.backend.find_relationships(query)}
        changed: dict[str, Relationship] = {}
        ids: list[str] = []
        for rel in rels:
            same = [r for r in current.values() if (r.agent, r.source_id, r.relation_type) ==
                    (rel.agent, rel.source_id, rel.relation_type) and r.valid_to is None]  # fmt: skip
            twin = next((r for r in same if r.target_id == rel.target_id), None)
            if twin is not None:
                twin = evolve(twin, confidence=max(twin.confidence, rel.confidence),
                               properties={**twin.properties, **rel.properties},
                               memory_ids=_merge_ids(twin.memory_ids, rel.memory_ids))  # fmt: skip
                current[twin.id] = changed[twin.id] = twin
                ids.append(twin.id)
                continue
            exclusive = supersede if supersede is not None else rel.relation_type in self.exclusive_types
            if exclusive:
                assert rel.valid_from is not None
                for old in same:
                    assert old.valid_from is not None
                    if old.valid_from <= rel.valid_from:
                        current[old.id] = changed[old.id] = evolve(old, valid_to=rel.valid_from)
                    else:  # an older fact learned late: it is history already
                        rel = evolve(rel, valid_to=old.valid_from)
            current[rel.id] = changed[rel.id] = rel
            ids.append(rel.id)
        return list(changed.values()), ids

    # ---- reads --------------------------------------------------------------------------------------

    def get_entity(self, entity_id: str) -> Entity | None:
        """The entity with this id (this store's own agent's first), or None."""
        found = self.backend.find_entities(EntityQuery(self.scope(), ids=(entity_id,)))
        found.sort(key=lambda e: e.agent != self.agent)
        return found[0] if found else None

    def find_entities(
        self, name: str | None = None, entity_type: str | None = None, limit: int | None = 10
    ) -> list[Entity]:
        """Entities whose name contains `name` (any case) and/or of `entity_type`."""
        kind = entity_type.lower() if entity_type else None
        return self.backend.find_entities(EntityQuery(self.scope(), name=name, entity_type=kind, limit=limit))

    def get_relationships(
        self,
        entity_id: str,
        direction: str = "both",
        relation_type: str | None = None,
        *,
        relationship_type: str | None = None,
        include_history: bool = False,
        at: datetime | None = None,
    ) -> list[Relationship]:
        """The entity's current edges (`direction`: "both", "outgoing" or "incoming"; of one type if given).
        `include_history` adds superseded edges; `at` gives the edges that were true then."""
        if direction not in _DIRECTIONS:
            raise ValidationError(f"direction must be both, outgoing or incoming, got {direction!r}")
        kind = relationship_type or relation_type
        types = (Relationship(source_id="x", target_id="y", relation_type=kind).relation_type,) if kind else None
        history = include_history or at is not None
        query = RelationQuery(self.scope(), (entity_id,), _DIRECTIONS[direction], types, history)
        found = self.backend.find_relationships(query)
        if at is not None:
            when = as_utc(at)
            found = [r for r in found if r.valid_at(when)]
        return found

    def history(self, source_id: str, relation_type: str) -> list[Relationship]:
        """Every edge of this type from `source_id`, superseded ones included, oldest first."""
        return self.get_relationships(source_id, "outgoing", relation_type, include_history=True)

    def neighbors(
        self, entity_ids: Iterable[str], hops: int = 2, relation_types: Sequence[str] | None = None
    ) -> GraphResult:
        """Entities within `hops` edges of `entity_ids` (current edges, either direction)."""
        if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
            raise ValidationError(f"hops must be an integer in 0..5, got {hops!r}")
        types = tuple(t.upper() for t in relation_types) if relation_types else None
        distance = {i: 0 for i in entity_ids}
        frontier, walked = set(distance), {}
        for hop in range(1, hops + 1):
            if not frontier:
                break
            rels = self.backend.find_relationships(RelationQuery(self.scope(), tuple(sorted(frontier)), "both", types))
            frontier = set()
            for rel in rels:
                walked[rel.id] = rel
                for end in (rel.source_id, rel.target_id):
                    if end not in distance:
                        distance[end] = hop
                        frontier.add(end)
        entities = self.backend.find_entities(EntityQuery(self.scope(), ids=tuple(sorted(distance))))
        return GraphResult(entities, list(walked.values()), distance)

    def traverse(
        self, start_entity_id: str, max_hops: int = 2, relation_types: Sequence[str] | None = None
    ) -> GraphResult:
        """The seed's name for `neighbors` from one entity."""
        return self.neighbors([start_entity_id], max_hops, relation_types)

    # ---- deletes ------------------------------------------------------------------------------------

    def delete_entity(self, entity_id: str) -> bool:
        """Delete the entity (this store's agent's) and its edges; whether it existed."""
        return self.backend.delete(self.scope(), [(self.agent, entity_id)]) > 0

    def delete_by_memory(self, memory_ids: Iterable[str]) -> int:
        """Forget what these memories taught the graph: their provenance goes, and so does every entity
        or edge left with none (added by hand, without memories, they stay). Returns how many went."""
        mids = tuple(sorted(set(memory_ids)))
        if not mids:
            return 0
        scope = GraphScope(self.project_id)
        ents = self.backend.find_entities(EntityQuery(scope, memory_ids=mids))
        rels = self.backend.find_relationships(RelationQuery(scope, include_history=True, memory_ids=mids))
        keep_e = [evolve(e, memory_ids=[m for m in e.memory_ids if m not in mids]) for e in ents]
        keep_r = [evolve(r, memory_ids=[m for m in r.memory_ids if m not in mids]) for r in rels]
        self.backend.upsert([e for e in keep_e if e.memory_ids], [r for r in keep_r if r.memory_ids])
        gone_e = [(str(e.agent), e.id) for e in keep_e if not e.memory_ids]
        gone_r = [r.id for r in keep_r if not r.memory_ids]
        return self.backend.delete(scope, gone_e, gone_r) if gone_e or gone_r else 0

    def delete_by_user(self, user_id: str) -> int:
        """Delete every entity and edge that belongs to one user alone (see `delete_by_memory` for the rest)."""
        scope = GraphScope(self.project_id)
        ents = self.backend.find_entities(EntityQuery(scope, user_id=user_id))
        rels = self.backend.find_relationships(RelationQuery(scope, include_history=True, user_id=user_id))
        return self.backend.delete(scope, [(str(e.agent), e.id) for e in ents], [r.id for r in rels])

    def delete_project(self) -> int:
        """Delete this project's whole graph; returns how many entities and edges went."""
        scope = GraphScope(self.project_id)
        ents = self.backend.find_entities(EntityQuery(scope))
        rels = self.backend.find_relationships(RelationQuery(scope, include_history=True))
        return self.backend.delete(scope, [(str(e.agent), e.id) for e in ents], [r.id for r in rels])

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> BackendGraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replace_store(store: BackendGraphStore) -> BackendGraphStore:
    view = BackendGraphStore.__new__(BackendGraphStore)
    view.__dict__.update(store.__dict__)
    return view
