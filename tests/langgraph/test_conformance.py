"""LangGraph's official checkpointer conformance suite, against AlmaSaver's async and sync methods, on
SQLite and on PostgreSQL (`from_conn_string` with a path or a `postgresql://` URI), and on a store
without the "linked" capability (the reads' reference path)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest_pg import new_schema
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from alma_core.storage import SQLiteStorage
from alma_langgraph import AlmaSaver, AsyncAlmaSaver


class SyncDriven(AlmaSaver):
    """Each async method calls the sync one, so the suite exercises the sync code paths."""

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        for item in self.list(config, **kwargs):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


@pytest.fixture(params=["sqlite", "postgres"])
def conn_string(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """What `from_conn_string` gets: an ALMA SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "lg.db")
        return
    import psycopg

    uri: str = request.getfixturevalue("pg_uri")
    database = f"lg_{new_schema()}"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    parts = urlsplit(uri)
    yield urlunsplit(parts._replace(path=f"/{database}"))
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_conformance_suite_passes_with_nothing_skipped(conn_string: str, mode: str) -> None:
    async def factory() -> AsyncIterator[AlmaSaver]:
        if mode == "async":
            async with AsyncAlmaSaver.from_conn_string(conn_string) as saver:
                yield saver
        else:
            with SyncDriven.from_conn_string(conn_string) as saver:
                yield saver

    registered = checkpointer_test(name=f"AlmaSaver-{mode}")(factory)
    report = await validate(registered)
    results = report.results
    assert set(results) == {c.value for c in ALL_CAPABILITIES}
    failures = {name: r.failures for name, r in results.items() if not r.passed}
    assert not failures, failures
    assert all(r.detected and r.tests_skipped == 0 and r.tests_passed > 0 for r in results.values())
    assert sum(r.tests_passed for r in results.values()) >= 80


class _Unlinked(SQLiteStorage):
    """A store without the "linked" capability: the saver reads through `expand_linked`'s ListRecords,
    the path of any backend that does not answer `ListLinked` in one statement."""

    capabilities = SQLiteStorage.capabilities - {"linked"}


async def test_conformance_suite_passes_on_a_store_without_the_linked_capability(tmp_path: Path) -> None:
    async def factory() -> AsyncIterator[AlmaSaver]:
        storage = _Unlinked(tmp_path / f"{uuid.uuid4().hex}.db")
        try:
            yield SyncDriven(storage)
        finally:
            storage.close()

    registered = checkpointer_test(name="AlmaSaver-unlinked")(factory)
    report = await validate(registered)
    failures = {name: r.failures for name, r in report.results.items() if not r.passed}
    assert not failures, failures
    assert sum(r.tests_passed for r in report.results.values()) >= 80
