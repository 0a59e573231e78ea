"""`Retriever.scores(..., top_k)` scores only the candidates that can reach a type's top_k, and the answer is the
same: each type's best, with the same scores, breakdowns and recurring-error warnings, as scoring every one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alma_core import AntiPattern, DomainKnowledge, Heuristic, MockEmbedder, Outcome
from alma_core._config import RetrievalConfig
from alma_core._retrieval import Retriever, cap_error_warnings
from alma_core.storage import SQLiteStorage

NOW = datetime.now(UTC)


def _candidates(rng: np.random.Generator, n: int) -> dict:
    out = {}
    for i in range(n):
        at = NOW - timedelta(days=float(rng.uniform(0, 400)))
        kind = i % 5
        if kind == 0:
            m = Outcome(project_id="p", agent="a", task=f"task {i}", task_type=f"t{i % 3}", success=bool(i % 2),
                        updated_at=at)  # fmt: skip
        elif kind == 1:
            m = Heuristic(project_id="p", agent="a", condition=f"c {i}", strategy="s", task_type=f"t{i % 3}",
                          occurrence_count=int(rng.integers(1, 20)), success_count=0, last_validated=at,
                          confidence=float(rng.uniform(0, 1)))  # fmt: skip
            m.success_count = int(rng.integers(0, m.occurrence_count + 1))
        elif kind == 2:
            m = AntiPattern(project_id="p", agent="a", pattern=f"error {i % 4}", task_type=f"t{i % 3}",
                            occurrence_count=int(rng.integers(1, 9)), confidence=float(rng.uniform(0, 1)),
                            metadata={"kind": "recurring_error"} if i % 3 else {}, updated_at=at)  # fmt: skip
        else:
            m = DomainKnowledge(project_id="p", agent="a", domain="d", fact=f"fact {i}", updated_at=at,
                                confidence=float(rng.uniform(0, 1)))  # fmt: skip
        out[m.id] = m
    return out


def _best(retriever: Retriever, memories: dict, relevance: dict, top_k: int | None) -> dict:
    scored = retriever.scores(memories, relevance, top_k)
    by_type: dict = {}
    for memory, score, factors in cap_error_warnings(scored, retriever.config.max_error_warnings, key=lambda e: e[0]):
        by_type.setdefault(memory.memory_type, []).append((memory.id, score, factors))
    return {t: found[:5] for t, found in by_type.items()}


@pytest.fixture
def retriever(db_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)  # one clock for both rankings
    storage = SQLiteStorage(db_path)
    yield Retriever(storage, MockEmbedder(), RetrievalConfig())
    storage.close()


@pytest.mark.parametrize("seed", range(30))
def test_the_best_of_each_type_equal_scoring_every_candidate(retriever: Retriever, seed: int) -> None:
    rng = np.random.default_rng(seed)
    memories = _candidates(rng, int(rng.integers(5, 150)))
    relevance = {i: float(rng.choice([rng.uniform(0, 1), 0.5, 1.0, 0.0])) for i in memories}  # ties too
    assert _best(retriever, memories, relevance, 5) == _best(retriever, memories, relevance, None)


def test_it_scores_few_of_many_candidates(retriever: Retriever) -> None:
    rng = np.random.default_rng(2)
    memories = {i: m for i, m in _candidates(rng, 150).items() if not isinstance(m, AntiPattern)}
    relevance = {i: float(rng.uniform(0, 1)) for i in memories}
    assert len(retriever.scores(memories, relevance, 5)) < len(memories) // 2
    assert _best(retriever, memories, relevance, 5) == _best(retriever, memories, relevance, None)


def test_a_success_above_one_or_extra_factors_score_every_candidate(retriever: Retriever) -> None:
    rng = np.random.default_rng(1)
    memories = _candidates(rng, 120)
    relevance = {i: float(rng.uniform(0, 1)) for i in memories}
    odd = next(m for m in memories.values() if isinstance(m, Heuristic))
    odd.metadata["success_lcb"] = 3.0  # outside the bound: it may outscore its relevance
    assert len(retriever.scores(memories, relevance, 5)) == len(memories)
    assert _best(retriever, memories, relevance, 5) == _best(retriever, memories, relevance, None)
    del odd.metadata["success_lcb"]
    retriever.factors["freshness"] = (0.3, lambda m: 2.0)
    assert len(retriever.scores(memories, relevance, 5)) == len(memories)
