"""ALMA: persistent, scoped memory that makes AI agents better with every task.

    from alma_core import ALMA
    alma = ALMA.from_config(".alma/config.yaml")
    memories = alma.retrieve("Test the login form", agent="helena")
    prompt = memories.to_prompt(max_tokens=500)
    alma.learn(agent="helena", task="Test login form", outcome="success", strategy_used="...")

The core imports no ML or agent framework; adapters live in alma_langchain, alma_langgraph,
alma_crewai and alma_llamaindex.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._alma import ALMA
    from ._config import AgentConfig, AlmaConfig, LearningConfig, RetrievalConfig, load_config
    from ._errors import (
        AlmaError,
        ConfigError,
        EmbeddingMismatch,
        MissingDependency,
        NotFound,
        ScopeViolation,
        SerializationError,
        StorageError,
        UnknownAgent,
        ValidationError,
    )
    from ._models import (
        AntiPattern,
        DomainKnowledge,
        Heuristic,
        Memory,
        MemoryStats,
        MemoryType,
        Outcome,
        UserPreference,
    )
    from ._slice import MemorySlice, estimate_tokens
    from .embeddings import Embedder, LocalEmbedder, MockEmbedder
    from .storage import SQLiteStorage, Storage

__version__ = "0.1.0"

# Public names resolve on first use (PEP 562), so `import alma_core` stays cheap for CLIs and adapters.
_LAZY: dict[str, str] = {
    "ALMA": "._alma",
    "AgentConfig": "._config",
    "AlmaConfig": "._config",
    "AlmaError": "._errors",
    "AntiPattern": "._models",
    "ConfigError": "._errors",
    "DomainKnowledge": "._models",
    "Embedder": ".embeddings",
    "EmbeddingMismatch": "._errors",
    "Heuristic": "._models",
    "LearningConfig": "._config",
    "LocalEmbedder": ".embeddings",
    "Memory": "._models",
    "MemorySlice": "._slice",
    "MemoryStats": "._models",
    "MemoryType": "._models",
    "MissingDependency": "._errors",
    "MockEmbedder": ".embeddings",
    "NotFound": "._errors",
    "Outcome": "._models",
    "RetrievalConfig": "._config",
    "SQLiteStorage": ".storage",
    "ScopeViolation": "._errors",
    "SerializationError": "._errors",
    "Storage": ".storage",
    "StorageError": "._errors",
    "UnknownAgent": "._errors",
    "UserPreference": "._models",
    "ValidationError": "._errors",
    "estimate_tokens": "._slice",
    "load_config": "._config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alma_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ALMA",
    "AgentConfig",
    "AlmaConfig",
    "AlmaError",
    "AntiPattern",
    "ConfigError",
    "DomainKnowledge",
    "Embedder",
    "EmbeddingMismatch",
    "Heuristic",
    "LearningConfig",
    "LocalEmbedder",
    "Memory",
    "MemorySlice",
    "MemoryStats",
    "MemoryType",
    "MissingDependency",
    "MockEmbedder",
    "NotFound",
    "Outcome",
    "RetrievalConfig",
    "SQLiteStorage",
    "ScopeViolation",
    "SerializationError",
    "Storage",
    "StorageError",
    "UnknownAgent",
    "UserPreference",
    "ValidationError",
    "__version__",
    "estimate_tokens",
    "load_config",
]
