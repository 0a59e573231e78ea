"""Checkpoint write / resume latency at 1 KB, 20 KB and 1 MB states, and cleanup of 100k checkpoints.

    .venv/bin/python benchmarks/bench_workflow.py [--cleanup-count 100000]

Prints a table (median and p95 in milliseconds) on a fresh SQLite file in a temp directory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import percentile

from alma_core import ALMA
from alma_core.storage import PutRecord, Record


def _state(size: int) -> dict[str, object]:
    """A realistic-ish state of about `size` bytes once serialized: messages plus some structure."""
    chunk = "lorem ipsum dolor sit amet " * 4
    messages = [{"role": "user", "content": chunk, "n": i} for i in range(max(1, size // 140))]
    return {"messages": messages, "step": 3, "done": ["plan", "code"]}


def bench_latency(alma: ALMA, label: str, size: int, runs: int) -> list[str]:
    state = _state(size)
    workflow = f"bench-{label}"
    writes, reads = [], []
    for _ in range(runs):
        start = time.perf_counter()
        made = alma.checkpoint(workflow, state)
        writes.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        alma.resume(workflow)
        reads.append((time.perf_counter() - start) * 1000)
    w50, w95 = percentile(writes, 50), percentile(writes, 95)
    r50, r95 = percentile(reads, 50), percentile(reads, 95)
    return [label, f"{made.size_bytes:,}", str(runs), f"{w50:.2f}", f"{w95:.2f}", f"{r50:.2f}", f"{r95:.2f}"]


def bench_cleanup(alma: ALMA, count: int) -> tuple[float, float, int]:
    """Insert `count` old checkpoints directly (fast path), then time cleanup_checkpoints."""
    old = time.time() - 30 * 86400
    value = b'{"step":1}'
    start = time.perf_counter()
    with alma.storage.transaction() as tx:
        for i in range(count):
            meta: dict[str, Any] = {"workflow_id": f"wf-{i % 100}", "agent": None, "parent_id": None, "meta": {}}
            tx.execute(PutRecord(Record(alma.project_id, f"wf/wf-{i % 100}/checkpoints", uuid.uuid4().hex, value,
                                        meta, created_at=old, updated_at=old)))  # fmt: skip
    insert_s = time.perf_counter() - start
    start = time.perf_counter()
    gone = alma.cleanup_checkpoints(older_than_days=7, keep_latest=1)
    return insert_s, time.perf_counter() - start, gone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanup-count", type=int, default=100_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ALMA(project_id="bench", storage=Path(tmp) / "alma.db", embedder="mock") as alma,
    ):
        rows = [
            bench_latency(alma, "1 KB", 1_000, 200),
            bench_latency(alma, "20 KB", 20_000, 200),
            bench_latency(alma, "1 MB", 1_000_000, 30),
        ]
        header = ["state", "bytes", "runs", "write p50 ms", "write p95 ms", "resume p50 ms", "resume p95 ms"]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        print("-+-".join("-" * w for w in widths))
        for row in rows:
            print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        insert_s, cleanup_s, gone = bench_cleanup(alma, args.cleanup_count)
        print(f"\ncleanup: {gone:,} of {args.cleanup_count:,} old checkpoints in 100 workflows deleted in "
              f"{cleanup_s:.2f} s (inserting them took {insert_s:.2f} s; keep_latest=1)")  # fmt: skip


if __name__ == "__main__":
    main()
