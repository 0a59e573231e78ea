"""`AlmaStorage`: CrewAI 1.15's `StorageBackend` over an ALMA project.

Mapping (see docs/crewai.md):
- a CrewAI scope `.../agent/<role>/...` belongs to ALMA agent `agents.get(role, role)`; any other scope
  to the default `agent`. The full scope is kept in the memory's metadata.
- a saved record becomes `DomainKnowledge` (domain = its first category, else "general"); ALMA's
  can_learn / cannot_learn apply to that domain.
- every ALMA memory reads back as a record whose categories are `[memory_type, task_type or domain]`;
  memories ALMA learned itself live at `<root_scope>/agent/<agent>`.
- search goes through `alma.retrieve`: the query vector is mapped back to the text it was made from,
  so Memory must embed through `storage.embedder`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from alma_core import ALMA, MemorySlice, MemoryType, NotFound, ValidationError

from ._deps import require_crewai

if TYPE_CHECKING:
    from alma_core import Memory

require_crewai()

from crewai.memory.types import MemoryRecord, ScopeInfo  # noqa: E402

__all__ = ["AlmaStorage", "TextEmbedder"]

_META = "crewai"  # metadata key holding what CrewAI knows and ALMA does not (scope, categories, ...)
_LISTED = ("heuristic", "anti_pattern", "outcome")  # types shown as the core renders them


def _norm(scope: str | None) -> str:
    parts = [p for p in (scope or "/").split("/") if p]
    return "/" + "/".join(parts)


def _under(scope: str, prefix: str | None) -> bool:
    if prefix is None or _norm(prefix) == "/":
        return True
    prefix = _norm(prefix)
    return scope == prefix or scope.startswith(prefix + "/")


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
    `/crew/<name>`).
    """

    def __init__(
        self,
        alma: ALMA,
        *,
        agent: str = "crew",
        agents: Mapping[str, str] | None = None,
        root_scope: str = "/",
        default_domain: str = "general",
    ) -> None:
        self.alma = alma
        self.agent = agent
        self.agents = dict(agents or {})
        self.roles = {name: role for role, name in self.agents.items()}
        self.root_scope = _norm(root_scope)
        self.default_domain = default_domain
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
        if crew is not None:
            content, categories = memory.text, list(crew.get("categories", []))
            metadata = dict(crew.get("metadata", {}))
            importance, source, private = crew.get("importance", 0.5), crew.get("source"), crew.get("private", False)
        else:
            content = memory.text
            if memory.memory_type.value in _LISTED:  # "Don't: ...", "When ...: ... (3/3 succeeded)", "... → failed"
                lines = MemorySlice(**{f"{memory.memory_type.value}s": [memory]}).to_prompt().splitlines()  # type: ignore[arg-type]
                content = lines[-1].removeprefix("- ")
            categories = [memory.memory_type.value, *([memory.category] if memory.category else [])]
            metadata = {"alma_type": memory.memory_type.value, "alma_agent": memory.agent}
            importance, source, private = memory.confidence, None, False
        stamp = _naive_utc(memory.created_at)
        return MemoryRecord(
            id=memory.id, content=content, scope=self.scope_of(memory), categories=categories, metadata=metadata,
            importance=importance, created_at=stamp, last_accessed=_naive_utc(memory.updated_at), source=source,
            private=private,
        )  # fmt: skip

    def _write(self, record: MemoryRecord) -> Memory:
        crew = {
            "scope": _norm(record.scope), "categories": list(record.categories), "metadata": dict(record.metadata),
            "importance": record.importance, "source": record.source, "private": record.private,
        }  # fmt: skip
        domain = record.categories[0] if record.categories else self.default_domain
        return self.alma.add_domain_knowledge(
            self.agent_of(record.scope) or self.agent, domain, record.content, source=record.source or "crewai",
            created_at=record.created_at, confidence=record.importance, metadata={_META: crew},
        )  # fmt: skip

    def _records(self, scope_prefix: str | None = None) -> list[MemoryRecord]:
        records = (self.to_record(m) for m in self.alma.list_memories())
        return [r for r in records if _under(r.scope, scope_prefix)]

    # ---- StorageBackend ---------------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        """Store records as ALMA knowledge, all or none; each record's id becomes its ALMA id."""
        written: list[tuple[MemoryRecord, str]] = []
        try:
            for record in records:
                written.append((record, self._write(record).id))
        except Exception:
            for _, memory_id in written:
                self.alma.delete(memory_id)
            raise
        for record, memory_id in written:
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
        """`alma.retrieve` for the query text, as (record, score) best first."""
        query = self.embedder.text_of(query_embedding)
        if query is None:
            raise ValidationError(
                "AlmaStorage searches by text: build the Memory with embedder=storage.embedder "
                "(or use alma_crewai.alma_memory) so the query vector can be traced to its text"
            )
        found: dict[str, tuple[MemoryRecord, float]] = {}
        for agent in self._readers(scope_prefix):
            for memory in self.alma.retrieve(query, agent, top_k=max(1, min(limit * 2, 1000))):
                record = self.to_record(memory)
                score = min(1.0, max(0.0, memory.score or 0.0))
                if (
                    score >= min_score and _under(record.scope, scope_prefix)
                    and (not categories or set(categories) & set(record.categories))
                    and all(record.metadata.get(k) == v for k, v in (metadata_filter or {}).items())
                ):  # fmt: skip
                    found[record.id] = max(found.get(record.id, (record, -1.0)), (record, score), key=lambda p: p[1])
        return sorted(found.values(), key=lambda pair: -pair[1])[:limit]

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
        doomed = [
            r for r in self._records(scope_prefix)
            if (record_ids is None or r.id in record_ids)
            and (not categories or set(categories) & set(r.categories))
            and (older_than is None or r.created_at < _naive_utc(older_than))
            and all(r.metadata.get(k) == v for k, v in (metadata_filter or {}).items())
        ]  # fmt: skip
        for record in doomed:
            self.alma.delete(record.id)
        return len(doomed)

    def update(self, record: MemoryRecord) -> None:
        """Replace a record CrewAI saved (knowledge); learned memories are ALMA's to change."""
        old = self.alma.get(record.id)
        if old.memory_type is not MemoryType.KNOWLEDGE:
            raise ValidationError(f"{record.id} is an ALMA {old.memory_type.value}: only records CrewAI saved update")
        new_id = self._write(record).id
        self.alma.delete(old.id)
        record.id = new_id

    def get_record(self, record_id: str) -> MemoryRecord | None:
        try:
            return self.to_record(self.alma.get(record_id))
        except NotFound:
            return None

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        """Records under a scope, newest first."""
        return self._records(scope_prefix)[offset : offset + limit]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        records = self._records(scope)
        stamps = [r.created_at for r in records]
        return ScopeInfo(
            path=_norm(scope), record_count=len(records), categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min(stamps, default=None), newest_record=max(stamps, default=None),
            child_scopes=_children(_norm(scope), records),
        )  # fmt: skip

    def list_scopes(self, parent: str = "/") -> list[str]:
        """Immediate child scopes of `parent` that hold records."""
        return _children(_norm(parent), self._records(parent))

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        return dict(Counter(c for r in self._records(scope_prefix) for c in r.categories))

    def count(self, scope_prefix: str | None = None) -> int:
        return len(self._records(scope_prefix))

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


def _children(parent: str, records: Iterable[MemoryRecord]) -> list[str]:
    base = "" if parent == "/" else parent
    children = set()
    for record in records:
        rest = record.scope[len(base) :].strip("/")
        if rest and record.scope != parent:
            children.add(f"{base}/{rest.split('/', 1)[0]}")
    return sorted(children)
