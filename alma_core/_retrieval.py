"""Retrieval: one search of the store (dense + lexical candidates of every type), fusion into one
relevance, and a ranking in which relevance comes first.

relevance (per query, over every type at once, so scores compare across types):
    dense   = cosine / the best candidate's cosine (clipped at 0)
    lexical = BM25 / best BM25, times the share of the query's topic words the memory holds
    hybrid  = `fusion="weighted"`: dense_weight * calibrated dense + (1 - dense_weight) * lexical, where
              calibrated dense = (cosine - background) / (1 - background), the background being the lowest
              candidate cosine: a flat list of low cosines (a weak dense side) carries little weight; a
              confident lexical match (one memory holding every topic word of the query, or a rare exact
              term such as a name or an id) keeps at least its lexical score; `"rrf"`: reciprocal-rank
              fusion normalised by its maximum
A lesson (heuristic or anti-pattern) is at least as relevant as the best outcome of its task type.
score = relevance * quality * lesson
    quality = (w_relevance + w_recency*recency + w_success*success + w_confidence*confidence)
              / (w_relevance + w_recency + w_success + w_confidence)
        a bounded boost: with the defaults the other factors move a score by at most 25%, so they re-rank
        among relevant memories and never lift an irrelevant recent memory above a relevant old one.
    recency = 0.5 ** (age_days / recency_half_life_days), 1 for the timeless types (knowledge and
              preferences by default, `timeless_types`)
    success = a learned heuristic's lower bound on its recent success rate (`metadata["success_lcb"]`,
              see `_learning`), else its confidence, (successes + 1) / (trials + 2) for other heuristics,
              1 / 0.25 for a successful / failed outcome, 1 otherwise
    lesson  = 1 + lesson_boost * (0.5 + 0.5 * success) for a heuristic (a lesson distilled from many outcomes is worth
              more than any one of them), 1 + 0.4 * lesson_boost * confidence * min(1, evidence / 5) for a
              strategy anti-pattern, half that for a recurring-error warning; 1 for the rest
Each returned memory carries `score` and `score_breakdown` (every factor by name: a new factor, such as a
graph's, adds its name to the breakdown and its weight to `quality`). Retired heuristics and
anti-patterns (metadata["retired"]) are skipped; recurring-error warnings are merged per (task type,
error) and capped (`max_error_warnings`). With `diversity > 0`, each type's list is re-ranked by MMR.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ._cache import copy_memory
from ._config import RetrievalConfig
from ._models import AntiPattern, Heuristic, Memory, MemoryType, Outcome, idle_days, utcnow
from ._plans import Compute, Light, Plan, run
from ._slice import MemorySlice
from .embeddings import Embedder
from .storage._base import BaseStorage, FindMemories, MemoryFilter, SearchHits, SearchMemories

if TYPE_CHECKING:
    from ._context import AlmaContext

__all__ = ["Retriever", "fuse", "lexical_query", "recency_factor", "success_factor"]

_T = TypeVar("_T")
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


def lexical_terms(text: str) -> tuple[str, ...]:
    """The query's topic words (function words dropped), or all its words when nothing is left."""
    words = _WORD.findall(text)
    return tuple(w for w in words if w.lower() not in _STOP) or tuple(words)


def lexical_query(text: str) -> str:
    """The query's topic words as one string (see `lexical_terms`)."""
    return " ".join(lexical_terms(text)) or text


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


def lesson_factor(memory: Memory, boost: float) -> float:
    """How much more a lesson is worth than one raw memory: 1 + boost * (0.5 + 0.5 * its success factor)
    for a heuristic (a lower bound that grows with evidence), 1 + 0.4 * boost * confidence * min(1, evidence / 5)
    for a strategy anti-pattern (the strategy to use comes before those to avoid), half that for a
    recurring-error warning, else 1."""
    if isinstance(memory, Heuristic):
        return 1.0 + boost * (0.5 + 0.5 * success_factor(memory))
    if isinstance(memory, AntiPattern):
        weight = 0.2 if memory.metadata.get("kind") == "recurring_error" else 0.4
        return 1.0 + weight * boost * memory.confidence * min(1.0, memory.occurrence_count / 5)
    return 1.0


_ID_LIKE = re.compile(r"\d|[A-Z].*[A-Z]|\w[_:./-]\w")  # ids, versions, codes, acronyms, paths


def _normalised_dense(dense: dict[MemoryType, list[tuple[str, float]]]) -> dict[str, float]:
    """Cosines over every type's candidates divided by the best one (clipped at 0): 1 for the best.
    (Min-max normalisation scored a little lower on the dev split, and zeroes the weakest candidate.)"""
    sims = {i: max(0.0, s) for hits in dense.values() for i, s in hits}
    best = max(sims.values(), default=0.0)
    return {i: s / best for i, s in sims.items()} if best > 1e-9 else dict.fromkeys(sims, 0.0)


_BACKGROUND_CANDIDATES = 10  # fewer dense candidates than this: no background to read (it is 0)


def _calibrated_dense(dense: dict[MemoryType, list[tuple[str, float]]]) -> dict[str, float]:
    """Each cosine's height above the query's background over the room above it, (cos - bg) / (1 - bg),
    bg = the lowest candidate cosine (what an unrelated memory scores for this query and embedder).

    Divide-by-best gives the best candidate 1 however weak the list is, so a flat list of low cosines
    outweighed a confident lexical match; here it stays low, a cosine far above the rest stays high, and
    no constant of one embedder is needed (an anisotropic embedder has a high background). Chosen on the
    dev splits of three regimes (`benchmarks/tune_fusion.py`) over divide-by-best, RRF (k 2-60), z-scores,
    CombMNZ, a fixed MiniLM calibration and per-query lexical-confidence weights.
    """
    sims = {i: s for hits in dense.values() for i, s in hits}
    background = min(sims.values(), default=0.0) if len(sims) >= _BACKGROUND_CANDIDATES else 0.0
    background = min(max(background, 0.0), 0.99)
    return {i: max(0.0, (s - background) / (1.0 - background)) for i, s in sims.items()}


def fuse(
    hits: SearchHits,
    mode: str,
    fusion: str = "weighted",
    dense_weight: float = 0.6,
    coverage: dict[str, float] | None = None,
    exact: set[str] | None = None,
) -> dict[str, float]:
    """Dense similarities and lexical scores of one search -> relevance in [0, 1] (module docstring).

    `coverage`: the share of the query's topic words each lexical hit holds (a weak match on one word of
    a long query stays weak); `exact`: the lexical hits holding every topic word, or a rare exact term
    (an id, a name): their lexical score is trusted whatever the dense side says.
    """
    dense_rel = _normalised_dense(hits.dense)
    lex_scores = {i: s for per_type in hits.lexical.values() for i, s in per_type}
    top = max(lex_scores.values(), default=0.0)
    lex_rel = {
        i: (1.0 if coverage is None else coverage.get(i, 0.0)) * s / top if top > 0 else 0.0
        for i, s in lex_scores.items()
    }
    if mode == "dense":
        return dense_rel
    if mode == "lexical":
        return lex_rel
    if fusion == "rrf":
        fused: dict[str, float] = {}
        for scores in (dense_rel, lex_rel):
            for rank, memory_id in enumerate(sorted(scores, key=lambda i: (-scores[i], i))):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
        best = max(fused.values(), default=1.0)
        return {i: s / best for i, s in fused.items()}
    calibrated = _calibrated_dense(hits.dense)
    ids = calibrated.keys() | lex_rel.keys()
    out = {i: dense_weight * calibrated.get(i, 0.0) + (1 - dense_weight) * lex_rel.get(i, 0.0) for i in ids}
    for memory_id in exact or ():
        out[memory_id] = max(out[memory_id], lex_rel.get(memory_id, 0.0))
    return out


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


Factor = Callable[[Memory], float]  # a memory -> a value in [0, 1]


def cap_error_warnings(ranked: list[_T], cap: int, key: Callable[[_T], Memory] | None = None) -> list[_T]:
    """`ranked` with recurring-error warnings merged per (task type, error) (the best-ranked one of
    each stays) and at most `cap` of them kept: they say what fails, not which strategy to avoid.
    `key`: the memory of an item of `ranked` (default: the item itself)."""
    seen: set[tuple[str, str]] = set()
    out: list[_T] = []
    for item in ranked:
        memory: Any = item if key is None else key(item)
        if isinstance(memory, AntiPattern) and memory.metadata.get("kind") == "recurring_error":
            warning = (memory.task_type or "", " ".join(memory.pattern.casefold().split()))
            if warning in seen or len(seen) >= cap:
                continue
            seen.add(warning)
        out.append(item)
    return out


def _scored(memory: Memory, score: float, factors: dict[str, float]) -> Memory:
    """`memory` with its retrieval score and breakdown set (retrieval-only fields: no validation)."""
    fields = memory.__dict__
    fields["score"], fields["score_breakdown"] = score, factors
    return memory


def inherit_task_relevance(memories: dict[str, Memory], relevance: dict[str, float]) -> dict[str, float]:
    """A lesson (heuristic or anti-pattern) is as relevant as the most relevant outcome of its task type:
    it was distilled from those outcomes, though its own text ("checkout tasks: use data-testid
    selectors") rarely shares the words of a task."""
    by_type: dict[str, float] = {}
    for memory_id, memory in memories.items():
        if isinstance(memory, Outcome):
            by_type[memory.task_type] = max(by_type.get(memory.task_type, 0.0), relevance.get(memory_id, 0.0))
    out = dict(relevance)
    for memory_id, memory in memories.items():
        if isinstance(memory, (Heuristic, AntiPattern)) and memory.task_type in by_type:
            out[memory_id] = max(out.get(memory_id, 0.0), by_type[memory.task_type])
    return out


class Retriever:
    """Finds and ranks memories for a query within a filter. Backend-independent.

    `factors`: extra ranking factors by name, each (weight, function of a memory in [0, 1]); they join
    recency, success and confidence in the bounded `quality` boost and show in `score_breakdown`.
    `reranker`: an optional function (query, memories) -> relevance scores that replaces the fused
    relevance of the best `RetrievalConfig.rerank_candidates` candidates (for example a cross-encoder).
    """

    def __init__(self, storage: BaseStorage, embedder: Embedder, config: RetrievalConfig) -> None:
        self.storage, self.embedder, self.config = storage, embedder, config
        self.factors: dict[str, tuple[float, Factor]] = {}
        self.reranker: Callable[[str, list[Memory]], Sequence[float]] | None = None
        self.graph_weight = 0.6  # the graph's share in relevance (ALMA sets it from `graph.weight`)

    def query_vector(self, query: str, mode: str | None = None) -> np.ndarray | None:
        """The query's embedding when `mode` searches densely, else None."""
        if (mode or self.config.mode) not in ("hybrid", "dense"):
            return None
        return self.embedder.embed_query(query)

    @classmethod
    def from_context(cls, context: AlmaContext) -> Retriever:
        """The retriever of an `AlmaContext`'s store, embedder and retrieval config."""
        return cls(context.storage, context.embedder, context.config.retrieval)

    def candidates(
        self,
        base: MemoryFilter,
        query: str,
        types: Sequence[MemoryType],
        mode: str | None = None,
        vector: np.ndarray | None = None,
        user_types: tuple[MemoryType, ...] | None = None,
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """Candidate memories and their fused relevance in [0, 1], from one `SearchMemories`."""
        op = self.search_op(base, query, types, mode, vector, user_types)
        return self.relevance(op, self.storage.execute(op), query, types, mode)

    def search_op(
        self,
        base: MemoryFilter,
        query: str,
        types: Sequence[MemoryType],
        mode: str | None = None,
        vector: np.ndarray | None = None,
        user_types: tuple[MemoryType, ...] | None = None,
        shared: bool = False,
    ) -> SearchMemories:
        """The one `SearchMemories` of a retrieve (embeds the query when `vector` is missing; `shared`:
        the caller only reads the candidates, see `SearchMemories.shared`)."""
        mode = mode or self.config.mode
        if mode in ("hybrid", "dense") and vector is None:
            vector = self.embedder.embed_query(query)
        searched = list(types)
        if {MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN} & set(types) and MemoryType.OUTCOME not in types:
            searched.append(MemoryType.OUTCOME)  # lessons inherit their outcomes' relevance (then dropped)
        return SearchMemories(
            replace(base, types=tuple(searched)),
            vector=vector if mode in ("hybrid", "dense") else None,
            terms=lexical_terms(query) if mode in ("hybrid", "lexical") else (),
            k=self.config.candidates,
            user_types=user_types,
            with_embeddings=self.config.diversity > 0,
            shared=shared,
        )

    def relevance(
        self, op: SearchMemories, hits: SearchHits, query: str, types: Sequence[MemoryType], mode: str | None = None
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """The candidates of `types` among a search's hits, and their fused relevance in [0, 1]."""
        mode = mode or self.config.mode
        memories = hits.memories
        words = _topic_words(query)
        lex_ids = {i for per_type in hits.lexical.values() for i, _ in per_type if i in memories}
        coverage = {i: len(words & _topic_words(memories[i].text)) / len(words) for i in lex_ids} if words else None
        exact = _exact_matches(query, memories, lex_ids, coverage)
        relevance = fuse(hits, mode, self.config.fusion, self.config.dense_weight, coverage, exact)
        relevance = inherit_task_relevance(memories, relevance)
        if len(op.filter.types or ()) > len(types):
            memories = {i: m for i, m in memories.items() if m.memory_type in types}
        if self.reranker is not None and relevance:
            relevance = self._rerank(query, memories, relevance)
        return memories, relevance

    def _rerank(self, query: str, memories: dict[str, Memory], relevance: dict[str, float]) -> dict[str, float]:
        """The reranker's scores, min-max normalised, for the best candidates; the rest keep theirs
        scaled below the lowest reranked one."""
        assert self.reranker is not None
        top = sorted(relevance, key=lambda i: (-relevance[i], i))[: self.config.rerank_candidates]
        scores = [float(s) for s in self.reranker(query, [memories[i] for i in top])]
        low, high = min(scores), max(scores)
        span = high - low or 1.0
        out = {i: 0.5 * relevance[i] * min(relevance[j] for j in top) for i in relevance}
        out.update({i: 0.5 + 0.5 * (s - low) / span for i, s in zip(top, scores, strict=True)})
        return out

    def with_graph(
        self,
        base: MemoryFilter,
        types: Sequence[MemoryType],
        memories: dict[str, Memory],
        relevance: dict[str, float],
        graph: dict[str, float],
        user_types: tuple[MemoryType, ...] | None = None,
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """Add the memories graph memory leads to (within `base`: the same scopes) and fuse the graph score
        into relevance as a noisy-or, 1 - (1 - relevance) * (1 - graph_weight * graph): never lower, and a
        memory the text search missed enters with at most `graph_weight`."""
        find = self.graph_find(base, types, memories, graph)
        found = self.storage.execute(find) if find is not None else []
        return self.graph_fuse(base, memories, relevance, graph, found, user_types)

    def graph_find(
        self, base: MemoryFilter, types: Sequence[MemoryType], memories: Mapping[str, Memory], graph: dict[str, float]
    ) -> FindMemories | None:
        """The read of the memories graph memory leads to that the search did not find (None: none)."""
        missing = tuple(i for i in graph if i not in memories)
        if not missing:
            return None
        return FindMemories(replace(base, ids=missing, types=tuple(types), user_id=None),
                            with_embeddings=self.config.diversity > 0)  # fmt: skip

    def graph_fuse(
        self,
        base: MemoryFilter,
        memories: dict[str, Memory],
        relevance: dict[str, float],
        graph: dict[str, float],
        found: Sequence[Memory],
        user_types: tuple[MemoryType, ...] | None = None,
    ) -> tuple[dict[str, Memory], dict[str, float]]:
        """`with_graph`'s fusion, given what `graph_find` read."""
        user = base.user_id  # (as in the search) the user applies to `user_types` only
        found = [m for m in found if user is None or m.user_id_value in (None, user) or
                 (user_types is not None and m.memory_type not in user_types)]  # fmt: skip
        memories = {**memories, **{m.id: m for m in found}}
        weight = self.graph_weight
        fused = {i: 1.0 - (1.0 - relevance.get(i, 0.0)) * (1.0 - weight * graph.get(i, 0.0)) for i in memories}
        return memories, fused

    def rank(self, memories: dict[str, Memory], relevance: dict[str, float]) -> list[Memory]:
        """Score every candidate (see the module docstring), best first; retired memories are dropped."""
        return [_scored(memory, score, factors) for memory, score, factors in self.scores(memories, relevance)]

    def scores(
        self, memories: dict[str, Memory], relevance: dict[str, float], top_k: int | None = None
    ) -> list[tuple[Memory, float, dict[str, float]]]:
        """(memory, score, score breakdown) of every candidate, best first, retired ones dropped; the
        memories are only read (`rank` sets the scores on them).

        `top_k`: enough for each type's `top_k` best, not every candidate. A score is at most the
        memory's relevance times a bound of its lesson factor (its other factors are at most 1), so
        candidates are scored by relevance, highest first, until each type has `top_k` scores above
        what any candidate left could score (`_enough`): the best of each type (and which
        recurring-error warnings `cap_error_warnings` keeps among them) are then those of the full
        list. Without that bound (extra factors, a success or confidence above 1), all are scored.
        """
        cfg = self.config
        w_rel, w_rec, w_suc, w_conf = cfg.w_relevance, cfg.w_recency, cfg.w_success, cfg.w_confidence
        extra = self.factors
        total = w_rel + sum((w_rec, w_suc, w_conf, *(weight for weight, _ in extra.values()))) or 1.0
        timeless = {MemoryType(t) for t in cfg.timeless_types}
        half_life, boost, min_rel = cfg.recency_half_life_days, cfg.lesson_boost, cfg.min_relevance
        now_ts = utcnow().timestamp()
        kept = [(relevance.get(i, 0.0), i, m) for i, m in memories.items()]
        kept = [c for c in kept if c[0] >= min_rel and not c[2].metadata.get("retired")]
        bounded = top_k is not None and not extra and all(success_factor(m) <= 1.0 >= m.confidence for _, _, m in kept)
        if bounded:
            kept.sort(key=operator.itemgetter(0), reverse=True)
        ranked: list[tuple[float, str, Memory, dict[str, float]]] = []
        for at, (rel, memory_id, memory) in enumerate(kept):
            if bounded and at and at % 8 == 0 and _enough(ranked, kept, at, top_k or 0, boost):
                break
            recency = 1.0 if memory.memory_type in timeless else recency_factor(memory, half_life, now_ts)
            success, confidence = success_factor(memory), memory.confidence
            factors = {"relevance": rel, "recency": recency, "success": success, "confidence": confidence}
            boosted = w_rec * recency + w_suc * success + w_conf * confidence
            for name, (weight, fn) in extra.items():
                factors[name] = value = fn(memory)
                boosted += weight * value
            quality = (w_rel + boosted) / total
            lesson = lesson_factor(memory, boost)
            factors["quality"], factors["lesson"] = quality, lesson
            ranked.append((rel * quality * lesson / (1.0 + boost), memory_id, memory, factors))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        return [(memory, score, factors) for score, _, memory, factors in ranked]

    def retrieve(
        self,
        base: MemoryFilter,
        query: str,
        top_k: int,
        types: Sequence[MemoryType],
        reader: str,
        mode: str | None = None,
        vector: np.ndarray | None = None,
        user_types: tuple[MemoryType, ...] | None = None,
        graph: dict[str, float] | None = None,
    ) -> MemorySlice:
        """Up to `top_k` memories of each type for `query`, ranked, as a `MemorySlice` (`graph`: memory id
        -> graph score, from `GraphIndex.expand`, fused into relevance by `with_graph`)."""
        return run(self.storage, self.plan(base, query, top_k, types, reader, mode, vector, user_types, graph))

    def plan(
        self,
        base: MemoryFilter,
        query: str,
        top_k: int,
        types: Sequence[MemoryType],
        reader: str,
        mode: str | None = None,
        vector: np.ndarray | None = None,
        user_types: tuple[MemoryType, ...] | None = None,
        graph: dict[str, float] | None = None,
    ) -> Plan[MemorySlice]:
        """`retrieve` as a plan (`alma_core._plans`): the search (and the graph's read) are its storage
        steps, fusion and ranking one `Light` step (a `Compute` step, for a thread, with a reranker)."""
        start = time.perf_counter()
        # The candidates are only read (scored without changing them): the store may share its own
        # (`SearchMemories.shared`) and `_answer` copies the few it returns. MMR sets vectors on them.
        op = self.search_op(base, query, types, mode, vector, user_types, shared=self.config.diversity <= 0)
        hits: SearchHits = (yield [op])[0]
        found: list[Memory] = []
        if graph is not None:
            searched = {i: m for i, m in hits.memories.items() if m.memory_type in types}
            find = self.graph_find(base, types, searched, graph)
            found = (yield [find])[0] if find is not None else []
        step = Light if self.reranker is None else Compute
        result: MemorySlice = yield step(self._answer, op, hits, query, top_k, types, reader, mode, user_types,
                                         graph, found)  # fmt: skip
        result.retrieval_ms = (time.perf_counter() - start) * 1000
        return result

    def _answer(
        self,
        op: SearchMemories,
        hits: SearchHits,
        query: str,
        top_k: int,
        types: Sequence[MemoryType],
        reader: str,
        mode: str | None,
        user_types: tuple[MemoryType, ...] | None,
        graph: dict[str, float] | None,
        found: Sequence[Memory],
    ) -> MemorySlice:
        """Fusion, ranking and the slice, from a search's hits (and what the graph led to)."""
        memories, relevance = self.relevance(op, hits, query, types, mode)
        if graph is not None:
            memories, relevance = self.graph_fuse(op.filter, memories, relevance, graph, found, user_types)
        diversity = self.config.diversity
        by_type: dict[MemoryType, list[tuple[Memory, float, dict[str, float]]]] = {}
        scored = self.scores(memories, relevance, top_k if diversity <= 0 else None)
        for entry in cap_error_warnings(scored, self.config.max_error_warnings, key=operator.itemgetter(0)):
            by_type.setdefault(entry[0].memory_type, []).append(entry)
        result = MemorySlice(query=query, agent=reader)
        for memory_type in MemoryType:
            entries = by_type.get(memory_type, [])
            if diversity > 0:  # (the memories are the caller's own here: see `plan`)
                chosen = mmr([_scored(*entry) for entry in entries], top_k, diversity)
                entries = [(memory, memory.score or 0.0, memory.score_breakdown or {}) for memory in chosen]
            for memory, score, factors in entries[:top_k]:
                if graph is not None:
                    factors = {**factors, "graph": graph.get(memory.id, 0.0)}
                memory = _scored(copy_memory(memory), score, dict(factors))
                memory.embedding = None  # vectors stay in the store; slices are for prompts
                if memory.agent not in (reader, "*"):
                    memory.metadata["shared_from"] = memory.agent
                result.add(memory)
        return result


def _enough(
    ranked: list[tuple[float, str, Memory, dict[str, float]]],
    kept: list[tuple[float, str, Memory]],
    at: int,
    top_k: int,
    boost: float,
) -> bool:
    """Whether every type with candidates left (`kept[at:]`, by relevance descending) has `top_k` scored
    memories that no candidate left can pass, none of them a recurring-error warning (those may be
    dropped: `cap_error_warnings`). A score is at most relevance x the most its lesson factor can be
    over 1 + boost (`lesson_factor`; quality is at most 1); 1e-9 for rounding."""
    limit: dict[MemoryType, float] = {}
    for rel, _, memory in kept[at:]:
        if memory.memory_type not in limit:  # (the first of a type left is its most relevant)
            if isinstance(memory, Heuristic):
                most = 1.0
            elif isinstance(memory, AntiPattern):
                most = (1.0 + 0.4 * boost) / (1.0 + boost)
            else:
                most = 1.0 / (1.0 + boost)
            limit[memory.memory_type] = rel * most * (1.0 + 1e-9)
    solid: dict[MemoryType, int] = {}
    for score, _, memory, _ in ranked:
        mtype = memory.memory_type
        if mtype in limit and score > limit[mtype] and not _is_warning(memory):
            solid[mtype] = solid.get(mtype, 0) + 1
    return all(solid.get(t, 0) >= top_k for t in limit)


def _is_warning(memory: Memory) -> bool:
    return isinstance(memory, AntiPattern) and memory.metadata.get("kind") == "recurring_error"


def _exact_matches(
    query: str, memories: dict[str, Memory], lex_ids: set[str], coverage: dict[str, float] | None
) -> set[str]:
    """Lexical hits that match the query confidently: every topic word of a query of two or more, or
    an id-like term of the query (digits, inner capitals, `a_b`, `a-b`, `a.b`) written out exactly."""
    if coverage is None:
        return set()
    out = {i for i in lex_ids if coverage.get(i, 0.0) >= 1.0 and len(_topic_words(query)) >= 2}
    ids = [w for w in _WORD.findall(query) if _ID_LIKE.search(w)]
    if ids:
        out |= {i for i in lex_ids if any(w in memories[i].text for w in ids)}
    return out
