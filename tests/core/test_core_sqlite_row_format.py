"""A memory's stored JSON (`data`) leaves out its fields that are None, so an outcome's row fits two to a page;
memories read back the same, and rows written with the nulls (before) read as they did."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from alma_core import ALMA, AntiPattern, DomainKnowledge, Heuristic, Memory, Outcome, UserPreference
from alma_core.storage import FindMemories, MemoryFilter, PutMemories

_META = {"user_id": "u1", "note": None, "nested": {"gone": None}, "items": [None, 1]}


def _memories(project: str) -> list[Memory]:
    base = {"project_id": project, "agent": "a", "metadata": _META}
    return [
        Outcome(**base, task="log in", task_type="auth", success=False, strategy_used="retry", error_message=None),
        Outcome(**base, task="log in", success=True, workflow_id="wf", duration_ms=12, feedback="fine"),
        Heuristic(**base, condition="auth tasks", strategy="retry", task_type=None),
        AntiPattern(**base, pattern="guess the password", why_bad="locks the account", task_type="auth"),
        UserPreference(**base, user_id="u1", category="style", preference="short answers"),
        DomainKnowledge(**base, domain="auth", fact="tokens expire after an hour"),
    ]


def _stored(db_path: Path) -> dict[str, dict[str, object]]:
    with sqlite3.connect(db_path) as raw:
        return {i: json.loads(data) for i, data in raw.execute("SELECT id, data FROM memories")}


def _read(db_path: Path, project: str, ids: list[str]) -> dict[str, Memory]:
    with ALMA(project_id=project, storage=db_path, embedder="mock") as alma:  # a fresh process's view
        found = alma.storage.execute(
            FindMemories(MemoryFilter(project_id=project, ids=tuple(ids)), with_embeddings=True)
        )
    return {m.id: m for m in found}


def test_stored_json_leaves_out_none_fields_and_memories_read_back_the_same(db_path: Path) -> None:
    memories = _memories("p")
    rng = np.random.default_rng(0)
    for memory in memories:
        memory.embedding = rng.normal(size=384)
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        alma.storage.execute(PutMemories(memories))
    stored = _stored(db_path)
    assert all(None not in fields.values() for fields in stored.values())  # no top-level null
    assert all(fields["metadata"] == _META for fields in stored.values())  # values inside metadata kept
    assert "error_message" not in stored[memories[0].id] and stored[memories[1].id]["duration_ms"] == 12
    read = _read(db_path, "p", [m.id for m in memories])
    for memory in memories:
        assert type(read[memory.id]) is type(memory)
        assert read[memory.id].model_dump() == memory.model_dump()
        assert np.array_equal(read[memory.id].embedding, memory.embedding)


def test_rows_written_with_their_nulls_read_as_before(db_path: Path) -> None:
    memories = _memories("p")
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        alma.storage.execute(PutMemories(memories))
    with sqlite3.connect(db_path) as raw:  # the JSON an older ALMA wrote: every field, nulls included
        raw.executemany("UPDATE memories SET data = ? WHERE id = ?", [(m.model_dump_json(), m.id) for m in memories])
    assert any(None in fields.values() for fields in _stored(db_path).values())
    read = _read(db_path, "p", [m.id for m in memories])
    assert {i: m.model_dump() for i, m in read.items()} == {m.id: m.model_dump() for m in memories}


def test_learned_outcomes_fit_two_rows_to_a_page(db_path: Path) -> None:
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        alma.learn_many([
            {"agent": "a", "task": f"fill the login form of site {i} with the test user's email",
             "outcome": bool(i % 3), "strategy_used": f"strategy {i % 7}"}
            for i in range(400)
        ])  # fmt: skip
    with sqlite3.connect(db_path) as raw:
        try:
            pages, rows = raw.execute(
                "SELECT COUNT(*), SUM(ncell) FROM dbstat WHERE name = 'memories' AND pagetype = 'leaf'"
            ).fetchone()
        except sqlite3.OperationalError:  # (an SQLite built without the dbstat table)
            pytest.skip("no dbstat")
    assert rows >= 400 and pages <= 0.6 * rows  # was one row a page
