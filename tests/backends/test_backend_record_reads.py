"""Record operations for callers that read a record with its children and write keys that order
themselves (LangGraph checkpoints): `ListWithChildren`, `PutRecords(sequenced=False)` and
`StoreVersion` in a read transaction, on every backend."""

from __future__ import annotations

import time
from collections.abc import Callable

from alma_core.storage import (
    BaseStorage,
    GetRecord,
    ListRecords,
    ListWithChildren,
    PutRecord,
    PutRecords,
    Record,
    StoreVersion,
)

P = "proj"


def _children(found: list[tuple[Record, list[Record]]]) -> list[tuple[str, list[str]]]:
    return [(r.key, [c.key for c in kids]) for r, kids in found]


def test_list_with_children_reads_each_record_with_its_children(
    store: BaseStorage, require: Callable[..., None]
) -> None:
    require(store, "records")
    store.execute(PutRecords(tuple(Record(P, "cp/t", f"c{i}", b"v", {"step": i % 2}) for i in range(4))))
    store.execute(PutRecords((
        Record(P, "w/c3", "b", b"2"), Record(P, "w/c3", "a", b"1"), Record(P, "w/c1", "z", b"3"),
        Record(P, "w/c3", "gone", b"x", expires_at=time.time() - 1), Record(P, "w/c30", "other", b"y"),
        Record(P, "other/c3", "no", b"n"),
    )))  # fmt: skip
    newest = store.execute(ListWithChildren(ListRecords(P, "cp/t", order_by="key", limit=1), "w/"))
    assert _children(newest) == [("c3", ["a", "b"])]  # in key order; expired and look-alike namespaces out
    assert [c.value for c in newest[0][1]] == [b"1", b"2"] and newest[0][0].metadata == {"step": 1}
    every = store.execute(ListWithChildren(ListRecords(P, "cp/t", order_by="key", descending=False), "w/"))
    assert _children(every) == [("c0", []), ("c1", ["z"]), ("c2", []), ("c3", ["a", "b"])]
    filtered = store.execute(ListWithChildren(ListRecords(P, "cp/", prefix=True, where={"step": 1}), "w/"))
    assert sorted(_children(filtered)) == [("c1", ["z"]), ("c3", ["a", "b"])]
    by_dict = store.execute(ListWithChildren(ListRecords(P, "cp/t", where={"step": {"no": "match"}}), "w/"))
    assert by_dict == []  # a `where` value checked after the statement
    assert store.execute(ListWithChildren(ListRecords(P, "cp/none"), "w/")) == []
    assert store.execute(ListWithChildren(ListRecords(P, "cp/t", keys=()), "w/")) == []


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
    if first is None:  # the backend cannot tell cheaply: caches built on it stay off
        return
    assert first[0] == first[1] and store.execute(StoreVersion()) == first
    store.execute(PutRecord(Record(P, "ns", "k", b"v")))
    mine = store.execute(StoreVersion())
    assert mine != first
    other = make_store()  # another connection to the same data
    other.execute(PutRecord(Record(P, "ns", "k2", b"v")))
    assert store.execute(StoreVersion()) != mine
