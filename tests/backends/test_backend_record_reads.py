"""Record operations for callers that read a record with what it links to and write keys that order
themselves (LangGraph checkpoints): `ListLinked`, `PutRecords(sequenced=False)` and `StoreVersion` in a
read transaction, on every backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from alma_core.storage import (
    BaseStorage,
    GetRecord,
    Linked,
    ListLinked,
    ListRecords,
    PutRecord,
    PutRecords,
    Record,
    StoreVersion,
)

P = "proj"


def _linked(store: BaseStorage, records: ListRecords, **links: Any) -> Linked:
    return store.execute(ListLinked(records, "cp/", **links))


def test_list_linked_reads_records_with_their_children_and_references(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "records")
    refs = {"rows": ["c0", "", "gone", "c1"]}
    store.execute(PutRecords(tuple(
        Record(P, "cp/t", f"c{i}", b"v", {"step": i % 2, "__lg": refs if i == 3 else {"rows": ["c0"]}})
        for i in range(4)
    )))  # fmt: skip
    store.execute(PutRecords((
        Record(P, "w/t/c3", "b", b"2"), Record(P, "w/t/c3", "a", b"1"), Record(P, "w/t/c3", "c", b"4"),
        Record(P, "w/t/c1", "z", b"3"),
        Record(P, "w/t/c3", "old", b"x", expires_at=time.time() - 1), Record(P, "w/t/c30", "other", b"y"),
        Record(P, "cp/u", "c0", b"elsewhere"),
    )))  # fmt: skip
    links = {"children": "w/", "refs": "cp/", "refs_path": ("__lg", "rows")}
    newest = _linked(store, ListRecords(P, "cp/t", order_by="key", limit=1), **links)
    assert [r.key for r in newest.records] == ["c3"] and newest.records[0].metadata["step"] == 1
    kids = {ns: [(c.key, c.value) for c in kids] for ns, kids in newest.children.items()}
    # in key order (neither seq order), expired ones and look-alike namespaces out
    assert kids == {"w/t/c3": [("a", b"1"), ("b", b"2"), ("c", b"4")]}
    assert sorted(newest.refs) == [("cp/t", "c0"), ("cp/t", "c1")]  # named, live, in the same space
    every = _linked(store, ListRecords(P, "cp/t", order_by="key", descending=False), children="w/")
    assert [r.key for r in every.records] == ["c0", "c1", "c2", "c3"] and not every.refs
    assert sorted(every.children) == ["w/t/c1", "w/t/c3"]
    filtered = _linked(store, ListRecords(P, "cp/", prefix=True, where={"step": 1}, order_by="key"), **links)
    assert [r.key for r in filtered.records] == ["c3", "c1"] and ("cp/t", "c0") in filtered.refs
    assert [c.key for c in filtered.children["w/t/c3"]] == ["a", "b", "c"]  # the two-step plan's order too
    assert not _linked(store, ListRecords(P, "cp/t", where={"step": {"no": "match"}}), **links).records
    assert _linked(store, ListRecords(P, "cp/none"), **links) == Linked()
    assert _linked(store, ListRecords(P, "cp/t", keys=()), **links) == Linked()


def test_unsequenced_records_read_and_replace_like_others(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records")
    store.execute(PutRecords((Record(P, "cp", "a", b"1", {"n": 1}), Record(P, "cp", "b", b"2")), sequenced=False))
    store.execute(PutRecords((Record(P, "cp", "a", b"new"), Record(P, "cp", "c", b"3")), if_absent=True,
                             sequenced=False))  # fmt: skip
    listed = store.execute(ListRecords(P, "cp", order_by="key"))
    assert [(r.key, r.value) for r in listed] == [("c", b"3"), ("b", b"2"), ("a", b"1")]  # `a` kept (if_absent)
    assert store.execute(GetRecord(P, "cp", "a")).metadata == {"n": 1}
    store.execute(PutRecords((Record(P, "cp", "a", b"3rd"),), sequenced=False))
    assert store.execute(GetRecord(P, "cp", "a")).value == b"3rd"
    numbered = [store.execute(PutRecord(Record(P, "cp", f"s{i}", b"s"))).seq for i in range(2)]
    assert 0 < numbered[0] < numbered[1]  # a sequenced write beside them still gets the next seq
    assert [r.key for r in store.execute(ListRecords(P, "cp"))][:2] == ["s1", "s0"]


def test_a_read_transactions_store_version_moves_only_with_commits(
    make_store: Callable[..., BaseStorage], require: Callable[..., None]
) -> None:
    store = make_store()
    require(store, "records")
    first = store.execute(StoreVersion())
    if store.name in ("postgres", "chroma"):  # no cheap token of the whole store: None, caches on it stay off
        assert first is None
        store.execute(PutRecord(Record(P, "ns", "k", b"v")))
        assert store.execute(StoreVersion()) is None  # after a write too
        return
    assert first is not None  # SQLite's: without it the caches built on it (the learner's, the heads) stay off
    assert first[0] == first[1] and store.execute(StoreVersion()) == first
    store.execute(PutRecord(Record(P, "ns", "k", b"v")))
    mine = store.execute(StoreVersion())
    assert mine != first
    other = make_store()  # another connection to the same data
    other.execute(PutRecord(Record(P, "ns", "k2", b"v")))
    theirs = store.execute(StoreVersion())
    assert theirs != mine
    store.execute(PutRecords((Record(P, "ns", "k3", b"v"),), sequenced=False))  # a lone one-statement write
    assert store.execute(StoreVersion()) not in (mine, theirs)


def test_one_put_of_many_unsequenced_records_applies_them_in_order(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "records")
    store.execute(PutRecord(Record(P, "w", "old", b"expired", expires_at=time.time() - 1)))
    store.execute(PutRecords((Record(P, "w", "a", b"1"), Record(P, "w", "a", b"2"), Record(P, "w", "b", b"3")),
                             sequenced=False))  # fmt: skip
    assert store.execute(GetRecord(P, "w", "a")).value == b"2"  # the later of one key wins
    store.execute(PutRecords((Record(P, "w", "c", b"first"), Record(P, "w", "c", b"second"),
                              Record(P, "w", "b", b"kept?"), Record(P, "w", "old", b"new")),
                             if_absent=True, sequenced=False))  # fmt: skip
    found = {r.key: r.value for r in store.execute(ListRecords(P, "w"))}
    assert found == {"a": b"2", "b": b"3", "c": b"first", "old": b"new"}  # write-once; an expired one replaced
    many = tuple(Record(P, "many", f"k{i:04}", b"v", {"i": i}) for i in range(1203))  # over one statement's rows
    store.execute(PutRecords(many, sequenced=False))
    assert [r.metadata["i"] for r in store.execute(ListRecords(P, "many", order_by="key", descending=False))] == list(
        range(1203)
    )


def test_a_per_namespace_listing_returns_what_the_plain_listing_does(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    """`ListRecords.per_namespace` only changes how a prefix of a few namespaces is read (each namespace
    in its index's order, then merged): limits, offsets, bounds, filters and order give the same records,
    alone and inside `ListLinked`."""
    require(store, "records")
    spaces = ("cp/t/", "cp/t/a", "cp/t/b", "cp/t/c")  # interleaved keys, one namespace much longer
    store.execute(PutRecords(tuple(
        Record(P, ns, f"{i:04d}{n}", b"v", {"step": i % 3, "__lg": {"rows": [f"{max(i - 1, 0):04d}{n}"]}},
               expires_at=time.time() - 1 if i == 7 else None)
        for n, ns in enumerate(spaces) for i in range(40 if n == 0 else 12)
    )))  # fmt: skip
    store.execute(PutRecords((Record(P, "cp/tt", "9999", b"v"), Record(P, "cp/u/", "9998", b"v"))))  # look-alikes
    store.execute(PutRecords(tuple(Record(P, f"w/t/{ns[5:]}/0010{n}", "a", b"w") for n, ns in enumerate(spaces))))
    shapes: list[dict[str, Any]] = [
        {"limit": 5}, {"limit": 1}, {"limit": 100}, {"limit": 6, "offset": 3}, {"limit": 4, "where": {"step": 1}},
        {"limit": 7, "before_key": "00102"}, {"limit": 5, "descending": False}, {"limit": 3, "keys": ("0011", "0010")},
        {"limit": 2, "where": {"step": {"no": "match"}}},
    ]  # fmt: skip
    for shape in shapes:
        plain = store.execute(ListRecords(P, "cp/t/", prefix=True, order_by="key", **shape))
        hinted = store.execute(ListRecords(P, "cp/t/", prefix=True, order_by="key", per_namespace=True, **shape))
        assert [(r.namespace, r.key) for r in hinted] == [(r.namespace, r.key) for r in plain], shape
        assert [r.value for r in hinted] == [r.value for r in plain]
        links = {"children": "w/", "refs": "cp/", "refs_path": ("__lg", "rows")}
        op = ListRecords(P, "cp/t/", prefix=True, order_by="key", **shape)
        linked = store.execute(ListLinked(replace(op, per_namespace=True), "cp/", **links))
        assert linked == store.execute(ListLinked(op, "cp/", **links)), shape
    newest = store.execute(ListRecords(P, "cp/t/", prefix=True, order_by="key", per_namespace=True, limit=5))
    assert [r.key for r in newest] == ["00390", "00380", "00370", "00360", "00350"]  # the long namespace's
    across = store.execute(ListRecords(P, "cp/t/", prefix=True, order_by="key", per_namespace=True, limit=5,
                                       before_key="00120"))  # fmt: skip
    assert [(r.namespace, r.key) for r in across] == [
        ("cp/t/c", "00113"), ("cp/t/b", "00112"), ("cp/t/a", "00111"), ("cp/t/", "00110"), ("cp/t/c", "00103")
    ]  # fmt: skip
    assert store.execute(ListRecords(P, "cp/none/", prefix=True, per_namespace=True, limit=3)) == []


def test_one_record_by_key_or_latest_reads_all_it_links_to(store: BaseStorage, require: Callable[..., None]) -> None:
    """The shape of a checkpoint's get (one key, or a namespace's latest) with more references than one
    statement binds (SQLite reads it in small statements in one read transaction), and the other shapes
    a reference path may hold: an object's values are keys, a lone string names nothing."""
    require(store, "records")
    named = [f"r{i:04d}" for i in range(700)]
    store.execute(PutRecords(tuple(Record(P, "cp/t", k, b"x") for k in named)))
    store.execute(PutRecords((
        Record(P, "cp/t", "zz1", b"head", {"__lg": {"rows": [*named, "missing"]}}),
        Record(P, "w/t/zz1", "b", b"2"), Record(P, "w/t/zz1", "a", b"1"),
    )))  # fmt: skip
    links = {"children": "w/", "refs": "cp/", "refs_path": ("__lg", "rows")}
    for records in (ListRecords(P, "cp/t", order_by="key", limit=1), ListRecords(P, "cp/t", keys=("zz1",))):
        found = _linked(store, records, **links)
        assert [r.value for r in found.records] == [b"head"]
        assert [c.key for c in found.children["w/t/zz1"]] == ["a", "b"]
        assert sorted(k for _, k in found.refs) == named
    assert _linked(store, ListRecords(P, "cp/t", keys=("nope",)), **links) == Linked()
    assert _linked(store, ListRecords(P, "cp/empty", order_by="key", limit=1), **links) == Linked()
    store.execute(PutRecords((
        Record(P, "cp/t", "zz2", b"o", {"__lg": {"rows": {"a": "r0001", "b": "", "c": 5, "d": "r0003"}}}),
        Record(P, "cp/t", "zz3", b"s", {"__lg": {"rows": "r0002"}}),
    )))  # fmt: skip
    found = _linked(store, ListRecords(P, "cp/t", keys=("zz2",)), **links)
    assert sorted(found.refs) == [("cp/t", "r0001"), ("cp/t", "r0003")] and not found.children
    found = _linked(store, ListRecords(P, "cp/t", order_by="key", limit=1), **links)
    assert [r.key for r in found.records] == ["zz3"] and not found.refs


def test_metadata_numbers_beyond_64_bits_read_back_exactly(store: BaseStorage, require: Callable[..., None]) -> None:
    """Every read path (one record by key, a listing without links, ListRecords, GetRecord) returns the
    metadata written, integers beyond 64 bits included (a fast JSON parser reads those as floats)."""
    require(store, "records")
    meta = {"big": 2**70 + 1, "neg": -(2**64) - 3, "u64": 2**64 - 1, "f": 0.1, "s": "12345678901234567890123",
            "nested": {"n": [10**30 + 7]}, "list": [1, 2**65], "key:[,": "x:12345678901234567890"}  # fmt: skip
    store.execute(PutRecords((Record(P, "cp/t", "c0", b"v", meta),), sequenced=False))
    found = [
        _linked(store, ListRecords(P, "cp/t", keys=("c0",))).records[0].metadata,
        _linked(store, ListRecords(P, "cp/t", order_by="key")).records[0].metadata,
        store.execute(ListRecords(P, "cp/t"))[0].metadata,
        store.execute(GetRecord(P, "cp/t", "c0")).metadata,
    ]
    for metadata in found:
        assert metadata == meta
        assert type(metadata["big"]) is int and type(metadata["nested"]["n"][0]) is int
        assert type(metadata["list"][1]) is int
