"""What the benchmark scripts share: percentiles and per-call timing (scripts import it as `_common`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

__all__ = ["atimed_ms", "percentile", "timed_ms"]


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, linearly interpolated (numpy's default; q=50 is the median)."""
    return float(np.percentile(samples, q))


def timed_ms(call: Callable[[int], Any], n: int) -> list[float]:
    """Wall time in milliseconds of `call(i)` for i in 0..n-1."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def atimed_ms(call: Callable[[int], Awaitable[Any]], n: int) -> list[float]:
    """Wall time in milliseconds of `await call(i)` for i in 0..n-1."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - start) * 1000)
    return out
