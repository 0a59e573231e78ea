"""Memory events: the core fires them after a write commits (never for a rolled-back one).

A raising subscriber is logged and never breaks the write or the other subscribers.

Durable sinks (the webhook outbox) are *outboxes*: `add_outbox(sink)`. Inside a write's transaction the
core asks each outbox for the records its events become (`outbox_records`) and writes them in that same
transaction, so they exist exactly when the write committed; after the commit it calls `committed` so
the outbox's worker wakes up. `WebhookConfig` and `WebhookManager` (alma_core.webhooks) are importable
from here too, as the seed wrote them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import ValidationError
from ._models import utcnow

if TYPE_CHECKING:
    from .webhooks import WebhookConfig, WebhookManager

__all__ = [
    "EventEmitter",
    "MemoryEvent",
    "MemoryEventType",
    "Outbox",
    "WebhookConfig",
    "WebhookManager",
    "get_emitter",
]

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


class Outbox(Protocol):
    """A durable sink: turns a write's events into records of the same store, in the write's transaction."""

    def outbox_records(self, storage: Any, events: Sequence[MemoryEvent]) -> list[Any]: ...

    def committed(self, storage: Any) -> None: ...


class EventEmitter:
    """A thread-safe synchronous publish/subscribe hub."""

    def __init__(self) -> None:
        self._subs: list[tuple[Subscriber, frozenset[MemoryEventType] | None]] = []
        self._outboxes: list[Outbox] = []
        self._lock = threading.Lock()

    def add_outbox(self, outbox: Outbox) -> None:
        with self._lock:
            if outbox not in self._outboxes:
                self._outboxes.append(outbox)

    def remove_outbox(self, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes = [o for o in self._outboxes if o is not outbox]

    @property
    def has_outbox(self) -> bool:
        return bool(self._outboxes)

    def outbox_records(self, storage: Any, events: Sequence[MemoryEvent]) -> list[Any]:
        """The records every outbox wants written with these events (called inside the write transaction;
        an outbox that raises fails the write, so nothing is half-written)."""
        return [r for outbox in list(self._outboxes) for r in outbox.outbox_records(storage, events)]

    def committed(self, storage: Any) -> None:
        for outbox in list(self._outboxes):
            try:
                outbox.committed(storage)
            except Exception:
                log.exception("outbox %r failed after a commit", outbox)

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


def __getattr__(name: str) -> Any:
    if name in ("WebhookConfig", "WebhookManager"):  # the seed imports them from here; loaded on first use
        from . import webhooks

        return getattr(webhooks, name)
    raise AttributeError(f"module 'alma_core.events' has no attribute {name!r}")
