"""The retrieval cache (hits, copies, invalidation across processes) and once-per-commit events."""

from __future__ import annotations

from pathlib import Path

import pytest

from alma_core import ALMA, ScopeViolation, ValidationError
from alma_core.events import EventEmitter, MemoryEvent, MemoryEventType


def test_repeated_retrieve_hits_the_cache(open_alma: ALMA) -> None:
    open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    first = open_alma.retrieve("token expiry", "bot")
    second = open_alma.retrieve("token expiry", "bot")
    assert [m.id for m in second] == [m.id for m in first]
    assert open_alma.stats().cache_hit_ratio == pytest.approx(0.5)


def test_cache_key_covers_top_k_mode_and_types(open_alma: ALMA) -> None:
    for i in range(3):
        open_alma.add_domain_knowledge("bot", "auth", f"Token fact number {i}")
    assert len(open_alma.retrieve("token fact", "bot", top_k=3)) == 3
    assert len(open_alma.retrieve("token fact", "bot", top_k=1)) == 1
    assert open_alma.retrieve("token fact", "bot", memory_types=["heuristic"]).knowledge == []
    open_alma.retrieve("token fact", "bot", mode="lexical")
    assert open_alma.stats().cache_hit_ratio == 0.0


def test_callers_cannot_corrupt_the_cache(open_alma: ALMA) -> None:
    open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    got = open_alma.retrieve("token expiry", "bot")
    got.knowledge[0].metadata["tampered"] = True
    got.knowledge.clear()
    again = open_alma.retrieve("token expiry", "bot")
    assert len(again.knowledge) == 1 and "tampered" not in again.knowledge[0].metadata


def test_a_local_write_invalidates(open_alma: ALMA) -> None:
    open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    assert len(open_alma.retrieve("token", "bot").knowledge) == 1
    open_alma.add_domain_knowledge("bot", "auth", "Refresh tokens last one token week")
    assert len(open_alma.retrieve("token", "bot").knowledge) == 2


WRITER = """
    import sys
    from alma_core import ALMA
    with ALMA(project_id="open", storage=sys.argv[1], embedder="mock") as alma:
        alma.add_domain_knowledge("bot", "auth", "Tokens are signed with RS256 token keys")
    print("done")
"""


def test_a_write_from_another_process_invalidates(open_alma: ALMA, db_path: Path, spawn) -> None:  # type: ignore[no-untyped-def]
    open_alma.add_domain_knowledge("bot", "auth", "Tokens expire after one hour")
    assert len(open_alma.retrieve("token", "bot").knowledge) == 1
    child = spawn(WRITER, str(db_path))
    _out, err = child.communicate(timeout=240)
    assert child.returncode == 0, err
    assert len(open_alma.retrieve("token", "bot").knowledge) == 2


def _recorder(alma: ALMA) -> list[MemoryEvent]:
    seen: list[MemoryEvent] = []
    alma.events.subscribe(seen.append, [MemoryEventType.CREATED, MemoryEventType.UPDATED, MemoryEventType.DELETED])
    return seen


def _alma(db_path: Path) -> ALMA:
    agents = {"helena": {"can_learn": ["testing_strategies"], "min_occurrences_for_heuristic": 2}}
    return ALMA(project_id="ev", agents=agents, storage=db_path, embedder="mock", emitter=EventEmitter())


def test_events_fire_once_per_committed_write(db_path: Path) -> None:
    with _alma(db_path) as alma:
        seen = _recorder(alma)
        outcome = alma.learn("helena", "Test login", True, strategy_used="use roles", task_type="testing_strategies")
        assert [(e.type, e.memory_id) for e in seen] == [(MemoryEventType.CREATED, outcome.id)]
        seen.clear()
        alma.learn("helena", "Test login", True, strategy_used="use roles", task_type="testing_strategies")
        kinds = sorted((e.type.value, e.memory_type) for e in seen)
        assert kinds == [("created", "heuristic"), ("created", "outcome")]
        seen.clear()
        alma.learn("helena", "Test login", True, strategy_used="use roles", task_type="testing_strategies")
        assert sorted((e.type.value, e.memory_type) for e in seen) == [("created", "outcome"), ("updated", "heuristic")]


def test_no_event_for_a_failed_write(db_path: Path) -> None:
    with _alma(db_path) as alma:
        seen = _recorder(alma)
        with pytest.raises(ScopeViolation):
            alma.learn("helena", "Fix API", True, strategy_used="retry", task_type="backend_logic")
        assert seen == []


def test_a_raising_subscriber_never_breaks_the_write(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with _alma(db_path) as alma:

        def boom(event: MemoryEvent) -> None:
            raise RuntimeError("subscriber bug")

        alma.events.subscribe(boom)
        seen = _recorder(alma)
        alma.add_domain_knowledge("helena", "testing_strategies", "Playwright auto-waits")
        assert len(seen) == 1
        assert alma.stats().knowledge == 1
        assert "subscriber bug" in caplog.text


def test_subscribe_takes_the_seeds_order_and_ours(db_path: Path) -> None:
    emitter = EventEmitter()
    seed_order: list[MemoryEvent] = []
    our_order: list[MemoryEvent] = []
    emitter.subscribe(MemoryEventType.CREATED, seed_order.append)  # the seed: type first
    emitter.subscribe(our_order.append, [MemoryEventType.DELETED])  # ours: callback first
    emitter.subscribe([MemoryEventType.DELETED, "created"], our_order.append)
    with ALMA(project_id="ev", storage=db_path, embedder="mock", emitter=emitter) as alma:
        fact = alma.add_domain_knowledge("bot", "auth", "Tokens expire hourly")
        alma.delete(fact.id)
    assert [e.type for e in seed_order] == [MemoryEventType.CREATED]
    assert [e.type for e in our_order] == [MemoryEventType.CREATED, MemoryEventType.DELETED, MemoryEventType.DELETED]
    with pytest.raises(ValidationError):
        emitter.subscribe("renamed", seed_order.append)
    with pytest.raises(ValidationError):
        emitter.subscribe(MemoryEventType.CREATED, "not callable")  # type: ignore[arg-type]
