"""AlmaStore: LangGraph's BaseStore on ALMA's records, and ALMA's scoped memories as a namespace."""

from __future__ import annotations

import time
from typing import Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph
from langgraph.store.base import BaseStore

from alma_core import ALMA, ValidationError
from alma_langgraph import MEMORY_NAMESPACE, AlmaSaver, AlmaStore


def test_put_get_delete_and_search_with_filter_and_query(alma: ALMA) -> None:
    store = AlmaStore(alma)
    store.put(("users", "u1", "prefs"), "theme", {"text": "dark mode everywhere", "kind": "ui", "weight": 3})
    store.put(("users", "u1", "prefs"), "lang", {"text": "answers in French", "kind": "language", "weight": 1})
    store.put(("users", "u2", "prefs"), "theme", {"text": "light mode", "kind": "ui", "weight": 2})

    item = store.get(("users", "u1", "prefs"), "theme")
    assert item is not None and item.value["kind"] == "ui" and item.namespace == ("users", "u1", "prefs")
    assert {i.key for i in store.search(("users", "u1"))} == {"theme", "lang"}
    assert {i.namespace[1] for i in store.search(("users",), filter={"kind": "ui"})} == {"u1", "u2"}
    assert [i.namespace[1] for i in store.search(("users",), filter={"kind": "ui", "weight": {"$gt": 2}})] == ["u1"]
    hits = store.search(("users", "u1"), query="answers in French")
    assert hits[0].key == "lang" and hits[0].score is not None and hits[0].score > (hits[1].score or 0)

    store.delete(("users", "u1", "prefs"), "theme")
    assert store.get(("users", "u1", "prefs"), "theme") is None
    assert store.get(("users", "u2", "prefs"), "theme") is not None


def test_list_namespaces_with_prefix_suffix_and_depth(alma: ALMA) -> None:
    store = AlmaStore(alma)
    for ns in [("a", "x", "prefs"), ("a", "y", "notes"), ("b", "x", "prefs"), ("ab", "z")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces(prefix=("a",)) == [("a", "x", "prefs"), ("a", "y", "notes")]
    assert store.list_namespaces(suffix=("prefs",)) == [("a", "x", "prefs"), ("b", "x", "prefs")]
    assert store.list_namespaces(prefix=("*", "x")) == [("a", "x", "prefs"), ("b", "x", "prefs")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("ab",), ("b",)]


def test_ttl_expires_items(alma: ALMA, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the store and the storage read this clock
    store = AlmaStore(alma, ttl={"default_ttl": 1, "refresh_on_read": False})  # a minute
    store.put(("tmp",), "k", {"v": 1})
    store.put(("tmp",), "forever", {"v": 2}, ttl=None)
    clock[0] += 59
    assert store.get(("tmp",), "k") is not None
    clock[0] += 2
    assert store.get(("tmp",), "k") is None
    assert store.get(("tmp",), "forever") is not None


def test_memory_namespace_search_returns_the_agents_scoped_memories(alma: ALMA) -> None:
    alma.add_domain_knowledge("helena", "testing_strategies", "login forms need a CSRF token in tests")
    alma.add_domain_knowledge("victor", "api_patterns", "login endpoints rate-limit after five tries")
    alma.add_domain_knowledge("qa_lead", "testing", "login flakiness comes from slow redirects")
    store = AlmaStore(alma)

    victor = store.search((*MEMORY_NAMESPACE, "victor"), query="login", limit=10)
    texts = {hit.value["text"] for hit in victor}
    assert any("rate-limit" in t for t in texts)  # his own
    assert any("slow redirects" in t for t in texts)  # inherited from qa_lead
    assert not any("CSRF" in t for t in texts)  # helena's, not shared with victor
    assert all(hit.score is not None for hit in victor)
    with pytest.raises(ValidationError):
        store.put((*MEMORY_NAMESPACE, "victor"), "x", {"text": "nope"})


async def test_async_store_round_trip(alma: ALMA) -> None:
    store = AlmaStore(alma)
    await store.aput(("docs",), "d1", {"text": "pytest fixtures share setup"})
    await store.aput(("docs",), "d2", {"text": "docker layers cache builds"})
    assert (await store.aget(("docs",), "d1")) is not None
    hits = await store.asearch(("docs",), query="docker layers cache builds")
    assert hits[0].key == "d2"


def test_graph_nodes_read_and_write_the_store(alma: ALMA) -> None:
    class S(TypedDict):
        user: str
        seen: int

    def remember(state: S, *, store: BaseStore) -> dict[str, Any]:
        ns = ("visits", state["user"])
        item = store.get(ns, "count")
        count = (item.value["n"] if item else 0) + 1
        store.put(ns, "count", {"n": count})
        return {"seen": count}

    builder = StateGraph(S)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    graph = builder.compile(checkpointer=AlmaSaver(alma), store=AlmaStore(alma))
    graph.invoke({"user": "ana", "seen": 0}, {"configurable": {"thread_id": "t1"}})
    out = graph.invoke({"user": "ana", "seen": 0}, {"configurable": {"thread_id": "t2"}})
    assert out["seen"] == 2
