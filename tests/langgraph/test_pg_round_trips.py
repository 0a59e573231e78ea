"""On PostgreSQL every put is one round trip, the guarded ones included: a thread's first checkpoint
(checked against ALMA's workflows) and a fenced put are one `WriteIf` pipeline (BEGIN, the write lock,
the check, the write, COMMIT, sent together). A refused put costs one more (its ROLLBACK) and writes
nothing. Counted on the wire, between the real driver and the server (`_wire.Wire`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _wire import Wire
from conftest_pg import drop_schemas, new_schema
from langgraph.checkpoint.base import empty_checkpoint

from alma_core import CheckpointConflict, StorageError
from alma_core.storage import ListRecords, PutRecords, Record
from alma_core.storage.postgres import PostgresStorage
from alma_core.workflow import checkpoints_ns
from alma_langgraph import AlmaSaver, AsyncAlmaSaver

GUARDED = 6  # statements of a guarded put: BEGIN, the lock, the check, its abort test, the INSERT, COMMIT


@pytest.fixture
def wire(pg_uri: str) -> Iterator[tuple[Wire, str]]:
    schema = new_schema()
    with Wire(pg_uri) as wire:
        yield wire, schema
    drop_schemas(pg_uri, schema)


def _saver(wire: tuple[Wire, str], fencing: bool, cls: type[AlmaSaver] = AlmaSaver) -> AlmaSaver:
    """A saver whose pool opens no connection of its own accord (min 0), so only its calls speak."""
    storage = PostgresStorage(wire[0].uri, schema=wire[1], min_pool_size=0, max_pool_size=2)
    return cls(storage, fencing=fencing)


def _checkpoint(step: int) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = {"doc": f"step {step} " + "x" * 1000, "step": step}
    cp["channel_versions"] = {"doc": step + 1, "step": step + 1}
    return cp


def _cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _counted(wire: Wire, call: Any) -> tuple[Any, int, int]:
    wire.reset()
    result = call()
    return result, wire.round_trips, wire.statements


@pytest.mark.parametrize("fencing", [False, True], ids=["plain", "fenced"])
def test_a_first_put_a_fenced_put_and_writes_are_one_round_trip_each(wire: tuple[Wire, str], fencing: bool) -> None:
    saver = _saver(wire, fencing)
    saver.put(_cfg("warm-up"), _checkpoint(0), {}, {})  # the connection opens and is configured
    first, trips, statements = _counted(wire[0], lambda: saver.put(_cfg("t"), _checkpoint(1), {}, {"doc": 2}))
    assert (trips, statements) == (1, GUARDED)
    second, trips, statements = _counted(wire[0], lambda: saver.put(first, _checkpoint(2), {}, {"doc": 3}))
    assert (trips, statements) == (1, GUARDED if fencing else 1)  # unfenced: the lone INSERT
    _, trips, statements = _counted(wire[0], lambda: saver.put_writes(second, [("doc", "v")], "task"))
    assert (trips, statements) == (1, 1)
    found = saver.get_tuple(_cfg("t"))
    assert found is not None and found.config == second and found.pending_writes == [("task", "doc", "v")]
    assert found.checkpoint["channel_values"]["doc"] == _checkpoint(2)["channel_values"]["doc"]
    saver.storage.close()


def test_a_refused_fenced_put_costs_one_round_trip_more_and_writes_nothing(wire: tuple[Wire, str]) -> None:
    saver = _saver(wire, fencing=True)
    first = saver.put(_cfg("t"), _checkpoint(1), {}, {"doc": 2})
    second = saver.put(first, _checkpoint(2), {}, {"doc": 3})
    wire[0].reset()
    with pytest.raises(CheckpointConflict, match="moved on"):
        saver.put(first, _checkpoint(3), {}, {"doc": 4})  # a stale parent: the head is `second`
    assert wire[0].round_trips == 2  # the pipeline, then its ROLLBACK
    assert [t.config for t in saver.list(_cfg("t"))] == [second, first]
    assert saver.put(second, _checkpoint(3), {}, {"doc": 4})  # the connection is usable again
    saver.storage.close()


def test_a_first_put_under_a_workflows_id_is_refused_in_one_pipeline(wire: tuple[Wire, str]) -> None:
    saver = _saver(wire, fencing=False)
    saver.storage.batch([PutRecords((Record(saver.project_id, checkpoints_ns("flow"), "c1", b"state"),))])
    wire[0].reset()
    with pytest.raises(CheckpointConflict, match="workflow"):
        saver.put(_cfg("flow"), _checkpoint(1), {}, {"doc": 2})
    assert wire[0].round_trips == 2
    assert saver.get_tuple(_cfg("flow")) is None
    saver.storage.close()


async def test_async_guarded_puts_are_one_round_trip_too(wire: tuple[Wire, str]) -> None:
    saver = _saver(wire, fencing=True, cls=AsyncAlmaSaver)
    await saver.aput(_cfg("warm-up"), _checkpoint(0), {}, {})
    wire[0].reset()
    first = await saver.aput(_cfg("t"), _checkpoint(1), {}, {"doc": 2})
    second = await saver.aput(first, _checkpoint(2), {}, {"doc": 3})
    assert (wire[0].round_trips, wire[0].statements) == (2, 2 * GUARDED)
    wire[0].reset()
    with pytest.raises(CheckpointConflict, match="moved on"):
        await saver.aput(first, _checkpoint(3), {}, {"doc": 4})
    assert wire[0].round_trips == 2
    assert [t.config async for t in saver.alist(_cfg("t"))] == [second, first]
    await saver.storage.aclose()  # type: ignore[attr-defined]


def test_a_new_connection_is_set_up_in_one_round_trip(wire: tuple[Wire, str]) -> None:
    """Its settings in one statement, pgvector's types from the store's one lookup (was 15: BEGIN, the
    SETs, four type lookups each in a savepoint, COMMIT), so a pool that grows under concurrent puts
    pays little for it."""
    storage = PostgresStorage(wire[0].uri, schema=wire[1], min_pool_size=0, max_pool_size=2)
    wire[0].reset()
    storage.batch([PutRecords((Record("p", "ns", "k", b"v"),), sequenced=False)])
    assert wire[0].round_trips == 3  # the direct connection: its settings, the type lookup; the INSERT
    wire[0].reset()
    with storage.transaction(write=False) as tx:  # a pooled connection, new
        assert [r.key for r in tx.execute(ListRecords("p", "ns"))] == ["k"]
    assert wire[0].round_trips == 4  # its settings; BEGIN, the read, COMMIT
    storage.close()


async def test_a_store_that_prepares_every_statement_at_once_works(wire: tuple[Wire, str]) -> None:
    """`prepare_threshold=0` (as LangGraph's docs set PostgresSaver's connections): the session's
    several SETs are never prepared; every other statement is, sync and async."""
    storage = PostgresStorage(wire[0].uri, schema=wire[1], prepare_threshold=0, min_pool_size=0)
    saver = AsyncAlmaSaver(storage, fencing=True)
    first = saver.put(_cfg("t"), _checkpoint(1), {}, {"doc": 2})
    second = await saver.aput(first, _checkpoint(2), {}, {"doc": 3})
    found = saver.get_tuple(_cfg("t"))
    assert found is not None and found.config == second
    assert [t.config async for t in saver.alist(_cfg("t"))] == [second, first]
    await saver.storage.aclose()  # type: ignore[attr-defined]


def test_puts_with_a_ttl_and_writes_with_an_error_are_one_round_trip(wire: tuple[Wire, str]) -> None:
    """Several blind writes (a checkpoint and its thread's retention entry; a task's regular writes and
    its error) are one transaction sent as one pipeline: BEGIN, the writes, COMMIT."""
    storage = PostgresStorage(wire[0].uri, schema=wire[1], min_pool_size=0, max_pool_size=2)
    saver = AlmaSaver(storage, ttl=60)
    saver.put(_cfg("warm-up"), _checkpoint(0), {}, {})
    first, trips, statements = _counted(wire[0], lambda: saver.put(_cfg("t"), _checkpoint(1), {}, {"doc": 2}))
    assert (trips, statements) == (1, GUARDED + 1)  # and the retention entry
    second, trips, statements = _counted(wire[0], lambda: saver.put(first, _checkpoint(2), {}, {"doc": 3}))
    assert (trips, statements) == (1, 4)
    writes = [("doc", "v"), ("__error__", "boom")]
    _, trips, statements = _counted(wire[0], lambda: saver.put_writes(second, writes, "task"))
    assert (trips, statements) == (1, 4)
    found = saver.get_tuple(_cfg("t"))
    assert found is not None and found.config == second
    assert sorted(found.pending_writes) == [("task", "__error__", "boom"), ("task", "doc", "v")]
    assert saver.sweep(now=time.time() + 61 * 60) == {"threads": 2, "checkpoints": 0}  # both threads indexed
    assert saver.get_tuple(_cfg("t")) is None
    storage.close()


def test_a_guarded_put_on_a_lost_connection_raises_storage_error_and_the_next_one_reconnects(
    pg_database: str,
) -> None:
    saver = AlmaSaver(PostgresStorage(pg_database, min_pool_size=0, max_pool_size=2), fencing=True)
    first = saver.put(_cfg("t"), _checkpoint(1), {}, {"doc": 2})
    with psycopg.connect(pg_database, autocommit=True) as admin:  # every other session of the database ends
        admin.execute(
            "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )  # (30 s: returns once each is gone)
    with pytest.raises(StorageError, match="WriteIf"):
        saver.put(first, _checkpoint(2), {}, {"doc": 3})
    second = saver.put(first, _checkpoint(2), {}, {"doc": 3})  # nothing was written: the head is `first`
    assert [t.config for t in saver.list(_cfg("t"))] == [second, first]
    saver.storage.close()
