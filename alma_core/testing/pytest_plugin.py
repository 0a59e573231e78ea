"""pytest plugin (registered by the `pytest11` entry point `alma`): fixtures to test agents against ALMA.

    def test_my_agent_learns(alma):                 # a fresh ALMA: temp SQLite file, mock embeddings
        my_agent.run(alma, "Test the login form")
        assert alma.retrieve("login form", agent="helena").heuristics

    def test_with_agents(alma_factory):
        alma = alma_factory(agents={"helena": {"can_learn": ["testing_strategies"]}})

A `conftest.py` fixture of the same name overrides these, as with any pytest plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def alma_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build ALMAs on temp SQLite files with mock embeddings: `alma_factory(agents=..., project_id=...)`;
    each is closed after the test."""
    from .._alma import ALMA
    from ..embeddings import MockEmbedder

    made: list[ALMA] = []

    def make(**kwargs: Any) -> ALMA:
        kwargs.setdefault("project_id", "test-project")
        kwargs.setdefault("storage", tmp_path / f"alma-{len(made)}.db")
        kwargs.setdefault("embedder", MockEmbedder())
        instance = ALMA(**kwargs)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.close()


@pytest.fixture
def alma(alma_factory: Callable[..., Any]) -> Any:
    """A fresh ALMA for one test: project `test-project`, open agents, temp SQLite file, mock embeddings."""
    return alma_factory()
