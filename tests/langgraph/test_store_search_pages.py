"""SearchRecords on SQLite reads a page without reading every row (each namespace in index order; by
vector, the filter checked on the best-ranked rows first): every page must equal the full answer's."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import numpy as np
import pytest

from alma_core import ALMA
from alma_core.storage import ListRecords, PutRecord, Record, SearchRecords, _sqlite_records, _vectors, encode_vector
from alma_core.storage._record_search import matches, search_in_python

FILTERS: list[dict[str, Any] | None] = [None, {"even": True}, {"n": {"$gte": 150}}, {"kind": "rare"}, {"kind": "none"}]
PAGES = [(10, 0), (7, 3), (50, 20), (500, 0)]


def _fill(alma: ALMA, namespaces: int, n: int, vectors: bool) -> list[tuple[str, str]]:
    """n items spread over `namespaces` namespaces in a random order (so seqs interleave), a few expired;
    with `vectors`, most have one. Returns (namespace, key) in insertion order."""
    rng = random.Random(namespaces * 1000 + n)
    order = []
    for i in range(n):
        ns = f"it/{rng.randrange(namespaces)}/"
        value = {"n": i, "even": i % 2 == 0, "kind": "rare" if i % 97 == 5 else "common"}
        expires = time.time() - 60 if i % 41 == 7 else None
        ops = [PutRecord(Record("test", ns, f"k{i:04d}", json.dumps(value).encode(), expires_at=expires))]
        if vectors and i % 13 != 0:
            vector = np.array([rng.gauss(0, 1) for _ in range(8)], dtype=np.float32)
            ops.append(PutRecord(Record("test", "vec/" + ns[3:], f"k{i:04d}", encode_vector(vector))))
        alma.storage.batch(ops)
        order.append((ns, f"k{i:04d}"))
    return order


@pytest.mark.parametrize("namespaces", [3, 40], ids=["few namespaces", "many namespaces"])
def test_newest_first_pages_equal_the_full_answer(alma: ALMA, namespaces: int) -> None:
    _fill(alma, namespaces, 300, vectors=False)
    listed = alma.storage.execute(ListRecords("test", "it/", prefix=True))
    for filter in FILTERS:
        whole = [r.key for r, _ in search_in_python(listed, [], SearchRecords("test", "it/", filter, limit=10_000))]
        for limit, offset in PAGES:
            op = SearchRecords("test", "it/", filter, limit=limit, offset=offset)
            assert [r.key for r, _ in alma.storage.execute(op)] == whole[offset : offset + limit], (filter, limit)


@pytest.mark.parametrize("check_first", [64, 4096], ids=["filter on all rows after 64", "batches only"])
@pytest.mark.parametrize("quantise_at", [None, 1], ids=["float32", "int8 codes"])
def test_ranked_and_filtered_pages_equal_the_full_answer(
    alma: ALMA, monkeypatch: pytest.MonkeyPatch, check_first: int, quantise_at: int | None
) -> None:
    """Also with the vectors held as int8 codes (large prefixes): candidates are rescored exactly, so
    pages and scores are the exact answer's."""
    monkeypatch.setattr(_sqlite_records, "_CHECK_FIRST", check_first)
    if quantise_at is not None:
        monkeypatch.setattr(_vectors, "QUANT_MIN_ROWS", quantise_at)
    inserted = _fill(alma, 5, 400, vectors=True)
    listed = {(r.namespace, r.key): r for r in alma.storage.execute(ListRecords("test", "it/", prefix=True))}
    stored = {(r.namespace, r.key): r for r in alma.storage.execute(ListRecords("test", "vec/", prefix=True))}
    query = np.array(np.random.default_rng(3).normal(size=8), dtype=np.float32)
    unit = query / np.linalg.norm(query)
    ranked = []  # the answer by definition: live matches by similarity, then the newest row; unscored last
    for row, (ns, key) in enumerate(inserted):
        record = listed.get((ns, key))  # (None: expired)
        vector = stored.get(("vec/" + ns[3:], key))
        if record is None:
            continue
        v = None if vector is None else np.frombuffer(vector.value or b"", dtype=np.float32)
        score = None if v is None else float(v @ unit / np.linalg.norm(v))
        ranked.append((np.inf if score is None else -score, -row, key, json.loads(record.value or b"{}")))
    ranked.sort(key=lambda r: (r[0], r[1]))
    bands = [{"n": {"$gte": lo, "$lt": lo + 40}} for lo in range(0, 400, 40)]  # sparse: several batches
    exact = {key: -s for s, _, key, _ in ranked if s != np.inf}
    for filter in [{}, *FILTERS[1:], *bands]:
        whole = [key for _, _, key, value in ranked if all(matches(value.get(k), v) for k, v in filter.items())]
        for limit, offset in PAGES:
            op = SearchRecords("test", "it/", filter, query, "vec/", limit=limit, offset=offset)
            got = alma.storage.execute(op)
            assert [r.key for r, _ in got] == whole[offset : offset + limit], (filter, limit, offset)
            assert all(score is None or abs(score - exact[r.key]) < 1e-5 for r, score in got)
            assert all((score is None) == (r.key in {k for s, _, k, _ in ranked if s == np.inf}) for r, score in got)
    cached = alma.storage._record_vectors.values()  # type: ignore[attr-defined]
    assert [v.approximate for v in cached] == [quantise_at is not None]  # the path under test was taken


@pytest.mark.parametrize("quantise_at", [None, 1], ids=["float32", "int8 codes"])
def test_tied_scores_give_the_newest_rows_first(
    alma: ALMA, monkeypatch: pytest.MonkeyPatch, quantise_at: int | None
) -> None:
    """Items with equal vectors tie: a page keeps the newest of them (the order the unranked search uses),
    also where the page's cut falls among the tied."""
    if quantise_at is not None:
        monkeypatch.setattr(_vectors, "QUANT_MIN_ROWS", quantise_at)
    rng = np.random.default_rng(5)
    shared, query = rng.normal(size=(2, 8)).astype(np.float32)
    for i in range(60):
        vector = shared if i % 2 else rng.normal(size=8).astype(np.float32) * 0.01 - query  # far from the query
        alma.storage.batch([PutRecord(Record("test", "it/", f"k{i:02d}", b'{"n": 1}')),
                            PutRecord(Record("test", "vec/", f"k{i:02d}", encode_vector(vector)))])  # fmt: skip
    tied = [f"k{i:02d}" for i in range(59, 0, -2)]  # the shared vector's items, newest first
    for filter in ({}, {"n": 1}):
        for limit, offset in [(5, 0), (4, 3), (40, 0)]:
            got = alma.storage.execute(SearchRecords("test", "it/", filter, query, "vec/", limit=limit, offset=offset))
            assert [r.key for r, _ in got][: len(tied) - offset] == tied[offset : offset + limit], (filter, limit)
