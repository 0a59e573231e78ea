"""One BLAS thread around ALMA's own numpy products (vector search, the local embedder).

A matrix-vector product is memory-bound, and the small products of a short text through MiniLM are too
small to split: BLAS threads barely speed them up on an idle machine and slow them down many times over on
a busy one (threads wait for a core). So when `threadpoolctl` is installed, these products run with one BLAS
thread; the previous thread count is restored as soon as none of them is running, so the caller's own numpy
code keeps its settings.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"controllers": None, "active": 0, "saved": []}


def _blas_controllers() -> list[Any]:
    if _blas_state["controllers"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_state["controllers"] = []
        else:
            _blas_state["controllers"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas_state["controllers"]  # type: ignore[no-any-return]


_LOCAL_SETTERS = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_")


def _thread_local_setters() -> list[Any]:
    """OpenBLAS >= 0.3.27 keeps a thread count per calling thread: a worker thread (the retriever embeds
    queries on one) ignores the global count and spins up every core, 10-25x slower on a busy machine."""
    if "local" not in _blas_state:
        setters = []
        for c in _blas_controllers():
            if getattr(c, "internal_api", "") == "openblas":
                setter = next((getattr(c.dynlib, n) for n in _LOCAL_SETTERS if hasattr(c.dynlib, n)), None)
                if setter is not None:
                    setter.restype = ctypes.c_int
                    setter.argtypes = [ctypes.c_int]
                    setters.append(setter)
        _blas_state["local"] = setters
    return _blas_state["local"]  # type: ignore[no-any-return]


class single_blas_thread:
    """Run the block with one BLAS thread (re-entrant and thread-safe; a no-op without threadpoolctl). A
    class, not a generator: ~2x cheaper on entry and exit (a dense search enters it once or twice)."""

    __slots__ = ("_local", "_previous")

    def __enter__(self) -> None:
        with _blas_lock:
            self._local = local = _thread_local_setters()
        self._previous = [setter(1) for setter in local]
        with _blas_lock:
            controllers = _blas_controllers()
            if _blas_state["active"] == 0:
                _blas_state["saved"] = saved = [c.num_threads for c in controllers]
                for c, n in zip(controllers, saved, strict=True):
                    if n != 1:
                        c.set_num_threads(1)
            _blas_state["active"] += 1

    def __exit__(self, *exc: object) -> None:
        with _blas_lock:
            _blas_state["active"] -= 1
            if _blas_state["active"] == 0:
                for c, n in zip(_blas_controllers(), _blas_state["saved"], strict=True):
                    if n != 1:
                        c.set_num_threads(n)
        for setter, n in zip(self._local, self._previous, strict=True):
            setter(n)
