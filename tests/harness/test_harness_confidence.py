"""ConfidenceEngine: recommendations computed from crafted evidence, no LLM."""

from __future__ import annotations

import pytest

from alma_core import ALMA, ConfidenceEngine, Heuristic, Outcome, ValidationError

TASK = "Test the login form"


def learn(alma: ALMA, strategy: str, results: list[bool]) -> None:
    for ok in results:
        alma.learn("helena", TASK, ok, strategy, task_type="testing_strategies", error_message=None if ok else "flaky")


def test_no_evidence_means_caution_at_one_half(coding_alma: ALMA) -> None:
    signal = ConfidenceEngine(coding_alma).assess_strategy("use data-testid selectors", TASK, "helena")
    assert (signal.confidence_score, signal.recommendation) == (0.5, "caution")
    assert signal.supporting == [] and signal.contradicting == []


def test_a_strategy_that_keeps_working_is_recommended(coding_alma: ALMA) -> None:
    learn(coding_alma, "use data-testid selectors", [True, True, True])
    signal = ConfidenceEngine(coding_alma).assess_strategy("use data-testid selectors", TASK, "helena")
    assert signal.recommendation == "yes" and signal.confidence_score >= 0.7
    assert any(isinstance(m, Heuristic) for m in signal.supporting)
    outcomes = [m for m in signal.supporting if isinstance(m, Outcome)]
    assert outcomes and all(m.success for m in outcomes)
    assert signal.contradicting == []


def test_a_strategy_that_keeps_failing_is_advised_against(coding_alma: ALMA) -> None:
    learn(coding_alma, "use xpath selectors", [False, False, False])
    learn(coding_alma, "use data-testid selectors", [True, True])
    signal = ConfidenceEngine(coding_alma).assess_strategy("use xpath selectors", TASK, "helena")
    assert signal.recommendation == "no" and signal.confidence_score <= 0.35
    assert signal.contradicting[0].memory_type.value == "anti_pattern"
    assert all("xpath" in getattr(m, "strategy_used", getattr(m, "pattern", "")) for m in signal.contradicting)
    assert signal.supporting == []  # the other strategy's successes are not evidence for this one


def test_mixed_evidence_is_caution(coding_alma: ALMA) -> None:
    learn(coding_alma, "retry the click", [True, False, True, False])
    signal = ConfidenceEngine(coding_alma).assess_strategy("retry the click", TASK, "helena")
    assert signal.recommendation == "caution" and 0.35 < signal.confidence_score < 0.7
    assert signal.supporting and signal.contradicting


def test_a_paraphrase_matches_the_same_evidence(coding_alma: ALMA) -> None:
    learn(coding_alma, "use data-testid selectors", [True, True, True])
    signal = ConfidenceEngine(coding_alma).assess_strategy("data-testid selector", TASK, "helena")
    assert signal.recommendation == "yes"


def test_bad_input_raises(coding_alma: ALMA) -> None:
    with pytest.raises(ValidationError):
        ConfidenceEngine(coding_alma).assess_strategy("", TASK, "helena")
    with pytest.raises(ValidationError):
        ConfidenceEngine(coding_alma, yes_above=0.3, no_below=0.5)


async def test_async_twin(coding_alma: ALMA) -> None:
    learn(coding_alma, "use data-testid selectors", [True, True, True])
    signal = await ConfidenceEngine(coding_alma).aassess_strategy("use data-testid selectors", TASK, "helena")
    assert signal.recommendation == "yes"
