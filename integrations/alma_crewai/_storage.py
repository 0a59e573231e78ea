"""`AlmaStorage`: CrewAI 1.15's `StorageBackend` over an ALMA project.

Mapping (see docs/crewai.md):
- a CrewAI scope `.../agent/<role>/...` belongs to ALMA agent `agents.get(role, role)`; any other scope
  to the default `agent`. The full scope is kept in the memory's metadata.
- a saved record becomes `DomainKnowledge`. Its domain is the first of its categories the agent may
  learn; else (CrewAI's categories are free labels) the agent's task category (`domains`), else its
  first `can_learn`. A category in the agent's `cannot_learn` is refused (`ScopeViolation`).
- every ALMA memory reads back as a record whose categories are `[memory_type, task_type or domain]`;
  memories ALMA learned itself live at `<root_scope>/agent/<agent>`.
- search: a vector made by `storage.embedder` (ALMA's) is mapped back to its text and answered by
  `alma.retrieve` (ALMA's ranking, sharing applied). Any other embedder's vector is compared with the
  vectors the crew gave its saved records, kept beside them in ALMA's record space.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from alma_core import (
    ALMA,
    AgentConfig,
    MemorySlice,
    MemoryType,
    NotFound,
    ScopeViolation,
    UnknownAgent,
    ValidationError,
)
from alma_core.storage import DeleteRecords, ListRecords, PutRecord, Record

from ._deps import require_crewai

if TYPE_CHECKING:
    from alma_core import Memory

require_crewai()

from crewai.memory.types import MemoryRecord, ScopeInfo  # noqa: E402

__all__ = ["AlmaStorage", "TextEmbedder", "may_learn"]

_META = "crewai"  # metadata key holding what CrewAI knows and ALMA does not (scope, categories, ...)
_VECTORS = "crewai/vectors"  # record namespace: the crew's own vector of each saved record, by memory id
_LISTED = ("heuristic", "anti_pattern", "outcome")  # types shown as the core renders them


def _norm(scope: str | None) -> str:
    parts = [p for p in (scope or "/").split("/") if p]
    return "/" + "/".join(parts)


def _under(scope: str, prefix: str | None) -> bool:
    if prefix is None or _norm(prefix) == "/":
        return True
    prefix = _norm(prefix)
    return scope == prefix or scope.startswith(prefix + "/")


def _agent_root(scope: str | None) -> bool:
    """Whether a scope is exactly an agent's (`.../agent/<role>`)."""
    parts = _norm(scope).split("/")
    return len(parts) >= 3 and parts[-2] == "agent"


def may_learn(alma: ALMA, agent: str, category: str) -> bool:
    """Whether ALMA lets `agent` learn a memory of `category`."""
    try:
        alma.scopes.check_write(agent, category)
    except (ScopeViolation, UnknownAgent):
        return False
    return True


def _naive_utc(stamp: datetime) -> datetime:
    """CrewAI compares against `datetime.utcnow()` (naive UTC)."""
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


class TextEmbedder:
    """CrewAI's embedder callable over ALMA's embedder, remembering which text made which vector
    (bounded), so `AlmaStorage.search` can hand ALMA the query text instead of a vector."""

    def __init__(self, alma: ALMA, size: int = 4096) -> None:
        self.alma, self.size = alma, size
        self._texts: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(vector: Sequence[float] | np.ndarray) -> bytes:
        return np.asarray(vector, dtype=np.float32).tobytes()

    def __call__(self, input: list[str]) -> list[list[float]]:
        vectors = self.alma.embedder.embed_documents(list(input))
        with self._lock:
            for text, vector in zip(input, vectors, strict=True):
                self._texts[self._key(vector)] = text
                self._texts.move_to_end(self._key(vector))
            while len(self._texts) > self.size:
                self._texts.popitem(last=False)
        return [[float(x) for x in vector] for vector in vectors]

    def text_of(self, vector: Sequence[float]) -> str | None:
        with self._lock:
            return self._texts.get(self._key(vector))


class AlmaStorage:
    """CrewAI memory storage backed by ALMA: `Memory(storage=s, embedder=s.embedder)`.

    `agent` owns records whose scope names no agent; `agents` maps sanitized CrewAI roles to ALMA
    agent names; `root_scope` is where memories ALMA learned itself appear (use the crew's
    `/crew/<name>`); `domains` maps an ALMA agent to the domain of saved records whose categories it
    may not learn (`AlmaCrewMemory.attach` fills it with each agent's task category).
    """

    def __init__(
        self,
        alma: ALMA,
        *,
        agent: str = "crew",
        agents: Mapping[str, str] | None = None,
        root_scope: str = "/",
        default_domain: str = "general",
        domains: Mapping[str, str] | None = None,
    ) -> None:
        self.alma = alma
        self.agent = agent
        self.agents = dict(agents or {})
        self.roles = {name: role for role, name in self.agents.items()}
        self.root_scope = _norm(root_scope)
        self.default_domain = default_domain
        self.domains = dict(domains or {})
        self.embedder = TextEmbedder(alma)

    # ---- mapping ----------------------------------------------------------------------------------

    def agent_of(self, scope: str | None) -> str | None:
        """The ALMA agent a scope belongs to (None: it names none)."""
        parts = _norm(scope).split("/")
        for i, part in enumerate(parts[:-1]):
            if part == "agent":
                return self.agents.get(parts[i + 1], parts[i + 1])
        return None

    def scope_of(self, memory: Memory) -> str:
        saved = memory.metadata.get(_META, {}).get("scope")
        if saved:
            return str(saved)
        if memory.agent == self.agent or memory.agent == "*":
            return self.root_scope
        role = self.roles.get(memory.agent, memory.agent)
        return _norm(f"{self.root_scope}/agent/{role}")

    def to_record(self, memory: Memory) -> MemoryRecord:
        """An ALMA memory as a CrewAI record (ALMA's id; no vector: ALMA keeps its own)."""
        crew = memory.metadata.get(_META)
        categories = self.categories_of(memory)
        if crew is not None:
            content = memory.text
            metadata = dict(crew.get("metadata", {}))
            importance, source, private = crew.get("importance", 0.5), crew.get("source"), crew.get("private", False)
        else:
            content = memory.text
            if memory.memory_type.value in _LISTED:  # "Don't: ...", "When ...: ... (3/3 succeeded)", "... → failed"
                lines = MemorySlice(**{f"{memory.memory_type.value}s": [memory]}).to_prompt().splitlines()  # type: ignore[arg-type]
                content = lines[-1].removeprefix("- ")
            metadata = {"alma_type": memory.memory_type.value, "alma_agent": memory.agent}
            importance, source, private = memory.confidence, None, False
        stamp = _naive_utc(memory.created_at)
        return MemoryRecord(
            id=memory.id, content=content, scope=self.scope_of(memory), categories=categories, metadata=metadata,
            importance=importance, created_at=stamp, last_accessed=_naive_utc(memory.updated_at), source=source,
            private=private,
        )  # fmt: skip

    @staticmethod
    def categories_of(memory: Memory) -> list[str]:
        """A memory's CrewAI categories: those it was saved with, else `[memory_type, task_type or domain]`."""
        crew = memory.metadata.get(_META)
        if crew is not None:
            return list(crew.get("categories", []))
        return [memory.memory_type.value, *([memory.category] if memory.category else [])]

    def _write(self, record: MemoryRecord) -> Memory:
        crew = {
            "scope": _norm(record.scope), "categories": list(record.categories), "metadata": dict(record.metadata),
            "importance": record.importance, "source": record.source, "private": record.private,
        }  # fmt: skip
        agent = self.agent_of(record.scope) or self.agent
        memory = self.alma.add_domain_knowledge(
            agent, self.domain_for(agent, record.categories), record.content, source=record.source or "crewai",
            created_at=record.created_at, confidence=record.importance, metadata={_META: crew},
        )  # fmt: skip
        if record.embedding and self.embedder.text_of(record.embedding) is None:  # another embedder's vector
            vector = np.asarray(record.embedding, dtype=np.float32)
            self.alma.storage.execute(PutRecord(Record(self.alma.project_id, _VECTORS, memory.id, vector.tobytes(),
                                                       metadata={"agent": agent})))  # fmt: skip
        return memory

    def domain_for(self, agent: str, categories: Sequence[str]) -> str:
        """The ALMA domain of a record `agent` saves with CrewAI's `categories` (see the module docstring)."""
        try:
            config: AgentConfig | None = self.alma.scopes.config(agent)
        except UnknownAgent:
            config = None  # the write will say so
        for category in categories:
            if may_learn(self.alma, agent, category) or (config is not None and category in config.cannot_learn):
                return category  # learnable, or refused on purpose by the write
        if agent in self.domains:
            return self.domains[agent]
        if config is not None and config.can_learn:
            return config.can_learn[0]
        return categories[0] if categories else self.default_domain

    def _memories(self, scope_prefix: str | None, limit: int | None = None) -> list[Memory]:
        """The memories a scope can hold, newest first: one agent's when the scope names one."""
        agent = self.agent_of(scope_prefix)
        return self.alma.list_memories(agent=agent, limit=limit)

    def _scoped(self, scope_prefix: str | None = None, limit: int | None = None) -> list[Memory]:
        """The memories under a scope, newest first, by their scope alone (no record is built)."""
        memories = self._memories(scope_prefix, limit)
        if scope_prefix is None or _norm(scope_prefix) == "/":
            return memories
        return [m for m in memories if _under(self.scope_of(m), scope_prefix)]

    def _records(self, scope_prefix: str | None = None, limit: int | None = None) -> list[MemoryRecord]:
        return [self.to_record(m) for m in self._scoped(scope_prefix, limit)]

    def _forget(self, memory_ids: Sequence[str]) -> None:
        for memory_id in memory_ids:
            self.alma.delete(memory_id)
        if memory_ids:
            self.alma.storage.execute(DeleteRecords(self.alma.project_id, _VECTORS, tuple(memory_ids)))

    # ---- StorageBackend ---------------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        """Store records as ALMA knowledge in one transaction (all or none); each record's id becomes its
        ALMA id, and a vector from another embedder than ALMA's is kept for `search`."""
        with self.alma.storage.transaction():
            ids = [self._write(record).id for record in records]
        for record, memory_id in zip(records, ids, strict=True):
            record.id = memory_id

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        """Records for a query vector, as (record, score) best first (see the module docstring)."""
        query = self.embedder.text_of(query_embedding)
        if query is not None:
            hits = self._search_text(query, scope_prefix, limit)
        else:
            hits = self._search_vector(np.asarray(query_embedding, dtype=np.float32), scope_prefix, limit)
        found: dict[str, tuple[MemoryRecord, float]] = {}
        for record, score in hits:
            if (
                score >= min_score and (not categories or set(categories) & set(record.categories))
                and all(record.metadata.get(k) == v for k, v in (metadata_filter or {}).items())
                and score > found.get(record.id, (record, -1.0))[1]
            ):  # fmt: skip
                found[record.id] = (record, score)
        return sorted(found.values(), key=lambda pair: -pair[1])[:limit]

    def _visible(self, record: MemoryRecord, scope_prefix: str | None) -> bool:
        """An agent's own scope shows all ALMA lets the agent read (shared memories too); other
        scopes show the records under them."""
        return _agent_root(scope_prefix) or _under(record.scope, scope_prefix)

    def _search_text(self, query: str, scope_prefix: str | None, limit: int) -> list[tuple[MemoryRecord, float]]:
        """ALMA's own ranking: `alma.retrieve` for each agent the scope reads."""
        hits = []
        for agent in self._readers(scope_prefix):
            for memory in self.alma.retrieve(query, agent, top_k=max(1, min(limit * 2, 1000))):
                record = self.to_record(memory)
                if self._visible(record, scope_prefix):
                    hits.append((record, min(1.0, max(0.0, memory.score or 0.0))))
        return hits

    def _search_vector(
        self, vector: np.ndarray, scope_prefix: str | None, limit: int
    ) -> list[tuple[MemoryRecord, float]]:
        """Cosine similarity against the vectors the crew gave its saved records (those it may read)."""
        agent = self.agent_of(scope_prefix)
        readers = set(self.alma.scopes.readable(agent)) if agent is not None else None
        stored = [
            r for r in self.alma.storage.execute(ListRecords(self.alma.project_id, _VECTORS))
            if readers is None or r.metadata.get("agent") in readers
        ]  # fmt: skip
        matrix = [np.frombuffer(r.value or b"", dtype=np.float32) for r in stored]
        keep = [i for i, row in enumerate(matrix) if row.shape == vector.shape]
        if not keep or not np.any(vector):
            return []
        rows = np.stack([matrix[i] for i in keep])
        norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(vector)
        scores = rows @ vector / np.where(norms == 0, 1.0, norms)
        hits = []
        for i in np.argsort(-scores)[: max(limit * 4, 20)]:
            record = self.get_record(stored[keep[int(i)]].key)
            if record is not None and self._visible(record, scope_prefix):
                hits.append((record, float(min(1.0, max(0.0, scores[i])))))
        return hits

    def _readers(self, scope_prefix: str | None) -> list[str]:
        """Whose memories a search reads: the scope's agent, else every configured (or stored) agent."""
        agent = self.agent_of(scope_prefix)
        if agent is not None:
            return [agent]
        if self.alma.config.agents:
            return list(self.alma.config.agents)
        return list(dict.fromkeys([self.agent, *(a for a in self.alma.stats().by_agent if a != "*")]))

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the memories matching every given criterion; returns how many."""
        if record_ids is not None:  # by id: no scan
            candidates = [m for m in map(self._get, dict.fromkeys(record_ids)) if m is not None]
            candidates = [m for m in candidates if _under(self.scope_of(m), scope_prefix)]
        else:
            candidates = self._scoped(scope_prefix)
        if categories:
            candidates = [m for m in candidates if set(categories) & set(self.categories_of(m))]
        if older_than is not None:
            candidates = [m for m in candidates if _naive_utc(m.created_at) < _naive_utc(older_than)]
        if metadata_filter:  # the record's metadata (built only for what the other criteria kept)
            wanted = metadata_filter.items()
            candidates = [m for m in candidates if all(self.to_record(m).metadata.get(k) == v for k, v in wanted)]
        self._forget([m.id for m in candidates])
        return len(candidates)

    def update(self, record: MemoryRecord) -> None:
        """Replace a record CrewAI saved (knowledge); learned memories are ALMA's to change."""
        old = self.alma.get(record.id)
        if old.memory_type is not MemoryType.KNOWLEDGE:
            raise ValidationError(f"{record.id} is an ALMA {old.memory_type.value}: only records CrewAI saved update")
        with self.alma.storage.transaction():
            new_id = self._write(record).id
            self._forget([old.id])
        record.id = new_id

    def get_record(self, record_id: str) -> MemoryRecord | None:
        memory = self._get(record_id)
        return None if memory is None else self.to_record(memory)

    def _get(self, record_id: str) -> Memory | None:
        try:
            return self.alma.get(record_id)
        except NotFound:
            return None

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        """Records under a scope, newest first (the whole store: only the first `offset + limit` are read)."""
        whole = scope_prefix is None or _norm(scope_prefix) == "/"
        page = self._scoped(scope_prefix, limit=offset + limit if whole else None)[offset : offset + limit]
        return [self.to_record(m) for m in page]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        memories = self._scoped(scope)
        stamps = [_naive_utc(m.created_at) for m in memories]
        return ScopeInfo(
            path=_norm(scope), record_count=len(memories),
            categories=sorted({c for m in memories for c in self.categories_of(m)}),
            oldest_record=min(stamps, default=None), newest_record=max(stamps, default=None),
            child_scopes=_children(_norm(scope), map(self.scope_of, memories)),
        )  # fmt: skip

    def list_scopes(self, parent: str = "/") -> list[str]:
        """Immediate child scopes of `parent` that hold records."""
        return _children(_norm(parent), map(self.scope_of, self._scoped(parent)))

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        return dict(Counter(c for m in self._scoped(scope_prefix) for c in self.categories_of(m)))

    def count(self, scope_prefix: str | None = None) -> int:
        """How many records a scope holds: the whole store is counted by ALMA, without reading it; a
        scope by its memories' scopes (one agent's memories when it names one), building no record."""
        if scope_prefix is None or _norm(scope_prefix) == "/":
            return self.alma.stats().total
        return len(self._scoped(scope_prefix))

    def reset(self, scope_prefix: str | None = None) -> None:
        self.delete(scope_prefix=scope_prefix)

    # ---- async twins (ALMA's store is sync; these run on a worker thread) -------------------------

    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(
            self.search, query_embedding, scope_prefix, categories, metadata_filter, limit, min_score
        )

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return await asyncio.to_thread(self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter)

    def __repr__(self) -> str:
        return f"AlmaStorage({self.alma!r}, agent={self.agent!r}, root_scope={self.root_scope!r})"


def _children(parent: str, scopes: Iterable[str]) -> list[str]:
    base = "" if parent == "/" else parent
    children = set()
    for scope in scopes:
        rest = scope[len(base) :].strip("/")
        if rest and scope != parent:
            children.add(f"{base}/{rest.split('/', 1)[0]}")
    return sorted(children)
