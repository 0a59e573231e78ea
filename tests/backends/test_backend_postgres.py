"""PostgreSQL specifics: config and URI entry points, concurrent setup and learning from several
processes, migration guards, the native async path, the IVFFlat index option."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import psycopg
import pytest

from alma_core import ALMA, ConfigError, MockEmbedder, StorageError
from alma_core._config import parse_config
from alma_core.storage import (
    GetRecord,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    Record,
    SearchMemories,
    open_storage,
)
from alma_core.storage._pg_ops import MIGRATIONS
from alma_core.storage.postgres import PostgresStorage

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "alma_pg_specific"


@pytest.fixture
def schema(pg_uri: str) -> Iterator[str]:
    name = f"{SCHEMA}_{os.getpid()}"
    yield name
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _with_schema(uri: str, schema: str) -> str:
    return f"{uri}&options=-csearch_path%3D{schema}"


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def test_config_section_builds_the_store(pg_uri: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMA_TEST_PG", pg_uri)
    config = parse_config(
        {"alma": {"storage": "postgres", "postgres": {"uri": "${ALMA_TEST_PG}", "schema": schema,
                                                      "vector_index_type": "ivfflat", "max_pool_size": 3}}}
    )  # fmt: skip
    assert config.postgres.schema_name == schema and config.postgres.uri == pg_uri
    with ALMA(config=config, embedder="mock") as alma:
        assert alma.storage.name == "postgres"
        alma.add_domain_knowledge("bot", "db", "Postgres uses MVCC")
        assert alma.retrieve("MVCC", "bot").knowledge[0].fact == "Postgres uses MVCC"
    with psycopg.connect(pg_uri) as conn:
        (indexdef,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname LIKE 'alma_memories_vec_%%'",
            (schema,),
        ).fetchone()
    assert "ivfflat" in indexdef


def test_host_fields_build_a_socket_conninfo() -> None:
    config = parse_config({"alma": {"postgres": {"host": "/run/pg", "port": 5433, "database": "db", "user": "me"}}})
    info = psycopg.conninfo.conninfo_to_dict(config.postgres.conninfo())
    assert info == {"host": "/run/pg", "port": "5433", "dbname": "db", "user": "me"}
    with pytest.raises(ConfigError, match="vector_index_type"):
        parse_config({"alma": {"postgres": {"vector_index_type": "flat"}}})


def test_a_uri_string_opens_postgres(pg_uri: str) -> None:
    store = open_storage(pg_uri)
    try:
        assert isinstance(store, PostgresStorage) and store.schema == "public"
        store.execute(PutRecord(Record("uri-test", "ns", "k", b"v")))
        assert store.execute(GetRecord("uri-test", "ns", "k")).value == b"v"
    finally:
        store.close()


SETUP = """
    import sys
    from alma_core.storage.postgres import PostgresStorage
    PostgresStorage(sys.argv[1], schema=sys.argv[2], min_pool_size=0).close()
    print("ok")
"""


def test_concurrent_setup_from_two_processes(pg_uri: str, schema: str) -> None:
    children = [_spawn(SETUP, pg_uri, schema) for _ in range(3)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == "ok"
    with psycopg.connect(pg_uri) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".alma_migrations ORDER BY version').fetchall()
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))


LEARNER = """
    import sys
    from alma_core import ALMA
    from alma_core.storage.postgres import PostgresStorage
    uri, schema, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = PostgresStorage(uri, schema=schema, min_pool_size=0)
    with ALMA(project_id="mp", storage=store, embedder="mock") as alma:
        for i in range(count):
            alma.learn(agent=name, task=f"{name} task {i}", outcome=True, strategy_used=f"strategy {i % 4}")
            alma.checkpoint("shared-wf", {"who": name, "i": i})
    print("done")
"""


def test_two_processes_learning_lose_nothing(pg_uri: str, schema: str) -> None:
    PostgresStorage(pg_uri, schema=schema, min_pool_size=0).close()
    children = [_spawn(LEARNER, pg_uri, schema, name, "60") for name in ("alpha", "beta")]
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        assert out.strip() == "done"
    store = PostgresStorage(pg_uri, schema=schema, min_pool_size=0)
    with ALMA(project_id="mp", storage=store, embedder="mock") as alma:
        assert alma.stats(agent="alpha").outcomes == alma.stats(agent="beta").outcomes == 60
        for agent in ("alpha", "beta"):  # the serialized read-modify-write kept every count
            heuristics = alma.list_memories(agent=agent, memory_types=["heuristic"])
            assert sum(h.occurrence_count for h in heuristics) == 60
        sequences = [c.sequence for c in alma.list_checkpoints("shared-wf")]
        assert sorted(sequences) == list(range(1, 121))


def test_partial_and_newer_schemas_are_refused(pg_uri: str, schema: str) -> None:
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".alma_memories (id TEXT)')
    with pytest.raises(StorageError, match="partial"):
        PostgresStorage(pg_uri, schema=schema)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    PostgresStorage(pg_uri, schema=schema, min_pool_size=0).close()
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".alma_migrations VALUES (%s, 0)', (len(MIGRATIONS) + 1,))
    with pytest.raises(StorageError, match="newer"):
        PostgresStorage(pg_uri, schema=schema)


async def test_async_batches_run_concurrently_on_the_async_pool(pg_uri: str, schema: str) -> None:
    store = PostgresStorage(pg_uri, schema=schema, min_pool_size=0, max_pool_size=4)
    try:
        embed = MockEmbedder(32)
        results = await asyncio.gather(
            *(store.aexecute(PutRecord(Record("a", "ns", f"k{i}", b"v"))) for i in range(20))
        )  # fmt: skip
        assert sorted(r.seq for r in results) == list(range(1, 21))  # writes stayed serialized
        from alma_core import DomainKnowledge

        memory = DomainKnowledge(project_id="a", agent="x", domain="d", fact="async vectors")
        memory.embedding = embed.embed_query("async vectors")
        await store.aexecute(PutMemories([memory]))
        found = await store.aexecute(SearchMemories(MemoryFilter("a"), embed.embed_query("async vectors"), k=5))
        (hit,) = found.flat("dense")
        assert hit[0] == memory.id
        assert store._apools  # the async path used psycopg's async pool, not a worker thread
    finally:
        await store.aclose()


def _bad(key: str) -> PutRecord:
    return PutRecord(Record("a", "ns", key, b"v", {"text": "nul \u0000 is refused by jsonb"}))


async def test_a_failing_record_batch_writes_nothing(pg_uri: str, schema: str) -> None:
    """Record batches skip the exclusive lock (pipelined, one transaction): still all or nothing."""
    store = PostgresStorage(pg_uri, schema=schema, min_pool_size=0, max_pool_size=2)
    try:
        with pytest.raises(StorageError):
            store.batch([PutRecord(Record("a", "ns", "k1", b"v")), _bad("k2")])
        with pytest.raises(StorageError):
            await store.abatch([PutRecord(Record("a", "ns", "k3", b"v")), _bad("k4")])
        assert store.execute(ListRecords("a", "ns")) == []
        put = store.batch([PutRecord(Record("a", "ns", "k5", b"v"))])[0]  # the pooled connection still works
        assert (await store.aexecute(GetRecord("a", "ns", "k5"))).seq == put.seq
    finally:
        await store.aclose()


def test_unlocked_record_writes_and_locked_transactions_interleave_safely(pg_uri: str, schema: str) -> None:
    """Blind puts from several threads get distinct seqs, and a read-modify-write transaction (which
    holds the exclusive lock) sees no put land between its read and its write."""
    store = PostgresStorage(pg_uri, schema=schema, min_pool_size=0, max_pool_size=6)

    def blind(t: int) -> list[int]:
        return [store.execute(PutRecord(Record("a", "ns", f"t{t}-{i}", b"v"))).seq for i in range(15)]

    def counter(_: int) -> None:
        for _ in range(10):
            with store.transaction() as tx:
                before = len(tx.execute(ListRecords("a", "ns", with_values=False)))
                after = len(tx.execute(ListRecords("a", "ns", with_values=False)))
                assert before == after
                found = tx.execute(GetRecord("a", "count", "n"))
                n = int(found.value) if found else 0
                tx.execute(PutRecord(Record("a", "count", "n", str(n + 1).encode())))

    try:
        with ThreadPoolExecutor(6) as pool:  # all six at once: the blind puts run while the counters do
            blinds = [pool.submit(blind, t) for t in range(4)]
            counters = [pool.submit(counter, c) for c in range(2)]
            seqs = [s for done in blinds for s in done.result(timeout=120)]
            for done in counters:
                done.result(timeout=120)
        assert sorted(seqs) == list(range(1, 61))
        assert store.execute(GetRecord("a", "count", "n")).value == b"20"
        with ThreadPoolExecutor(1) as pool, store.transaction() as tx:  # a put started inside a transaction
            before = len(tx.execute(ListRecords("a", "ns", with_values=False)))
            late = pool.submit(store.execute, PutRecord(Record("a", "ns", "late", b"v")))
            wait([late], timeout=1.0)  # room to land, if it could: it waits for the commit instead
            assert not late.done() and len(tx.execute(ListRecords("a", "ns", with_values=False))) == before
        assert late.result(timeout=120).seq == 61  # and lands after it
    finally:
        store.close()
