"""The storage protocol, op by op, on every backend: records (seq, prefix, where, expiry), memory search
filters, transactions and generations. A backend skips only what its `capabilities` say it lacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from _helpers import dense, lexical

from alma_core import DomainKnowledge, MemoryType, MockEmbedder, Outcome, StorageError, UserPreference
from alma_core.storage import (
    BaseStorage,
    CountMemories,
    DeleteMemories,
    DeleteRecords,
    FindMemories,
    GetRecord,
    ListNamespaces,
    ListRecords,
    MemoryFilter,
    PutMemories,
    PutRecord,
    PutRecords,
    Record,
    SearchMemories,
)

EMBED = MockEmbedder(64)
P = "proj"


def _embedded(*memories):
    vectors = EMBED.embed_documents([m.text for m in memories])
    for memory, vector in zip(memories, vectors, strict=True):
        memory.embedding = vector
    return list(memories)


def _fact(fact: str, agent: str = "a", domain: str = "d", **kw) -> DomainKnowledge:
    return DomainKnowledge(project_id=kw.pop("project_id", P), agent=agent, domain=domain, fact=fact, **kw)


# ---- records ----------------------------------------------------------------------------------------------


def test_record_seq_strictly_increases_per_namespace(
    make_store: Callable[..., BaseStorage], require: Callable[..., None]
) -> None:
    store, other = make_store(), make_store()  # a second store object on the same data shares the sequence
    require(store, "records")
    seqs = []
    for i in range(10):
        s = (store if i % 2 else other).execute(PutRecord(Record(P, "ns/a", f"k{i % 3}", b"v")))
        seqs.append(s.seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert store.execute(PutRecord(Record(P, "ns/b", "k", b"v"))).seq == 1  # independent per namespace
    assert store.execute(PutRecord(Record("other", "ns/a", "k", b"v"))).seq == 1  # and per project
    listed = store.execute(ListRecords(P, "ns/a"))
    assert [r.key for r in listed] == ["k0", "k2", "k1"]  # newest seq first; overwrite moves a key up
    assert [r.seq for r in listed] == sorted((r.seq for r in listed), reverse=True)


def test_record_round_trip_and_overwrite_keeps_created_at(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    first = store.execute(PutRecord(Record(P, "ns", "k", b"\x00bytes", {"n": 1, "tags": ["x"]})))
    assert store.execute(GetRecord(P, "ns", "k")).value == b"\x00bytes"
    time.sleep(0.01)
    second = store.execute(PutRecord(Record(P, "ns", "k", b"new", {"n": 2, "nested": {"a": [1, None]}})))
    got = store.execute(GetRecord(P, "ns", "k"))
    assert got.value == b"new" and got.metadata == {"n": 2, "nested": {"a": [1, None]}}
    assert got.seq == second.seq > first.seq
    assert got.created_at == pytest.approx(first.created_at)
    assert got.updated_at >= got.created_at
    assert store.execute(GetRecord(P, "ns", "missing")) is None
    store.execute(PutRecord(Record(P, "ns", "empty")))
    assert store.execute(GetRecord(P, "ns", "empty")).value is None


def test_prefix_listing_and_delete(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    for ns in ("wf/1/checkpoints", "wf/1/artifacts", "wf/2/checkpoints", "wf10", "other", "wf/1\u00e9"):
        store.execute(PutRecord(Record(P, ns, "k", b"v")))
    assert {r.namespace for r in store.execute(ListRecords(P, "wf/1/", prefix=True))} == {
        "wf/1/checkpoints", "wf/1/artifacts"
    }  # fmt: skip
    assert len(store.execute(ListRecords(P, "wf", prefix=True))) == 5
    assert store.execute(ListRecords(P, "wf/1/")) == []  # without prefix, exact namespace only
    assert store.execute(DeleteRecords(P, "wf/1/", prefix=True)) == 2
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=("nope",))) == 0
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=())) == 0
    assert store.execute(DeleteRecords(P, "wf/2/checkpoints", keys=("k",))) == 1
    remaining = sorted(r.namespace for r in store.execute(ListRecords(P, "", prefix=True)))
    assert remaining == ["other", "wf/1\u00e9", "wf10"]


def test_list_records_where_limit_offset_and_before_seq(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    for i in range(6):
        meta = {"user_id": "u1" if i % 2 else "u2", "step": i, "done": i > 3, "note": None, "tags": {"a": i % 2}}
        store.execute(PutRecord(Record(P, "ns", f"k{i}", b"v", meta)))
    keys = lambda **kw: [r.key for r in store.execute(ListRecords(P, "ns", **kw))]  # noqa: E731
    assert keys(where={"user_id": "u1"}) == ["k5", "k3", "k1"]
    assert keys(where={"step": 2}) == ["k2"]
    assert keys(where={"done": True}) == ["k5", "k4"]
    assert keys(where={"note": None}) == ["k5", "k4", "k3", "k2", "k1", "k0"]
    assert keys(where={"tags": {"a": 1}}) == ["k5", "k3", "k1"]
    assert keys(where={"tags": {"a": 1}}, limit=1, offset=1) == ["k3"]
    assert keys(where={"user_id": "u1", "step": 3}) == ["k3"]
    assert keys(where={"missing": "x"}) == []
    assert keys(limit=2) == ["k5", "k4"]
    assert keys(limit=2, offset=2) == ["k3", "k2"]
    assert keys(descending=False, limit=2) == ["k0", "k1"]
    assert keys(order_by="key", before_key="k3") == ["k2", "k1", "k0"]
    seq3 = store.execute(GetRecord(P, "ns", "k3")).seq
    assert keys(before_seq=seq3) == ["k2", "k1", "k0"]
    assert [r.value for r in store.execute(ListRecords(P, "ns", with_values=False, limit=1))] == [None]
    cutoff = store.execute(GetRecord(P, "ns", "k2")).updated_at
    assert set(keys(updated_before=cutoff)) == {"k0", "k1"}
    assert keys(keys=("k4", "k1", "missing")) == ["k4", "k1"]
    assert keys(keys=("k4", "k1"), order_by="key", descending=False, limit=1) == ["k1"]
    assert keys(keys=()) == []
    store.execute(PutRecord(Record(P, "other", "o1", b"v")))
    store.execute(PutRecord(Record(P, "nsx", "x1", b"v")))
    assert sorted(keys(namespaces=("ns", "other"), keys=("k1", "o1"))) == ["k1", "o1"]
    assert keys(namespaces=("other",)) == ["o1"]
    assert keys(namespaces=()) == []


def test_put_records_applies_in_order_with_fresh_seqs(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    first = store.execute(PutRecord(Record(P, "a", "k0", b"old", {"n": 0})))
    gone = store.execute(PutRecord(Record(P, "a", "gone", b"x")))
    store.execute(DeleteRecords(P, "a", ("gone",)))
    batch = (Record(P, "a", "k1", b"1", {"n": 1}), Record(P, "b", "k", b"x"),
             Record(P, "a", "k0", b"new", {"n": 2}), Record(P, "a", "k1", b"1b", {"n": 3}))  # fmt: skip
    assert store.execute(PutRecords(batch)) is None
    listed = store.execute(ListRecords(P, "a"))
    assert [(r.key, r.value, r.metadata) for r in listed] == [("k1", b"1b", {"n": 3}), ("k0", b"new", {"n": 2})]
    assert min(r.seq for r in listed) > gone.seq  # never a deleted record's seq; the later write ranks higher
    assert listed[1].created_at == first.created_at  # an overwrite keeps created_at
    assert store.execute(GetRecord(P, "b", "k")).seq == 1  # each namespace has its own sequence
    after = store.execute(PutRecord(Record(P, "a", "k2", b"2")))
    assert after.seq > listed[0].seq
    assert store.execute(PutRecords(())) is None


def test_put_records_if_absent_keeps_live_records(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    store.execute(PutRecord(Record(P, "ns", "live", b"one")))
    store.execute(PutRecord(Record(P, "ns", "old", b"old", expires_at=time.time() - 1)))
    batch = (Record(P, "ns", "live", b"two"), Record(P, "ns", "old", b"new"),
             Record(P, "ns", "fresh", b"f"), Record(P, "ns", "fresh", b"g"))  # fmt: skip
    store.execute(PutRecords(batch, if_absent=True))
    kept = {r.key: r.value for r in store.execute(ListRecords(P, "ns"))}
    assert kept == {"live": b"one", "old": b"new", "fresh": b"f"}


async def test_async_put_records(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    await store.aexecute(PutRecords((Record(P, "x", "a", b"1"), Record(P, "y", "b", b"2", {"m": True}))))
    (a,), (b,) = await store.abatch([ListRecords(P, "x"), ListRecords(P, "y")])
    assert (a.value, b.value, b.metadata) == (b"1", b"2", {"m": True})


def test_concurrent_put_records_over_the_same_namespaces_never_deadlock(
    make_store: Callable[..., BaseStorage], require: Callable[..., None]
) -> None:
    """Two writers (two store objects, as two processes would be) put records into the same two
    namespaces, listed in opposite orders: every put lands, each with its own seq."""
    stores = [make_store(), make_store()]
    require(stores[0], "records")
    rounds = 40

    def writer(i: int) -> None:
        spaces = ["ns/a", "ns/b"] if i == 0 else ["ns/b", "ns/a"]
        for n in range(rounds):
            stores[i].execute(PutRecords(tuple(Record(P, ns, f"w{i}-{n}", b"v") for ns in spaces)))

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(writer, i) for i in range(2)]:
            done.result(timeout=120)  # a deadlock raises (PostgreSQL) or hangs: never a timing assumption
    for ns in ("ns/a", "ns/b"):
        seqs = [r.seq for r in stores[0].execute(ListRecords(P, ns))]
        assert len(seqs) == 2 * rounds and len(set(seqs)) == len(seqs)


def test_expired_records_are_absent(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    store.execute(PutRecord(Record(P, "ns", "old", b"v", expires_at=time.time() - 1)))
    store.execute(PutRecord(Record(P, "ns", "live", b"v", expires_at=time.time() + 3600)))
    store.execute(PutRecord(Record(P, "ns", "forever", b"v")))
    assert store.execute(GetRecord(P, "ns", "old")) is None
    assert store.execute(GetRecord(P, "ns", "live")) is not None
    assert {r.key for r in store.execute(ListRecords(P, "ns"))} == {"live", "forever"}


def test_put_if_absent_keeps_the_live_record(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    first = store.execute(PutRecord(Record(P, "ns", "k", b"one", {"n": 1}), if_absent=True))
    kept = store.execute(PutRecord(Record(P, "ns", "k", b"two", {"n": 2}), if_absent=True))
    assert (kept.value, kept.metadata, kept.seq) == (b"one", {"n": 1}, first.seq)
    assert store.execute(GetRecord(P, "ns", "k")).value == b"one"
    # in one batch the second write-once put sees the first; a plain put still replaces
    a, b = store.batch([PutRecord(Record(P, "ns", "j", b"a"), if_absent=True),
                        PutRecord(Record(P, "ns", "j", b"b"), if_absent=True)])  # fmt: skip
    assert a.value == b.value == b"a" and a.seq == b.seq
    assert store.execute(PutRecord(Record(P, "ns", "k", b"three"))).value == b"three"
    assert store.execute(GetRecord(P, "ns", "k")).value == b"three"


def test_put_if_absent_replaces_an_expired_record(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    store.execute(PutRecord(Record(P, "ns", "k", b"old", expires_at=time.time() - 1)))
    fresh = store.execute(PutRecord(Record(P, "ns", "k", b"new"), if_absent=True))
    assert fresh.value == b"new" and store.execute(GetRecord(P, "ns", "k")).value == b"new"


async def test_async_put_if_absent_in_one_batch(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    await store.aexecute(PutRecord(Record(P, "w", "t/0", b"first"), if_absent=True))
    kept, special = await store.abatch([PutRecord(Record(P, "w", "t/0", b"second"), if_absent=True),
                                        PutRecord(Record(P, "w", "t/-1", b"error"))])  # fmt: skip
    assert kept.value == b"first" and special.value == b"error"
    assert sorted(r.key for r in await store.aexecute(ListRecords(P, "w"))) == ["t/-1", "t/0"]


def test_list_namespaces_sorted_with_prefix_and_paging(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    for ns in ("b/2", "a/1", "b/1", "c", "b/1", "B/0"):
        store.execute(PutRecord(Record(P, ns, "k" + ns, b"v")))
    store.execute(PutRecord(Record("elsewhere", "a/0", "k", b"v")))
    assert store.execute(ListNamespaces(P)) == ["B/0", "a/1", "b/1", "b/2", "c"]  # bytewise order
    assert store.execute(ListNamespaces(P, prefix="b/")) == ["b/1", "b/2"]
    assert store.execute(ListNamespaces(P, limit=2, offset=2)) == ["b/1", "b/2"]


# ---- memories ---------------------------------------------------------------------------------------------


def test_dense_and_lexical_search_respect_every_filter(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "dense")
    lexical_ok = "lexical" in store.capabilities
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
        d = dense(store, f, query, 50)
        lx = lexical(store, f, "login form", 50) if lexical_ok else d
        for hits in (d, lx):
            scores = [s for _, s in hits]
            assert scores == sorted(scores, reverse=True)
        return {i for i, _ in d}, {i for i, _ in lx}

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
    assert len(dense(store, MemoryFilter(project_id=P), query, 2)) == 2
    assert lexical(store, MemoryFilter(project_id=P), "!!!", 5) == []
    if lexical_ok:
        assert lexical(store, MemoryFilter(project_id=P), 'login" OR * | & !(', 5)  # quoting is safe


def test_dense_search_is_exact_cosine_on_small_sets(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "dense")
    rng = np.random.default_rng(0)
    mems = [_fact(f"fact {i}") for i in range(200)]
    vectors = rng.normal(size=(200, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for memory, vector in zip(mems, vectors, strict=True):
        memory.embedding = vector
    store.execute(PutMemories(mems))
    query = vectors[17] + 0.1 * vectors[3]
    query /= np.linalg.norm(query)
    hits = dense(store, MemoryFilter(project_id=P), query, 5)
    expected = np.argsort(-(vectors @ query))[:5]
    assert [h[0] for h in hits] == [mems[i].id for i in expected]
    assert hits[0][1] == pytest.approx(float(vectors[expected[0]] @ query), abs=1e-5)


def test_filtered_dense_search_returns_k_rows_when_the_filter_is_rare(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "dense")
    mems = _embedded(*(_fact(f"common fact number {i}", agent="crowd") for i in range(300)))
    rare = _embedded(*(_fact(f"rare fact {i}", agent="loner") for i in range(5)))
    store.execute(PutMemories(mems + rare))
    hits = dense(store, MemoryFilter(project_id=P, agents=("loner",)), EMBED.embed_query("fact"), 10)
    assert {h[0] for h in hits} == {m.id for m in rare}


def test_find_count_and_delete_memories(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "memories")
    mems = _embedded(*(_fact(f"fact {i}", agent="ab"[i % 2]) for i in range(6)))
    store.execute(PutMemories(mems))
    found = store.execute(FindMemories(MemoryFilter(project_id=P), limit=3))
    assert [m.id for m in found] == [m.id for m in mems[::-1][:3]]  # newest first
    assert found[0].embedding is None
    assert found[0].to_dict() == mems[-1].to_dict()  # every field round-trips
    oldest = store.execute(FindMemories(MemoryFilter(project_id=P), descending=False, limit=1))
    assert oldest[0].id == mems[0].id
    with_vec = store.execute(FindMemories(MemoryFilter(project_id=P, ids=(mems[0].id,)), with_embeddings=True))
    assert np.allclose(with_vec[0].embedding, mems[0].embedding)
    assert store.execute(CountMemories(MemoryFilter(project_id=P))) == {
        ("a", MemoryType.KNOWLEDGE): 3, ("b", MemoryType.KNOWLEDGE): 3
    }  # fmt: skip
    query = EMBED.embed_query("fact 1")
    dense(store, MemoryFilter(project_id=P), query, 10)  # warm any cache
    assert store.execute(DeleteMemories(MemoryFilter(project_id=P, agents=("b",)))) == 3
    hits = dense(store, MemoryFilter(project_id=P), query, 10)
    assert {h[0] for h in hits} == {m.id for m in mems[::2]}
    if "lexical" in store.capabilities:
        found = lexical(store, MemoryFilter(project_id=P), "fact", 10)
        assert found and {h[0] for h in found} <= {m.id for m in mems[::2]}


def test_upsert_replaces_text_vector_and_fts(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "dense", "lexical")
    (memory,) = _embedded(_fact("zebra crossing"))
    store.execute(PutMemories([memory]))
    dense(store, MemoryFilter(project_id=P), EMBED.embed_query("zebra"), 5)
    changed = memory.model_copy(update={"fact": "giraffe neck"})
    _embedded(changed)
    store.execute(PutMemories([changed]))
    f = MemoryFilter(project_id=P)
    assert lexical(store, f, "zebra", 5) == []
    assert [h[0] for h in lexical(store, f, "giraffe", 5)] == [memory.id]
    (hit,) = dense(store, f, EMBED.embed_query("giraffe neck"), 5)
    assert hit[1] == pytest.approx(1.0, abs=1e-5)
    assert store.execute(CountMemories(f)) == {("a", MemoryType.KNOWLEDGE): 1}


def test_a_vector_of_another_size_is_refused_or_kept_apart(store: BaseStorage, require: Callable[..., None]) -> None:
    """A store being re-embedded holds two sizes for a while. Chroma refuses the other size with
    `StorageError` and keeps nothing of the write (a collection has one size); the others store it, and a
    query then meets only the vectors of its own size (cached matrices included: warmed first)."""
    require(store, "dense")
    f = MemoryFilter(project_id=P)
    mems = _embedded(_fact("alpha one"), _fact("beta two"), _fact("gamma three"))
    store.execute(PutMemories(mems))
    wide = EMBED.embed_query("alpha one")
    assert len(dense(store, f, wide, 10)) == 3  # (caches warm)
    small = MockEmbedder(16)
    fresh, again = _fact("delta four"), mems[0].model_copy(deep=True)
    for memory in (fresh, again):  # a new memory and a re-embedded one, in the other size
        memory.embedding = small.embed_query(memory.text)
    if store.name == "chroma":
        with pytest.raises(StorageError):
            store.execute(PutMemories([fresh, again]))
        assert {m.id for m in store.execute(FindMemories(f))} == {m.id for m in mems}
        assert {h[0] for h in dense(store, f, wide, 10)} == {m.id for m in mems}
        return
    store.execute(PutMemories([fresh, again]))  # (a refusal here is a failure, not the other branch)
    assert {m.id for m in store.execute(FindMemories(f))} == {fresh.id, *(m.id for m in mems)}
    assert {h[0] for h in dense(store, f, wide, 10)} == {mems[1].id, mems[2].id}
    narrow = dense(store, f, small.embed_query("delta four"), 10)
    assert [h[0] for h in narrow][:1] == [fresh.id] and {h[0] for h in narrow} == {fresh.id, again.id}
    assert narrow[0][1] == pytest.approx(1.0, abs=1e-5)
    later = _embedded(_fact("epsilon five"))  # the wide matrix still follows writes of its own size
    store.execute(PutMemories(later))
    assert {h[0] for h in dense(store, f, wide, 10)} == {mems[1].id, mems[2].id, later[0].id}


def test_a_memory_moved_to_another_agent_leaves_the_old_agents_search(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "dense")
    mems = _embedded(_fact("alpha one"), _fact("beta two"))
    store.execute(PutMemories(mems))
    query = EMBED.embed_query("alpha one")
    only_a = MemoryFilter(project_id=P, agents=("a",))
    assert len(dense(store, only_a, query, 10)) == 2  # (caches warm)
    store.execute(PutMemories([mems[0].model_copy(update={"agent": "b"})]))
    assert [h[0] for h in dense(store, only_a, query, 10)] == [mems[1].id]
    assert [h[0] for h in dense(store, MemoryFilter(project_id=P, agents=("b",)), query, 10)] == [mems[0].id]


def test_failed_transaction_writes_nothing(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "memories", "records")
    mems = _embedded(_fact("kept"))
    store.execute(PutMemories(mems))
    dense(store, MemoryFilter(project_id=P), EMBED.embed_query("kept"), 5)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute(PutMemories(_embedded(_fact("rolled back"))))
        tx.execute(PutRecord(Record(P, "ns", "k", b"v")))
        raise RuntimeError("boom")
    assert store.execute(GetRecord(P, "ns", "k")) is None
    assert len(store.execute(FindMemories(MemoryFilter(project_id=P)))) == 1
    hits = dense(store, MemoryFilter(project_id=P), EMBED.embed_query("rolled back"), 5)
    assert [h[0] for h in hits] == [mems[0].id]


def test_reads_inside_a_write_transaction_see_its_writes(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    with store.transaction() as tx:
        tx.execute(PutRecord(Record(P, "ns", "k", b"v")))
        assert tx.execute(GetRecord(P, "ns", "k")).value == b"v"
        with store.transaction() as inner:  # re-entrant: joins the outer transaction
            inner.execute(PutRecord(Record(P, "ns", "k2", b"v")))
        assert len(tx.execute(ListRecords(P, "ns"))) == 2


def test_write_inside_read_transaction_is_refused(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    with pytest.raises(StorageError), store.transaction(write=False) as tx:
        tx.execute(PutRecord(Record(P, "ns", "k", b"v")))
    assert store.execute(GetRecord(P, "ns", "k")) is None


def test_generation_changes_on_every_memory_write_of_the_project(store: BaseStorage) -> None:
    g0 = store.generation(P)
    store.execute(PutMemories(_embedded(_fact("x"))))
    g1 = store.generation(P)
    store.execute(DeleteMemories(MemoryFilter(project_id=P)))
    g2 = store.generation(P)
    assert g0 < g1 < g2
    assert store.generation("other") == 0


def test_reopening_keeps_everything(make_store: Callable[..., BaseStorage]) -> None:
    store = make_store()
    store.setup()
    store.setup()  # idempotent
    mems = _embedded(_fact("persistent fact"))
    store.execute(PutMemories(mems))
    if "records" in store.capabilities:
        store.execute(PutRecord(Record(P, "ns", "k", b"v", {"x": 1})))
    store.close()
    with pytest.raises(StorageError):
        store.execute(FindMemories(MemoryFilter(project_id=P)))  # closed
    again = make_store()
    hits = dense(again, MemoryFilter(project_id=P), EMBED.embed_query("persistent fact"), 5)
    assert [h[0] for h in hits] == [mems[0].id]
    if "records" in again.capabilities:
        assert again.execute(GetRecord(P, "ns", "k")).metadata == {"x": 1}
        assert again.execute(PutRecord(Record(P, "ns", "k2", b"v"))).seq == 2


async def test_abatch_runs_ops_in_one_transaction(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    put, got, listed = await store.abatch(
        [PutRecord(Record(P, "ns", "k", b"v")), GetRecord(P, "ns", "k"), ListRecords(P, "ns")]
    )
    assert got.value == b"v" and got.seq == put.seq and [r.key for r in listed] == ["k"]
    assert (await store.aexecute(GetRecord(P, "ns", "k"))).value == b"v"
    mems = _embedded(_fact("async fact"))
    assert await store.aexecute(PutMemories(mems)) == 1
    found = await store.aexecute(SearchMemories(MemoryFilter(project_id=P), EMBED.embed_query("async fact"), k=3))
    (hit,) = found.flat("dense")
    assert hit[0] == mems[0].id


def test_search_memories_answers_a_whole_retrieve_in_one_op(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "dense")
    lexical_ok = "lexical" in store.capabilities
    old = datetime.now(UTC) - timedelta(days=30)
    mems = _embedded(
        *(_fact(f"login form fact {i}") for i in range(4)),
        _fact("login form from last month", created_at=old),
        Outcome(project_id=P, agent="a", task="login form test", success=True),
        UserPreference(project_id=P, agent="a", user_id="u1", preference="login form in dark mode"),
        UserPreference(project_id=P, agent="a", user_id="u2", preference="login form in light mode"),
        _fact("login form of another agent", agent="b"),
    )
    store.execute(PutMemories(mems))
    f = MemoryFilter(project_id=P, agents=("a",), user_id="u1")
    op = SearchMemories(f, EMBED.embed_query("login form"), ("login", "form"), k=3, user_types=(MemoryType.PREFERENCE,))
    hits = store.execute(op)
    kinds = [hits.dense, hits.lexical] if lexical_ok else [hits.dense]
    for per_type in kinds:
        assert len(per_type[MemoryType.KNOWLEDGE]) == 3  # k per type
        assert [i for i, _ in per_type[MemoryType.OUTCOME]] == [mems[5].id]  # the user filter spares outcomes
        assert [i for i, _ in per_type[MemoryType.PREFERENCE]] == [mems[6].id]  # and applies to preferences
        for found in per_type.values():
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    every = {i for per_type in kinds for found in per_type.values() for i, _ in found}
    assert set(hits.memories) == every and mems[8].id not in every
    assert all(m.embedding is None for m in hits.memories.values())
    assert hits.memories[mems[5].id].to_dict() == mems[5].to_dict()
    month = replace(f, created_before=old + timedelta(days=1), user_id=None)
    windowed = store.execute(SearchMemories(month, EMBED.embed_query("login form"), ("login",), k=10,
                                            with_embeddings=True))  # fmt: skip
    assert {i for i, _ in windowed.flat("dense")} == {mems[4].id}
    assert windowed.memories[mems[4].id].embedding is not None
    recent = store.execute(SearchMemories(replace(f, created_after=old + timedelta(days=1), user_id=None),
                                          EMBED.embed_query("login form"), k=10))  # fmt: skip
    assert mems[4].id not in {i for i, _ in recent.flat("dense")} and len(recent.flat("dense")) == 7
    assert store.execute(SearchMemories(f, k=5)).memories == {}  # nothing to search with
