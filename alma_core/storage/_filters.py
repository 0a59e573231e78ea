"""A `MemoryFilter` in the forms the SQLite store needs: an SQL condition, a mask over a scope's vector
matrix, and whether it can match anything at all (Chroma asks that too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import MemoryFilter
from ._vectors import VectorMatrix

__all__ = ["dense_mask", "matches_nothing", "memory_where"]


def memory_where(f: MemoryFilter, alias: str = "") -> tuple[str, list[Any]]:
    """The filter as an SQL condition on `memories` (columns prefixed by `alias.`), with its arguments."""
    p = f"{alias}." if alias else ""
    clauses: list[str] = [f"{p}project_id = ?"]
    args: list[Any] = [f.project_id]

    # With ids, the primary key is the best index; `+column` keeps the planner off the scope index.
    plus = "+" if f.ids is not None else ""

    def _in(column: str, values: Sequence[Any]) -> None:
        clauses.append(f"{plus if column != 'id' else ''}{p}{column} IN ({','.join('?' * len(values))})")
        args.extend(values)

    if f.agents is not None:
        _in("agent", f.agents)
    if f.types is not None:
        _in("type", [str(t) for t in f.types])
    if f.ids is not None:
        _in("id", f.ids)
    if f.categories is not None:
        _in("category", f.categories)
    for column, op, value in f.scalar_conditions():
        clauses.append(f"{p}{column} {op} ?")
        args.append(value)
    return " AND ".join(clauses), args


def matches_nothing(f: MemoryFilter) -> bool:
    """A filter that matches nothing (an empty list of agents, types, ids or categories)."""
    return any(v is not None and len(v) == 0 for v in (f.agents, f.types, f.ids, f.categories))


def dense_mask(matrix: VectorMatrix, f: MemoryFilter, allowed: set[str] | None) -> np.ndarray | None:
    """The matrix rows the filter's user, workflow, categories and `allowed` ids keep (None: all)."""
    masks = [
        matrix.column_mask(column, values)
        for column, values in (
            ("user_ids", None if f.user_id is None else {f.user_id}),
            ("workflow_ids", None if f.workflow_id is None else {f.workflow_id}),
            ("categories", None if f.categories is None else set(f.categories)),
        )
        if values is not None
    ]
    if allowed is not None:
        masks.append(np.fromiter((i in allowed for i in matrix.ids), dtype=bool, count=matrix.size))
    return np.logical_and.reduce(masks) if masks else None
