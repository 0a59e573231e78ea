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

__all__ = [
    "ALMA",
    "AgentConfig",
    "AlmaConfig",
    "AlmaError",
    "AntiPattern",
    "ConfigError",
    "DomainKnowledge",
    "EmbeddingMismatch",
    "Embedder",
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
