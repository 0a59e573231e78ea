"""One exception hierarchy for everything ALMA raises on purpose.

    AlmaError
    ├── ConfigError(ValueError)        bad config file, key, type or argument value
    │   └── ValidationError            a bad argument to a public call (still a ValueError)
    ├── ScopeViolation(PermissionError) a write outside the agent's can_learn / cannot_learn
    ├── UnknownAgent(KeyError)         an agent that the config does not define
    ├── NotFound(KeyError)             a memory, checkpoint or record that does not exist
    ├── CheckpointConflict             a checkpoint would fork a history (another framework's id, or a stale parent)
    ├── StorageError                   the backend failed; nothing was half-written
    ├── EmbeddingMismatch              the store was built with another embedder
    ├── EncryptionError                an encrypted blob does not open (tampered, moved, plaintext, unknown key)
    ├── FlushTimeout(TimeoutError)     background work (graph extraction) stalled; it stays queued (names it)
    ├── SerializationError(TypeError)  a value outside the allow-list (names the key path)
    └── MissingDependency(ImportError) an optional extra is not installed (names the extra)
    ConfigError > ValidationError > WebhookVerificationError   a received webhook's signature does not hold

Built-in bases let callers that only know Python's exceptions catch them naturally.
"""

from __future__ import annotations

__all__ = [
    "AlmaError",
    "CheckpointConflict",
    "ConfigError",
    "EmbeddingMismatch",
    "EncryptionError",
    "FlushTimeout",
    "MissingDependency",
    "NotFound",
    "ScopeViolation",
    "SerializationError",
    "StorageError",
    "UnknownAgent",
    "ValidationError",
    "WebhookVerificationError",
]


class AlmaError(Exception):
    """Root of every error ALMA raises on purpose."""


class ConfigError(AlmaError, ValueError):
    """A config file, key or value is wrong; the message names where and what to do."""


class ValidationError(ConfigError):
    """An argument to a public call is invalid (wrong type, out of range, empty)."""


class WebhookVerificationError(ValidationError):
    """A received webhook is not authentic: bad or missing signature, or a timestamp out of tolerance."""


class ScopeViolation(AlmaError, PermissionError):
    """An agent tried to learn something outside its scope; nothing was stored."""

    def __init__(self, agent: str, category: str | None, reason: str) -> None:
        self.agent, self.category = agent, category
        super().__init__(f"agent {agent!r} may not learn {category!r}: {reason}")


class UnknownAgent(AlmaError, KeyError):
    """The agent is not defined in the config (with agents configured, every agent must be)."""

    def __init__(self, agent: str, known: list[str]) -> None:
        self.agent = agent
        super().__init__(f"unknown agent {agent!r}; configured agents: {', '.join(sorted(known)) or 'none'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NotFound(AlmaError, KeyError):
    """A memory, checkpoint or record does not exist (in this project)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class CheckpointConflict(AlmaError):
    """A checkpoint write would fork a history: its id is a thread another framework keeps (a LangGraph
    thread, or an ALMA workflow), or, with `AlmaSaver(fencing=True)`, its parent is no longer the
    thread's head. Nothing was written."""


class StorageError(AlmaError):
    """The storage backend failed; the operation was rolled back."""


class EmbeddingMismatch(AlmaError):
    """The store's vectors come from another embedder; run `alma reindex` to rebuild them."""


class EncryptionError(AlmaError):
    """An encrypted blob cannot be opened: tampered with, moved from another row, plaintext while
    encryption is on, or sealed under a key the key ring lacks. Nothing is returned in the clear."""


class FlushTimeout(AlmaError, TimeoutError):
    """Waiting for background work (graph memory's extraction worker) ran out of time: the worker made no
    progress for the timeout (a hung extractor, such as a chat model that never answers). Nothing was
    dropped: what is pending stays queued and goes in once the worker moves again. `pending` lists the
    memory ids not in the graph yet, those being extracted first."""

    def __init__(self, message: str, pending: list[str]) -> None:
        self.pending = pending
        super().__init__(message)


class SerializationError(AlmaError, TypeError):
    """A value cannot be stored safely; the message names its key path."""


class MissingDependency(AlmaError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, install: str | None = None) -> None:
        self.package, self.extra = package, extra
        install = install or f"pip install 'alma-core[{extra}]'"
        super().__init__(f"{package} is not installed: {install}")
