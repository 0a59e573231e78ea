"""SQLite's `memory_counts` (migration 6): the per-scope counts that triggers keep equal to COUNT(*) under
every writer, so that `CountMemories` by project, agents and types reads a few rows, not the table."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alma_core import ALMA, AntiPattern, DomainKnowledge, Heuristic, MemoryType, MockEmbedder
from alma_core.storage import CountMemories, DeleteMemories, MemoryFilter, PutMemories, SQLiteStorage
from alma_core.storage._sqlite_schema import _split_sql
from alma_core.storage.sqlite import MIGRATIONS

EMBED = MockEmbedder(16)
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)  # a condition every memory meets, which forces the COUNT(*) path


@pytest.fixture
def store(db_path: Path):
    s = SQLiteStorage(db_path)
    yield s
    s.close()


def _kept(db_path: Path) -> dict[tuple[str, str, str], int]:
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT project_id, agent, type, n FROM memory_counts WHERE n != 0").fetchall()
    return {(p, a, t): n for p, a, t, n in rows}


def _counted(db_path: Path) -> dict[tuple[str, str, str], int]:
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT project_id, agent, type, COUNT(*) FROM memories GROUP BY 1, 2, 3").fetchall()
    return {(p, a, t): n for p, a, t, n in rows}


def _assert_exact(store: SQLiteStorage, db_path: Path, projects: tuple[str, ...] = ("p1", "p2")) -> None:
    """The table equals COUNT(*), and `CountMemories` from it equals the COUNT(*) path, for several filters."""
    assert _kept(db_path) == _counted(db_path)
    for project in projects:
        for f in (
            MemoryFilter(project_id=project),
            MemoryFilter(project_id=project, agents=("a",)),
            MemoryFilter(project_id=project, agents=("b", "c"), types=(MemoryType.HEURISTIC, MemoryType.KNOWLEDGE)),
            MemoryFilter(project_id=project, types=(MemoryType.ANTI_PATTERN,)),
            MemoryFilter(project_id=project, agents=()),
        ):
            fast = store.execute(CountMemories(f))
            assert fast == store.execute(CountMemories(f.narrowed(created_after=EPOCH)))
            assert all(n > 0 for n in fast.values())


def _memory(rng: random.Random, memory_id: str, project: str):
    agent = rng.choice("abc")
    kind = rng.choice((DomainKnowledge, Heuristic, AntiPattern))
    if kind is DomainKnowledge:
        m = DomainKnowledge(id=memory_id, project_id=project, agent=agent, domain="d", fact=f"fact {memory_id}")
    elif kind is Heuristic:
        m = Heuristic(id=memory_id, project_id=project, agent=agent, condition=f"when {memory_id}", strategy="s")
    else:
        m = AntiPattern(id=memory_id, project_id=project, agent=agent, pattern=f"never {memory_id}")
    m.embedding = EMBED.embed_query(m.id)
    return m


def test_counts_stay_exact_under_random_inserts_changes_and_deletes(store: SQLiteStorage, db_path: Path) -> None:
    rng = random.Random(19)
    for step in range(40):
        project = rng.choice(("p1", "p2"))
        # new ids and existing ones (an upsert that may move a memory to another agent or type)
        batch = [_memory(rng, f"m{rng.randrange(60)}", project) for _ in range(rng.randrange(1, 12))]
        store.execute(PutMemories(list({m.id: m for m in batch}.values())))
        if step % 3 == 2:
            agent, mtype = rng.choice("abc"), rng.choice(list(MemoryType))
            store.execute(DeleteMemories(MemoryFilter(project_id=project, agents=(agent,), types=(mtype,))))
        if step % 7 == 6:
            ids = tuple(f"m{rng.randrange(60)}" for _ in range(5))
            store.execute(DeleteMemories(MemoryFilter(project_id=project, ids=ids)))
        _assert_exact(store, db_path)
    assert sum(_kept(db_path).values()) > 0
    store.execute(DeleteMemories(MemoryFilter(project_id="p1")))
    _assert_exact(store, db_path)
    assert store.execute(CountMemories(MemoryFilter(project_id="p1"))) == {}


def test_other_connections_and_raw_sql_keep_the_counts(store: SQLiteStorage, db_path: Path) -> None:
    rng = random.Random(7)
    store.execute(PutMemories([_memory(rng, f"m{i}", "p1") for i in range(20)]))
    other = SQLiteStorage(db_path)  # a second connection, as another process would open
    try:
        other.execute(PutMemories([_memory(rng, f"o{i}", "p1") for i in range(15)]))
        other.execute(DeleteMemories(MemoryFilter(project_id="p1", agents=("a",))))
    finally:
        other.close()
    with sqlite3.connect(db_path) as raw:  # code that knows nothing of the table: triggers still count
        raw.execute("UPDATE memories SET agent = 'z' WHERE id IN ('m1', 'm2', 'o3')")
        raw.execute("UPDATE memories SET project_id = 'p2' WHERE id = 'm4'")
        raw.execute("DELETE FROM memories WHERE id = 'm5'")
    _assert_exact(store, db_path)
    total = sum(store.execute(CountMemories(MemoryFilter(project_id="p1"))).values())
    with sqlite3.connect(db_path) as raw:
        assert total == raw.execute("SELECT COUNT(*) FROM memories WHERE project_id = 'p1'").fetchone()[0]


def test_stats_forget_and_delete_user_keep_the_counts(db_path: Path) -> None:
    alma = ALMA(project_id="p1", agents={"a": {}, "b": {}}, storage=db_path, embedder="mock")
    try:
        for i in range(12):
            alma.learn("a" if i % 2 else "b", f"task {i}", "success" if i % 3 else "failure", f"strategy {i % 4}")
            alma.add_domain_knowledge("a", "d", f"fact number {i}")
        for user in ("u1", "u2"):
            for i in range(3):
                alma.add_user_preference(user, f"likes thing {i}", category=f"c{i}")
        before = alma.stats()
        assert before.total == sum(_counted(db_path).values())
        assert before.preferences == 6

        deleted = alma.delete_user("u1")
        assert deleted == 3
        assert alma.stats().preferences == 3
        alma.forget(agent="a", max_per_agent=2)
        alma.forget(below_confidence=0.99, memory_types=[MemoryType.KNOWLEDGE])
        after = alma.stats()
        assert after.total == sum(_counted(db_path).values()) < before.total
        with sqlite3.connect(db_path) as raw:
            by_agent = dict(raw.execute("SELECT agent, COUNT(*) FROM memories GROUP BY agent").fetchall())
        assert after.by_agent == by_agent
        assert _kept(db_path) == _counted(db_path)
    finally:
        alma.close()


def test_a_store_written_before_the_table_migrates_with_the_same_counts(db_path: Path) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as raw:  # a store of schema 5
        raw.execute("CREATE TABLE alma_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        for version, sql in enumerate(MIGRATIONS[:5], start=1):
            for statement in _split_sql(sql):
                raw.execute(statement)
            raw.execute("INSERT INTO alma_migrations VALUES (?, 0)", (version,))
    rng = random.Random(3)
    rows = [_memory(rng, f"m{i}", rng.choice(("p1", "p2"))) for i in range(50)]
    with sqlite3.connect(db_path, isolation_level=None) as raw:  # rows as schema 5 wrote them
        for m in rows:
            raw.execute(
                "INSERT INTO memories (project_id, id, agent, type, text, confidence, created_at, updated_at, data)"
                " VALUES (?, ?, ?, ?, ?, 1.0, 1e9, 1e9, '{}')",
                (m.project_id, m.id, m.agent, str(m.memory_type), m.id),
            )
        expected = _counted(db_path)
        assert raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'memory_counts'").fetchone() is None
    store = SQLiteStorage(db_path)
    try:
        assert _kept(db_path) == expected
        _assert_exact(store, db_path)
        store.execute(PutMemories([_memory(rng, "new", "p1")]))
        _assert_exact(store, db_path)
        assert store.integrity_check() == "ok"
    finally:
        store.close()
