"""`ConfidenceEngine`: should the agent try this strategy here? Answered from stored evidence, no LLM.

    signal = ConfidenceEngine(alma).assess_strategy("use data-testid selectors", "Test the login form", "helena")
    signal.confidence_score, signal.recommendation, signal.supporting, signal.contradicting

The formula. Retrieve the agent's heuristics, anti-patterns and outcomes for "<context> <strategy>"
(through its scopes). Each memory's strategy text (a heuristic's strategy, an anti-pattern's pattern, an
outcome's strategy_used) gets a similarity to the assessed strategy,

    sim = Jaccard of their normalised word sets (stop words, case and suffixes removed), raised to their
          embeddings' cosine when that reaches LearningConfig.strategy_similarity (a paraphrase; the
          learner merges those into one strategy too)

and counts only when sim >= `match_threshold`. The matching memories add weighted evidence:

    S = sum(sim * 1 for successful outcomes) + sum(sim * k * confidence for heuristics)
    F = sum(sim * 1 for failed outcomes)     + sum(sim * k * confidence for anti-patterns)
    confidence_score = (S + 1) / (S + F + 2)          (Beta(1, 1) posterior mean, like the learner's)

`k` (`lesson_weight`, default 2) counts a distilled lesson as two observations: it summarises outcomes
that may be older than the retrieved window. Recommendation: "yes" when score >= 0.7 and S + F >= 2,
"no" when score <= 0.35 and S + F >= 2, else "caution" (too little or mixed evidence).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._alma import ALMA
from ._errors import ValidationError
from ._learning import normalise_strategy
from ._models import AntiPattern, Heuristic, Memory, MemoryType, Outcome

__all__ = ["ConfidenceEngine", "ConfidenceSignal", "Recommendation"]

Recommendation = Literal["yes", "caution", "no"]


@dataclass
class ConfidenceSignal:
    """How much the stored evidence backs a strategy, and which memories say so."""

    strategy: str
    context: str
    confidence_score: float
    recommendation: Recommendation
    supporting: list[Memory] = field(default_factory=list)
    contradicting: list[Memory] = field(default_factory=list)
    evidence: float = 0.0
    reasoning: str = ""


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(normalise_strategy(a).split()), set(normalise_strategy(b).split())
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def _strategy_of(memory: Memory) -> str:
    if isinstance(memory, Heuristic):
        return memory.strategy
    if isinstance(memory, AntiPattern):
        return memory.pattern
    if isinstance(memory, Outcome):
        return memory.strategy_used
    return ""


class ConfidenceEngine:
    """Scores a strategy for a context from the agent's heuristics, anti-patterns and outcomes."""

    def __init__(
        self,
        alma: ALMA,
        *,
        top_k: int = 20,
        match_threshold: float = 0.5,
        lesson_weight: float = 2.0,
        yes_above: float = 0.7,
        no_below: float = 0.35,
        min_evidence: float = 2.0,
    ) -> None:
        if not 0 < match_threshold <= 1:
            raise ValidationError(f"match_threshold must be in (0, 1], got {match_threshold!r}")
        if not 0 <= no_below < yes_above <= 1:
            raise ValidationError("thresholds must satisfy 0 <= no_below < yes_above <= 1")
        self.alma, self.top_k, self.match_threshold = alma, top_k, match_threshold
        self.lesson_weight, self.yes_above, self.no_below, self.min_evidence = (
            lesson_weight, yes_above, no_below, min_evidence,
        )  # fmt: skip

    def _similarities(self, strategy: str, memories: list[Memory]) -> list[float]:
        texts = [_strategy_of(m) for m in memories]
        vectors = self.alma.embedder.embed_documents([strategy, *texts])
        cosines = np.asarray(vectors[1:]) @ np.asarray(vectors[0])
        paraphrase = float(self.alma.config.learning.strategy_similarity)
        sims = []
        for cosine, text in zip(cosines, texts, strict=True):
            jaccard = _jaccard(strategy, text) if text else 0.0
            sims.append(max(jaccard, float(cosine)) if text and cosine >= paraphrase else jaccard)
        return sims

    def assess_strategy(self, strategy: str, context: str, agent: str) -> ConfidenceSignal:
        """The signal for trying `strategy` on `context` as `agent` (see the module docstring)."""
        for name, value in (("strategy", strategy), ("context", context)):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"{name} must be a non-empty string")
        found = self.alma.retrieve(
            f"{context} {strategy}", agent, top_k=self.top_k,
            memory_types=[MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN, MemoryType.OUTCOME],
        )  # fmt: skip
        memories = list(found)
        support: list[tuple[float, Memory]] = []
        against: list[tuple[float, Memory]] = []
        for memory, sim in zip(memories, self._similarities(strategy, memories) if memories else [], strict=True):
            if sim < self.match_threshold:
                continue
            if isinstance(memory, Heuristic | AntiPattern):  # a lesson: weighted by k and its confidence
                good, weight = isinstance(memory, Heuristic), sim * self.lesson_weight * memory.confidence
            elif isinstance(memory, Outcome):
                good, weight = memory.success, sim
            else:
                continue
            (support if good else against).append((weight, memory))
        s, f = sum(w for w, _ in support), sum(w for w, _ in against)
        score = (s + 1.0) / (s + f + 2.0)
        evidence = s + f
        if evidence >= self.min_evidence and score >= self.yes_above:
            recommendation: Recommendation = "yes"
        elif evidence >= self.min_evidence and score <= self.no_below:
            recommendation = "no"
        else:
            recommendation = "caution"
        reasoning = (
            f"{len(support)} supporting and {len(against)} contradicting memories "
            f"(weighted {s:.2f} for, {f:.2f} against)"
        )
        return ConfidenceSignal(
            strategy, context, round(score, 4), recommendation,
            [m for _, m in sorted(support, key=lambda p: -p[0])],
            [m for _, m in sorted(against, key=lambda p: -p[0])],
            round(evidence, 4), reasoning,
        )  # fmt: skip

    async def aassess_strategy(self, strategy: str, context: str, agent: str) -> ConfidenceSignal:
        """Async twin of `assess_strategy` (runs on a worker thread)."""
        return await asyncio.to_thread(self.assess_strategy, strategy, context, agent)
