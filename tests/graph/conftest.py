"""Fixtures of the graph tests: every protocol test runs on each bundled backend (in-memory and a real
Kuzu database in a temporary directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alma_core.graph import BackendGraphStore, GraphBackend, create_graph_backend


@pytest.fixture(params=["memory", "kuzu"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphBackend]:
    options = {"database_path": tmp_path / "graph"} if request.param == "kuzu" else {}
    instance = create_graph_backend(request.param, **options)
    yield instance
    instance.close()


@pytest.fixture
def graph(backend: GraphBackend) -> BackendGraphStore:
    return BackendGraphStore(backend, project_id="p1")
