"""Forgetting and confidence decay: dry runs change nothing, preferences only when asked."""

from __future__ import annotations

from datetime import timedelta

from alma_core import ALMA
from alma_core._models import utcnow


def _old(alma: ALMA) -> None:
    old = utcnow() - timedelta(days=200)
    alma.add_domain_knowledge("bot", "auth", "Old fact about tokens", created_at=old)
    alma.add_domain_knowledge("bot", "auth", "Fresh fact about tokens")
    alma.add_user_preference("u1", "Short answers", created_at=old)


def test_forget_dry_run_lists_without_deleting(open_alma: ALMA) -> None:
    _old(open_alma)
    doomed = open_alma.forget(older_than_days=100, dry_run=True)
    assert [m.text for m in doomed] == ["Old fact about tokens"]  # the old preference is kept
    assert open_alma.stats().total == 3
    assert len(open_alma.forget(older_than_days=100)) == 1
    assert open_alma.stats().preferences == 1
    assert len(open_alma.forget(older_than_days=100, memory_types=["preference"])) == 1


def test_decay_fades_idle_memories_once(open_alma: ALMA) -> None:
    _old(open_alma)
    preview = open_alma.decay_confidence(half_life_days=100, dry_run=True)
    assert [m.text for m in preview] == ["Old fact about tokens"]
    assert all(m.confidence == 1.0 for m in open_alma.list_memories(memory_types=["knowledge"]))
    open_alma.decay_confidence(half_life_days=100)
    open_alma.decay_confidence(half_life_days=100)  # never compounds
    faded = {m.text: m.confidence for m in open_alma.list_memories(memory_types=["knowledge"])}
    assert 0.2 < faded["Old fact about tokens"] < 0.3
    assert faded["Fresh fact about tokens"] == 1.0
    assert [m.text for m in open_alma.forget(below_confidence=0.5)] == ["Old fact about tokens"]


def test_forgotten_heuristic_is_not_rebuilt_from_old_evidence(open_alma: ALMA) -> None:
    for i in range(3):
        open_alma.learn("bot", f"t{i}", True, strategy_used="cache the token", task_type="auth")
    assert len(open_alma.forget(older_than_days=0, memory_types=["heuristic"])) == 1
    open_alma.learn("bot", "t9", True, strategy_used="cache the token", task_type="auth")
    assert open_alma.list_memories(memory_types=["heuristic"]) == []
