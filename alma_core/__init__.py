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
    from ._context import AlmaContext
    from ._erasure import UserErasure, register_erasure_hook
    from ._errors import (
        AlmaError,
        CheckpointConflict,
        ConfigError,
        EmbeddingMismatch,
        EncryptionError,
        FlushTimeout,
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
    from .confidence import ConfidenceEngine, ConfidenceSignal
    from .domains import DomainMemoryFactory, DomainSchema, create_schema
    from .embeddings import Embedder, LocalEmbedder, MockEmbedder
    from .extraction import AutoLearner, ExtractionResult
    from .harness import Context, Harness, RunResult, Setting, create_harness
    from .progress import InvalidTransition, ProgressTracker, WorkItem, WorkStatus
    from .session import Handoff, SessionContext, SessionManager
    from .storage import SQLiteStorage, Storage
    from .webhooks import WebhookConfig, WebhookManager
    from .workflow import Artifact, ArtifactType, Checkpoint, RetrievalScope

__version__ = "0.1.0"

# Public names resolve on first use (PEP 562), so `import alma_core` stays cheap for CLIs and adapters.
_LAZY: dict[str, str] = {
    "ALMA": "._alma",
    "AgentConfig": "._config",
    "AlmaContext": "._context",
    "AlmaConfig": "._config",
    "AlmaError": "._errors",
    "AntiPattern": "._models",
    "Artifact": ".workflow",
    "ArtifactType": ".workflow",
    "AutoLearner": ".extraction",
    "Checkpoint": ".workflow",
    "ConfidenceEngine": ".confidence",
    "ConfidenceSignal": ".confidence",
    "ConfigError": "._errors",
    "Context": ".harness",
    "DomainKnowledge": "._models",
    "DomainMemoryFactory": ".domains",
    "DomainSchema": ".domains",
    "Embedder": ".embeddings",
    "CheckpointConflict": "._errors",
    "EmbeddingMismatch": "._errors",
    "EncryptionError": "._errors",
    "ExtractionResult": ".extraction",
    "FlushTimeout": "._errors",
    "Handoff": ".session",
    "Harness": ".harness",
    "Heuristic": "._models",
    "InvalidTransition": ".progress",
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
    "ProgressTracker": ".progress",
    "RetrievalConfig": "._config",
    "RetrievalScope": ".workflow",
    "RunResult": ".harness",
    "SQLiteStorage": ".storage",
    "ScopeViolation": "._errors",
    "SerializationError": "._errors",
    "SessionContext": ".session",
    "SessionManager": ".session",
    "Setting": ".harness",
    "Storage": ".storage",
    "StorageError": "._errors",
    "UnknownAgent": "._errors",
    "UserErasure": "._erasure",
    "UserPreference": "._models",
    "ValidationError": "._errors",
    "WebhookConfig": ".webhooks",
    "WebhookManager": ".webhooks",
    "WorkItem": ".progress",
    "WorkStatus": ".progress",
    "create_harness": ".harness",
    "create_schema": ".domains",
    "estimate_tokens": "._slice",
    "load_config": "._config",
    "register_erasure_hook": "._erasure",
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
    "AlmaContext",
    "AlmaError",
    "AntiPattern",
    "Artifact",
    "ArtifactType",
    "AutoLearner",
    "Checkpoint",
    "CheckpointConflict",
    "ConfidenceEngine",
    "ConfidenceSignal",
    "ConfigError",
    "Context",
    "DomainKnowledge",
    "DomainMemoryFactory",
    "DomainSchema",
    "Embedder",
    "EmbeddingMismatch",
    "EncryptionError",
    "ExtractionResult",
    "FlushTimeout",
    "Handoff",
    "Harness",
    "Heuristic",
    "InvalidTransition",
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
    "ProgressTracker",
    "RetrievalConfig",
    "RetrievalScope",
    "RunResult",
    "SQLiteStorage",
    "ScopeViolation",
    "SerializationError",
    "SessionContext",
    "SessionManager",
    "Setting",
    "Storage",
    "StorageError",
    "UnknownAgent",
    "UserErasure",
    "UserPreference",
    "ValidationError",
    "WebhookConfig",
    "WebhookManager",
    "WorkItem",
    "WorkStatus",
    "__version__",
    "create_harness",
    "create_schema",
    "estimate_tokens",
    "load_config",
    "register_erasure_hook",
]
