"""Consolidation: merge near-duplicate heuristics, domain knowledge or anti-patterns into one.

Memories of one agent and type whose embeddings' cosine is at least `similarity_threshold` are grouped
(single linkage). Each group becomes its best member (most evidence, then highest confidence) with the
group's counts combined and `metadata["merged_from"]` listing the ids it absorbed; the others are
deleted in the same transaction. With `use_llm=True` the merged text comes from a LangChain chat model
the caller passes (`llm.ainvoke` / `llm.invoke`). `dry_run=True` changes nothing.

Two ways to build one: `ConsolidationEngine(alma)`, or the seed's `ConsolidationEngine(storage=alma.storage,
llm_client=model)`, which works on any project of that store (`consolidate(project_id=...)`) with the
embedder the store records. `memory_type` takes our names or the seed's (`heuristics`,
`domain_knowledge`, `anti_patterns`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import ValidationError
from ._learning import MAX_ERRORS, evidence_namespace, strategy_confidence
from ._models import AntiPattern, DomainKnowledge, Heuristic, Memory, MemoryType, utcnow
from ._plans import After, Compute, Plan, arun
from .events import MemoryEventType
from .storage._base import DeleteMemories, FindMemories, GetRecord, ListRecords, PutMemories, PutRecord, Record

if TYPE_CHECKING:
    from ._alma import ALMA
    from ._context import AlmaContext
    from .embeddings import Embedder
    from .storage._base import BaseStorage

__all__ = ["ConsolidationEngine", "ConsolidationResult", "Merge"]

_TYPES = (MemoryType.HEURISTIC, MemoryType.KNOWLEDGE, MemoryType.ANTI_PATTERN)


@dataclass
class Merge:
    """One group: the memory kept (as merged), and the ids folded into it."""

    kept_id: str
    merged_ids: list[str]
    text: str
    similarity: float


@dataclass
class ConsolidationResult:
    """What a consolidation found and (unless dry_run) did."""

    groups_found: int = 0
    merged_count: int = 0
    merges: list[Merge] = field(default_factory=list)
    dry_run: bool = False


def _groups(memories: Sequence[Memory], threshold: float) -> list[tuple[list[Memory], float]]:
    """Single-linkage groups of size >= 2, each with its lowest linking similarity."""
    vectors = np.stack([np.asarray(m.embedding, dtype=np.float32) for m in memories])
    sims = vectors @ vectors.T
    parent = list(range(len(memories)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links: dict[int, float] = {}
    for i, j in zip(*np.nonzero(np.triu(sims >= threshold, k=1)), strict=True):  # pairs i < j, row by row
        a, b = root(int(i)), root(int(j))
        low = min(links.get(a, 1.0), links.get(b, 1.0), float(sims[i, j]))
        parent[b] = a
        links[a] = low
    members: dict[int, list[Memory]] = {}
    for i, memory in enumerate(memories):
        members.setdefault(root(i), []).append(memory)
    return [(group, links.get(r, 1.0)) for r, group in members.items() if len(group) > 1]


def _weight(memory: Memory) -> tuple[float, float, str]:
    count = getattr(memory, "occurrence_count", 1)
    return (float(count), memory.confidence, memory.id)


def _text_of(memory: Memory) -> str:
    if isinstance(memory, Heuristic):
        return memory.strategy
    if isinstance(memory, AntiPattern):
        return memory.pattern
    assert isinstance(memory, DomainKnowledge)
    return memory.fact


def _combine(kept: Memory, others: list[Memory], text: str) -> Memory:
    """`kept` with the group's evidence folded in and `text` as its main text."""
    group = [kept, *others]
    merged = kept.model_copy(deep=True)
    if isinstance(merged, Heuristic):
        heuristics = [m for m in group if isinstance(m, Heuristic)]
        merged.strategy = text
        merged.success_count = sum(m.success_count for m in heuristics)
        merged.occurrence_count = sum(m.occurrence_count for m in heuristics)
        merged.confidence = round(strategy_confidence(merged.success_count, merged.failure_count), 6)
        merged.last_validated = max(m.last_validated for m in heuristics)
    elif isinstance(merged, AntiPattern):
        antis = [m for m in group if isinstance(m, AntiPattern)]
        merged.pattern = text
        merged.occurrence_count = sum(m.occurrence_count for m in antis)
        merged.why_bad = "; ".join(dict.fromkeys(m.why_bad for m in antis if m.why_bad))
        merged.confidence = max(m.confidence for m in antis)
        merged.last_seen = max(m.last_seen for m in antis)
    elif isinstance(merged, DomainKnowledge):
        merged.fact = text
        merged.confidence = max(m.confidence for m in group)
    previous = [i for m in group for i in m.metadata.get("merged_from", [])]
    merged.metadata["merged_from"] = list(dict.fromkeys([*previous, *(m.id for m in others)]))
    merged.updated_at = utcnow()
    if text != _text_of(kept):
        merged.embedding = None
    return merged


class ConsolidationEngine:
    """Merges near-duplicate memories of an `ALMA` or of a store (see the module docstring)."""

    def __init__(
        self,
        alma: ALMA | None = None,
        *,
        storage: BaseStorage | None = None,
        llm_client: Any = None,
        embedder: Any = None,
    ) -> None:
        """`llm_client`: the chat model `use_llm=True` merges with (unless `consolidate(llm=...)`)."""
        if alma is None and storage is None:
            raise ValidationError("pass an ALMA, or storage=<an ALMA's storage>")
        if alma is not None and storage is not None and storage is not alma.storage:
            raise ValidationError("storage is not this ALMA's storage; pass one or the other")
        self.alma = alma
        self.storage = storage if storage is not None else alma.storage  # type: ignore[union-attr]
        self.llm_client = llm_client
        self._embedder = embedder
        self._projects: dict[str, ALMA] = {}

    def _alma_for(self, project_id: str | None) -> ALMA:
        """The ALMA to consolidate with: the given one, or one over `storage` for `project_id`."""
        if self.alma is not None:
            if project_id not in (None, self.alma.project_id):
                raise ValidationError(f"this ALMA serves project {self.alma.project_id!r}, not {project_id!r}")
            return self.alma
        if not project_id:
            raise ValidationError("ConsolidationEngine(storage=...) needs consolidate(project_id=...)")
        if project_id not in self._projects:
            from ._alma import ALMA

            embedder = self._embedder or _recorded_embedder(self.storage)
            self._projects[project_id] = ALMA(project_id, storage=self.storage, embedder=embedder)
        return self._projects[project_id]

    async def consolidate(
        self,
        agent: str,
        project_id: str | None = None,
        memory_type: MemoryType | str = MemoryType.HEURISTIC,
        similarity_threshold: float = 0.85,
        use_llm: bool = False,
        dry_run: bool = False,
        llm: Any = None,
    ) -> ConsolidationResult:
        """Group `agent`'s memories of `memory_type` by cosine similarity and merge each group into one."""
        alma = self._alma_for(project_id)
        llm = llm if llm is not None else self.llm_client
        try:
            kind: MemoryType | None = MemoryType(memory_type)
        except ValueError:
            kind = None
        if kind is None or kind not in _TYPES:
            raise ValidationError(f"memory_type must be one of {[t.value for t in _TYPES]}, got {memory_type!r}")
        if not 0 < similarity_threshold <= 1:
            raise ValidationError(f"similarity_threshold must be in (0, 1], got {similarity_threshold!r}")
        if use_llm and llm is None:
            raise ValidationError("use_llm=True needs llm=<a LangChain chat model> (or llm_client= at construction)")
        agent = alma.scopes.check_agent(agent)
        ctx = alma.context
        memories = await ctx.storage.aexecute(
            FindMemories(ctx.filter(agents=(agent,), types=(kind,)), descending=False, with_embeddings=True)
        )
        memories = [m for m in memories if m.embedding is not None]
        result = ConsolidationResult(dry_run=dry_run)
        if len(memories) < 2:
            return result
        plans: list[tuple[Memory, list[Memory], float]] = []
        for group, similarity in _groups(memories, similarity_threshold):
            kept = max(group, key=_weight)
            plans.append((kept, [m for m in group if m is not kept], similarity))
        result.groups_found = len(plans)
        merged_memories: list[tuple[Memory, list[Memory]]] = []
        for kept, others, similarity in plans:
            text = _text_of(kept)
            if use_llm and not dry_run:
                text = await self._llm_merge(llm, kind, [kept, *others]) or text
            merged = _combine(kept, others, text)
            merged_memories.append((merged, others))
            result.merges.append(Merge(kept.id, [m.id for m in others], text, similarity))
        if dry_run:
            return result
        await arun(ctx.storage, _write(ctx, merged_memories))
        result.merged_count = sum(len(others) for _, others in merged_memories)
        return result

    def consolidate_sync(self, *args: Any, **kwargs: Any) -> ConsolidationResult:
        """The sync twin of `consolidate` for scripts (not for use inside a running event loop)."""
        return asyncio.run(self.consolidate(*args, **kwargs))

    async def _llm_merge(self, llm: Any, kind: MemoryType, group: list[Memory]) -> str:
        what = {MemoryType.HEURISTIC: "strategies", MemoryType.ANTI_PATTERN: "things to avoid"}.get(kind, "facts")
        prompt = (
            f"Merge these {what} into one concise statement that keeps every distinct detail. "
            "Reply with the merged statement only.\n" + "\n".join(f"- {_text_of(m)}" for m in group)
        )
        reply = await llm.ainvoke(prompt) if hasattr(llm, "ainvoke") else llm.invoke(prompt)
        content = getattr(reply, "content", reply)
        return str(content).strip()


def _write(ctx: AlmaContext, merged: list[tuple[Memory, list[Memory]]]) -> Plan[None]:
    """Store the merged memories, delete those they absorbed and repoint the evidence, in one write
    transaction with the events; then emit them."""
    kept = [m for m, _ in merged]
    gone = [m for _, others in merged for m in others]
    yield Compute(ctx.embed, kept)
    yield [
        PutMemories(kept),
        DeleteMemories(ctx.filter(ids=tuple(sorted({m.id for m in gone})))),
        *ctx.staged(MemoryEventType.CONSOLIDATED, kept),
        *ctx.staged(MemoryEventType.DELETED, gone, reason="consolidated"),
    ]
    for memory, others in merged:
        yield from _repoint_evidence(memory, others)
    yield After(ctx.emit, MemoryEventType.CONSOLIDATED, kept)
    yield After(ctx.emit, MemoryEventType.DELETED, gone, reason="consolidated")


def _repoint_evidence(kept: Memory, others: list[Memory]) -> Plan[None]:
    """Future outcomes of an absorbed strategy update the kept memory.

    Merged heuristics fold their evidence records into the kept one and leave an alias behind;
    merged anti-patterns point their records at the kept anti-pattern.
    """
    task_type = getattr(kept, "task_type", None)
    if not task_type:
        return
    ns = evidence_namespace(kept.agent, task_type)
    if isinstance(kept, Heuristic):
        target = (yield [GetRecord(kept.project_id, ns, str(kept.metadata.get("evidence_key", "")))])[0]
        if target is None:
            return
        meta = dict(target.metadata)
        for other in others:
            key = str(other.metadata.get("evidence_key", ""))
            record = (yield [GetRecord(kept.project_id, ns, key)])[0] if key else None
            if record is None or record.metadata.get("kind") != "strategy":
                continue
            for name in ("successes", "failures", "w_success", "w_failure"):
                meta[name] += record.metadata[name]
            meta["errors"] = list(dict.fromkeys([*meta["errors"], *record.metadata["errors"]]))[-MAX_ERRORS:]
            alias = {"kind": "alias", "target": target.key, "strategy": record.metadata["strategy"]}
            yield [PutRecord(Record(kept.project_id, ns, key, None, alias))]
        yield [PutRecord(Record(kept.project_id, ns, target.key, target.value, meta))]
        return
    ids = {m.id for m in others}
    for record in (yield [ListRecords(kept.project_id, ns)])[0]:
        if record.metadata.get("anti_pattern_id") in ids:
            meta = {**record.metadata, "anti_pattern_id": kept.id}
            yield [PutRecord(Record(record.project_id, record.namespace, record.key, record.value, meta))]


def _recorded_embedder(storage: BaseStorage) -> Embedder:
    """The embedder the store says built its vectors (mock or local); others must be passed explicitly."""
    from .embeddings import LocalEmbedder, MockEmbedder
    from .storage._base import SYSTEM_PROJECT

    record = storage.execute(GetRecord(SYSTEM_PROJECT, "meta", "embedder"))
    meta = record.metadata if record is not None else {}
    if meta.get("name") == "mock":
        return MockEmbedder(int(meta.get("dim", 384)))
    if meta.get("name") == LocalEmbedder.name:
        return LocalEmbedder()
    raise ValidationError(
        f"the store's vectors were built with {meta.get('name')!r}; pass ConsolidationEngine(..., embedder=...)"
    )
