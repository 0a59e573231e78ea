"""Fixtures of the harness tests: a coding-schema ALMA and a tool-calling fake chat model (LangChain's own
base class; only the network call is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _fake_models import ToolCallingFakeModel

from alma_core import DomainMemoryFactory


@pytest.fixture
def coding_alma(tmp_path: Path):
    """helena learns testing_strategies and selector_patterns only; victor learns every coding category."""
    factory = DomainMemoryFactory()
    agents = {
        "helena": {"can_learn": ["testing_strategies", "selector_patterns"], "min_occurrences_for_heuristic": 2},
        "victor": None,
    }
    alma = factory.create_alma("coding", "harness-test", agents=agents, storage=tmp_path / "alma.db", embedder="mock")
    yield alma
    alma.close()


@pytest.fixture
def fake_model():
    return ToolCallingFakeModel
