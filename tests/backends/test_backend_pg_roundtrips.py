"""PostgreSQL round-trip savings keep results exact: the per-transaction dense prefetch (every type in
one statement), the generation read in one autocommit statement, and the dedicated autocommit
connection for blind record writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import pytest
from _helpers import dense

from alma_core import DomainKnowledge, MemoryType, MockEmbedder, Outcome, StorageError
from alma_core.storage import (
    Linked,
    ListLinked,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    PutRecords,
    Record,
    SearchMemories,
    postgres,
)
from alma_core.storage._base import expand_linked
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


def _linked_data(pg: PostgresStorage) -> None:
    """Checkpoint-like records: heads in two namespaces, their children, the refs some of them list."""
    pg.batch(
        [
            PutRecords(
                (
                    Record("p", "cp/a/x", "k1", b"1", {"m": {"refs": ["r1", "r2", "gone"]}}),
                    Record("p", "cp/a/x", "k2", b"2", {"m": {"refs": ["r2"]}, "tag": "t"}),
                    Record("p", "cp/a/x", "k3", b"3", {"m": {"refs": "not a list"}}),
                    Record(
                        "p", "cp/a/y", "k4", b"4", {"m": {"refs": {"a": "r1", "b": "", "c": 5}}}
                    ),  # an object's values
                    Record("p", "w/a/x/k1", "t/0", b"w10", {"i": 0}),
                    Record("p", "w/a/x/k1", "t/1", b"w11", {"i": 1}),
                    Record("p", "w/a/x/k2", "t/0", b"w20", {"i": 0}, expires_at=1.0),  # expired: absent
                    Record("p", "w/a/y/k4", "t/0", b"w40", {}),
                    Record("p", "b/a/x", "r1", b"blob1", {"t": "msgpack"}),
                    Record("p", "b/a/x", "r2", b"blob2", {"t": "msgpack"}),
                    Record("p", "b/a/y", "r1", b"other namespace", {}),
                    Record("q", "b/a/x", "r1", b"other project", {}),
                )
            )
        ]
    )


def _plain(linked: Linked) -> tuple[Any, ...]:
    def key(r: Record) -> tuple[Any, ...]:
        return (r.namespace, r.key, r.value, r.metadata)

    children = {ns: sorted(key(r) for r in rs) for ns, rs in linked.children.items()}
    return [key(r) for r in linked.records], children, {k: key(r) for k, r in linked.refs.items()}


def _expand(pg: PostgresStorage, op: ListLinked) -> Linked:
    """`op` answered by the reference expansion, each step one batch."""
    plan = expand_linked(op)
    try:
        ops = next(plan)
        while True:
            ops = plan.send(pg.batch(ops))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "records",
    [
        ListRecords("p", "cp/a/", prefix=True, order_by="key"),
        ListRecords("p", "cp/a/x", order_by="key", limit=1),
        ListRecords("p", "cp/a/x", keys=("k1", "k3")),
        ListRecords("p", "cp/a/", prefix=True, where={"tag": "t"}),
        ListRecords("p", "cp/a/", prefix=True, order_by="key", before_key="k2", with_values=False),
        ListRecords("p", "cp/a/x", keys=()),
        ListRecords("p", "w/a/", prefix=True),  # outside `base`: no children, no refs
    ],
)
def test_list_linked_is_one_statement_and_answers_like_its_expansion(
    pg: PostgresStorage, records: ListRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "linked" capability's one statement returns what `expand_linked` gathers with ListRecords."""
    _linked_data(pg)
    op = ListLinked(records, "cp/", children="w/", refs="b/", refs_path=("m", "refs"))
    expected = _expand(pg, op)
    statements: list[str] = []
    run = postgres._run
    monkeypatch.setattr(postgres, "_run", lambda cur, step: statements.append(step[0]) or run(cur, step))
    found = pg.execute(op)
    assert len(statements) == (0 if records.keys == () else 1)  # and no BEGIN / COMMIT: autocommit
    assert _plain(found) == _plain(expected)
    if records.limit is None and records.keys is None and records.where is None and records.namespace == "cp/a/":
        assert [r.key for r in found.records] == (["k1"] if records.before_key else ["k4", "k3", "k2", "k1"])
        assert set(found.children) == ({"w/a/x/k1"} if records.before_key else {"w/a/x/k1", "w/a/y/k4"})
        refs = {("b/a/x", "r1"): b"blob1", ("b/a/x", "r2"): b"blob2"}
        if not records.before_key:
            refs[("b/a/y", "r1")] = b"other namespace"
        assert {k: r.value for k, r in found.refs.items()} == refs


def test_unsequenced_puts_in_one_batch_are_pipelined_without_the_exclusive_lock(
    pg: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's regular and special writes: two unsequenced PutRecords, one transaction, no seq row."""
    statements: list[str] = []
    execute = psycopg.Connection.execute

    def counted(conn: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(conn, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    pg.batch(
        [
            PutRecords((Record("p", "w/t/1", "task/0", b"a"), Record("p", "w/t/1", "task/1", b"b")), sequenced=False),
            PutRecords((Record("p", "w/t/1", "task/-1", b"error"),), sequenced=False),
        ]
    )
    monkeypatch.undo()
    assert not any("pg_advisory_xact_lock(" in s for s in statements)  # (a new pooled connection: its SETs)
    statements = [s for s in statements if "alma_records" in s]
    assert len(statements) == 2
    assert all("pg_advisory_xact_lock_shared" in s and "alma_record_seq" not in s for s in statements)
    found = pg.execute(ListRecords("p", "w/t/1", order_by="key"))
    assert [(r.key, r.value, r.seq) for r in found] == [("task/1", b"b", 0), ("task/0", b"a", 0),
                                                        ("task/-1", b"error", 0)]  # fmt: skip


async def test_unsequenced_puts_in_one_async_batch_are_stored_together(pg: PostgresStorage) -> None:
    ops = [
        PutRecords((Record("p", "w/t/2", "task/0", b"a"),), if_absent=True, sequenced=False),
        PutRecords((Record("p", "w/t/2", "task/-2", b"interrupt"),), sequenced=False),
    ]
    assert await pg.abatch(ops) == [None, None]
    found = pg.execute(ListRecords("p", "w/t/2", order_by="key"))
    assert [(r.key, r.value, r.seq) for r in found] == [("task/0", b"a", 0), ("task/-2", b"interrupt", 0)]
    await pg.aclose()
