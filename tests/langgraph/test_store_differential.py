"""AlmaStore against LangGraph's reference `InMemoryStore`: the same random operations, the same answers.

Each example applies one random sequence of `put` / `get` / `delete` / `search` / `list_namespaces` /
`batch` calls to an `InMemoryStore()` and to an `AlmaStore` on a fresh SQLite file, and compares every
result. What is compared, and where the two are allowed to differ (each difference named here):

- `search` without `query` has no order LangGraph defines (InMemoryStore returns insertion order, its
  SqliteStore `updated_at DESC`, AlmaStore newest write first), so a search is compared as a set, and a
  page (`limit`, `offset`) by its size and by being that slice of AlmaStore's own full order.
- `list_namespaces` is sorted by both: compared as lists. InMemoryStore also lists a namespace whose
  items were all deleted, or that a `get` only looked in (its `defaultdict` keeps the empty entry);
  AlmaStore lists namespaces that hold items, so the model here drops empty namespaces (documented in
  docs/langgraph.md, "The Store").
- `$gt $gte $lt $lte`: InMemoryStore calls `float()` on the item's value, so a search raises
  `TypeError`/`ValueError` when any item under the prefix lacks the key or holds text, a list or a
  dict there, and it reads numeric text ("3") as a number. AlmaStore compares a number with a number
  (bools count as 0 and 1, as `float()` reads them) and text with text, and nothing else matches
  (LangGraph's own SqliteStore and PostgresStore disagree with InMemoryStore here too). Where
  InMemoryStore raises, the expected answer is `_model`: its comparison with that rule for ranges.
  Values here never hold numeric text.
- `query` (vector ranking) is not compared: the embedders differ.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore, _compare_values

from alma_core import ALMA, SerializationError, ValidationError
from alma_langgraph import AlmaStore

LABELS = ["a", "ab", "é", "x/y", "%2F"]
KEYS = ["k1", "k2", "k3", "ü", "a/b", ""]
FIELDS = ["n", "v", "d"]
TEXTS = ["", "a", "b", "ünï", "x y"]

namespaces = st.lists(st.sampled_from(LABELS), min_size=1, max_size=3).map(tuple)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.5, 1e300, -1e-300, float("inf"), float("-inf")]),
    st.just(2**70),
    st.sampled_from(TEXTS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*FIELDS, "é"]), inner, max_size=3)
    ),
    max_leaves=6,
)
values = st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=3)
operators = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
conditions = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.sampled_from([*FIELDS, "é"]), scalars, min_size=1, max_size=2),
    st.dictionaries(operators, scalars, min_size=1, max_size=2),
    st.dictionaries(operators, st.one_of(st.lists(scalars, max_size=2), st.just({"n": 1})), min_size=1, max_size=1),
)
filters = st.none() | st.dictionaries(st.sampled_from(FIELDS), conditions, min_size=1, max_size=2)
one_key_filters = st.dictionaries(st.sampled_from(FIELDS), conditions, min_size=1, max_size=1)
pages = st.tuples(st.integers(1, 6), st.integers(0, 4))

put_calls = st.tuples(st.just("put"), namespaces, st.sampled_from(KEYS), values, st.sampled_from([None, False]))
calls = st.one_of(
    put_calls,
    put_calls,
    st.tuples(st.just("get"), namespaces, st.sampled_from(KEYS)),
    st.tuples(st.just("delete"), namespaces, st.sampled_from(KEYS)),
    st.tuples(st.just("search"), st.lists(st.sampled_from(LABELS), max_size=2).map(tuple), filters, pages),
    st.tuples(st.just("search"), st.just(()), one_key_filters, pages),
    st.tuples(st.just("search_like"), st.integers(0, 50), st.sampled_from([None, "$eq", "$ne", "$gt", "$lte"]), pages),
    st.tuples(st.just("search_like"), st.integers(0, 50), st.sampled_from([None, "$eq", "$ne", "$gt", "$lte"]), pages),
    st.tuples(
        st.just("list"),
        st.none() | st.lists(st.sampled_from([*LABELS, "*"]), min_size=1, max_size=2).map(tuple),
        st.none() | st.lists(st.sampled_from([*LABELS, "*"]), min_size=1, max_size=2).map(tuple),
        st.none() | st.integers(1, 3),
        pages,
    ),
)
batch_ops = st.lists(
    st.one_of(
        st.builds(lambda ns, k, v: PutOp(ns, k, v, index=False), namespaces, st.sampled_from(KEYS), values | st.none()),
        st.builds(GetOp, namespaces, st.sampled_from(KEYS)),
        st.builds(
            lambda p, f: SearchOp(p, f, limit=100), st.lists(st.sampled_from(LABELS), max_size=1).map(tuple), filters
        ),
        st.builds(lambda d: ListNamespacesOp(max_depth=d, limit=100), st.none() | st.integers(1, 2)),
    ),
    min_size=1,
    max_size=5,
)


def _key(item: Item) -> tuple[tuple[str, ...], str]:
    return (item.namespace, item.key)


def _same_items(ours: list[Item], theirs: list[Item]) -> None:
    assert sorted(((i.namespace, i.key, i.value) for i in ours), key=repr) == sorted(
        ((i.namespace, i.key, i.value) for i in theirs), key=repr
    )


def _live_namespaces(ref: InMemoryStore) -> set[tuple[str, ...]]:
    return {ns for ns, items in ref._data.items() if items}


def _expected_search(ref: InMemoryStore, prefix: tuple[str, ...], filter: dict[str, Any] | None) -> list[Item]:
    """InMemoryStore's answer; where its `float()` raises, the documented rule for ranges instead."""
    try:
        return list(ref.search(prefix, filter=filter, limit=10_000))
    except (TypeError, ValueError):
        everything = ref.search(prefix, limit=10_000)
        return [i for i in everything if all(_model(i.value.get(k), v) for k, v in (filter or {}).items())]


def _model(value: Any, wanted: Any) -> bool:
    """InMemoryStore's `_compare_values`, with AlmaStore's rule for `$gt $gte $lt $lte` (module docstring)."""
    if isinstance(wanted, dict) and any(k.startswith("$") for k in wanted):
        return all(_compare_values(value, {op: arg}) if op in ("$eq", "$ne") else _range(value, op, arg)
                   for op, arg in wanted.items())  # fmt: skip
    if isinstance(wanted, dict):
        return isinstance(value, dict) and all(_model(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(value, list) and len(value) == len(wanted) and all(map(_model, value, wanted))
    return bool(value == wanted)


def _range(value: Any, op: str, arg: Any) -> bool:
    if isinstance(value, str) and isinstance(arg, str):
        pair: tuple[Any, Any] = (value, arg)
    elif all(isinstance(x, (int, float)) for x in (value, arg)):
        pair = (float(value), float(arg))
    else:
        return False
    a, b = pair
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _compare_search(store: BaseStore, ref: InMemoryStore, prefix: tuple[str, ...], filter: Any, page: Any) -> None:
    expected = _expected_search(ref, prefix, filter)
    everything = store.search(prefix, filter=filter, limit=10_000)
    _same_items(everything, expected)
    limit, offset = page
    paged = store.search(prefix, filter=filter, limit=limit, offset=offset)
    assert [_key(i) for i in paged] == [_key(i) for i in everything[offset : offset + limit]]


def _expected_namespaces(ref: InMemoryStore, prefix: Any, suffix: Any, depth: Any, page: Any) -> list[Any]:
    limit, offset = page
    live = _live_namespaces(ref)
    names = [ns for ns in ref.list_namespaces(prefix=prefix, suffix=suffix, max_depth=None, limit=10_000) if ns in live]
    if depth is not None:
        names = sorted({ns[:depth] for ns in names})
    return names[offset : offset + limit]


def _apply(store: BaseStore, ref: InMemoryStore, call: tuple[Any, ...]) -> None:
    kind = call[0]
    if kind == "put":
        _, ns, key, value, index = call
        store.put(ns, key, value, index=index)
        ref.put(ns, key, value, index=index)
    elif kind == "get":
        _, ns, key = call
        ours, theirs = store.get(ns, key), ref.get(ns, key)
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert (ours.namespace, ours.key, ours.value) == (theirs.namespace, theirs.key, theirs.value)
    elif kind == "delete":
        _, ns, key = call
        store.delete(ns, key)
        ref.delete(ns, key)
    elif kind == "search":
        _, prefix, filter, page = call
        _compare_search(store, ref, prefix, filter, page)
    elif kind == "search_like":  # a filter on a value some item holds, so filters match often
        _, pick, op, page = call
        held = [(k, v) for item in ref.search((), limit=10_000) for k, v in item.value.items()]
        if held:
            field, value = held[pick % len(held)]
            if isinstance(value, dict) and value and pick % 2:  # a nested key
                inner = sorted(value)[pick % len(value)]
                field, value = field, {inner: value[inner]}
            _compare_search(store, ref, (), {field: value if op is None else {op: value}}, page)
    else:
        _, prefix, suffix, depth, page = call
        limit, offset = page
        ours = store.list_namespaces(prefix=prefix, suffix=suffix, max_depth=depth, limit=limit, offset=offset)
        assert ours == _expected_namespaces(ref, prefix, suffix, depth, page)


def _fresh_store(directory: str) -> tuple[ALMA, AlmaStore]:
    alma = ALMA(project_id="diff", storage=Path(directory) / "alma.db", embedder="mock")
    return alma, AlmaStore(alma)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(put_calls, min_size=1, max_size=12), st.lists(calls, min_size=1, max_size=20))
def test_random_calls_answer_as_in_memory_store_does(
    puts: list[tuple[Any, ...]], sequence: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        alma, store = _fresh_store(directory)
        try:
            ref = InMemoryStore()
            for call in [*puts, *sequence]:
                _apply(store, ref, call)
            _compare_search(store, ref, (), None, (10_000, 0))  # the final state, whole
        finally:
            alma.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(batch_ops, st.booleans()), min_size=1, max_size=4))
def test_mixed_batches_answer_as_in_memory_store_does(batches: list[tuple[list[Any], bool]]) -> None:
    """A batch reads before it writes in both stores, and its last put of a key wins; `abatch` too."""
    with tempfile.TemporaryDirectory() as directory:
        alma, store = _fresh_store(directory)
        try:
            ref = InMemoryStore()
            for ops, use_async in batches:
                live_before = _live_namespaces(ref)
                searches = {i: _expected_search(ref, op.namespace_prefix, op.filter)
                            for i, op in enumerate(ops) if isinstance(op, SearchOp)}  # fmt: skip
                try:
                    theirs = ref.batch(ops)
                except (TypeError, ValueError):  # a range filter InMemoryStore's float() refused
                    theirs = [ref.get(op.namespace, op.key) if isinstance(op, GetOp) else None for op in ops]
                    for op in ops:
                        if isinstance(op, PutOp):
                            ref.batch([op])
                ours = asyncio.run(store.abatch(ops)) if use_async else store.batch(ops)
                for i, (op, got, want) in enumerate(zip(ops, ours, theirs, strict=True)):
                    if isinstance(op, GetOp):
                        assert (got is None) == (want is None)
                        if got is not None:
                            assert got.value == want.value and _key(got) == _key(want)
                    elif isinstance(op, SearchOp):
                        _same_items(got, searches[i])
                    elif isinstance(op, ListNamespacesOp):
                        assert got == sorted({ns[: op.max_depth] if op.max_depth else ns for ns in live_before})
                    else:
                        assert got is None
            _compare_search(store, ref, (), None, (10_000, 0))
        finally:
            alma.close()


# ---- each difference the differential test found, pinned -----------------------------------------

HELD = {
    "int": {"v": 1}, "float": {"v": 1.0}, "true": {"v": True}, "false": {"v": False}, "zero": {"v": 0},
    "list": {"v": [1, 2]}, "floats": {"v": [1.0, 2.0]}, "text_list": {"v": ["ünï", "a"]},
    "dict": {"v": {"a": 1, "b": 2}}, "dict_reordered": {"v": {"b": 2.0, "a": 1}}, "empty_dict": {"v": {}},
    "dicts": {"v": [{"a": 1, "b": 2}]}, "empty_list": {"v": []}, "text": {"v": "a"}, "none": {"v": None},
    "huge": {"v": 2**70}, "infinite": {"v": float("inf")}, "absent": {},
}  # fmt: skip
FOUND = [
    {"v": True}, {"v": {"$eq": False}}, {"v": {"$ne": True}},  # bools equal 1 and 0, as in Python
    {"v": [1, 2]}, {"v": [1.0, 2]}, {"v": ["ünï", "a"]}, {"v": [{"a": 1}]}, {"v": []},  # lists by element
    {"v": {"$eq": {"b": 2, "a": 1}}}, {"v": {"$ne": {"a": 1, "b": 2}}}, {"v": {"$eq": {}}},  # dicts by items
    {"v": {"$eq": [1, 2.0]}}, {"v": {}}, {"v": {"a": 1}},
    {"v": 2**70}, {"v": float("inf")}, {"v": {"$gt": 1e300}},  # ints beyond 64 bits, infinities
]  # fmt: skip


@pytest.mark.parametrize("filter", FOUND, ids=repr)
def test_a_filter_matches_what_in_memory_store_matches(alma: ALMA, filter: dict[str, Any]) -> None:
    ref, store = InMemoryStore(), AlmaStore(alma)
    for key, value in HELD.items():
        for s in (ref, store):
            s.put(("t",), key, value, index=False)
    expected = _expected_search(ref, ("t",), filter)
    assert expected, "each case matches something"
    assert {i.key for i in store.search(("t",), filter=filter, limit=100)} == {i.key for i in expected}


def test_an_infinite_float_round_trips(alma: ALMA) -> None:
    store = AlmaStore(alma)
    value = {"v": float("inf"), "nested": {"l": [float("-inf"), 1.5]}, "text": "Infinity"}
    store.put(("t",), "k", value)
    item = store.get(("t",), "k")
    assert item is not None and item.value == value


def test_nan_is_refused_at_put_with_a_validation_error(alma: ALMA) -> None:
    """JSON has no NaN, so a persistent store cannot keep one (InMemoryStore keeps the object)."""
    store = AlmaStore(alma)
    with pytest.raises(ValidationError, match="NaN"):
        store.put(("t",), "k", {"v": [float("nan")]})
    assert store.get(("t",), "k") is None


def test_a_put_over_a_key_moves_updated_at_and_keeps_created_at() -> None:
    """Intended difference (docs/langgraph.md, "The Store"): InMemoryStore's put makes a new item, so
    created_at moves too; AlmaStore keeps the first put's created_at, as LangGraph's PostgresStore does."""
    with tempfile.TemporaryDirectory() as directory:
        alma, store = _fresh_store(directory)
        try:
            ref = InMemoryStore()
            for s in (ref, store):
                s.put(("t",), "k", {"v": 1})
            first, first_ref = store.get(("t",), "k"), ref.get(("t",), "k")
            time.sleep(0.002)
            for s in (ref, store):
                s.put(("t",), "k", {"v": 2})
            again, again_ref = store.get(("t",), "k"), ref.get(("t",), "k")
        finally:
            alma.close()
    assert first and again and first_ref and again_ref
    assert again_ref.created_at > first_ref.created_at and again_ref.updated_at > first_ref.updated_at
    assert again.created_at == first.created_at and again.updated_at > first.updated_at
    assert again.value == again_ref.value == {"v": 2}


# ---- the same errors for invalid input ----------------------------------------------------------

INVALID = [(), ("a.b",), ("a", ""), ("a", 1), ("a\x00",), ("langgraph", "x")]


@pytest.mark.parametrize("namespace", INVALID, ids=repr)
def test_put_rejects_an_invalid_namespace_as_in_memory_store_does(alma: ALMA, namespace: Any) -> None:
    with pytest.raises(InvalidNamespaceError) as theirs:
        InMemoryStore().put(namespace, "k", {"v": 1})
    with pytest.raises(type(theirs.value)):
        AlmaStore(alma).put(namespace, "k", {"v": 1})


@pytest.mark.parametrize("namespace", [ns for ns in INVALID if ns and ns[0] != "langgraph"], ids=repr)
@pytest.mark.parametrize("method", ["get", "delete", "search", "list_namespaces"])
def test_reads_and_deletes_reject_invalid_labels_as_in_memory_store_does(
    alma: ALMA, namespace: Any, method: str
) -> None:
    def call(store: BaseStore) -> Any:
        if method == "search":
            return store.search(namespace)
        if method == "list_namespaces":
            return store.list_namespaces(prefix=namespace)
        return getattr(store, method)(namespace, "k")

    with pytest.raises(InvalidNamespaceError) as theirs:
        call(InMemoryStore())
    with pytest.raises(type(theirs.value)):
        call(AlmaStore(alma))


def test_an_unknown_filter_operator_is_a_value_error_in_both(alma: ALMA) -> None:
    ref, store = InMemoryStore(), AlmaStore(alma)
    for s in (ref, store):
        s.put(("a",), "k", {"n": 1})
    with pytest.raises(ValueError) as theirs:
        ref.search(("a",), filter={"n": {"$in": [1]}})
    with pytest.raises(type(theirs.value)):
        store.search(("a",), filter={"n": {"$in": [1]}})


@pytest.mark.parametrize("value", [[1, 2], 3, 1.5], ids=repr)
def test_a_value_that_is_not_a_dict_is_a_type_error_in_both(alma: ALMA, value: Any) -> None:
    """(InMemoryStore calls dict() on it, so text raises ValueError there and a list of pairs is stored.)"""
    with pytest.raises(TypeError):
        InMemoryStore().put(("a",), "k", value)
    store = AlmaStore(alma)
    with pytest.raises(SerializationError, match="must be a dict"):  # a TypeError
        store.put(("a",), "k", value)
    assert store.search(()) == []


def test_a_label_that_is_not_text_in_a_direct_batch_is_an_invalid_namespace() -> None:
    """Intended difference: InMemoryStore keeps ("a", 1) as a dict key; AlmaStore's namespaces are text,
    so it refuses the op with the error BaseStore's own methods raise for it, and writes nothing."""
    ops = [PutOp(("a",), "k", {"v": 1}), PutOp(("a", 1), "k", {"v": 1})]  # type: ignore[arg-type]
    assert InMemoryStore().batch(ops) == [None, None]
    with tempfile.TemporaryDirectory() as directory:
        alma, store = _fresh_store(directory)
        try:
            for bad in [ops, [GetOp(("a", 1), "k")], [ListNamespacesOp((MatchCondition("prefix", (1,)),))]]:  # type: ignore[arg-type]
                with pytest.raises(InvalidNamespaceError, match="must be strings"):
                    store.batch(bad)
            assert store.search(()) == []
        finally:
            alma.close()


def test_a_direct_batch_with_a_dotted_label_answers_as_in_memory_store_does(alma: ALMA) -> None:
    """`batch` called directly (no BaseStore method validated the labels) answers as InMemoryStore does."""
    ops = [PutOp(("a.b",), "k", {"v": 1}), ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a.b",)),))]
    ref, store = InMemoryStore(), AlmaStore(alma)
    ref.batch(ops[:1])
    store.batch(ops[:1])
    assert store.batch(ops[1:]) == ref.batch(ops[1:])
