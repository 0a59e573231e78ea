"""`CountMemories` by project, agents and types on every backend comes from the store's per-scope counts
(SQLite's `memory_counts`, PostgreSQL's `alma_memory_counts`, Chroma's in its sidecar), which must equal
counting the memories after any mix of writes. PostgreSQL's are also exact under concurrent writers (ALMA's
and raw SQL) and for a store written before its table existed (migration 2)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from conftest_pg import drop_schemas, new_schema

from alma_core import AntiPattern, DomainKnowledge, Heuristic, MemoryType, MockEmbedder
from alma_core.storage import BaseStorage, CountMemories, DeleteMemories, GetRecord, MemoryFilter, PutMemories
from alma_core.storage.postgres import PostgresStorage

EMBED = MockEmbedder(16)
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)  # a condition every memory meets, which forces the counting path


def _memory(rng: random.Random, memory_id: str, project: str) -> Any:
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


def _assert_exact(store: BaseStorage, projects: tuple[str, ...] = ("p1", "p2")) -> None:
    """Counts from the store's table equal those of counting the rows (a time condition forces that path)."""
    for project in projects:
        for f in (
            MemoryFilter(project_id=project),
            MemoryFilter(project_id=project, agents=("a",)),
            MemoryFilter(project_id=project, agents=("b", "c"), types=(MemoryType.HEURISTIC, MemoryType.KNOWLEDGE)),
            MemoryFilter(project_id=project, types=(MemoryType.ANTI_PATTERN,)),
            MemoryFilter(project_id=project, agents=()),
        ):
            fast = store.execute(CountMemories(f))
            assert fast == store.execute(CountMemories(f.narrowed(created_after=EPOCH))), f
            assert all(n > 0 for n in fast.values())


def test_counts_equal_counting_after_inserts_moves_and_deletes(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "memories")
    rng = random.Random(19)
    for step in range(24):
        project = rng.choice(("p1", "p2"))
        # new ids and existing ones (an upsert that may move a memory to another agent or type)
        batch = [_memory(rng, f"m{rng.randrange(50)}", project) for _ in range(rng.randrange(1, 10))]
        store.execute(PutMemories(list({m.id: m for m in batch}.values())))
        if step % 3 == 2:
            agent, mtype = rng.choice("abc"), rng.choice(list(MemoryType))
            store.execute(DeleteMemories(MemoryFilter(project_id=project, agents=(agent,), types=(mtype,))))
        if step % 5 == 4:
            ids = tuple(f"m{rng.randrange(50)}" for _ in range(5))
            store.execute(DeleteMemories(MemoryFilter(project_id=project, ids=ids)))
        _assert_exact(store)
    assert sum(store.execute(CountMemories(MemoryFilter(project_id="p1"))).values()) > 0
    store.execute(DeleteMemories(MemoryFilter(project_id="p1")))
    _assert_exact(store)
    assert store.execute(CountMemories(MemoryFilter(project_id="p1"))) == {}


def test_a_failed_write_leaves_the_counts_as_they_were(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "memories")
    rng = random.Random(5)
    store.execute(PutMemories([_memory(rng, f"m{i}", "p1") for i in range(6)]))
    before = store.execute(CountMemories(MemoryFilter(project_id="p1")))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute(PutMemories([_memory(rng, f"n{i}", "p1") for i in range(4)]))
        tx.execute(DeleteMemories(MemoryFilter(project_id="p1", ids=("m0", "m1"))))
        raise RuntimeError("the caller fails before the commit")
    assert store.execute(CountMemories(MemoryFilter(project_id="p1"))) == before
    _assert_exact(store, ("p1",))


# ---- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture
def pg_schema(pg_uri: str) -> Any:
    schema = new_schema()
    yield schema
    drop_schemas(pg_uri, schema)


def _table_equals_rows(uri: str, schema: str) -> dict[tuple[str, str, str], int]:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        kept = conn.execute("SELECT project_id, agent, type, n FROM alma_memory_counts WHERE n <> 0").fetchall()
        counted = conn.execute(
            "SELECT project_id, agent, type, COUNT(*) FROM alma_memories GROUP BY 1, 2, 3"
        ).fetchall()
    assert {(p, a, t): n for p, a, t, n in kept} == {(p, a, t): n for p, a, t, n in counted}
    return {(p, a, t): n for p, a, t, n in counted}


def test_postgres_counts_stay_exact_under_concurrent_writers_and_raw_sql(pg_uri: str, pg_schema: str) -> None:
    stores = [PostgresStorage(pg_uri, schema=pg_schema, min_pool_size=0, max_pool_size=2) for _ in range(2)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def alma_writer(i: int) -> None:
        rng = random.Random(i)
        start.wait(timeout=60)
        for step in range(15):
            batch = [_memory(rng, f"w{i}-{rng.randrange(40)}", "p1") for _ in range(6)]
            stores[i].execute(PutMemories(list({m.id: m for m in batch}.values())))
            if step % 4 == 3:
                stores[i].execute(DeleteMemories(MemoryFilter(project_id="p1", agents=(rng.choice("abc"),))))

    def raw_writer(i: int) -> None:  # SQL that knows nothing of the table, without ALMA's write lock
        with psycopg.connect(pg_uri, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{pg_schema}", public')
            start.wait(timeout=60)
            for step in range(15):
                conn.execute(
                    "INSERT INTO alma_memories (project_id, id, agent, type, text, confidence, created_at,"
                    " updated_at, data) VALUES ('p1', %s, %s, 'knowledge', 'raw', 1, 1e9, 1e9, '{}')"
                    " ON CONFLICT DO NOTHING",
                    (f"r{i}-{step}", "abc"[step % 3]),
                )
                if step % 3 == 2:
                    conn.execute("UPDATE alma_memories SET agent = 'z' WHERE id = %s", (f"r{i}-{step - 1}",))
                if step % 5 == 4:
                    conn.execute("DELETE FROM alma_memories WHERE id = %s", (f"r{i}-{step - 2}",))

    def run(fn: Callable[[int], None], i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn, i)) for fn in (alma_writer, raw_writer) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        counted = _table_equals_rows(pg_uri, pg_schema)
        assert counted[("p1", "z", "knowledge")] > 0  # raw moves were counted
        _assert_exact(stores[0], ("p1",))
    finally:
        for s in stores:
            s.close()


def test_a_postgres_store_written_before_the_counts_migrates_with_the_same_counts(pg_uri: str, pg_schema: str) -> None:
    rng = random.Random(3)
    store = PostgresStorage(pg_uri, schema=pg_schema, min_pool_size=0, max_pool_size=2)
    store.execute(PutMemories([_memory(rng, f"m{i}", rng.choice(("p1", "p2"))) for i in range(40)]))
    store.close()
    with psycopg.connect(pg_uri, autocommit=True) as conn:  # back to schema 1, rows and all
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("DROP TABLE alma_memory_counts")
        conn.execute("DROP FUNCTION alma_count_memory() CASCADE")  # (and its triggers)
        conn.execute("DELETE FROM alma_migrations WHERE version >= 2")
        conn.execute(
            "INSERT INTO alma_memories (project_id, id, agent, type, text, confidence, created_at, updated_at, data)"
            " VALUES ('p1', 'old', 'a', 'knowledge', 'written by schema 1', 1, 1e9, 1e9, '{}')"
        )
    store = PostgresStorage(pg_uri, schema=pg_schema, min_pool_size=0, max_pool_size=2)  # setup() migrates
    try:
        _table_equals_rows(pg_uri, pg_schema)
        _assert_exact(store)
        store.execute(PutMemories([_memory(rng, "new", "p1")]))
        store.execute(DeleteMemories(MemoryFilter(project_id="p2", agents=("a",))))
        _table_equals_rows(pg_uri, pg_schema)
        _assert_exact(store)
    finally:
        store.close()


# ---- Chroma -------------------------------------------------------------------------------------------


def test_a_chroma_project_written_before_the_counts_is_counted_at_its_next_write(tmp_path: Any) -> None:
    from alma_core.storage import DeleteRecords
    from alma_core.storage._base import SYSTEM_PROJECT
    from alma_core.storage.chroma import ChromaStorage

    rng = random.Random(11)
    store = ChromaStorage(tmp_path / "chroma")
    try:
        store.execute(PutMemories([_memory(rng, f"m{i}", "p1") for i in range(30)]))
        # as an ALMA that kept no counts left it
        store.sidecar.execute(DeleteRecords(SYSTEM_PROJECT, "chroma/memory-counts"))
        _assert_exact(store, ("p1",))  # (both from the collection)
        store.execute(PutMemories([_memory(rng, "m3", "p1"), _memory(rng, "new", "p1")]))
        assert store.sidecar.execute(GetRecord(SYSTEM_PROJECT, "chroma/memory-counts", "p1")) is not None
        _assert_exact(store, ("p1",))
        assert sum(store.execute(CountMemories(MemoryFilter(project_id="p1"))).values()) == 31
    finally:
        store.close()
