"""`AlmaContext`: what ALMA's services are built from.

The learner, forgetting, consolidation, retrieval and the workflow API take one context instead of the
`ALMA` facade: the project, its store, embedder, scope policy, event emitter and config, plus the graph
index that writes feed when graph memory is on. Its helpers are the few primitives every write shares:
a filter bound to the project, embedding what lacks a vector, a write's outbox records (staged inside
its transaction) and its events (emitted after the commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._alma import PROJECT_AGENT
from .events import MemoryEvent, MemoryEventType
from .storage._base import MemoryFilter, PutRecord

if TYPE_CHECKING:
    from ._config import AlmaConfig
    from ._models import Memory
    from ._scopes import ScopePolicy
    from .embeddings import Embedder
    from .events import EventEmitter
    from .storage._base import BaseStorage

__all__ = ["AlmaContext"]


@dataclass(eq=False, slots=True)
class AlmaContext:
    """One project's view of a store, shared by ALMA's services (see the module docstring)."""

    project_id: str
    storage: BaseStorage
    embedder: Embedder
    scopes: ScopePolicy
    events: EventEmitter
    config: AlmaConfig
    graph: Any = None  # a graph.GraphIndex fed by every write, when graph memory is on

    def filter(self, **kwargs: Any) -> MemoryFilter:
        """A `MemoryFilter` bound to this project."""
        return MemoryFilter(project_id=self.project_id, **kwargs)

    def check_scope(self, memory: Memory) -> None:
        """`ScopeViolation` unless the memory's agent may learn its category (project-wide ones may)."""
        if memory.agent != PROJECT_AGENT:
            self.scopes.check_write(memory.agent, memory.category)

    def embed(self, memories: Sequence[Memory]) -> None:
        """Set the embedding of every memory that lacks one (or has one of another dimension), in one call."""
        todo = [m for m in memories if m.embedding is None or len(m.embedding) != self.embedder.dim]
        if todo:
            vectors = self.embedder.embed_documents([m.text for m in todo])
            for memory, vector in zip(todo, vectors, strict=True):
                memory.embedding = vector

    def staged(self, kind: MemoryEventType, memories: Iterable[Memory], **payload: Any) -> list[PutRecord]:
        """The outbox records (webhooks) of a write's events: ops to run inside the write's transaction, so
        the events commit with the write or not at all."""
        if not self.events.has_outbox:
            return []
        events = [MemoryEvent(kind, m.project_id, m.agent, m.id, m.memory_type.value, payload=dict(payload))
                  for m in memories]  # fmt: skip
        return [PutRecord(record) for record in self.events.outbox_records(self.storage, events)]

    def emit(self, kind: MemoryEventType, memories: Iterable[Memory], **payload: Any) -> None:
        """After a commit: tell subscribers, and wake the outboxes that have staged records."""
        if self.events.has_subscribers:
            self.events.emit_all(
                MemoryEvent(kind, m.project_id, m.agent, m.id, m.memory_type.value, payload=dict(payload))
                for m in memories
            )
        if self.events.has_outbox and kind is not MemoryEventType.ACCESSED:
            self.events.committed(self.storage)

    def index(self, memories: Sequence[Memory]) -> None:
        """After a commit: feed new memories to graph memory (when it is on)."""
        if self.graph is not None and memories:
            self.graph.index(memories)

    def unindex(self, memories: Sequence[Memory], user_id: str | None = None) -> int:
        """After a commit: the graph forgets what deleted memories taught it (and, for `delete_user`, what
        is the user's); returns how many graph items went."""
        if self.graph is None:
            return 0
        gone = self.graph.forget([m.id for m in memories]) if memories else 0
        return gone + (self.graph.forget_user(user_id) if user_id else 0)  # type: ignore[no-any-return]
