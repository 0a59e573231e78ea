"""AlmaStore search and reads pushed down to the database: filters in SQL (same answers as the Python
semantics), vectors from a cache that follows every change, reads that never wait on a writer."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alma_core import ALMA
from alma_core.storage import ListRecords, PutRecord, Record, SearchRecords, encode_vector
from alma_core.storage._record_search import search_in_python
from alma_langgraph import AlmaStore

ITEMS: list[dict[str, Any]] = [
    {"kind": "ui", "weight": 3, "tags": ["a"], "meta": {"lang": "fr", "n": 1}, "ok": True},
    {"kind": "ui", "weight": 1.5, "meta": {"lang": "en"}, "ok": False},
    {"kind": "lang", "weight": None, "meta": "flat", "ok": True},
    {"kind": "lang", "tags": ["a", "b"], "weight": "heavy"},
    {"weight": 2, "meta": {"lang": "fr", "n": 5}},
]
FILTERS: list[dict[str, Any]] = [
    {"kind": "ui"},
    {"kind": "ui", "weight": {"$gt": 2}},
    {"weight": {"$gte": 1.5, "$lt": 3}},
    {"weight": {"$ne": 3}},
    {"weight": None},
    {"kind": None},
    {"meta": {"lang": "fr"}},
    {"meta": {"n": {"$lte": 1}}},
    {"ok": True},
    {"ok": {"$eq": False}},
    {"tags": ["a", "b"]},
    {"ok": 1},
    {"meta": {"$eq": {"n": 1.0, "lang": "fr"}}},
    {"meta": {"$ne": {"lang": "en"}}},
    {"tags": {"$eq": ["a"]}},
    {"weight": {"$gt": "a"}},
    {"missing": {"$ne": 1}},
]


@pytest.mark.parametrize("filter", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_sql_filters_answer_like_the_python_semantics(alma: ALMA, filter: dict[str, Any]) -> None:
    for i, value in enumerate(ITEMS):
        alma.storage.execute(PutRecord(Record("test", "s/x", f"k{i}", json.dumps(value).encode())))
    op = SearchRecords("test", "s/", filter, limit=100)
    in_sql = {r.key for r, _ in alma.storage.execute(op)}
    listed = alma.storage.execute(ListRecords("test", "s/", prefix=True))
    in_python = {r.key for r, _ in search_in_python(listed, [], op)}
    assert in_sql == in_python


def test_query_ranks_by_vector_and_the_cache_follows_puts_and_deletes(alma: ALMA) -> None:
    def put(key: str, vector: list[float] | None, kind: str = "x") -> None:
        ops: list[Any] = [PutRecord(Record("test", "v/a/", key, json.dumps({"kind": kind}).encode()))]
        if vector:
            ops.append(PutRecord(Record("test", "vec/a/", key, encode_vector(np.array(vector)))))
        alma.storage.batch(ops)

    put("east", [1, 0]), put("north", [0, 1]), put("plain", None), put("ne", [1, 1], kind="y")

    def keys(query: list[float], **kw: Any) -> list[tuple[str, float | None]]:
        op = SearchRecords("test", "v/", vector=np.array(query, dtype=np.float32), vectors="vec/", **kw)
        return [(r.key, None if s is None else round(s, 3)) for r, s in alma.storage.execute(op)]

    assert keys([1, 0]) == [("east", 1.0), ("ne", 0.707), ("north", 0.0), ("plain", None)]
    assert keys([1, 0], filter={"kind": "x"}, limit=2, offset=1) == [("north", 0.0), ("plain", None)]
    put("east", [-1, 0])  # changed: the cached matrix must not answer
    alma.storage.execute(
        __import__("alma_core.storage", fromlist=["DeleteRecords"]).DeleteRecords("test", "v/a/", ("ne",))
    )
    assert keys([1, 0]) == [("north", 0.0), ("east", -1.0), ("plain", None)]


def test_store_search_filters_pages_and_ranks(alma: ALMA) -> None:
    store = AlmaStore(alma)
    store.batch([])  # nothing to do is fine
    rng, dim = np.random.default_rng(0), len(alma.embedder.embed_query("x"))
    items = [Record("test", "lgs/docs/", f"d{i}", json.dumps({"n": i, "even": i % 2 == 0}).encode(), {"ttl": None})
             for i in range(2000)]  # fmt: skip
    vectors = [Record("test", "lgv/docs/", f"d{i}", encode_vector(rng.standard_normal(dim))) for i in range(2000)]
    alma.storage.batch([PutRecord(r) for r in items + vectors])
    hits = store.search(("docs",), filter={"even": True, "n": {"$gte": 1000}}, limit=5, offset=2)
    assert len(hits) == 5 and all(h.value["even"] and h.value["n"] >= 1000 for h in hits)
    query = store.search(("docs",), query="anything", limit=3)
    scores = [h.score for h in query]
    assert None not in scores and scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_get_and_search_succeed_while_another_connection_holds_the_write_lock(alma: ALMA, db_path: Path) -> None:
    store = AlmaStore(alma)
    store.put(("docs",), "k", {"text": "kept"}, index=False)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    other.execute("INSERT INTO generations (scope, value) VALUES ('x', 1)")
    answers: list[Any] = []
    reader = threading.Thread(target=lambda: answers.extend([store.get(("docs",), "k"), store.search(("docs",))]))
    reader.start()
    reader.join(timeout=60)  # a read blocked by the writer stays blocked: only a real hang reaches this
    other.execute("ROLLBACK")
    other.close()
    assert not reader.is_alive(), "a read waited on the writer"
    assert answers[0].value == {"text": "kept"} and [h.key for h in answers[1]] == ["k"]


def test_a_write_by_another_connection_is_seen_by_the_next_search(alma: ALMA, db_path: Path) -> None:
    from alma_core.storage import SQLiteStorage

    store = AlmaStore(alma)
    store.put(("docs",), "a", {"text": "alpha"})
    assert [h.key for h in store.search(("docs",), query="alpha")] == ["a"]
    other = SQLiteStorage(db_path)  # another process's connection
    vector = encode_vector(np.asarray(alma.embedder.embed_query("alpha"), dtype=np.float32))
    other.batch([PutRecord(Record("test", "lgs/docs/", "b", b'{"text": "alpha"}', {"ttl": None})),
                 PutRecord(Record("test", "lgv/docs/", "b", vector))])  # fmt: skip
    other.close()
    hits = store.search(("docs",), query="alpha")
    assert {h.key for h in hits} == {"a", "b"} and all(h.score is not None and h.score > 0.99 for h in hits)
