"""`Subscriptions`: handlers an adapter puts on crewai's event bus, taken off together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._deps import require_crewai

require_crewai()

from crewai.events import crewai_event_bus  # noqa: E402

__all__ = ["Subscriptions"]


class Subscriptions:
    """The (event type, handler) pairs one adapter registered on `crewai_event_bus`."""

    def __init__(self) -> None:
        self._handlers: list[tuple[type, Callable[..., Any]]] = []

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def on(self, event_type: type, handler: Callable[..., Any]) -> None:
        crewai_event_bus.on(event_type)(handler)
        self._handlers.append((event_type, handler))

    def off(self) -> None:
        """Take every handler off, after the events already emitted are handled."""
        crewai_event_bus.flush()
        for event_type, handler in self._handlers:
            crewai_event_bus.off(event_type, handler)
        self._handlers.clear()
