"""Learning policy: demotion on recent failures, the success lower bound, recurring-error anti-patterns."""

from __future__ import annotations

import pytest

from alma_core import ALMA, AntiPattern, Heuristic
from alma_core._learning import normalise_error, strategy_confidence, success_lower_bound
from alma_core._retrieval import success_factor


def _heuristic(alma: ALMA, strategy: str) -> Heuristic:
    found = [m for m in alma.list_memories(agent="bot", memory_types=["heuristic"]) if isinstance(m, Heuristic)]
    return next(h for h in found if h.strategy == strategy)


def _error_anti_patterns(alma: ALMA) -> list[AntiPattern]:
    found = alma.list_memories(agent="bot", memory_types=["anti_pattern"])
    return [m for m in found if isinstance(m, AntiPattern) and m.metadata.get("kind") == "recurring_error"]


def _learn(alma: ALMA, strategy: str, ok: bool, error: str | None = None, task_type: str = "deploy") -> None:
    alma.learn("bot", "ship the release", ok, strategy_used=strategy, task_type=task_type, error_message=error)


def test_lower_bound_prefers_a_long_record_over_a_short_lucky_one() -> None:
    assert strategy_confidence(3, 0) > strategy_confidence(16, 4)  # the mean alone prefers 3 of 3
    assert success_lower_bound(16, 4) > success_lower_bound(3, 0) > success_lower_bound(1, 0)
    assert success_lower_bound(0, 3, z=2) == 0.0  # floored at 0
    assert success_lower_bound(5, 5, z=0) == pytest.approx(strategy_confidence(5, 5))


def test_ranking_uses_the_heuristics_stored_lower_bound(open_alma: ALMA) -> None:
    for _ in range(4):
        _learn(open_alma, "blue green switch", True)
    heuristic = _heuristic(open_alma, "blue green switch")
    assert heuristic.metadata["success_lcb"] < heuristic.confidence
    assert success_factor(heuristic) == heuristic.metadata["success_lcb"]


def test_a_strategy_whose_recent_outcomes_fail_is_demoted_then_recovers(open_alma: ALMA) -> None:
    for _ in range(10):
        _learn(open_alma, "blue green switch", True)
    for _ in range(3):
        _learn(open_alma, "blue green switch", False, "health check failed")
    demoted = _heuristic(open_alma, "blue green switch")
    assert demoted.confidence > open_alma.config.learning.retire_below_confidence  # demotion, not low confidence
    assert demoted.metadata["demoted"] is True and demoted.metadata["retired"] is True
    assert open_alma.retrieve("blue green switch release", "bot").heuristics == []
    for _ in range(3):
        _learn(open_alma, "blue green switch", True)
    recovered = _heuristic(open_alma, "blue green switch")
    assert recovered.metadata["demoted"] is False and recovered.metadata["retired"] is False
    assert [h.id for h in open_alma.retrieve("blue green switch release", "bot").heuristics] == [recovered.id]


def test_one_error_recurring_across_strategies_forms_an_anti_pattern(open_alma: ALMA) -> None:
    _learn(open_alma, "rolling restart", False, "deadlock detected on table orders (pid 48213)")
    assert _error_anti_patterns(open_alma) == []
    _learn(open_alma, "drain then restart", False, "deadlock detected on table orders (pid 51904)")
    (anti,) = _error_anti_patterns(open_alma)
    assert "deadlock detected on table orders" in anti.pattern
    assert "rolling restart" in anti.why_bad and "drain then restart" in anti.why_bad
    assert anti.better_alternative == ""  # nothing better is known: empty, never a placeholder
    assert anti.task_type == "deploy" and anti.occurrence_count == 2
    for _ in range(3):
        _learn(open_alma, "blue green switch", True)
    _learn(open_alma, "rolling restart", False, "deadlock detected on table orders (pid 60001)")
    (anti,) = _error_anti_patterns(open_alma)
    assert anti.better_alternative == "blue green switch"
    assert anti.occurrence_count == 3


def test_an_error_from_one_strategy_only_is_not_a_recurring_error(open_alma: ALMA) -> None:
    for _ in range(4):
        _learn(open_alma, "rolling restart", False, "deadlock detected")
    assert _error_anti_patterns(open_alma) == []
    _learn(open_alma, "drain then restart", False, "deadlock detected", task_type="other_type")
    assert _error_anti_patterns(open_alma) == []  # another task type's failures do not count


def test_error_keys_mask_volatile_parts_only() -> None:
    assert normalise_error("Timeout after 30000ms") == normalise_error("timeout  after 45000ms")
    assert normalise_error("HTTP 503 from upstream") != normalise_error("HTTP 502 from upstream")


def test_an_older_anti_pattern_gets_the_better_alternative_once_one_is_known(tmp_path) -> None:
    from alma_core import ALMA

    alma = ALMA(project_id="p", agents={"a": {"min_occurrences_for_heuristic": 2}}, storage=tmp_path / "a.db",
                embedder="mock")  # fmt: skip
    for i in range(3):
        alma.learn("a", f"deploy service {i}", False, "restart every pod at once", task_type="deploys",
                   error_message="downtime during restart")  # fmt: skip
    (anti,) = alma.list_memories(memory_types=["anti_pattern"])
    assert anti.better_alternative == ""
    for i in range(3):
        alma.learn("a", f"deploy service {i}", True, "rolling restart with readiness probes", task_type="deploys")
    (anti,) = alma.list_memories(memory_types=["anti_pattern"])
    assert anti.better_alternative == "rolling restart with readiness probes"
    alma.close()


def test_a_paraphrase_matches_evidence_another_instance_wrote_and_not_forgotten_evidence(tmp_path) -> None:
    """The in-memory strategy index follows other writers and never matches deleted evidence."""
    from alma_core import ALMA

    def open_() -> ALMA:
        return ALMA(project_id="p", agents={"a": {"min_occurrences_for_heuristic": 2}}, storage=tmp_path / "a.db",
                    embedder="mock")  # fmt: skip

    first, second = open_(), open_()
    first.learn("a", "warm up", True, "retry the flaky call with exponential backoff", task_type="net")
    for i in range(30):  # many distinct strategies: matching must not depend on scanning them
        first.learn("a", f"task {i}", i % 2 == 0, f"strategy number {i} with token t{i * 7919}", task_type="net")
    second.learn("a", "other", True, "retry the flaky call with exponential back-off!", task_type="net")
    (heuristic,) = [h for h in first.list_memories(memory_types=["heuristic"]) if "backoff" in h.strategy]
    assert heuristic.success_count == 2  # the paraphrase from `second` counted for the same strategy
    first.forget(memory_types=["heuristic"], older_than_days=0)
    first.learn("a", "again", True, "retry the flaky call with exponential backoff", task_type="net")
    assert not [h for h in first.list_memories(memory_types=["heuristic"]) if "backoff" in h.strategy]
    first.close()
    second.close()
