"""The learning protocol: one heuristic per strategy, confidence from evidence, real anti-patterns."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from alma_core import ALMA, AntiPattern, Heuristic, ScopeViolation
from alma_core._learning import normalise_strategy, strategy_confidence

TT = "testing_strategies"


def _heuristics(alma: ALMA, agent: str = "helena") -> list[Heuristic]:
    return [m for m in alma.list_memories(agent=agent, memory_types=["heuristic"]) if isinstance(m, Heuristic)]


def _anti_patterns(alma: ALMA, agent: str = "helena") -> list[AntiPattern]:
    return [m for m in alma.list_memories(agent=agent, memory_types=["anti_pattern"]) if isinstance(m, AntiPattern)]


def test_heuristic_forms_at_exactly_min_occurrences(alma: ALMA) -> None:
    for i in range(2):
        alma.learn("helena", f"Test form {i}", True, strategy_used="Use data-testid selectors", task_type=TT)
    assert _heuristics(alma) == []
    alma.learn("helena", "Test form 3", True, strategy_used="Use data-testid selectors", task_type=TT)
    (heuristic,) = _heuristics(alma)
    assert heuristic.strategy == "Use data-testid selectors"
    assert heuristic.task_type == TT
    assert (heuristic.success_count, heuristic.occurrence_count) == (3, 3)
    assert heuristic.confidence == pytest.approx(strategy_confidence(1 + 0.9 + 0.81, 0), abs=1e-5)


def test_failures_do_not_count_towards_formation(alma: ALMA) -> None:
    for ok in (True, False, True, False):
        alma.learn("helena", "Test", ok, strategy_used="retry the click", task_type=TT)
    assert _heuristics(alma) == []


def _paraphrase(rng: random.Random, words: list[str]) -> str:
    words = list(words)
    rng.shuffle(words)
    words = [w.upper() if rng.random() < 0.3 else w.capitalize() if rng.random() < 0.3 else w for w in words]
    text = " ".join(words)
    if rng.random() < 0.5:
        text = "use the " + text
    return text + rng.choice(["", ".", "!", " ;", "..."])


def test_no_duplicates_after_100_paraphrased_learns(open_alma: ALMA) -> None:
    rng = random.Random(7)
    strategies = [["wait", "for", "network", "idle"], ["mock", "payment", "gateway"], ["seed", "database", "fixtures"]]
    for i in range(100):
        words = strategies[i % 3]
        open_alma.learn("bot", f"task {i}", rng.random() < 0.8, strategy_used=_paraphrase(rng, words),
                        task_type="e2e")  # fmt: skip
    heuristics = _heuristics(open_alma, "bot")
    assert len(heuristics) == 3
    assert sum(h.occurrence_count for h in heuristics) == 100
    assert {normalise_strategy(h.strategy) for h in heuristics} == {normalise_strategy(" ".join(w)) for w in strategies}


class _SynonymEmbedder:
    """Maps synonyms to one vector, so paraphrases with no shared normalised form still match."""

    name, dim = "synonyms", 8
    _groups = {"click": 0, "press": 0, "tap": 0, "wait": 1, "pause": 1, "sleep": 1}

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, self._groups.get(word, 2 + hash(word) % 6)] += 1.0
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def test_paraphrases_match_by_embedding_similarity(tmp_path: Path) -> None:
    with ALMA(project_id="p", storage=tmp_path / "a.db", embedder=_SynonymEmbedder()) as alma:
        for verb in ("click", "press", "tap", "click", "press"):
            alma.learn("bot", "Submit", True, strategy_used=verb, task_type="ui")
        (heuristic,) = _heuristics(alma, "bot")
        assert heuristic.strategy == "click"
        assert heuristic.success_count == 5


def test_confidence_falls_after_failures_and_the_strategy_retires(alma: ALMA) -> None:
    for i in range(5):
        alma.learn("helena", f"Test {i}", True, strategy_used="Use fixed sleeps", task_type=TT)
    before = _heuristics(alma)[0].confidence
    for i in range(3):
        alma.learn("helena", f"Test f{i}", False, strategy_used="Use fixed sleeps", task_type=TT)
    after = _heuristics(alma)[0]
    assert after.confidence < before
    assert after.occurrence_count == 8 and after.success_count == 5
    for i in range(30):
        alma.learn("helena", f"Test g{i}", False, strategy_used="Use fixed sleeps", task_type=TT)
    retired = _heuristics(alma)[0]
    assert retired.metadata["retired"] is True
    assert retired.confidence < alma.config.learning.retire_below_confidence
    assert alma.retrieve("Use fixed sleeps in tests", "helena").heuristics == []


def test_anti_pattern_carries_real_errors_and_the_best_alternative(alma: ALMA) -> None:
    alma.learn(
        "helena", "Test a", False, strategy_used="sleep then click", task_type=TT, error_message="Timeout 5000ms"
    )
    alma.learn(
        "helena", "Test b", False, strategy_used="sleep then click", task_type=TT, error_message="Element detached"
    )
    (anti,) = _anti_patterns(alma)
    assert anti.pattern == "sleep then click"
    assert "Timeout 5000ms" in anti.why_bad and "Element detached" in anti.why_bad
    assert anti.better_alternative == ""  # nothing better is known yet: empty, never a placeholder
    for i in range(3):
        alma.learn("helena", f"Test {i}", True, strategy_used="wait for the element to be visible", task_type=TT)
    alma.learn(
        "helena", "Test c", False, strategy_used="sleep then click", task_type=TT, error_message="Timeout 5000ms"
    )
    (anti,) = _anti_patterns(alma)
    assert anti.better_alternative == "wait for the element to be visible"
    assert anti.occurrence_count == 3
    assert anti.task_type == TT


def test_learning_respects_scopes(alma: ALMA) -> None:
    with pytest.raises(ScopeViolation):
        alma.learn("helena", "Fix the API", True, strategy_used="retry", task_type="backend_logic")
    assert alma.stats().total == 0


def test_learn_many_updates_one_heuristic(open_alma: ALMA) -> None:
    open_alma.learn_many(
        [{"agent": "bot", "task": f"t{i}", "outcome": True, "strategy_used": "Cache the token", "task_type": "auth"}
         for i in range(4)]
    )  # fmt: skip
    (heuristic,) = _heuristics(open_alma, "bot")
    assert heuristic.success_count == 4


LEARNER = """
    import sys
    from alma_core import ALMA
    with ALMA(project_id="mp", storage=sys.argv[1], embedder="mock") as alma:
        for i in range(int(sys.argv[2])):
            alma.learn("bot", f"task {i}", i % 5 != 0, strategy_used="Retry with exponential backoff", task_type="net")
    print("done")
"""


def test_two_processes_learning_one_strategy_share_one_heuristic(db_path: Path, spawn) -> None:  # type: ignore[no-untyped-def]
    children = [spawn(LEARNER, str(db_path), "40") for _ in range(2)]
    for child in children:
        _out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    with ALMA(project_id="mp", storage=db_path, embedder="mock") as alma:
        (heuristic,) = _heuristics(alma, "bot")
        assert heuristic.occurrence_count == 80
        assert heuristic.success_count == 64
