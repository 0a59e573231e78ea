"""`WriteIf`, a compare-and-set of namespace heads, on every backend with records: the writes run only
when each namespace's newest live key is one the caller allows, alone in a batch (the "write_if"
capability: PostgreSQL's one pipeline) or inside a write transaction (`expand_write_if` elsewhere)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from alma_core.storage import (
    BaseStorage,
    DeleteRecords,
    Head,
    ListRecords,
    PutRecords,
    Record,
    WriteIf,
    expand_write_if,
)

P = "proj"


def _in_transaction(store: BaseStorage, op: WriteIf) -> Any:
    """`op` inside an open write transaction: the backend's own handler, or its expansion."""
    with store.transaction(write=True) as tx:
        if "write_if" in store.capabilities:
            return tx.execute(op)
        plan = expand_write_if(op)
        try:
            ops = next(plan)
            while True:
                ops = plan.send([tx.execute(o) for o in ops])
        except StopIteration as stop:
            return stop.value


def _alone(store: BaseStorage, op: WriteIf) -> Any:
    if "write_if" not in store.capabilities:
        pytest.skip(f"{store.name} runs WriteIf only inside a transaction")
    return store.batch([op])[0]


RUNS = {"alone": _alone, "in a transaction": _in_transaction}


def _put(key: str, ns: str = "cp/t", expires_at: float | None = None) -> PutRecords:
    return PutRecords((Record(P, ns, key, b"v", expires_at=expires_at),), sequenced=False)


def _keys(store: BaseStorage, ns: str = "cp/t") -> list[str]:
    return [r.key for r in store.execute(ListRecords(P, ns, order_by="key"))]


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_writes_run_only_when_every_head_holds(
    store: BaseStorage, require: Callable[..., None], run: Callable[[BaseStorage, WriteIf], Any]
) -> None:
    require(store, "records")
    empty = Head(P, "cp/t", (None,))
    assert run(store, WriteIf((empty,), (_put("a"),))) == (None,)  # an empty namespace holds None
    assert _keys(store) == ["a"]
    assert run(store, WriteIf((empty,), (_put("b"),))) == ("a",)  # no longer empty: nothing written
    assert _keys(store) == ["a"]
    on_a = Head(P, "cp/t", ("a", "b"))
    other = Head(P, "other", (None,))
    store.execute(_put("x", ns="other"))
    assert run(store, WriteIf((on_a, other), (_put("b"), DeleteRecords(P, "other")))) == ("a", "x")
    assert _keys(store) == ["a"] and _keys(store, "other") == ["x"]  # one condition failed: no write at all
    assert run(store, WriteIf((on_a,), (_put("b"), DeleteRecords(P, "other")))) == ("a",)
    assert _keys(store) == ["b", "a"] and _keys(store, "other") == []
    assert run(store, WriteIf((on_a,), (_put("c"),))) == ("b",)  # "b" is allowed: the head is the greatest key
    assert _keys(store) == ["c", "b", "a"]


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_an_expired_record_is_no_head(
    store: BaseStorage, require: Callable[..., None], run: Callable[[BaseStorage, WriteIf], Any]
) -> None:
    require(store, "records")
    store.execute(_put("z", expires_at=1.0))  # expired long ago
    store.execute(_put("a"))
    assert run(store, WriteIf((Head(P, "cp/t", ("a",)),), (_put("b"),))) == ("a",)
    assert run(store, WriteIf((Head(P, "gone", (None,)),), ())) == (None,)
    assert _keys(store) == ["b", "a"]


async def test_async_write_if_alone(store: BaseStorage, require: Callable[..., None]) -> None:
    require(store, "records", "write_if")
    op = WriteIf((Head(P, "cp/t", (None,)),), (_put("a"),))
    assert await store.abatch([op]) == [(None,)]
    assert await store.abatch([op]) == [("a",)]
    assert _keys(store) == ["a"]
