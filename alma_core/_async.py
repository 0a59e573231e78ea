"""Async twins of sync methods.

`to_thread(method)`: the method on a worker thread (SQLite has no async driver). A method written as a
plan (`alma_core._plans`) with `@planned` gets its sync form, and `twin(method)` its async form, which
runs the plan's storage steps natively where the backend can (PostgreSQL) and its CPU steps on threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["planned", "to_thread", "twin"]

_T = TypeVar("_T")
_S = TypeVar("_S")
_P = ParamSpec("_P")


def to_thread(method: Callable[..., _T]) -> Callable[..., Any]:
    """The async twin of a sync method: runs it on a worker thread so the event loop never blocks."""

    @functools.wraps(method)
    async def twin(self: Any, *args: Any, **kwargs: Any) -> _T:
        import asyncio  # here, not at the top: asyncio is ~10% of a cold `from alma_core import ALMA`

        return await asyncio.to_thread(method, self, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{method.__name__}"
    twin.__doc__ = f"Async twin of `{method.__name__}` (runs on a worker thread)."
    return twin


def planned(method: Callable[Concatenate[_S, _P], Generator[Any, Any, _T]]) -> Callable[Concatenate[_S, _P], _T]:
    """A method written as a plan -> the sync method that runs it on `self.storage`."""

    @functools.wraps(method)
    def sync(self: _S, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return _run()(self.storage, method(self, *args, **kwargs))  # type: ignore[attr-defined,no-any-return]

    return sync


@functools.cache
def _run() -> Callable[..., Any]:
    """`_plans.run`, imported at the first call (not at import time: see `to_thread`), then kept: an
    import statement in `sync` cost a lookup through the import system at every call."""
    from ._plans import run

    return run


def twin(method: Callable[Concatenate[_S, _P], _T]) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """The async twin of a `@planned` method: native storage steps on PostgreSQL, a thread elsewhere."""
    plan = method.__wrapped__  # type: ignore[attr-defined]

    @functools.wraps(method)
    async def atwin(self: _S, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        from ._plans import arun

        return await arun(self.storage, plan(self, *args, **kwargs))  # type: ignore[attr-defined,no-any-return]

    atwin.__name__ = atwin.__qualname__ = f"a{method.__name__}"
    atwin.__doc__ = (
        f"Async twin of `{method.__name__}` (storage natively async on PostgreSQL, on a worker thread elsewhere)."
    )
    return atwin
