"""Shared fixtures: real SQLite files under tmp_path, the mock embedder unless a test asks for MiniLM."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from pathlib import Path

import pytest

from alma_core import ALMA

pytest_plugins = ["conftest_pg", "pytester"]  # the session's PostgreSQL server (`pg_uri`); `pytester`

AGENTS = {
    "helena": {
        "domain": "coding",
        "can_learn": ["testing_strategies", "selector_patterns"],
        "cannot_learn": ["backend_logic"],
        "min_occurrences_for_heuristic": 3,
        "share_with": ["qa_lead"],
    },
    "victor": {
        "domain": "coding",
        "can_learn": ["api_patterns", "database_queries"],
        "cannot_learn": ["frontend_styling"],
        "inherit_from": ["qa_lead"],
    },
    "qa_lead": {"domain": "coding"},
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "alma.db"


@pytest.fixture
def alma(db_path: Path):
    """An ALMA on a real SQLite file with three agents (helena, victor, qa_lead) and mock embeddings."""
    instance = ALMA(project_id="test", agents=AGENTS, storage=db_path, embedder="mock")
    yield instance
    instance.close()


@pytest.fixture
def open_alma(db_path: Path):
    """An ALMA with no agents configured (every agent is open)."""
    instance = ALMA(project_id="open", storage=db_path, embedder="mock")
    yield instance
    instance.close()
