"""The graph's value objects: `Entity` (a node), `Relationship` (a typed, dated edge) and the queries a
backend answers (`EntityQuery`, `RelationQuery`), each bound to a `GraphScope` (project and readers).

Field order follows the seed (`Entity(id, name, entity_type, properties)`, `Relationship(id, source_id,
target_id, relation_type, properties, confidence)`); every field has a default so keywords work too.
An entity's `id` is its normalised name (`entity_id("Acme Corp") == "acme_corp"`) unless given.
"""

from __future__ import annotations

import copy
import math
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._checks import as_utc
from .._errors import ValidationError
from .._models import utcnow

__all__ = [
    "Entity",
    "EntityQuery",
    "GraphResult",
    "GraphScope",
    "RelationQuery",
    "Relationship",
    "entity_id",
    "evolve",
]

_NON_WORD = re.compile(r"[^0-9a-z]+")
_REL_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_MAX_ID = 200


def evolve(item: Any, **changes: Any) -> Any:
    """A copy of an entity or relationship with `changes`, not validated again: for the store's own,
    already valid, values (`dataclasses.replace` would re-check every memory id of a hub entity)."""
    clone = copy.copy(item)
    for name, value in changes.items():
        setattr(clone, name, value)
    return clone


def entity_id(name: str) -> str:
    """The id an entity gets from its name: lowercase ASCII words joined by `_` ("Acme Corp" -> "acme_corp")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("_", ascii_name.lower()).strip("_")[:_MAX_ID]


def _text(name: str, value: Any, *, limit: int = _MAX_ID, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise ValidationError(f"{name} must be a non-empty string of at most {limit} characters, got {value!r}")
    return value.strip()


def _optional(name: str, value: Any) -> str | None:
    return None if value is None else _text(name, value)


def _ids(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValidationError(f"{name} must be a list of memory ids, got {value!r}")
    return sorted({_text(name, v) for v in value})


def _properties(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValidationError(f"properties must be a dict with string keys, got {value!r}")
    return value


def _check_common(item: Any) -> None:
    """What entities and relationships share: properties, creation time, and where the item came from
    (project, agent, user, memories)."""
    kind = type(item).__name__
    item.properties = _properties(item.properties)
    item.created_at = as_utc(item.created_at)
    for name in ("project_id", "agent", "user_id"):
        setattr(item, name, _optional(f"{kind}.{name}", getattr(item, name)))
    item.memory_ids = _ids(f"{kind}.memory_ids", item.memory_ids)


@dataclass
class Entity:
    """A node: something memories talk about (a person, an organization, a ticket, a tool).

    `memory_ids` are the memories it was extracted from (empty for an entity added by hand);
    `project_id` and `agent` are filled in by the store that writes it."""

    id: str = ""
    name: str = ""
    entity_type: str = "concept"
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    project_id: str | None = None
    agent: str | None = None
    user_id: str | None = None
    memory_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name and not self.id:
            raise ValidationError("an Entity needs a name or an id")
        self.name = _text("Entity.name", self.name or self.id, limit=1000)
        self.id = _text("Entity.id", self.id or entity_id(self.name))
        self.entity_type = _text("Entity.entity_type", self.entity_type, limit=64).lower()
        _check_common(self)


@dataclass
class Relationship:
    """A typed edge `source -[relation_type]-> target`, true from `valid_from` until `valid_to` (None: still
    true). A superseded edge is closed (`valid_to` set), never deleted: the history stays queryable."""

    id: str = ""
    source_id: str = ""
    target_id: str = ""
    relation_type: str = "RELATED_TO"
    properties: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    created_at: datetime = field(default_factory=utcnow)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    project_id: str | None = None
    agent: str | None = None
    user_id: str | None = None
    memory_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = _text("Relationship.id", self.id) if self.id else uuid.uuid4().hex
        self.source_id = _text("Relationship.source_id", self.source_id)
        self.target_id = _text("Relationship.target_id", self.target_id)
        kind = _text("Relationship.relation_type", self.relation_type, limit=64)
        self.relation_type = re.sub(r"[\s-]+", "_", kind).upper()
        if not _REL_TYPE.match(self.relation_type):
            raise ValidationError(f"relation_type must be letters, digits and _ (like WORKS_FOR), got {kind!r}")
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, int | float):
            raise ValidationError(f"Relationship.confidence must be a number in 0..1, got {self.confidence!r}")
        if math.isnan(self.confidence) or not 0 <= self.confidence <= 1:
            raise ValidationError(f"Relationship.confidence must be in 0..1, got {self.confidence!r}")
        _check_common(self)
        self.valid_from = as_utc(self.valid_from) if self.valid_from is not None else self.created_at
        self.valid_to = as_utc(self.valid_to) if self.valid_to is not None else None
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValidationError("Relationship.valid_to is before its valid_from")

    @property
    def current(self) -> bool:
        """Whether the edge is still true (not superseded)."""
        return self.valid_to is None

    def valid_at(self, when: datetime) -> bool:
        """Whether the edge was true at `when`."""
        assert self.valid_from is not None
        return self.valid_from <= when and (self.valid_to is None or when < self.valid_to)


@dataclass(frozen=True, slots=True)
class GraphScope:
    """Whose graph a query sees: one project, and the agents it may read (None: every agent)."""

    project_id: str
    agents: tuple[str, ...] | None = None

    def sees(self, item: Entity | Relationship) -> bool:
        return item.project_id == self.project_id and (self.agents is None or item.agent in self.agents)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Entities in `scope` matching every given criterion (None: any). `name` matches case-insensitively
    as a substring of the name; `memory_ids` matches entities extracted from any of those memories."""

    scope: GraphScope
    ids: tuple[str, ...] | None = None
    name: str | None = None
    entity_type: str | None = None
    memory_ids: tuple[str, ...] | None = None
    user_id: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class RelationQuery:
    """Relationships in `scope` touching `entity_ids` (by `direction`: "out", "in" or "both"; None: any
    entity), of `relation_types`, still current unless `include_history`, from `memory_ids`, of `user_id`."""

    scope: GraphScope
    entity_ids: tuple[str, ...] | None = None
    direction: str = "both"
    relation_types: tuple[str, ...] | None = None
    include_history: bool = False
    ids: tuple[str, ...] | None = None
    memory_ids: tuple[str, ...] | None = None
    user_id: str | None = None


@dataclass
class GraphResult:
    """What a traversal reached: the entities (with `hops[id]`, their distance from the start) and the
    relationships walked."""

    entities: list[Entity] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    hops: dict[str, int] = field(default_factory=dict)
