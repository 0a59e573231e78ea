"""Memory events: the core fires them after a write commits (never for a rolled-back one).

A raising subscriber is logged and never breaks the write or the other subscribers. Webhooks and other
sinks subscribe here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ._errors import ValidationError
from ._models import utcnow

__all__ = ["EventEmitter", "MemoryEvent", "MemoryEventType", "get_emitter"]

log = logging.getLogger("alma.events")


class MemoryEventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    ACCESSED = "accessed"
    CONSOLIDATED = "consolidated"


@dataclass(frozen=True)
class MemoryEvent:
    """One change (or read) of one memory."""

    type: MemoryEventType
    project_id: str
    agent: str
    memory_id: str
    memory_type: str
    timestamp: datetime = field(default_factory=utcnow)
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[MemoryEvent], Any]


class EventEmitter:
    """A thread-safe synchronous publish/subscribe hub."""

    def __init__(self) -> None:
        self._subs: list[tuple[Subscriber, frozenset[MemoryEventType] | None]] = []
        self._lock = threading.Lock()

    def subscribe(
        self,
        callback: Subscriber | MemoryEventType | str,
        event_types: Iterable[MemoryEventType | str] | MemoryEventType | str | Subscriber | None = None,
    ) -> Subscriber:
        """Call `callback(event)` for every event (or only those of `event_types`). Returns the callback.

        Both orders work: `subscribe(callback, [types])` and the seed's `subscribe(MemoryEventType.CREATED,
        callback)` (one type, or a list of types, first)."""
        if not callable(callback) and callable(event_types):
            callback, event_types = event_types, callback
        if not callable(callback):
            raise ValidationError(f"subscribe() needs a callable, got {type(callback).__name__}")
        if isinstance(event_types, str):
            event_types = [event_types]
        try:
            types = None if event_types is None else frozenset(MemoryEventType(t) for t in event_types)  # type: ignore[union-attr]
        except (ValueError, TypeError):
            raise ValidationError(
                f"event types must be among {[t.value for t in MemoryEventType]}, got {event_types!r}"
            ) from None
        with self._lock:
            self._subs.append((callback, types))
        return callback

    def unsubscribe(self, callback: Subscriber) -> bool:
        with self._lock:
            before = len(self._subs)
            self._subs = [(cb, t) for cb, t in self._subs if cb is not callback]
            return len(self._subs) != before

    def emit(self, event: MemoryEvent) -> None:
        with self._lock:
            subs = list(self._subs)
        for callback, types in subs:
            if types is not None and event.type not in types:
                continue
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event.type)

    def emit_all(self, events: Iterable[MemoryEvent]) -> None:
        if not self._subs:
            return
        for event in events:
            self.emit(event)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subs)


_default = EventEmitter()


def get_emitter() -> EventEmitter:
    """The process-wide emitter every `ALMA` uses unless given its own."""
    return _default
