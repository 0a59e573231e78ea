"""On PostgreSQL a checkpoint is read in one statement (`_linked`: the checkpoint with its writes and the
rows it points to); a checkpoint whose pointed rows were pruned (they handed their entries over as blob
records) reads back exactly the same, in more steps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest_pg import drop_schemas, new_schema
from test_channel_blobs import _chat, _values

from alma_core.storage import postgres
from alma_core.storage.postgres import PostgresStorage
from alma_langgraph import AlmaSaver, AsyncAlmaSaver


@pytest.fixture
def store(pg_uri: str) -> Iterator[tuple[str, str]]:
    schema = new_schema()
    yield pg_uri, schema
    drop_schemas(pg_uri, schema)


def _saver(store: tuple[str, str], cls: type[AlmaSaver] = AlmaSaver) -> AlmaSaver:
    return cls(PostgresStorage(store[0], schema=store[1], min_pool_size=0, max_pool_size=2))


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement the store runs from now on (BEGIN and COMMIT are not steps: none here)."""
    seen: list[str] = []
    run = postgres._run
    monkeypatch.setattr(postgres, "_run", lambda cur, step: seen.append(step[0]) or run(cur, step))
    return seen


def test_get_tuple_and_list_are_one_statement(store: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    saver = _saver(store)
    _chat(saver, range(20))
    config = {"configurable": {"thread_id": "chat"}}
    latest = saver.get_tuple(config)
    assert latest is not None and len(latest.checkpoint["channel_values"]["messages"]) == 41  # one edit
    seen = _statements(monkeypatch)
    assert saver.get_tuple(config) == latest
    assert saver.get_tuple(latest.config) == latest
    listed = list(saver.list({"configurable": {"thread_id": "chat", "checkpoint_ns": ""}}, limit=5))
    assert listed[0] == latest and len(listed) == 5
    assert len(seen) == 3
    # without a namespace: one statement too (each of the thread's namespaces read in its key order)
    assert list(saver.list(config, limit=5)) == listed
    assert len(seen) == 4
    saver.storage.close()


def test_a_checkpoint_whose_pointed_rows_were_pruned_reads_back_the_same(
    store: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _saver(store)
    _chat(writer, range(20))
    writer.prune(["chat"], strategy="keep_latest")  # the rows the head points to hand their entries over
    expected = _values(writer)
    writer.storage.close()
    reader = _saver(store)  # remembers nothing
    seen = _statements(monkeypatch)
    assert reader.get_tuple({"configurable": {"thread_id": "chat"}}) is not None
    assert len(seen) == 3  # the checkpoint; again in a read transaction, with what its rows handed over
    assert _values(reader) == expected
    _chat(reader, range(20, 22))  # and the thread goes on
    base = len(expected[0]["messages"])
    assert [len(v["messages"]) for v in _values(reader)[:2]] == [base + 4, base + 3]
    reader.storage.close()


async def test_async_reads_are_one_statement_too(store: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    saver = _saver(store, AsyncAlmaSaver)
    _chat(saver, range(3))
    config = {"configurable": {"thread_id": "chat"}}
    expected = saver.get_tuple(config)
    seen: list[str] = []
    arun = postgres._arun

    async def counted(cur: Any, step: Any) -> Any:
        seen.append(step[0])
        return await arun(cur, step)

    monkeypatch.setattr(postgres, "_arun", counted)
    assert await saver.aget_tuple(config) == expected
    root = {"configurable": {"thread_id": "chat", "checkpoint_ns": ""}}
    assert [t async for t in saver.alist(root, limit=1)] == [expected]
    assert len(seen) == 2
    assert [t async for t in saver.alist(config, limit=1)] == [expected]  # namespaces first, then each
    await saver.storage.aclose()  # type: ignore[attr-defined]
