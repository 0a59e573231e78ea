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

WIDE_AFTER = 2
"""Runs that must have asked for the wide session before it is built (on a thread, while they run on one): a
process that embeds once (a CLI call) never builds a session it would not use."""

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


_QUOTAS = (
    "/sys/fs/cgroup/cpu.max",  # cgroup v2
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",  # v1 (with cpu.cfs_period_us beside it)
    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
)


def quota_cores(quota: str, period: str | None = None) -> int | None:
    """Whole cores a cgroup CPU quota allows, from cgroup v2's cpu.max ("max 100000", "150000 100000") or v1's
    cfs_quota_us with its cfs_period_us ("-1" for none); None for no quota (or one that does not parse)."""
    fields = quota.split()
    if period is not None:
        fields = [fields[0] if fields else "", period.strip()]
    try:
        if len(fields) != 2 or fields[0] in ("max", "-1"):
            return None
        limit, span = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return max(1, limit // span) if limit > 0 and span > 0 else None


def _quota() -> int | None:
    for path in _QUOTAS:
        try:
            with open(path) as fh:
                quota = fh.read()
            if path.endswith("cfs_quota_us"):
                with open(path.replace("quota", "period")) as fh:
                    return quota_cores(quota, fh.read())
            return quota_cores(quota)
        except OSError:
            continue
    return None


def usable_cores() -> int:
    """The cores this process may use: its affinity (else the CPU count), capped by a container's CPU quota (a
    2-thread run on a 1-core quota waits for the quota as for a busy core; /proc/loadavg does not see it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _quota()
    return min(cores, quota) if quota is not None else cores


def threads_for(tokens: int, running: int | None, cores: int) -> int:
    """Threads for one run of `tokens` tokens when `running` tasks are runnable (the caller included) on `cores`
    cores: `WIDE` while a core stands idle beside the caller's, else 1 (and 1 when the signal is unknown)."""
    if running is None or cores < 2 or tokens < MIN_TOKENS:
        return 1
    return WIDE if cores - running >= WIDE - 1 else 1
