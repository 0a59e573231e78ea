"""Other checkpoint sources that `ALMA.resume` / `list_checkpoints` fall back to.

A framework adapter that keeps its own checkpoints in ALMA's store (LangGraph threads, say) registers a
source, so a workflow started in that framework can be inspected, merged and handed off with ALMA's
workflow API. The core never imports the framework: the adapter registers itself when imported.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from ._models import Checkpoint

__all__ = ["CheckpointSource", "checkpoint_sources", "register_checkpoint_source"]


class CheckpointSource(Protocol):
    """Finds checkpoints of `workflow_id` that ALMA's own workflow records don't hold."""

    def get(self, alma: Any, workflow_id: str, checkpoint_id: str | None) -> Checkpoint | None:
        """The named (or latest) checkpoint with its state, or None."""
        ...

    def history(self, alma: Any, workflow_id: str, limit: int | None, before: int | str | None) -> list[Checkpoint]:
        """Checkpoints newest first (without states), or [] when the source has none."""
        ...

    def holds(self, alma: Any, workflow_id: str) -> bool:
        """Whether the source keeps a history under this id (then `ALMA.checkpoint` refuses it with
        `CheckpointConflict`). Optional: a source without it is not asked."""
        ...


_sources: list[CheckpointSource] = []
_lock = threading.Lock()


def register_checkpoint_source(source: CheckpointSource) -> None:
    """Add a source (idempotent: a source already registered is not added twice)."""
    with _lock:
        if source not in _sources:
            _sources.append(source)


def checkpoint_sources() -> tuple[CheckpointSource, ...]:
    with _lock:
        return tuple(_sources)
