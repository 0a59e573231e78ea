"""How many cores one onnxruntime run of MiniLM uses, chosen per call from how busy the machine is right now.

A second intra-op thread makes a query ~1.3x faster when a core is idle, and ~2.4x slower when it is not (the
pool's half of each product waits for a core, and its spinning takes CPU from the others): measured in
docs/performance.md. A choice made once at load (`os.getloadavg()`) goes stale as the load changes, so
`LocalEmbedder(threads="auto")` keeps two sessions over the same weights, one thread and `WIDE`, and picks one
before each run from `running_tasks()`: the runnable tasks at that instant (the caller included), read from
/proc/loadavg in ~3 us. Where that cannot be read (no /proc: macOS, Windows), every run keeps one thread.
"""

from __future__ import annotations

import os
import threading

WIDE = 2
"""Threads of the wide session: on the 2-core machine measured, the second core is the whole gain."""

MIN_TOKENS = 1
"""Tokens in a run (texts x padded length) from which the wide session may run it: two threads gained from the
shortest text up (3 tokens, [CLS] and [SEP] included: 1.76 against 2.11 ms at an idle instant), so none is kept
on one thread for its size."""

_LOADAVG = "/proc/loadavg"
_fd: list[int | None] = []  # opened once; [None] where there is no /proc
_fd_lock = threading.Lock()


def _loadavg_fd() -> int | None:
    if not _fd:
        with _fd_lock:
            if not _fd:
                try:
                    _fd.append(os.open(_LOADAVG, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
                except OSError:
                    _fd.append(None)
    return _fd[0]


def running_tasks() -> int | None:
    """Tasks runnable on the machine at this instant, the calling thread included (the R of /proc/loadavg's
    "R/total"); None where it cannot be read."""
    fd = _loadavg_fd()
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 128, 0).split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else the CPU count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_for(tokens: int, running: int | None, cores: int) -> int:
    """Threads for one run of `tokens` tokens when `running` tasks are runnable (the caller included) on `cores`
    cores: `WIDE` while a core stands idle beside the caller's, else 1 (and 1 when the signal is unknown)."""
    if running is None or cores < 2 or tokens < MIN_TOKENS:
        return 1
    return WIDE if cores - running >= WIDE - 1 else 1
