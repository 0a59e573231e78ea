"""Graph memory: entities and dated relationships extracted from memories, over a pluggable backend.

    from alma_core.graph import create_graph_backend, BackendGraphStore, EntityExtractor
    graph = BackendGraphStore(create_graph_backend("kuzu", database_path="./my_graph_db"))
    entities, relationships = EntityExtractor().extract("Alice from Acme Corp reviewed the PR that Bob submitted.")
    graph.add(entities, relationships)
    graph.get_relationships("alice", relationship_type="WORKS_FOR")

Backends: "memory" (this process) and "kuzu" (embedded, extra `graph`; imported only when used). Any
other database plugs in by implementing `GraphBackend` (five methods). See docs/graph.md.
"""

from __future__ import annotations

from ._backend import GraphBackend, InMemoryGraphBackend, create_graph_backend
from ._extract import EntityExtractor
from ._index import Extractor, GraphIndex
from ._llm import LLMEntityExtractor
from ._models import Entity, EntityQuery, GraphResult, GraphScope, RelationQuery, Relationship, entity_id
from ._store import EXCLUSIVE_RELATIONS, BackendGraphStore

__all__ = [
    "EXCLUSIVE_RELATIONS",
    "BackendGraphStore",
    "Entity",
    "EntityExtractor",
    "EntityQuery",
    "Extractor",
    "GraphBackend",
    "GraphIndex",
    "GraphResult",
    "GraphScope",
    "InMemoryGraphBackend",
    "LLMEntityExtractor",
    "RelationQuery",
    "Relationship",
    "create_graph_backend",
    "entity_id",
]
