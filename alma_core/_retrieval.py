"""Retrieval: hybrid candidate search (dense + lexical, fused) and multi-factor ranking.

score = w_relevance*relevance + w_recency*recency + w_success*success + w_confidence*confidence
(weights from `RetrievalConfig`, divided by their sum so scores stay in [0, 1]). Each returned memory
carries `score` and `score_breakdown`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ._config import RetrievalConfig
from ._models import AntiPattern, Heuristic, Memory, MemoryType, Outcome, utcnow
from ._slice import MemorySlice
from .embeddings import Embedder
from .storage._base import BaseStorage, DenseSearch, FindMemories, LexicalSearch, MemoryFilter

__all__ = ["Retriever"]

_RRF_K = 60.0


def success_factor(memory: Memory) -> float:
    """How well this memory's advice has worked, smoothed: (successes + 1) / (trials + 2)."""
    if isinstance(memory, Heuristic):
        return (memory.success_count + 1) / (memory.occurrence_count + 2)
    if isinstance(memory, Outcome):
        return 1.0 if memory.success else 0.25
    if isinstance(memory, AntiPattern):
        return 1.0  # a confirmed warning is always worth showing
    return 1.0


def recency_factor(memory: Memory, half_life_days: float, now_ts: float) -> float:
    stamp = memory.last_validated if isinstance(memory, Heuristic) else memory.updated_at
    age_days = max(0.0, (now_ts - stamp.timestamp()) / 86400.0)
    return float(0.5 ** (age_days / half_life_days))


class Retriever:
    """Finds and ranks memories for a query within a filter. Backend-independent."""

    def __init__(self, storage: BaseStorage, embedder: Embedder, config: RetrievalConfig) -> None:
        self.storage, self.embedder, self.config = storage, embedder, config

    def candidates(
        self, base: MemoryFilter, query: str, types: Sequence[MemoryType], mode: str | None = None
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """Candidate memories and their fused relevance in [0, 1]."""
        mode = mode or self.config.mode
        k = self.config.candidates
        vector = self.embedder.embed_query(query) if mode in ("hybrid", "dense") else None
        ops: list = []
        for memory_type in types:
            f = replace(base, types=(memory_type,))
            if vector is not None:
                ops.append(DenseSearch(f, vector, k))
            if mode in ("hybrid", "lexical"):
                ops.append(LexicalSearch(f, query, k))
        with self.storage.transaction(write=False) as tx:
            results = [tx.execute(op) for op in ops]
            relevance = self._fuse(ops, results, mode)
            ids = tuple(relevance)
            memories = tx.execute(FindMemories(replace(base, ids=ids, types=tuple(types)))) if ids else []
        return {m.id: m for m in memories}, relevance

    @staticmethod
    def _fuse(ops: list, results: list[list[tuple[str, float]]], mode: str) -> dict[str, float]:
        """Dense similarity and lexical ranks -> relevance in [0, 1].

        Hybrid uses reciprocal-rank fusion, normalised by its maximum (rank 1 in both lists).
        """
        if mode == "dense":
            return {i: max(0.0, s) for hits in results for i, s in hits}
        if mode == "lexical":
            rel: dict[str, float] = {}
            for hits in results:
                top = hits[0][1] if hits else 1.0
                for memory_id, score in hits:
                    rel[memory_id] = score / top if top > 0 else 0.0
            return rel
        fused: dict[str, float] = {}
        for hits in results:
            for rank, (memory_id, _) in enumerate(hits):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
        best = 2.0 / (_RRF_K + 1)
        return {i: min(1.0, s / best) for i, s in fused.items()}

    def rank(self, memories: dict[str, Memory], relevance: dict[str, float]) -> list[Memory]:
        cfg = self.config
        total = cfg.w_relevance + cfg.w_recency + cfg.w_success + cfg.w_confidence or 1.0
        now_ts = utcnow().timestamp()
        ranked: list[Memory] = []
        for memory_id, memory in memories.items():
            rel = relevance.get(memory_id, 0.0)
            if rel < cfg.min_relevance:
                continue
            factors = {
                "relevance": rel,
                "recency": recency_factor(memory, cfg.recency_half_life_days, now_ts),
                "success": success_factor(memory),
                "confidence": memory.confidence,
            }
            memory.score = (
                cfg.w_relevance * factors["relevance"]
                + cfg.w_recency * factors["recency"]
                + cfg.w_success * factors["success"]
                + cfg.w_confidence * factors["confidence"]
            ) / total
            memory.score_breakdown = factors
            ranked.append(memory)
        ranked.sort(key=lambda m: (-(m.score or 0.0), m.id))
        return ranked

    def retrieve(
        self,
        base: MemoryFilter,
        query: str,
        top_k: int,
        types: Sequence[MemoryType],
        reader: str,
        mode: str | None = None,
    ) -> MemorySlice:
        start = time.perf_counter()
        memories, relevance = self.candidates(base, query, types, mode)
        result = MemorySlice(query=query, agent=reader)
        counts: dict[MemoryType, int] = {}
        for memory in self.rank(memories, relevance):
            if counts.get(memory.memory_type, 0) >= top_k:
                continue
            counts[memory.memory_type] = counts.get(memory.memory_type, 0) + 1
            if memory.agent not in (reader, "*"):
                memory.metadata["shared_from"] = memory.agent
            result.add(memory)
        result.retrieval_ms = (time.perf_counter() - start) * 1000
        return result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))
