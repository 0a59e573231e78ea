"""In-memory vector matrices for exact cosine search, one per (project, agent, type).

Each matrix remembers the store generation it reflects. The owning store applies its own commits to
the matrix in place (append, overwrite, tombstone) and reloads it when another process has written.

A search is one matrix-vector product, which is memory-bound: it runs with one BLAS thread
(`alma_core/_blas.py` says why).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

from .._blas import single_blas_thread


@dataclass
class VectorRow:
    id: str
    vector: np.ndarray
    user_id: str | None
    workflow_id: str | None
    category: str | None


@dataclass
class VectorMatrix:
    """Rows of unit vectors with the few columns dense search filters on."""

    dim: int
    generation: int = -1
    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    valid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    user_ids: list[str | None] = field(default_factory=list)
    workflow_ids: list[str | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.matrix.shape[1] != self.dim:
            self.matrix = np.zeros((16, self.dim), dtype=np.float32)
            self.valid = np.zeros(16, dtype=bool)

    @property
    def size(self) -> int:
        return len(self.ids)

    def upsert(self, row: VectorRow) -> None:
        pos = self.index.get(row.id)
        if pos is None:
            pos = len(self.ids)
            if pos >= self.matrix.shape[0]:
                grow = max(16, self.matrix.shape[0])
                self.matrix = np.vstack([self.matrix, np.zeros((grow, self.dim), dtype=np.float32)])
                self.valid = np.concatenate([self.valid, np.zeros(grow, dtype=bool)])
            self.ids.append(row.id)
            self.user_ids.append(row.user_id)
            self.workflow_ids.append(row.workflow_id)
            self.categories.append(row.category)
            self.index[row.id] = pos
        else:
            self.user_ids[pos], self.workflow_ids[pos] = row.user_id, row.workflow_id
            self.categories[pos] = row.category
        self.matrix[pos] = row.vector
        self.valid[pos] = True

    def remove(self, memory_id: str) -> None:
        pos = self.index.get(memory_id)
        if pos is not None:
            self.valid[pos] = False

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top-k (id, cosine) among valid rows, and among `mask` rows when given."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        with single_blas_thread():
            sims = self.matrix[:n] @ query
        keep = self.valid[:n] if mask is None else (self.valid[:n] & mask)
        sims = np.where(keep, sims, -np.inf)
        count = int(keep.sum())
        if count == 0:
            return []
        k = min(k, count)
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.ids[i], float(sims[i])) for i in top if np.isfinite(sims[i])][:k]

    def column_mask(self, column: str, allowed: AbstractSet[str | None]) -> np.ndarray:
        values = getattr(self, column)
        return np.fromiter((v in allowed for v in values), dtype=bool, count=len(values))
