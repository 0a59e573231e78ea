"""`KuzuGraphBackend`: an embedded Kuzu database in a directory, persistent across processes.

Kuzu is imported here only (extra `graph`). One process at a time may open a database directory:
a second process gets `StorageError` (Kuzu locks the file); within a process, one connection serves
every thread behind a lock, and each `upsert`/`delete` is one transaction (all of it or none).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import MissingDependency, StorageError, ValidationError
from ._backend import EntityKey
from ._models import Entity, EntityQuery, GraphScope, RelationQuery, Relationship

__all__ = ["KuzuGraphBackend"]

SCHEMA_VERSION = "2"
_CHECKPOINT_EVERY = 100
_SCHEMA = [
    "CREATE NODE TABLE IF NOT EXISTS AlmaMeta(key STRING PRIMARY KEY, value STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Entity(key STRING PRIMARY KEY, project_id STRING, agent STRING, id STRING,"
    " name STRING, name_lc STRING, entity_type STRING, properties STRING, created_at DOUBLE, user_id STRING)",
    # An entity's provenance is one edge per memory: a hub named by thousands of memories gains an edge
    # per write instead of rewriting a growing list.
    "CREATE NODE TABLE IF NOT EXISTS MemoryRef(key STRING PRIMARY KEY, memory_id STRING)",
    "CREATE REL TABLE IF NOT EXISTS MENTIONED_IN(FROM Entity TO MemoryRef)",
    "CREATE REL TABLE IF NOT EXISTS Related(FROM Entity TO Entity, id STRING, project_id STRING, agent STRING,"
    " source_id STRING, target_id STRING, relation_type STRING, properties STRING, confidence DOUBLE,"
    " created_at DOUBLE, valid_from DOUBLE, valid_to DOUBLE, user_id STRING, memory_ids STRING[])",
]
_ENTITY_SET = (
    "e.project_id = row.project_id, e.agent = row.agent, e.id = row.id, e.name = row.name, e.name_lc = row.name_lc,"
    " e.entity_type = row.entity_type, e.properties = row.properties, e.created_at = CAST(row.created_at AS DOUBLE),"
    " e.user_id = CAST(row.user_id AS STRING)"
)
_REL_SET = (
    "r.project_id = row.project_id, r.agent = row.agent, r.source_id = row.source_id, r.target_id = row.target_id,"
    " r.relation_type = row.relation_type, r.properties = row.properties,"
    " r.confidence = CAST(row.confidence AS DOUBLE),"
    " r.created_at = CAST(row.created_at AS DOUBLE), r.valid_from = CAST(row.valid_from AS DOUBLE),"
    " r.valid_to = CAST(row.valid_to AS DOUBLE), r.user_id = CAST(row.user_id AS STRING),"
    " r.memory_ids = CAST(row.memory_ids AS STRING[])"
)


# Returning named properties is several times faster than returning the node or edge itself.
_ENTITY_FIELDS = ("project_id", "agent", "id", "name", "entity_type", "properties", "created_at", "user_id")
_REL_FIELDS = ("id", "project_id", "agent", "source_id", "target_id", "relation_type", "properties", "confidence",
               "created_at", "valid_from", "valid_to", "user_id", "memory_ids")  # fmt: skip
_ENTITY_COLUMNS = ", ".join(f"e.{f}" for f in _ENTITY_FIELDS) + ", e.key"
_REL_COLUMNS = ", ".join(f"r.{f}" for f in _REL_FIELDS)


def _key(project_id: str, agent: str, entity: str) -> str:
    return f"{project_id}\x1f{agent}\x1f{entity}"


def keep_refs(entity: Entity) -> list[str]:
    """The MemoryRef keys of an entity's memories (a memory id is unique within its project)."""
    return [_key(str(entity.project_id), "", m) for m in entity.memory_ids]


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class KuzuGraphBackend:
    """The graph in an embedded Kuzu database under `database_path` (a directory; created if missing)."""

    name = "kuzu"

    def __init__(self, database_path: str, *, buffer_pool_size: int = 64 * 1024 * 1024) -> None:
        try:
            import kuzu
        except ImportError:
            raise MissingDependency("kuzu", "graph") from None
        folder = Path(database_path)
        if folder.exists() and not folder.is_dir():
            raise ValidationError(f"database_path must be a directory, got the file {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder
        try:
            self._db = kuzu.Database(str(folder / "graph.kuzu"), buffer_pool_size=buffer_pool_size)
        except RuntimeError as exc:
            if "lock" in str(exc).lower():
                raise StorageError(
                    f"the Kuzu graph at {folder} is open in another process; Kuzu allows one process at a time "
                    f"(close it there, or give this process its own database_path)"
                ) from None
            raise StorageError(f"cannot open the Kuzu graph at {folder}: {exc}") from None
        self._conn = kuzu.Connection(self._db)
        self._lock = threading.RLock()
        self._writes = 0
        self._setup()

    # ---- plumbing -----------------------------------------------------------------------------------

    def _rows(self, cypher: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        try:
            result = self._conn.execute(cypher, params or {})
            rows: list[list[Any]] = []
            while result.has_next():  # type: ignore[union-attr]
                rows.append(list(result.get_next()))  # type: ignore[union-attr]
            return rows
        except RuntimeError as exc:
            raise StorageError(f"Kuzu graph query failed: {exc}") from None

    def _write(self, statements: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Run `statements` in one transaction: all of them or none."""
        with self._lock:
            self._rows("BEGIN TRANSACTION")
            try:
                for cypher, params in statements:
                    self._rows(cypher, params)
            except BaseException:
                with contextlib.suppress(StorageError):  # Kuzu rolls back a failed statement's transaction itself
                    self._rows("ROLLBACK")
                raise
            self._rows("COMMIT")
            self._writes += 1
            if self._writes % _CHECKPOINT_EVERY == 0:  # bounds the WAL and the versions the buffer pool holds
                self._rows("CHECKPOINT")

    def _setup(self) -> None:
        with self._lock:
            for statement in _SCHEMA:
                self._rows(statement)
            found = self._rows("MATCH (m:AlmaMeta {key: 'schema_version'}) RETURN m.value")
            if not found:
                self._rows("CREATE (:AlmaMeta {key: 'schema_version', value: $v})", {"v": SCHEMA_VERSION})
            elif found[0][0] != SCHEMA_VERSION:
                raise StorageError(
                    f"the Kuzu graph at {self.path} has schema version {found[0][0]}, this ALMA reads {SCHEMA_VERSION}"
                )

    # ---- the protocol -------------------------------------------------------------------------------

    def upsert(self, entities: Sequence[Entity] = (), relationships: Sequence[Relationship] = ()) -> None:
        statements: list[tuple[str, dict[str, Any]]] = []
        if entities:
            rows = [
                {"key": _key(str(e.project_id), str(e.agent), e.id), "project_id": e.project_id, "agent": e.agent,
                 "id": e.id, "name": e.name, "name_lc": e.name.lower(), "entity_type": e.entity_type,
                 "properties": json.dumps(e.properties), "created_at": _ts(e.created_at), "user_id": e.user_id}
                for e in entities
            ]  # fmt: skip
            merge = f"UNWIND $rows AS row MERGE (e:Entity {{key: row.key}}) SET {_ENTITY_SET}"
            statements.append((merge, {"rows": rows}))
            statements += self._mention_changes(rows, entities)
        if relationships:
            edges: list[dict[str, Any]] = [
                {"id": r.id, "src": _key(str(r.project_id), str(r.agent), r.source_id),
                 "dst": _key(str(r.project_id), str(r.agent), r.target_id), "project_id": r.project_id,
                 "agent": r.agent, "source_id": r.source_id, "target_id": r.target_id,
                 "relation_type": r.relation_type, "properties": json.dumps(r.properties),
                 "confidence": float(r.confidence), "created_at": _ts(r.created_at), "valid_from": _ts(r.valid_from),
                 "valid_to": _ts(r.valid_to), "user_id": r.user_id, "memory_ids": list(r.memory_ids)}
                for r in relationships
            ]  # fmt: skip
            statements.append(
                (
                    "UNWIND $rows AS row MATCH (a:Entity {key: row.src}), (b:Entity {key: row.dst})"
                    f" MERGE (a)-[r:Related {{id: row.id}}]->(b) SET {_REL_SET}",
                    {"rows": edges},
                )
            )
        if statements:
            self._write(statements)

    def _mention_changes(self, rows: list[dict[str, Any]], entities: Sequence[Entity]) -> list[tuple[str, Any]]:
        """The statements that make each entity's MENTIONED_IN edges exactly its `memory_ids`."""
        wanted = {(row["key"], ref): m for row, e in zip(rows, entities, strict=True)
                  for ref, m in zip(keep_refs(e), e.memory_ids, strict=True)}  # fmt: skip
        with self._lock:
            have = {(key, ref) for key, ref in self._rows(
                "MATCH (e:Entity)-[:MENTIONED_IN]->(r:MemoryRef) WHERE e.key IN $keys RETURN e.key, r.key",
                {"keys": [row["key"] for row in rows]})}  # fmt: skip
        gone = [{"e": key, "r": ref} for key, ref in have - wanted.keys()]
        new = [{"e": key, "r": ref, "m": wanted[(key, ref)]} for key, ref in wanted.keys() - have]
        statements: list[tuple[str, Any]] = []
        if gone:
            cypher = "UNWIND $rows AS p MATCH (e:Entity {key: p.e})-[m:MENTIONED_IN]->(r:MemoryRef {key: p.r}) DELETE m"
            statements.append((cypher, {"rows": gone}))
        if new:  # two plain steps: Kuzu mis-binds a MERGE of a node and an edge in one UNWIND
            refs = [{"r": ref, "m": m} for ref, m in sorted({(p["r"], p["m"]) for p in new})]
            statements.append(
                ("UNWIND $rows AS p MERGE (r:MemoryRef {key: p.r}) SET r.memory_id = p.m", {"rows": refs})
            )
            cypher = (
                "UNWIND $rows AS p MATCH (e:Entity {key: p.e}), (r:MemoryRef {key: p.r})"
                " CREATE (e)-[:MENTIONED_IN]->(r)"
            )
            statements.append((cypher, {"rows": [{"e": p["e"], "r": p["r"]} for p in new]}))
        return statements

    def find_entities(self, query: EntityQuery) -> list[Entity]:
        where = ["e.project_id = $project"]
        params: dict[str, Any] = {"project": query.scope.project_id}
        match = "MATCH (e:Entity)"
        if query.memory_ids is not None:
            match = "MATCH (e:Entity)-[:MENTIONED_IN]->(q:MemoryRef)"
            where.append("q.key IN $refs")
            params["refs"] = [_key(query.scope.project_id, "", m) for m in query.memory_ids]
        lists: tuple[tuple[str, tuple[str, ...] | None], ...] = (("agent", query.scope.agents), ("id", query.ids))
        for field, value in lists:
            if value is not None:
                where.append(f"e.{field} IN ${field}s")
                params[f"{field}s"] = list(value)
        for field, one in (("entity_type", query.entity_type), ("user_id", query.user_id)):
            if one is not None:
                where.append(f"e.{field} = ${field}")
                params[field] = one
        if query.name is not None:
            where.append("e.name_lc CONTAINS $name")
            params["name"] = query.name.lower()
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        cypher = (f"{match} WHERE {' AND '.join(where)} WITH DISTINCT e"
                  f" RETURN {_ENTITY_COLUMNS} ORDER BY e.id, e.agent{limit}")  # fmt: skip
        with self._lock:
            rows = self._rows(cypher, params)
            refs: dict[str, list[str]] = {row[-1]: [] for row in rows}
            if refs:
                for key, memory_id in self._rows(
                    "MATCH (e:Entity)-[:MENTIONED_IN]->(r:MemoryRef) WHERE e.key IN $keys RETURN e.key, r.memory_id",
                    {"keys": list(refs)},
                ):
                    refs[key].append(memory_id)
        return [self._entity({**dict(zip(_ENTITY_FIELDS, row, strict=False)), "memory_ids": refs[row[-1]]})
                for row in rows]  # fmt: skip

    def find_relationships(self, query: RelationQuery) -> list[Relationship]:
        where = ["r.project_id = $project"]
        params: dict[str, Any] = {"project": query.scope.project_id}
        if query.entity_ids is not None:
            params["endpoints"] = list(query.entity_ids)
            sides = {"out": ["r.source_id IN $endpoints"], "in": ["r.target_id IN $endpoints"]}
            chosen = sides.get(query.direction, sides["out"] + sides["in"])
            where.append(f"({' OR '.join(chosen)})")
        lists = (("agent", query.scope.agents), ("relation_type", query.relation_types), ("id", query.ids))
        for field, value in lists:
            if value is not None:
                where.append(f"r.{field} IN ${field}s")
                params[f"{field}s"] = list(value)
        if not query.include_history:
            where.append("r.valid_to IS NULL")
        if query.user_id is not None:
            where.append("r.user_id = $user")
            params["user"] = query.user_id
        match = "MATCH ()-[r:Related]->()"
        if query.memory_ids is not None:
            match = "UNWIND $mids AS mid MATCH ()-[r:Related]->()"
            where.append("list_contains(r.memory_ids, mid)")
            params["mids"] = list(query.memory_ids)
        cypher = f"{match} WHERE {' AND '.join(where)} RETURN DISTINCT {_REL_COLUMNS} ORDER BY r.valid_from, r.id"
        with self._lock:
            return [self._relationship(dict(zip(_REL_FIELDS, row, strict=True))) for row in self._rows(cypher, params)]

    def delete(
        self, scope: GraphScope, entities: Sequence[EntityKey] = (), relationship_ids: Sequence[str] = ()
    ) -> int:
        project = scope.project_id
        keys = [_key(project, agent, entity) for agent, entity in entities]
        params = {"project": project, "ids": list(relationship_ids)}
        with self._lock:
            rels = {
                row[0]
                for row in self._rows(
                    "MATCH ()-[r:Related]->() WHERE r.project_id = $project AND r.id IN $ids RETURN r.id", params
                )
            }
            found = 0
            if keys:
                found = self._rows("MATCH (e:Entity) WHERE e.key IN $keys RETURN count(e)", {"keys": keys})[0][0]
                rels |= {
                    row[0]
                    for row in self._rows(
                        "MATCH (a:Entity)-[r:Related]->(b:Entity) WHERE a.key IN $keys OR b.key IN $keys RETURN r.id",
                        {"keys": keys},
                    )
                }
            self._write(
                [
                    ("MATCH ()-[r:Related]->() WHERE r.project_id = $project AND r.id IN $ids DELETE r", params),
                    ("MATCH (e:Entity) WHERE e.key IN $keys DETACH DELETE e", {"keys": keys}),
                    ("MATCH (r:MemoryRef) WHERE NOT EXISTS { MATCH (r)<-[:MENTIONED_IN]-(:Entity) } DELETE r", {}),
                ]
            )
        return int(found) + len(rels)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._db.close()

    # ---- rows -> models -----------------------------------------------------------------------------

    @staticmethod
    def _entity(node: dict[str, Any]) -> Entity:
        return Entity(
            id=node["id"], name=node["name"], entity_type=node["entity_type"],
            properties=json.loads(node["properties"] or "{}"), created_at=_dt(node["created_at"]),  # type: ignore[arg-type]
            project_id=node["project_id"], agent=node["agent"], user_id=node["user_id"],
            memory_ids=list(node["memory_ids"] or []),
        )  # fmt: skip

    @staticmethod
    def _relationship(edge: dict[str, Any]) -> Relationship:
        return Relationship(
            id=edge["id"], source_id=edge["source_id"], target_id=edge["target_id"],
            relation_type=edge["relation_type"], properties=json.loads(edge["properties"] or "{}"),
            confidence=edge["confidence"], created_at=_dt(edge["created_at"]),  # type: ignore[arg-type]
            valid_from=_dt(edge["valid_from"]), valid_to=_dt(edge["valid_to"]), project_id=edge["project_id"],
            agent=edge["agent"], user_id=edge["user_id"], memory_ids=list(edge["memory_ids"] or []),
        )  # fmt: skip
