"""PostgreSQL round-trip savings keep results exact: the per-transaction dense prefetch (every type in
one statement), the generation read in one autocommit statement, and the dedicated autocommit
connection for blind record writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest
from _helpers import dense

from alma_core import DomainKnowledge, MemoryType, MockEmbedder, Outcome, StorageError
from alma_core.storage import ListRecords, MemoryFilter, PutMemories, PutRecord, Record, SearchMemories
from alma_core.storage.postgres import PostgresStorage

EMBED = MockEmbedder(64)


@pytest.fixture
def pg(pg_uri: str) -> Iterator[PostgresStorage]:
    schema = f"alma_pg_roundtrips_{os.getpid()}"
    store = PostgresStorage(pg_uri, schema=schema, min_pool_size=0, max_pool_size=3)
    yield store
    store.close()
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _memories() -> list[DomainKnowledge | Outcome]:
    words = ["login", "cache", "token", "retry", "deploy", "schema", "queue", "invoice"]
    out: list[DomainKnowledge | Outcome] = []
    for i in range(36):
        text = f"{words[i % 8]} {words[(i * 3) % 8]} note {i}"
        agent = f"agent{i % 2}"
        memory: DomainKnowledge | Outcome = (
            DomainKnowledge(project_id="p", agent=agent, domain="d", fact=text)
            if i % 3
            else Outcome(project_id="p", agent=agent, task=text, success=bool(i % 2))
        )
        memory.embedding = EMBED.embed_query(text)
        out.append(memory)
    return out


def _exact(memories: list[DomainKnowledge | Outcome], vector: np.ndarray, mtype: MemoryType) -> dict[str, float]:
    """Cosine similarity of agent0's memories of `mtype` to `vector`, computed here."""
    rows = [m for m in memories if m.memory_type is mtype and m.agent == "agent0"]
    return {m.id: float(np.dot(m.embedding, vector) / np.linalg.norm(m.embedding) / np.linalg.norm(vector))
            for m in rows}  # fmt: skip


def test_one_search_returns_each_types_exact_top_k(pg: PostgresStorage) -> None:
    memories = _memories()
    pg.execute(PutMemories(memories))
    vector = EMBED.embed_query("login cache problem")
    base = MemoryFilter(project_id="p", agents=("agent0",))
    found = pg.execute(SearchMemories(base, vector, k=4)).dense
    for mtype in MemoryType:
        hits = found.get(mtype, [])
        sims = _exact(memories, vector, mtype)
        best = sorted(sims.values(), reverse=True)[:4]
        assert [s for _, s in hits] == pytest.approx(best, abs=1e-5), mtype  # the top-4 scores, in order
        assert all(sims[i] == pytest.approx(s, abs=1e-5) for i, s in hits)  # of this type and agent
    assert found.get(MemoryType.PREFERENCE, []) == []
    other = dense(pg, MemoryFilter(project_id="p", agents=("agent1",), types=(MemoryType.OUTCOME,)), vector, 4)
    assert other and {i for i, _ in other}.isdisjoint(i for hits in found.values() for i, _ in hits)


def test_a_write_in_the_transaction_refreshes_prefetched_searches(pg: PostgresStorage) -> None:
    pg.execute(PutMemories(_memories()))
    vector = EMBED.embed_query("brand new topic")
    f = MemoryFilter(project_id="p", agents=("agent0",), types=(MemoryType.OUTCOME,))
    with pg.transaction() as tx:
        before = dense(tx, MemoryFilter(project_id="p", agents=("agent0",),
                                                     types=(MemoryType.KNOWLEDGE,)), vector, 3)  # fmt: skip
        fresh = Outcome(project_id="p", agent="agent0", task="brand new topic", success=True)
        fresh.embedding = vector
        tx.execute(PutMemories([fresh]))
        after = dense(tx, f, vector, 3)
    assert before and after[0][0] == fresh.id and after[0][1] == pytest.approx(1.0, abs=1e-5)


def test_generation_reads_outside_and_inside_transactions(pg: PostgresStorage) -> None:
    assert pg.generation("p") == 0
    pg.execute(PutMemories(_memories()[:2]))
    g1 = pg.generation("p")
    with pg.transaction() as tx:
        tx.execute(PutMemories(_memories()[2:4]))
        assert pg.generation("p") == g1 + 1  # the open transaction sees its own bump
    assert pg.generation("p") == g1 + 1


def test_blind_puts_from_many_threads_keep_every_record_and_seq(pg: PostgresStorage) -> None:
    def put(t: int) -> list[int]:
        return [pg.batch([PutRecord(Record("p", f"ns{t % 3}", f"k{t}-{i}", b"v"))])[0].seq for i in range(15)]

    with ThreadPoolExecutor(6) as pool:
        seqs = [s for chunk in pool.map(put, range(12)) for s in chunk]
    for ns in range(3):
        records = pg.execute(ListRecords("p", f"ns{ns}", limit=1000))
        assert sorted(r.seq for r in records) == list(range(1, 61))
    assert len(seqs) == 180
    pg.close()
    with pytest.raises(StorageError):
        pg.batch([PutRecord(Record("p", "ns0", "late", b"v"))])
    with pytest.raises(StorageError):
        pg.generation("p")
