"""Backends under test: every conformance test runs on sqlite, postgres and chroma, and on sqlite again with
every vector matrix held as int8 codes (`sqlite-int8`: the path of stores above `QUANT_MIN_ROWS` rows).

PostgreSQL (with pgvector) is the session's server (`pg_uri`, from tests/conftest_pg.py): if it cannot
start, the postgres tests FAIL, they are never skipped. Each test gets its own schema (postgres),
directory (chroma) or file (sqlite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_pg import drop_schemas, new_schema

from alma_core.storage import BaseStorage, SQLiteStorage, _vectors

BACKENDS = ["sqlite", "sqlite-int8", "postgres", "chroma"]


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., BaseStorage]]:
    """A factory of stores of the backend under test; stores made twice with the same `name` share data."""
    backend: str = request.param
    if backend == "sqlite-int8":  # (candidates rescored with vectors read back, as above `EXACT_KEPT_ROWS`)
        monkeypatch.setattr(_vectors, "QUANT_MIN_ROWS", 1)
        monkeypatch.setattr(_vectors, "EXACT_KEPT_ROWS", 0)
    made: list[BaseStorage] = []
    names: dict[str, Any] = {}

    def make(name: str = "main") -> BaseStorage:
        store: BaseStorage
        if backend in ("sqlite", "sqlite-int8"):
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
    if backend == "sqlite-int8":  # the variant tests the int8 path only if its matrices hold codes
        matrices = [m for store in made for m in getattr(store, "_matrices", {}).values()]
        assert all(m.codes is not None for m in matrices), "sqlite-int8 searched float32 rows: the patch missed"
    for store in made:
        store.close()
    if backend == "postgres" and names:
        drop_schemas(request.getfixturevalue("pg_uri"), *names.values())


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
