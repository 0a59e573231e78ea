"""Kept candidates survive a learn that did not change their row (the agent loop: retrieve, learn, retrieve):
a long-lived store's retrieves equal those of a store opened fresh after every write, and a rewrite, a
delete and another connection's write are each seen by the next retrieve."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_core_candidates import AGENTS, _fill, _text

from alma_core import ALMA
from alma_core._candidates import Candidate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _answer(alma: ALMA, query: str, agent: str) -> list[Any]:
    found = alma.retrieve(query, agent, top_k=10).ranked()
    return [(m.memory_type, m.id, m.score, m.score_breakdown, m.to_dict()) for m in found]


def _fresh(path: Path, query: str, agent: str) -> list[Any]:
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        return _answer(alma, query, agent)


def _kept(alma: ALMA) -> dict[str, Candidate]:
    return dict(alma.storage._parsed._rows)  # type: ignore[attr-defined]


def test_the_agent_loop_answers_as_a_store_opened_after_each_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)
    path = tmp_path / "s.db"
    _fill(path, 21)
    rng = np.random.default_rng(8)
    survived = rewritten = 0
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        for q in range(3):  # (the second lexical search builds the in-memory index)
            alma.retrieve(_text(rng, 4), "abc"[q % 3], top_k=10)
        for q in range(36):
            agent = "abc"[q % 3]
            query = f"{_text(rng, 4)} q{q}" if q % 4 else "login form email"
            before = _kept(alma)
            assert _answer(alma, query, agent) == _fresh(path, query, agent)
            after = _kept(alma)
            survived += sum(after.get(k) is c for k, c in before.items())
            rewritten += sum(k in after and after[k] is not c for k, c in before.items())
            # a learn adds an outcome and rewrites a heuristic (its JSON, not its text)
            alma.learn(agent, query, q % 2 == 0, f"strategy {q % 5}", task_type=f"t{q % 4}")
    assert survived > 1000 and rewritten > 10  # both: kept across learns, and rewritten rows made again


def test_a_rewrite_a_delete_and_another_connections_write_are_seen_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)
    path = tmp_path / "s.db"
    _fill(path, 22)
    query = "login form email"
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        for warm in ("login", "form email", "email login"):  # (distinct: the index is built at the second)
            alma.retrieve(warm, "a", top_k=10)
        first = alma.retrieve(query, "a", top_k=10)
        assert alma.storage._lexical.built  # type: ignore[attr-defined]
        heuristic = first.heuristics[0]
        # a rewrite by this store: the heuristic's JSON changes (success_count, confidence), its text not
        alma.learn("a", "login form email again", True, heuristic.strategy, task_type=heuristic.task_type)
        assert _answer(alma, query, "a") == _fresh(path, query, "a")
        changed = next(h for h in alma.retrieve(query, "a", top_k=10).heuristics if h.id == heuristic.id)
        assert changed.success_count == heuristic.success_count + 1
        # a delete by this store
        gone = _answer(alma, query, "a")[0][1]
        alma.delete(gone)
        assert gone not in [row[1] for row in _answer(alma, query, "a")]
        assert _answer(alma, query, "a") == _fresh(path, query, "a")
        # another connection rewrites a kept row and deletes another
        kept = [row[1] for row in _answer(alma, query, "a")]
        with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as other:
            target = other.get(kept[0])
            other.learn("a", "login form email", True, getattr(target, "strategy", "strategy x"), task_type="t1")
            other.delete(kept[1])
        assert kept[1] not in [row[1] for row in _answer(alma, query, "a")]
        assert _answer(alma, query, "a") == _fresh(path, query, "a")
