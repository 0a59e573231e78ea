"""Retrieval: hybrid candidate search (dense + lexical, fused) and multi-factor ranking.

relevance: dense = cosine (clipped at 0); lexical = BM25 / best BM25 of the list, times the share of
the query's topic words the memory holds; hybrid = weighted fusion `dense_weight * dense +
(1 - dense_weight) * lexical`, whose lexical share `fusion="gated"` (the default) scales by the best
such share of any hit (see `fuse`), or reciprocal-rank fusion normalised by its maximum (`"rrf"`).

score = (w_relevance*relevance + w_recency*recency + w_success*success + w_confidence*confidence)
        / (sum of the weights)
recency = 0.5 ** (age_days / recency_half_life_days); success = a learned heuristic's lower bound on
its recent success rate (`metadata["success_lcb"]`, see `_learning`), else its confidence,
(successes + 1) / (trials + 2) for other heuristics, 1 / 0.25 for a successful / failed outcome, 1
otherwise. Each returned memory carries
`score` and `score_breakdown`. Retired heuristics and anti-patterns (metadata["retired"]) are skipped.
With `diversity > 0`, each type's list is re-ranked by MMR so near-copies never fill top_k.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ._config import RetrievalConfig
from ._models import Heuristic, Memory, MemoryType, Outcome, idle_days, utcnow
from ._slice import MemorySlice
from .embeddings import Embedder
from .storage._base import BaseStorage, DenseSearch, FindMemories, LexicalSearch, MemoryFilter

__all__ = ["Retriever", "recency_factor", "success_factor"]

_RRF_K = 60.0
_WORD = re.compile(r"[\w][\w:.-]*[\w]|\w", re.UNICODE)
# Function words carry no topic: matching them only adds noise to BM25 (they are dropped from the
# lexical query, never from the stored text).
_STOP = frozenset({
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "each", "for",
    "from", "get", "gets", "got", "had", "has", "have", "having", "he", "her", "here", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "keep", "keeps", "let", "like", "make", "me", "more", "most",
    "my", "no", "not", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same",
    "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "why", "will", "with", "without", "would", "you", "your",
})  # fmt: skip


@functools.lru_cache(maxsize=16_384)  # the same memories come back query after query
def _topic_words(text: str) -> frozenset[str]:
    return frozenset(w.lower()[:6] for w in _WORD.findall(text) if w.lower() not in _STOP)


def lexical_query(text: str) -> str:
    """The query's topic words (function words dropped), or the text itself when nothing is left."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
    return " ".join(words) if words else text


def success_factor(memory: Memory) -> float:
    """How well this memory's advice works now: for a learned heuristic a lower bound on its recent
    success rate (see `_learning.success_lower_bound`), else (successes + 1) / (trials + 2)."""
    if isinstance(memory, Heuristic):
        if "success_lcb" in memory.metadata:
            return float(memory.metadata["success_lcb"])
        if "evidence_key" in memory.metadata:
            return memory.confidence
        return (memory.success_count + 1) / (memory.occurrence_count + 2)
    if isinstance(memory, Outcome):
        return 1.0 if memory.success else 0.25
    return 1.0  # a confirmed warning, a preference or a fact is always worth showing


def recency_factor(memory: Memory, half_life_days: float, now_ts: float) -> float:
    """0.5 ** (age in days / half-life), age from last validation (heuristics) or last update."""
    return float(0.5 ** (idle_days(memory, now_ts) / half_life_days))


def fuse(
    dense: list[list[tuple[str, float]]],
    lexical: list[list[tuple[str, float]]],
    mode: str,
    fusion: str = "gated",
    dense_weight: float = 0.6,
    coverage: dict[str, float] | None = None,
) -> dict[str, float]:
    """Dense similarities and lexical scores (lists best first) -> relevance in [0, 1].

    A lexical score is BM25 / the list's best BM25, times `coverage` (the share of the query's topic
    words the memory contains) when given: a weak match on one word of a long query then stays weak.
    `fusion="gated"` is weighted fusion whose lexical share is scaled by the best coverage of any hit:
    when no memory contains most of the query's words (a paraphrase), lexical is mostly noise.
    """
    dense_rel = {i: max(0.0, min(1.0, s)) for hits in dense for i, s in hits}
    lex_rel: dict[str, float] = {}
    for hits in lexical:
        top = hits[0][1] if hits else 1.0
        for memory_id, score in hits:
            share = 1.0 if coverage is None else coverage.get(memory_id, 0.0)
            lex_rel[memory_id] = share * score / top if top > 0 else 0.0
    if mode == "dense":
        return dense_rel
    if mode == "lexical":
        return lex_rel
    if fusion == "rrf":
        fused: dict[str, float] = {}
        for hits in [*dense, *lexical]:
            for rank, (memory_id, _) in enumerate(hits):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
        best = 2.0 / (_RRF_K + 1)
        return {i: min(1.0, s / best) for i, s in fused.items()}
    lex_weight = 1.0 - dense_weight
    if fusion == "gated" and coverage is not None:
        lex_weight *= max((coverage.get(i, 0.0) for hits in lexical for i, _ in hits), default=0.0)
    ids = dense_rel.keys() | lex_rel.keys()
    return {i: (1 - lex_weight) * dense_rel.get(i, 0.0) + lex_weight * lex_rel.get(i, 0.0) for i in ids}


def mmr(ranked: list[Memory], k: int, diversity: float) -> list[Memory]:
    """Maximal marginal relevance: trade score against similarity to what is already chosen."""
    if diversity <= 0 or len(ranked) <= 1:
        return ranked[:k]
    chosen: list[Memory] = []
    rest = list(ranked)
    while rest and len(chosen) < k:
        best_i, best_v = 0, -np.inf
        for i, memory in enumerate(rest):
            redundancy = 0.0
            if memory.embedding is not None:
                for other in chosen:
                    if other.embedding is not None:
                        redundancy = max(redundancy, float(np.dot(memory.embedding, other.embedding)))
            value = (1 - diversity) * (memory.score or 0.0) - diversity * redundancy
            if value > best_v:
                best_i, best_v = i, value
        chosen.append(rest.pop(best_i))
    return chosen


# A query vector, or a callable returning it once a worker thread has computed it, or None.
VectorSource = np.ndarray | Callable[[], np.ndarray] | None
# Embedding slower than this (a moving average) runs on a worker thread, overlapping lexical search.
_OVERLAP_EMBED_MS = 2.0
_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def _embed_pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="alma-embed"))
        return _pool[0]


def _forget_pool_in_child() -> None:  # a forked child has none of the parent's worker threads
    global _pool_lock
    _pool.clear()
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


class Retriever:
    """Finds and ranks memories for a query within a filter. Backend-independent."""

    def __init__(self, storage: BaseStorage, embedder: Embedder, config: RetrievalConfig) -> None:
        self.storage, self.embedder, self.config = storage, embedder, config
        self._embed_ms = 0.0  # moving average of query embedding time
        self.graph_weight = 0.3  # the graph's share in relevance (ALMA sets it from `graph.weight`)

    def query_vector(self, query: str, mode: str | None = None) -> VectorSource:
        """The query's embedding when `mode` searches densely, else None. When embedding is slow (a
        model, not the mock), it runs on a worker thread and this returns a callable that waits for
        it: `candidates()` runs the lexical search meanwhile."""
        if (mode or self.config.mode) not in ("hybrid", "dense"):
            return None
        if self._embed_ms < _OVERLAP_EMBED_MS:
            return self._embed_query(query)
        return _embed_pool().submit(self._embed_query, query).result

    def _embed_query(self, query: str) -> np.ndarray:
        start = time.perf_counter()
        vector = self.embedder.embed_query(query)
        self._embed_ms = 0.8 * self._embed_ms + 0.2 * (time.perf_counter() - start) * 1000
        return vector

    def candidates(
        self,
        base: MemoryFilter,
        query: str,
        types: Sequence[MemoryType],
        mode: str | None = None,
        vector: VectorSource = None,
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """Candidate memories and their fused relevance in [0, 1] (`vector`: the query's, from
        `query_vector()`, if computed)."""
        mode = mode or self.config.mode
        k = self.config.candidates
        lex_query = lexical_query(query)
        filters = [replace(base, types=(memory_type,)) for memory_type in types]
        with self.storage.transaction(write=False) as tx:
            lex_ops = [LexicalSearch(f, lex_query, k) for f in filters] if mode in ("hybrid", "lexical") else []
            lexical = [tx.execute(op) for op in lex_ops]  # first: the query embedding may still be running
            if mode not in ("hybrid", "dense"):
                vector = None
            elif vector is None:
                vector = self.embedder.embed_query(query)
            elif callable(vector):
                vector = vector()
            dense = [tx.execute(DenseSearch(f, vector, k)) for f in filters] if vector is not None else []
            ids = tuple({i: None for hits in [*dense, *lexical] for i, _ in hits})
            with_vectors = self.config.diversity > 0
            found = (
                tx.execute(FindMemories(replace(base, ids=ids, types=tuple(types)), with_embeddings=with_vectors))
                if ids
                else []
            )
        memories = {m.id: m for m in found}
        words = _topic_words(query)
        lex_ids = {i for hits in lexical for i, _ in hits if i in memories}  # coverage only weighs lexical hits
        coverage = {i: len(words & _topic_words(memories[i].text)) / len(words) for i in lex_ids} if words else None
        relevance = fuse(dense, lexical, mode, self.config.fusion, self.config.dense_weight, coverage)
        return memories, relevance

    def with_graph(
        self,
        base: MemoryFilter,
        types: Sequence[MemoryType],
        memories: dict[str, Memory],
        relevance: dict[str, float],
        graph: dict[str, float],
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """Add the memories graph memory leads to (within `base`: the same scopes) and fuse the graph score
        into relevance as a noisy-or, 1 - (1 - relevance) * (1 - graph_weight * graph): never lower, and a
        memory the text search missed enters with at most `graph_weight`."""
        missing = tuple(i for i in graph if i not in memories)
        if missing:
            found = self.storage.execute(FindMemories(replace(base, ids=missing, types=tuple(types)),
                                                      with_embeddings=self.config.diversity > 0))  # fmt: skip
            memories = {**memories, **{m.id: m for m in found}}
        weight = self.graph_weight
        fused = {i: 1.0 - (1.0 - relevance.get(i, 0.0)) * (1.0 - weight * graph.get(i, 0.0)) for i in memories}
        return memories, fused

    def rank(self, memories: dict[str, Memory], relevance: dict[str, float]) -> list[Memory]:
        """Score every candidate (see the module docstring), best first; retired memories are dropped."""
        cfg = self.config
        total = cfg.w_relevance + cfg.w_recency + cfg.w_success + cfg.w_confidence or 1.0
        now_ts = utcnow().timestamp()
        ranked: list[Memory] = []
        for memory_id, memory in memories.items():
            rel = relevance.get(memory_id, 0.0)
            if rel < cfg.min_relevance or memory.metadata.get("retired"):
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
        vector: VectorSource = None,
        graph: dict[str, float] | None = None,
    ) -> MemorySlice:
        """Up to `top_k` memories of each type for `query`, ranked, as a `MemorySlice` (`graph`: memory id
        -> graph score, from `GraphIndex.expand`, fused into relevance by `with_graph`)."""
        start = time.perf_counter()
        memories, relevance = self.candidates(base, query, types, mode, vector)
        if graph is not None:
            memories, relevance = self.with_graph(base, types, memories, relevance, graph)
        result = MemorySlice(query=query, agent=reader)
        by_type: dict[MemoryType, list[Memory]] = {}
        for memory in self.rank(memories, relevance):
            if graph is not None:
                memory.score_breakdown = {**(memory.score_breakdown or {}), "graph": graph.get(memory.id, 0.0)}
            by_type.setdefault(memory.memory_type, []).append(memory)
        for memory_type in MemoryType:
            for memory in mmr(by_type.get(memory_type, []), top_k, self.config.diversity):
                memory.embedding = None  # vectors stay in the store; slices are for prompts
                if memory.agent not in (reader, "*"):
                    memory.metadata["shared_from"] = memory.agent
                result.add(memory)
        result.retrieval_ms = (time.perf_counter() - start) * 1000
        return result
