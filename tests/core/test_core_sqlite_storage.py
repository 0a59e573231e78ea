"""The SQLite backend's operations, on real files: the record space, memory search filters, migrations."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alma_core import DomainKnowledge, MemoryType, MockEmbedder, Outcome, StorageError, UserPreference
from alma_core.storage import (
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    DenseSearch,
    FindMemories,
    GetRecord,
    LexicalSearch,
    ListNamespaces,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    Record,
    SQLiteStorage,
)
from alma_core.storage.sqlite import MIGRATIONS

EMBED = MockEmbedder(64)
P = "proj"


@pytest.fixture
def store(db_path: Path):
    s = SQLiteStorage(db_path)
    yield s
    s.close()


def _embedded(*memories):
    vectors = EMBED.embed_documents([m.text for m in memories])
    for memory, vector in zip(memories, vectors, strict=True):
        memory.embedding = vector
    return list(memories)


def _fact(fact: str, agent: str = "a", domain: str = "d", **kw) -> DomainKnowledge:
    return DomainKnowledge(project_id=kw.pop("project_id", P), agent=agent, domain=domain, fact=fact, **kw)


# ---- records ----------------------------------------------------------------------------------------------


def test_record_seq_strictly_increases_per_namespace(store: SQLiteStorage, db_path: Path) -> None:
    other = SQLiteStorage(db_path)  # a second connection on the same file shares the sequence
    seqs = []
    for i in range(10):
        s = (store if i % 2 else other).execute(PutRecord(Record(P, "ns/a", f"k{i % 3}", b"v")))
        seqs.append(s.seq)
    other.close()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert store.execute(PutRecord(Record(P, "ns/b", "k", b"v"))).seq == 1  # independent per namespace
    assert store.execute(PutRecord(Record("other", "ns/a", "k", b"v"))).seq == 1  # and per project
    listed = store.execute(ListRecords(P, "ns/a"))
    assert [r.key for r in listed] == ["k0", "k2", "k1"]  # newest seq first; overwrite moves a key up
    assert [r.seq for r in listed] == sorted((r.seq for r in listed), reverse=True)


def test_record_round_trip_and_overwrite_keeps_created_at(store: SQLiteStorage) -> None:
    first = store.execute(PutRecord(Record(P, "ns", "k", b"\x00bytes", {"n": 1, "tags": ["x"]})))
    time.sleep(0.01)
    second = store.execute(PutRecord(Record(P, "ns", "k", b"new", {"n": 2})))
    got = store.execute(GetRecord(P, "ns", "k"))
    assert got.value == b"new" and got.metadata == {"n": 2} and got.seq == second.seq > first.seq
    assert got.created_at == pytest.approx(first.created_at)
    assert got.updated_at >= got.created_at
    assert store.execute(GetRecord(P, "ns", "missing")) is None


def test_prefix_listing_and_delete(store: SQLiteStorage) -> None:
    for ns in ("wf/1/checkpoints", "wf/1/artifacts", "wf/2/checkpoints", "wf10", "other"):
        store.execute(PutRecord(Record(P, ns, "k", b"v")))
    assert {r.namespace for r in store.execute(ListRecords(P, "wf/1/", prefix=True))} == {
        "wf/1/checkpoints", "wf/1/artifacts"
    }  # fmt: skip
    assert len(store.execute(ListRecords(P, "wf", prefix=True))) == 4
    assert store.execute(ListRecords(P, "wf/1/")) == []  # without prefix, exact namespace only
    assert store.execute(DeleteRecords(P, "wf/1/", prefix=True)) == 2
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=("nope",))) == 0
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=())) == 0
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=("k",))) == 1
    assert sorted(r.namespace for r in store.execute(ListRecords(P, "", prefix=True))) == ["other", "wf10"]


def test_list_records_where_limit_offset_and_before_seq(store: SQLiteStorage) -> None:
    for i in range(6):
        meta = {"user_id": "u1" if i % 2 else "u2", "step": i, "done": i > 3, "note": None, "tags": {"a": i % 2}}
        store.execute(PutRecord(Record(P, "ns", f"k{i}", b"v", meta)))
    keys = lambda **kw: [r.key for r in store.execute(ListRecords(P, "ns", **kw))]  # noqa: E731
    assert keys(where={"user_id": "u1"}) == ["k5", "k3", "k1"]
    assert keys(where={"step": 2}) == ["k2"]
    assert keys(where={"done": True}) == ["k5", "k4"]
    assert keys(where={"note": None}) == ["k5", "k4", "k3", "k2", "k1", "k0"]
    assert keys(where={"tags": {"a": 1}}) == ["k5", "k3", "k1"]  # non-scalar values: matched in Python
    assert keys(where={"tags": {"a": 1}}, limit=1, offset=1) == ["k3"]
    assert keys(where={"user_id": "u1", "step": 3}) == ["k3"]
    assert keys(where={"missing": "x"}) == []
    assert keys(limit=2) == ["k5", "k4"]
    assert keys(limit=2, offset=2) == ["k3", "k2"]
    assert keys(descending=False, limit=2) == ["k0", "k1"]
    seq3 = store.execute(GetRecord(P, "ns", "k3")).seq
    assert keys(before_seq=seq3) == ["k2", "k1", "k0"]
    assert [r.value for r in store.execute(ListRecords(P, "ns", with_values=False, limit=1))] == [None]


def test_expired_records_are_absent(store: SQLiteStorage) -> None:
    store.execute(PutRecord(Record(P, "ns", "old", b"v", expires_at=time.time() - 1)))
    store.execute(PutRecord(Record(P, "ns", "live", b"v", expires_at=time.time() + 3600)))
    store.execute(PutRecord(Record(P, "ns", "forever", b"v")))
    assert store.execute(GetRecord(P, "ns", "old")) is None
    assert store.execute(GetRecord(P, "ns", "live")) is not None
    assert {r.key for r in store.execute(ListRecords(P, "ns"))} == {"live", "forever"}


def test_list_namespaces_sorted_with_prefix_and_paging(store: SQLiteStorage) -> None:
    for ns in ("b/2", "a/1", "b/1", "c", "b/1"):
        store.execute(PutRecord(Record(P, ns, "k" + ns, b"v")))
    store.execute(PutRecord(Record("elsewhere", "a/0", "k", b"v")))
    assert store.execute(ListNamespaces(P)) == ["a/1", "b/1", "b/2", "c"]
    assert store.execute(ListNamespaces(P, prefix="b/")) == ["b/1", "b/2"]
    assert store.execute(ListNamespaces(P, limit=2, offset=1)) == ["b/1", "b/2"]


# ---- memories ---------------------------------------------------------------------------------------------


def test_dense_and_lexical_search_respect_every_filter(store: SQLiteStorage) -> None:
    old = datetime.now(UTC) - timedelta(days=10)
    mems = _embedded(
        _fact("login form validation rules", agent="a", domain="forms"),
        _fact("login form for admins", agent="b", domain="forms", confidence=0.2),
        _fact("login form history", agent="a", domain="history", created_at=old, workflow_id="wf1"),
        UserPreference(project_id=P, agent="a", user_id="u1", preference="login form in dark mode"),
        UserPreference(project_id=P, agent="a", user_id="u2", preference="login form in light mode"),
        Outcome(project_id=P, agent="a", task="login form test", success=True),
        _fact("login form in another project", project_id="other"),
    )
    assert store.execute(PutMemories(mems)) == len(mems)
    ids = [m.id for m in mems]
    query = EMBED.embed_query("login form")

    def both(**kw) -> tuple[set[str], set[str]]:
        f = MemoryFilter(project_id=P, **kw)
        dense = store.execute(DenseSearch(f, query, 50))
        lexical = store.execute(LexicalSearch(f, "login form", 50))
        scores = [s for _, s in dense]
        assert scores == sorted(scores, reverse=True)
        return {i for i, _ in dense}, {i for i, _ in lexical}

    everything = set(ids[:6])
    assert both() == (everything, everything)
    for kw, wanted in [
        ({"agents": ("b",)}, {ids[1]}),
        ({"types": (MemoryType.PREFERENCE,)}, {ids[3], ids[4]}),
        ({"types": (MemoryType.PREFERENCE,), "user_id": "u1"}, {ids[3]}),
        ({"categories": ("history",)}, {ids[2]}),
        ({"workflow_id": "wf1"}, {ids[2]}),
        ({"ids": (ids[0], ids[5], ids[6])}, {ids[0], ids[5]}),
        ({"created_before": datetime.now(UTC) - timedelta(days=1)}, {ids[2]}),
        ({"confidence_below": 0.5}, {ids[1]}),
        ({"agents": ("a",), "types": (MemoryType.KNOWLEDGE,)}, {ids[0], ids[2]}),
        ({"agents": ()}, set()),
    ]:
        assert both(**kw) == (wanted, wanted), kw
    assert store.execute(DenseSearch(MemoryFilter(project_id=P), query, 2))[0][0] in everything
    assert len(store.execute(DenseSearch(MemoryFilter(project_id=P), query, 2))) == 2
    assert store.execute(LexicalSearch(MemoryFilter(project_id=P), "!!!", 5)) == []
    assert store.execute(LexicalSearch(MemoryFilter(project_id=P), 'login" OR *', 5))  # quoting is safe


def test_dense_search_is_exact_cosine(store: SQLiteStorage) -> None:
    rng = np.random.default_rng(0)
    mems = [_fact(f"fact {i}") for i in range(200)]
    vectors = rng.normal(size=(200, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for memory, vector in zip(mems, vectors, strict=True):
        memory.embedding = vector
    store.execute(PutMemories(mems))
    query = vectors[17] + 0.1 * vectors[3]
    query /= np.linalg.norm(query)
    hits = store.execute(DenseSearch(MemoryFilter(project_id=P), query, 5))
    expected = np.argsort(-(vectors @ query))[:5]
    assert [h[0] for h in hits] == [mems[i].id for i in expected]
    assert hits[0][1] == pytest.approx(float(vectors[expected[0]] @ query), abs=1e-5)


def test_find_count_and_delete_memories(store: SQLiteStorage) -> None:
    mems = _embedded(*(_fact(f"fact {i}", agent="ab"[i % 2]) for i in range(6)))
    store.execute(PutMemories(mems))
    found = store.execute(FindMemories(MemoryFilter(project_id=P), limit=3))
    assert [m.id for m in found] == [m.id for m in mems[::-1][:3]]  # newest first
    assert found[0].embedding is None
    with_vec = store.execute(FindMemories(MemoryFilter(project_id=P, ids=(mems[0].id,)), with_embeddings=True))
    assert np.allclose(with_vec[0].embedding, mems[0].embedding)
    assert store.execute(CountMemories(MemoryFilter(project_id=P))) == {
        ("a", MemoryType.KNOWLEDGE): 3, ("b", MemoryType.KNOWLEDGE): 3
    }  # fmt: skip
    query = EMBED.embed_query("fact 1")
    store.execute(DenseSearch(MemoryFilter(project_id=P), query, 10))  # warm the matrices
    assert store.execute(DeleteMemories(MemoryFilter(project_id=P, agents=("b",)))) == 3
    hits = store.execute(DenseSearch(MemoryFilter(project_id=P), query, 10))
    assert {h[0] for h in hits} == {m.id for m in mems[::2]}
    assert store.execute(LexicalSearch(MemoryFilter(project_id=P), "fact", 10)) and all(
        h[0] in {m.id for m in mems[::2]} for h in store.execute(LexicalSearch(MemoryFilter(project_id=P), "fact", 10))
    )


def test_upsert_replaces_text_vector_and_fts(store: SQLiteStorage) -> None:
    (memory,) = _embedded(_fact("zebra crossing"))
    store.execute(PutMemories([memory]))
    store.execute(DenseSearch(MemoryFilter(project_id=P), EMBED.embed_query("zebra"), 5))
    changed = memory.model_copy(update={"fact": "giraffe neck"})
    _embedded(changed)
    store.execute(PutMemories([changed]))
    f = MemoryFilter(project_id=P)
    assert store.execute(LexicalSearch(f, "zebra", 5)) == []
    assert [h[0] for h in store.execute(LexicalSearch(f, "giraffe", 5))] == [memory.id]
    (hit,) = store.execute(DenseSearch(f, EMBED.embed_query("giraffe neck"), 5))
    assert hit[1] == pytest.approx(1.0, abs=1e-5)
    assert store.execute(CountMemories(f)) == {("a", MemoryType.KNOWLEDGE): 1}


def test_failed_transaction_writes_nothing(store: SQLiteStorage) -> None:
    mems = _embedded(_fact("kept"))
    store.execute(PutMemories(mems))
    store.execute(DenseSearch(MemoryFilter(project_id=P), EMBED.embed_query("kept"), 5))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute(PutMemories(_embedded(_fact("rolled back"))))
        tx.execute(PutRecord(Record(P, "ns", "k", b"v")))
        raise RuntimeError("boom")
    assert store.execute(GetRecord(P, "ns", "k")) is None
    assert len(store.execute(FindMemories(MemoryFilter(project_id=P)))) == 1
    hits = store.execute(DenseSearch(MemoryFilter(project_id=P), EMBED.embed_query("rolled back"), 5))
    assert [h[0] for h in hits] == [mems[0].id]  # the cached matrix did not take the rolled-back row


def test_write_inside_read_transaction_is_refused(store: SQLiteStorage) -> None:
    with pytest.raises(StorageError), store.transaction(write=False) as tx:
        tx.execute(PutRecord(Record(P, "ns", "k", b"v")))
    assert store.execute(GetRecord(P, "ns", "k")) is None


# ---- schema -----------------------------------------------------------------------------------------------


def test_setup_is_idempotent_and_reopening_keeps_everything(db_path: Path) -> None:
    store = SQLiteStorage(db_path)
    store.setup()
    store.setup()
    mems = _embedded(_fact("persistent fact"))
    store.execute(PutMemories(mems))
    store.execute(PutRecord(Record(P, "ns", "k", b"v", {"x": 1})))
    store.close()
    with pytest.raises(StorageError):
        store.execute(GetRecord(P, "ns", "k"))  # closed

    again = SQLiteStorage(db_path)
    try:
        assert again.execute(GetRecord(P, "ns", "k")).metadata == {"x": 1}
        assert again.execute(PutRecord(Record(P, "ns", "k2", b"v"))).seq == 2
        hits = again.execute(DenseSearch(MemoryFilter(project_id=P), EMBED.embed_query("persistent fact"), 5))
        assert [h[0] for h in hits] == [mems[0].id]
        lexical = again.execute(LexicalSearch(MemoryFilter(project_id=P), "persistent", 5))
        assert [h[0] for h in lexical] == [mems[0].id]
        assert again.integrity_check() == "ok"
    finally:
        again.close()
    with sqlite3.connect(db_path) as raw:
        versions = [r[0] for r in raw.execute("SELECT version FROM alma_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_partial_schema_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute("CREATE TABLE memories (id TEXT)")
    with pytest.raises(StorageError, match="partial"):
        SQLiteStorage(db_path)
    with sqlite3.connect(db_path) as raw:  # and left as it was
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'records'").fetchone() is None


def test_newer_schema_is_refused(db_path: Path) -> None:
    SQLiteStorage(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("INSERT INTO alma_migrations VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StorageError, match="newer"):
        SQLiteStorage(db_path)


def test_generation_changes_on_every_write_of_the_project(store: SQLiteStorage) -> None:
    g0 = store.generation(P)
    store.execute(PutMemories(_embedded(_fact("x"))))
    g1 = store.generation(P)
    store.execute(DeleteMemories(MemoryFilter(project_id=P)))
    g2 = store.generation(P)
    assert g0 < g1 < g2
    assert store.generation("other") == 0
