"""The testing kit: test your own agents against a real ALMA in one line.

    from alma_core.testing import MockStorage, MockEmbedder, create_test_alma, create_test_heuristic

    alma = create_test_alma(agents={"helena": {"can_learn": ["testing_strategies"]}})  # in memory, offline
    alma.storage.execute(PutMemories([create_test_heuristic(agent="helena")]))  # or alma.learn(...)

`MockStorage` is the real SQLite backend on an in-memory database (same behaviour as a file, gone when
closed); `MockEmbedder` is the deterministic hash embedder (no model, no network). The `create_test_*`
factories build valid memories with sensible defaults; every field can be overridden. With
`pip install alma-core`, pytest loads `alma_core.testing.pytest_plugin`, which provides an `alma` fixture
(a fresh ALMA on a temp SQLite file with mock embeddings) and `alma_factory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._alma import ALMA
from .._models import AntiPattern, DomainKnowledge, Heuristic, Outcome, UserPreference
from ..embeddings import MockEmbedder
from ..storage.sqlite import SQLiteStorage

__all__ = [
    "MockEmbedder",
    "MockStorage",
    "create_test_alma",
    "create_test_anti_pattern",
    "create_test_heuristic",
    "create_test_knowledge",
    "create_test_outcome",
    "create_test_preference",
]

PROJECT = "test-project"
AGENT = "test-agent"


class MockStorage(SQLiteStorage):
    """ALMA's SQLite backend on a private in-memory database: real queries, nothing on disk."""

    def __init__(self) -> None:
        super().__init__(":memory:")


def create_test_alma(
    agents: Mapping[str, Mapping[str, Any]] | None = None, project_id: str = PROJECT, **kwargs: Any
) -> ALMA:
    """An ALMA on a `MockStorage` with a `MockEmbedder` (offline, in memory); extra kwargs go to ALMA."""
    kwargs.setdefault("storage", MockStorage())
    kwargs.setdefault("embedder", MockEmbedder())
    return ALMA(project_id=project_id, agents=agents, **kwargs)


def create_test_heuristic(**overrides: Any) -> Heuristic:
    """A heuristic (3 successes of 3) of `test-agent` in `test-project`; override any field."""
    fields: dict[str, Any] = {
        "project_id": PROJECT, "agent": AGENT, "condition": "task type: testing_strategies",
        "strategy": "Validate form fields one at a time", "task_type": "testing_strategies",
        "occurrence_count": 3, "success_count": 3, "confidence": 0.8,
    }  # fmt: skip
    return Heuristic(**{**fields, **overrides})


def create_test_outcome(**overrides: Any) -> Outcome:
    """A successful outcome of `test-agent` in `test-project`; override any field."""
    fields: dict[str, Any] = {
        "project_id": PROJECT, "agent": AGENT, "task": "Test the login form", "task_type": "testing_strategies",
        "success": True, "strategy_used": "Validate form fields one at a time", "duration_ms": 1200,
    }  # fmt: skip
    return Outcome(**{**fields, **overrides})


def create_test_anti_pattern(**overrides: Any) -> AntiPattern:
    """An anti-pattern of `test-agent` in `test-project`; override any field."""
    fields: dict[str, Any] = {
        "project_id": PROJECT, "agent": AGENT, "pattern": "Using sleep() to wait for async UI",
        "why_bad": "Flaky tests and slow runs", "better_alternative": "Wait for the element or the response",
        "task_type": "testing_strategies", "occurrence_count": 2,
    }  # fmt: skip
    return AntiPattern(**{**fields, **overrides})


def create_test_preference(**overrides: Any) -> UserPreference:
    """A preference of user `test-user` (owned by `test-agent`) in `test-project`; override any field."""
    fields: dict[str, Any] = {
        "project_id": PROJECT, "agent": AGENT, "user_id": "test-user", "category": "code_style",
        "preference": "Prefer verbose test output",
    }  # fmt: skip
    return UserPreference(**{**fields, **overrides})


def create_test_knowledge(**overrides: Any) -> DomainKnowledge:
    """A domain fact of `test-agent` in `test-project`; override any field."""
    fields: dict[str, Any] = {
        "project_id": PROJECT, "agent": AGENT, "domain": "authentication",
        "fact": "Login uses OAuth 2.0 with a 24-hour token expiry", "source": "test",
    }  # fmt: skip
    return DomainKnowledge(**{**fields, **overrides})
