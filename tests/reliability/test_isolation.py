"""Isolation against a model of who may see what: ~1,000 random operations over 2 projects x 3 agents
with sharing (see `_isolation`); benchmarks/reliability_soak.py runs 10,000."""

from __future__ import annotations

from pathlib import Path

from _isolation import run


def test_a_random_walk_never_leaks_loses_or_keeps_a_memory(tmp_path: Path) -> None:
    counts = run(tmp_path, ops=1000, seed=18)
    assert sum(counts.values()) == 1000
    assert all(counts.get(op, 0) > 0 for op in ("knowledge", "retrieve", "scoped", "delete_user", "transfer"))
