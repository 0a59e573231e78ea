"""Retrieval: one search of the store (dense + lexical candidates of every type), fusion into one
relevance, and a ranking in which relevance comes first.

relevance: see `_fusion` (dense and lexical scores fused per query, over every type at once; a lesson is at
least as relevant as the best outcome of its task type).
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
Ranking reads `Candidate`s (`_candidates`): only the memories returned are built as models.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ._cache import scored_copy
from ._candidates import Candidate, UnreadableRow, as_candidates, success_of
from ._config import RetrievalConfig
from ._fusion import fuse, inherit_task_relevance, lexical_factors, lexical_query, lexical_terms
from ._models import Memory, MemoryType, idle_days, utcnow
from ._plans import Compute, Light, Plan, run
from ._slice import MemorySlice
from .embeddings import Embedder
from .storage._base import BaseStorage, FindMemories, MemoryFilter, SearchHits, SearchMemories

if TYPE_CHECKING:
    from ._context import AlmaContext

__all__ = ["Retriever", "fuse", "lexical_query", "lexical_terms", "recency_factor", "success_factor"]

_T = TypeVar("_T")
_ANTI, _HEURISTIC = MemoryType.ANTI_PATTERN, MemoryType.HEURISTIC


def success_factor(memory: Memory) -> float:
    """How well this memory's advice works now: for a learned heuristic a lower bound on its recent
    success rate (see `_learning.success_lower_bound`), else (successes + 1) / (trials + 2)."""
    fields = memory.__dict__
    return success_of(memory.memory_type, memory.metadata, memory.confidence, fields.get("success"),
                      fields.get("success_count", 0), fields.get("occurrence_count", 1))  # fmt: skip


def recency_factor(memory: Memory, half_life_days: float, now_ts: float) -> float:
    """0.5 ** (age in days / half-life), age from last validation (heuristics) or last update."""
    return float(0.5 ** (idle_days(memory, now_ts) / half_life_days))


def _recency(stamp: float, half_life_days: float, now_ts: float) -> float:
    """`recency_factor` of a candidate (`stamp`: its last validation or update, as a timestamp)."""
    return float(0.5 ** (max(0.0, (now_ts - stamp) / 86400.0) / half_life_days))


def lesson_factor(candidate: Candidate, boost: float) -> float:
    """How much more a lesson is worth than one raw memory: 1 + boost * (0.5 + 0.5 * its success factor)
    for a heuristic (a lower bound that grows with evidence), 1 + 0.4 * boost * confidence * min(1, evidence / 5)
    for a strategy anti-pattern (the strategy to use comes before those to avoid), half that for a
    recurring-error warning, else 1."""
    if candidate.memory_type is _HEURISTIC:
        return 1.0 + boost * (0.5 + 0.5 * candidate.success)
    if candidate.memory_type is _ANTI:
        weight = 0.2 if candidate.warning else 0.4
        return 1.0 + weight * boost * candidate.confidence * min(1.0, candidate.occurrences / 5)
    return 1.0


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
Scored = tuple[Candidate, float, dict[str, float]]  # a candidate, its score and its score breakdown


def cap_error_warnings(ranked: list[_T], cap: int, key: Callable[[_T], Memory | Candidate] | None = None) -> list[_T]:
    """`ranked` with recurring-error warnings merged per (task type, error) (the best-ranked one of
    each stays) and at most `cap` of them kept: they say what fails, not which strategy to avoid.
    `key`: the memory or candidate of an item of `ranked` (default: the item itself)."""
    seen: set[tuple[str, str]] = set()
    out: list[_T] = []
    for item in ranked:
        found: Any = item if key is None else key(item)
        candidate = found if isinstance(found, Candidate) else Candidate.of(found)
        if candidate.warning:
            warning = (candidate.task_type or "", " ".join((candidate.pattern or "").casefold().split()))
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
    ) -> tuple[dict[str, Candidate], dict[str, float]]:
        """Candidates and their fused relevance in [0, 1], from one `SearchMemories`."""
        op = self.search_op(base, query, types, mode, vector, user_types, shared=True)
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
        top_k: int = 0,
    ) -> SearchMemories:
        """The one `SearchMemories` of a retrieve (embeds the query when `vector` is missing; `shared`:
        the caller only reads the candidates, see `SearchMemories.shared`; the store may then answer
        with `Candidate` rows, `SearchMemories.rows`, unless MMR needs the memories' vectors). Each side
        finds `RetrievalConfig.candidates` per type, or `top_k` when more."""
        mode = mode or self.config.mode
        if mode in ("hybrid", "dense") and vector is None:
            vector = self.embedder.embed_query(query)
        searched = list(types)
        if {MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN} & set(types) and MemoryType.OUTCOME not in types:
            searched.append(MemoryType.OUTCOME)  # lessons inherit their outcomes' relevance (then dropped)
        vectors = self.config.diversity > 0
        return SearchMemories(
            base.narrowed(types=tuple(searched)),
            vector=vector if mode in ("hybrid", "dense") else None,
            terms=lexical_terms(query) if mode in ("hybrid", "lexical") else (),
            k=max(self.config.candidates, top_k),
            user_types=user_types,
            with_embeddings=vectors,
            shared=shared,
            rows=shared and not vectors,
        )

    def relevance(
        self,
        op: SearchMemories,
        hits: SearchHits,
        query: str,
        types: Sequence[MemoryType],
        mode: str | None = None,
        candidates: dict[str, Candidate] | None = None,
    ) -> tuple[dict[str, Candidate], dict[str, float]]:
        """The candidates of `types` among a search's hits (or `candidates`: those of the hits that are
        left), and their fused relevance in [0, 1]."""
        mode = mode or self.config.mode
        if candidates is None:
            candidates = hits.candidates or as_candidates(hits.memories)
        coverage, exact = lexical_factors(query, candidates, hits)
        relevance = fuse(hits, mode, self.config.fusion, self.config.dense_weight, coverage, exact)
        relevance = inherit_task_relevance(candidates, relevance)
        if len(op.filter.types or ()) > len(types):
            candidates = {i: c for i, c in candidates.items() if c.memory_type in types}
        if self.reranker is not None and relevance:
            relevance = self._rerank(query, candidates, relevance)
        return candidates, relevance

    def _rerank(self, query: str, candidates: dict[str, Candidate], relevance: dict[str, float]) -> dict[str, float]:
        """The reranker's scores, min-max normalised, for the best candidates; the rest keep theirs
        scaled below the lowest reranked one."""
        assert self.reranker is not None
        top = sorted(relevance, key=lambda i: (-relevance[i], i))[: self.config.rerank_candidates]
        scores = [float(s) for s in self.reranker(query, [candidates[i].build() for i in top])]
        low, high = min(scores), max(scores)
        span = high - low or 1.0
        out = {i: 0.5 * relevance[i] * min(relevance[j] for j in top) for i in relevance}
        out.update({i: 0.5 + 0.5 * (s - low) / span for i, s in zip(top, scores, strict=True)})
        return out

    def with_graph(
        self,
        base: MemoryFilter,
        types: Sequence[MemoryType],
        candidates: dict[str, Candidate],
        relevance: dict[str, float],
        graph: dict[str, float],
        user_types: tuple[MemoryType, ...] | None = None,
    ) -> tuple[dict[str, Candidate], dict[str, float]]:
        """Add the memories graph memory leads to (within `base`: the same scopes) and fuse the graph score
        into relevance as a noisy-or, 1 - (1 - relevance) * (1 - graph_weight * graph): never lower, and a
        memory the text search missed enters with at most `graph_weight`."""
        find = self.graph_find(base, types, candidates, graph)
        found = self.storage.execute(find) if find is not None else []
        return self.graph_fuse(base, candidates, relevance, graph, found, user_types)

    def graph_find(
        self, base: MemoryFilter, types: Sequence[MemoryType], found: Mapping[str, Any], graph: dict[str, float]
    ) -> FindMemories | None:
        """The read of the memories graph memory leads to that the search did not find (`found`: by id;
        None: none)."""
        missing = tuple(i for i in graph if i not in found)
        if not missing:
            return None
        return FindMemories(replace(base, ids=missing, types=tuple(types), user_id=None),
                            with_embeddings=self.config.diversity > 0)  # fmt: skip

    def graph_fuse(
        self,
        base: MemoryFilter,
        candidates: dict[str, Candidate],
        relevance: dict[str, float],
        graph: dict[str, float],
        found: Sequence[Memory],
        user_types: tuple[MemoryType, ...] | None = None,
    ) -> tuple[dict[str, Candidate], dict[str, float]]:
        """`with_graph`'s fusion, given what `graph_find` read."""
        user = base.user_id  # (as in the search) the user applies to `user_types` only
        found = [m for m in found if user is None or m.user_id_value in (None, user) or
                 (user_types is not None and m.memory_type not in user_types)]  # fmt: skip
        candidates = {**candidates, **{m.id: Candidate.of(m) for m in found}}
        weight = self.graph_weight
        fused = {i: 1.0 - (1.0 - relevance.get(i, 0.0)) * (1.0 - weight * graph.get(i, 0.0)) for i in candidates}
        return candidates, fused

    def rank(self, memories: Mapping[str, Memory | Candidate], relevance: dict[str, float]) -> list[Memory]:
        """Score every candidate (see the module docstring), best first; retired memories are dropped."""
        return [_scored(c.build(), score, factors) for c, score, factors in self.scores(memories, relevance)]

    def scores(
        self, memories: Mapping[str, Memory | Candidate], relevance: dict[str, float], top_k: int | None = None
    ) -> list[Scored]:
        """(candidate, score, score breakdown) of every candidate (memories are wrapped: `Candidate.of`),
        best first, retired ones dropped; nothing is changed (`rank` sets the scores on the memories).

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
        get = relevance.get
        kept: list[tuple[float, str, Candidate]] = []
        bounded = top_k is not None and not extra
        for i, c in memories.items():  # (one pass over the ~100 candidates: kept, and whether bounded)
            if not isinstance(c, Candidate):
                c = Candidate.of(c)
            if (rel := get(i, 0.0)) >= min_rel and not c.retired:
                kept.append((rel, i, c))
                # (`success_at_most_one`, inlined; a lesson's JSON was read by `retired` already)
                if bounded and not ((c.memory_type is not _HEURISTIC or c.success <= 1.0) and c.confidence <= 1.0):
                    bounded = False
        last: dict[MemoryType, int] = {}  # each type's last place in `kept` (`_enough` stops looking there)
        if bounded:
            kept.sort(key=operator.itemgetter(0), reverse=True)
            last = {c.memory_type: at for at, (_, _, c) in enumerate(kept)}
        ranked: list[tuple[float, str, Candidate, dict[str, float]]] = []
        for at, (rel, memory_id, c) in enumerate(kept):
            if bounded and at and at % 8 == 0 and _enough(ranked, kept, at, top_k or 0, boost, last):
                break
            recency = 1.0 if c.memory_type in timeless else _recency(c.stamp, half_life, now_ts)
            success, confidence = c.success, c.confidence
            factors = {"relevance": rel, "recency": recency, "success": success, "confidence": confidence}
            boosted = w_rec * recency + w_suc * success + w_conf * confidence
            for name, (weight, fn) in extra.items():
                factors[name] = value = fn(c.build())
                boosted += weight * value
            quality = (w_rel + boosted) / total
            lesson = lesson_factor(c, boost)
            factors["quality"], factors["lesson"] = quality, lesson
            ranked.append((rel * quality * lesson / (1.0 + boost), memory_id, c, factors))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        return [(c, score, factors) for score, _, c, factors in ranked]

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
        op = self.search_op(base, query, types, mode, vector, user_types, self.config.diversity <= 0, top_k)
        hits: SearchHits = (yield [op])[0]
        found: list[Memory] = []
        if graph is not None:
            searched = {i for i, c in (hits.candidates or hits.memories).items() if c.memory_type in types}
            find = self.graph_find(base, types, dict.fromkeys(searched), graph)
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
        """Fusion, ranking and the slice, from a search's hits (and what the graph led to). A candidate
        whose stored row turns out not to be a valid memory when built is skipped (`BadRows`), as reading
        it would have: the answer is then computed again without it."""
        candidates = hits.candidates or as_candidates(hits.memories)
        while True:
            try:
                return self._slice(op, hits, candidates, query, top_k, types, reader, mode, user_types, graph, found)
            except UnreadableRow as bad:
                self.storage.bad_rows.report(op.filter.project_id, bad.candidate.id, bad.candidate.data, bad.error)
                candidates = {i: c for i, c in candidates.items() if i != bad.candidate.id}

    def _slice(
        self,
        op: SearchMemories,
        hits: SearchHits,
        candidates: dict[str, Candidate],
        query: str,
        top_k: int,
        types: Sequence[MemoryType],
        reader: str,
        mode: str | None,
        user_types: tuple[MemoryType, ...] | None,
        graph: dict[str, float] | None,
        found: Sequence[Memory],
    ) -> MemorySlice:
        candidates, relevance = self.relevance(op, hits, query, types, mode, candidates)
        if graph is not None:
            candidates, relevance = self.graph_fuse(op.filter, candidates, relevance, graph, found, user_types)
        diversity = self.config.diversity
        by_type: dict[MemoryType, list[Scored]] = {}
        scored = self.scores(candidates, relevance, top_k if diversity <= 0 else None)
        for entry in cap_error_warnings(scored, self.config.max_error_warnings, key=operator.itemgetter(0)):
            by_type.setdefault(entry[0].memory_type, []).append(entry)
        result = MemorySlice(query=query, agent=reader)
        sources: list[tuple[Memory, float, dict[str, float]]] = []  # (kept for the cache: `freeze_slice`)
        for memory_type in MemoryType:
            entries = [(c.build(), score, factors) for c, score, factors in by_type.get(memory_type, [])[
                : None if diversity > 0 else top_k]]  # fmt: skip
            if diversity > 0:  # (the memories are the caller's own here: see `plan`)
                chosen = mmr([_scored(*entry) for entry in entries], top_k, diversity)
                entries = [(memory, memory.score or 0.0, memory.score_breakdown or {}) for memory in chosen]
            for memory, score, factors in entries[:top_k]:
                if graph is not None:
                    factors = {**factors, "graph": graph.get(memory.id, 0.0)}
                sources.append((memory, score, factors))
                result.add(scored_copy(memory, score, factors, reader))
        if diversity <= 0:  # (with MMR the memories are this retrieve's own, scored in place: not kept)
            result.__dict__["_sources"] = (reader, sources)
        return result


def _enough(
    ranked: list[tuple[float, str, Candidate, dict[str, float]]],
    kept: list[tuple[float, str, Candidate]],
    at: int,
    top_k: int,
    boost: float,
    last: dict[MemoryType, int],
) -> bool:
    """Whether every type with candidates left (`kept[at:]`, by relevance descending) has `top_k` scored
    memories that no candidate left can pass, none of them a recurring-error warning (those may be
    dropped: `cap_error_warnings`). A score is at most relevance x the most its lesson factor can be
    over 1 + boost (`lesson_factor`; quality is at most 1); 1e-9 for rounding. `last`: each type's last
    place in `kept` (the types left are those placed at `at` or later)."""
    limit: dict[MemoryType, float] = {}
    left = sum(1 for place in last.values() if place >= at)
    for rel, _, c in itertools.islice(kept, at, None):
        if c.memory_type not in limit:  # (the first of a type left is its most relevant)
            if c.memory_type is _HEURISTIC:
                most = 1.0
            elif c.memory_type is _ANTI:
                most = (1.0 + 0.4 * boost) / (1.0 + boost)
            else:
                most = 1.0 / (1.0 + boost)
            limit[c.memory_type] = rel * most * (1.0 + 1e-9)
            if len(limit) == left:
                break
    solid: dict[MemoryType, int] = {}
    for score, _, c, _ in ranked:
        mtype = c.memory_type
        if mtype in limit and score > limit[mtype] and not c.warning:
            solid[mtype] = solid.get(mtype, 0) + 1
    return all(solid.get(t, 0) >= top_k for t in limit)
