"""A retrieve ranks `Candidate`s made from the SQLite store's rows (columns and JSON read as plain data) and
builds only the memories it returns: the rankings equal those made from validated models, and a row that is
not a valid memory is skipped and reported as before."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alma_core import ALMA, MemoryType
from alma_core._candidates import Candidate
from alma_core._retrieval import Retriever
from alma_core.storage import FindMemories, MemoryFilter
from alma_core.storage._parsed import ROW_COLUMNS, ParsedMemories

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AGENTS = {"a": {"share_with": ["b"]}, "b": {"inherit_from": ["a"]}, "c": {}}
WORDS = [f"w{i}" for i in range(40)] + ["login", "form", "email", "ID-42", "v1.2"]
_FIELDS = ["id", "memory_type", "agent", "text", "user_id", "task_type", "confidence", "updated_at", "success",
           "stamp", "retired", "warning", "occurrences", "pattern"]  # fmt: skip


def _text(rng: np.random.Generator, n: int) -> str:
    return " ".join(WORDS[i] for i in np.minimum(rng.zipf(1.4, size=n), len(WORDS)) - 1)


def _fill(path: Path, seed: int) -> None:
    """Every type, three agents sharing, users, repeated texts (ties), warnings, retired memories."""
    rng = np.random.default_rng(seed)
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        for i in range(120):
            agent = "abc"[i % 3]
            alma.learn(agent, _text(rng, 6) if i % 7 else "login form email", bool(rng.random() < 0.6),
                       f"strategy {i % 9}", task_type=f"t{i % 4}", error_message=None if i % 5 else f"error {i % 3}",
                       timestamp=NOW - timedelta(days=float(rng.uniform(0, 200))))  # fmt: skip
            if i % 9 == 0:
                alma.add_user_preference(f"u{i % 3}", _text(rng, 5), agent=None if i % 2 else agent)
            if i % 10 == 0:
                alma.add_domain_knowledge(agent, "web", _text(rng, 7), confidence=float(rng.uniform(0.2, 1)),
                                          created_at=NOW - timedelta(days=float(rng.uniform(0, 100))))  # fmt: skip
            if i % 11 == 0:
                kind = {"kind": "recurring_error"} if i % 2 else ({"retired": True} if i % 3 == 0 else {})
                alma.add_anti_pattern(agent, _text(rng, 4), "bad", "better", task_type=f"t{i % 4}",
                                      confidence=float(rng.uniform(0.2, 1)), metadata=kind)  # fmt: skip


def _rankings(path: Path, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed + 100)
    out = []
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        for q in range(50):
            kw: dict[str, Any] = {"top_k": int(rng.choice([1, 3, 5, 10])),
                                  "mode": str(rng.choice(["hybrid", "hybrid", "dense", "lexical"]))}  # fmt: skip
            if q % 4 == 1:
                kw["user_id"] = f"u{q % 3}"
            if q % 5 == 2:
                kw["memory_types"] = ["heuristic", "anti_pattern"]
            if q % 6 == 3:
                kw["since"] = NOW - timedelta(days=100)
            if q % 7 == 4:
                kw["include_shared"] = False
            query = _text(rng, int(rng.integers(1, 8))) if q % 6 else "login form email"
            found = alma.retrieve(query, "abc"[q % 3], **kw).ranked()
            out.append([(m.memory_type, m.id, m.score, m.score_breakdown, m.metadata.get("shared_from"), m.to_dict())
                        for m in found])  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(3))
def test_rankings_from_rows_equal_rankings_from_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int):
    from alma_core.storage._sqlite_search import MemoryReads

    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)
    path = tmp_path / "s.db"
    _fill(path, seed)
    made: list[str] = []  # which path each search's memories took (else both runs could be the same path)
    for name in ("_candidate_rows", "_candidates"):
        real = getattr(MemoryReads, name)
        monkeypatch.setattr(MemoryReads, name, lambda *a, _r=real, _n=name, **k: made.append(_n) or _r(*a, **k))
    from_rows = _rankings(path, seed)
    assert made and set(made) == {"_candidate_rows"}
    made.clear()
    search_op = Retriever.search_op
    monkeypatch.setattr(Retriever, "search_op", lambda *a, **k: dataclasses.replace(search_op(*a, **k), rows=False))
    from_models = _rankings(path, seed)
    assert made and set(made) == {"_candidates"}
    assert sum(map(len, from_rows)) > 400
    assert {entry[0] for found in from_rows for entry in found} == set(MemoryType)
    assert from_rows == from_models


def test_a_candidate_of_a_row_equals_the_candidate_of_its_model(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _fill(path, 7)
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        memories = {m.id: m for m in alma.storage.execute(FindMemories(MemoryFilter("p")))}
    heuristics = [m for m in memories.values() if m.memory_type == "heuristic"]
    assert heuristics and any("success_lcb" in m.metadata for m in heuristics)
    rows = sqlite3.connect(path).execute(f"SELECT {ROW_COLUMNS} FROM memories").fetchall()
    parsed = ParsedMemories()
    assert len(rows) == len(memories)
    for row in rows:
        candidate, expected = parsed.candidate("p", row), Candidate.of(memories[row[0]])
        assert candidate.data == row[8]  # made from the row, not from a validated model
        assert [getattr(candidate, s) for s in _FIELDS] == [getattr(expected, s) for s in _FIELDS]
        assert candidate.build().to_dict() == memories[row[0]].to_dict()
        assert parsed.candidate("p", row) is candidate  # kept while the row is unchanged


def test_a_stored_row_that_is_not_a_memory_is_skipped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)
    path = tmp_path / "s.db"
    with ALMA("p", storage=path, embedder="mock") as alma:
        facts = [
            alma.add_domain_knowledge("a", "billing", f"invoices go out on day {i} of the month") for i in range(6)
        ]
    conn = sqlite3.connect(path)
    data = json.loads(conn.execute("SELECT data FROM memories WHERE id = ?", (facts[2].id,)).fetchone()[0])
    data["fact"] = ""  # read as plain data it ranks; as a model it is invalid (an empty fact)
    conn.execute("UPDATE memories SET data = ? WHERE id = ?", (json.dumps(data), facts[2].id))
    conn.execute("UPDATE memories SET data = '{not json' WHERE id = ?", (facts[4].id,))
    conn.commit()
    conn.close()

    def knowledge() -> list[tuple[str, float | None]]:
        with ALMA("p", storage=path, embedder="mock") as alma:
            got = alma.retrieve("invoices day month", "a", top_k=10).knowledge
            assert {("p", facts[2].id), ("p", facts[4].id)} <= set(alma.storage.bad_rows.rows)
            return [(m.id, m.score) for m in got]

    from_rows = knowledge()
    assert {i for i, _ in from_rows} == {f.id for n, f in enumerate(facts) if n not in (2, 4)}
    search_op = Retriever.search_op
    monkeypatch.setattr(Retriever, "search_op", lambda *a, **k: dataclasses.replace(search_op(*a, **k), rows=False))
    assert knowledge() == from_rows  # as when every candidate was validated on reading


def test_candidates_made_from_the_lexical_index_equal_those_read_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alma_core.storage._lexindex import LexicalIndex
    from alma_core.storage._sqlite_search import MemoryReads

    monkeypatch.setattr("alma_core._retrieval.utcnow", lambda: NOW)
    path = tmp_path / "s.db"
    _fill(path, 11)
    made: list[tuple[int, int]] = []  # (rows made from the index, rows it sent to be read by rowid)
    rows = LexicalIndex.rows
    monkeypatch.setattr(LexicalIndex, "rows", lambda *a: (r := rows(*a), made.append((len(r[0]), len(r[1]))))[0])
    from_index = _rankings(path, 11)
    assert sum(n for n, _ in made) > 30  # the lexical index was current: rows were made from it
    monkeypatch.setattr(MemoryReads, "_index_current", lambda self: False)
    assert _rankings(path, 11) == from_index


def test_rows_made_from_the_lexical_index_are_the_stored_rows_after_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Learns between retrieves rewrite heuristics (their JSON changes, their text does not), add outcomes
    and delete memories: every row the index makes is the stored row, those written since its build too
    (made from what the write recorded); rows written without their JSON recorded are read again."""
    from alma_core.storage import _sqlite_writes
    from alma_core.storage._lexindex import LexicalIndex

    path = tmp_path / "s.db"
    _fill(path, 13)
    other = sqlite3.connect(path)
    made, written, unread, built = [0], [0], [0], [0]
    rows, columns = LexicalIndex.rows, _sqlite_writes._columns

    def checked(index: LexicalIndex, project_id: str, ids: Any) -> Any:
        found = rows(index, project_id, ids)
        built[0] = built[0] or index.tick  # (the build's tick: rows written since have later ones)
        for rowid, row in found[0]:
            stored = other.execute(f"SELECT {ROW_COLUMNS} FROM memories WHERE rowid = ?", (rowid,)).fetchone()
            assert stored == row and [type(v) for v in stored] == [type(v) for v in row]
            written[0] += index.version[rowid] > built[0]
        made[0], unread[0] = made[0] + len(found[0]), unread[0] + len(found[1])
        return found

    monkeypatch.setattr(LexicalIndex, "rows", checked)
    rng = np.random.default_rng(3)
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        for q in range(40):
            query = _text(rng, 4) if q % 3 else "login form email"
            alma.storage._parsed.clear()  # type: ignore[attr-defined]  # (kept candidates would skip `rows`)
            found = alma.retrieve(query, "abc"[q % 3], top_k=10).ranked()
            # (a third of the learns record their rows without the JSON, as a writer may: read back by rowid)
            monkeypatch.setattr(_sqlite_writes, "_columns", (lambda row: columns(row)[:-1]) if q % 3 == 1 else columns)
            alma.learn("abc"[q % 3], query, q % 2 == 0, f"strategy {q % 9}", task_type=f"t{q % 4}")
            if q % 10 == 5 and found:
                alma.delete(found[0].id)
    assert made[0] > 300 and written[0] > 30 and unread[0] > 10  # every path ran


def test_a_cache_hit_equals_the_retrieve_it_repeats_whatever_the_caller_changed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _fill(path, 5)
    with ALMA("p", agents=AGENTS, storage=path, embedder="mock") as alma:
        first = alma.retrieve("login form email", "b", top_k=5)
        expected = [
            m.to_dict() | {"score": m.score, "breakdown": dict(m.score_breakdown or {})} for m in first.ranked()
        ]
        assert any(m.metadata.get("shared_from") == "a" for m in first)
        for memory in first:  # the caller's own copies: changing them reaches nothing kept
            memory.metadata["changed"] = True
            memory.confidence = 0.0
            (memory.score_breakdown or {}).clear()
        first.heuristics.clear()
        hits = alma._cache.hits
        again = alma.retrieve("login form email", "b", top_k=5)
        assert alma._cache.hits == hits + 1
        assert [m.to_dict() | {"score": m.score, "breakdown": m.score_breakdown} for m in again.ranked()] == expected


def test_building_the_lexical_index_looks_up_the_stored_words_ahead(tmp_path: Path) -> None:
    from alma_core.storage import _lexindex

    with ALMA("p", storage=tmp_path / "s.db", embedder="mock") as alma:
        alma.add_domain_knowledge("a", "web", "Zyxwvut_Quokka renders the checkout pages")
        _lexindex._words.clear()
        alma.retrieve("checkout", "a")
        assert "quokka" not in _lexindex._words  # not built yet: the first search tokenizes its own words
        alma.retrieve("pages", "a")  # the second lexical search builds the index
        assert _lexindex._words["renders"] == ("render",)  # FTS5's porter stem, looked up ahead
        assert _lexindex._words["zyxwvut_quokka"] == ("zyxwvut", "quokka")
