"""Async twins of sync methods: SQLite has no async driver, so they run on a worker thread."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["to_thread"]

_T = TypeVar("_T")


def to_thread(method: Callable[..., _T]) -> Callable[..., Any]:
    """The async twin of a sync method: runs it on a worker thread so the event loop never blocks."""

    @functools.wraps(method)
    async def twin(self: Any, *args: Any, **kwargs: Any) -> _T:
        import asyncio  # here, not at the top: asyncio is ~10% of a cold `from alma_core import ALMA`

        return await asyncio.to_thread(method, self, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{method.__name__}"
    twin.__doc__ = f"Async twin of `{method.__name__}` (runs on a worker thread)."
    return twin
