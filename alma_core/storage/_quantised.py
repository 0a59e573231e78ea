"""Int8 copies of unit vectors and the exhaustive scan over them that proposes dense-search candidates.

A row is stored as 384 int8 codes scaled to its own largest component, plus that scale: a quarter of the
float32 bytes, and scores within ~0.001 of the exact cosine (benchmarks/bench_quantised.py measures
recall). The scan is memory-bound like the float32 product it replaces, so it reads a quarter of the
bytes: with `numkong` (installed with usearch, extra `ann`) one SIMD int8 dot product per row, else numpy
(int8 rows widened to float32 a block at a time, then one BLAS product per block: still faster than a
float32 matrix, which is 4x the memory traffic). Callers rescore the proposed pool exactly.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .._blas import single_blas_thread

_BLOCK = 1024  # rows widened at once by the numpy scan (1.5 MB of float32 at 384-d: stays in cache)
_kernel: dict[str, Any] = {}


def quantise(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Int8 codes of float `rows` (one per row, or a single vector) and each row's scale (code * scale ~ value)."""
    rows = np.asarray(rows, dtype=np.float32)
    scales = np.abs(rows).max(axis=-1, keepdims=True) / 127
    scales[scales == 0] = 1.0  # an all-zero row: its codes are zero whatever the scale
    return np.rint(rows / scales).astype(np.int8), scales[..., 0].astype(np.float32)


def quantise_query(query: np.ndarray) -> np.ndarray:
    """`quantise(query)[0]` of one vector: the same operations on a scalar scale (fewer numpy calls)."""
    query = np.asarray(query, dtype=np.float32)
    scale = np.abs(query).max() / 127
    return np.rint(query / (scale if scale != 0 else np.float32(1.0))).astype(np.int8)


def numkong() -> Any:
    """The numkong module when installed (extra `ann`), else None; looked up once."""
    if "numkong" not in _kernel:
        try:
            _kernel["numkong"] = importlib.import_module("numkong")
        except ImportError:
            _kernel["numkong"] = None
    return _kernel["numkong"]


class Int8Rows:
    """Growable int8 codes and per-row scales, with the approximate scores of a query against them."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.codes = np.zeros((capacity, dim), dtype=np.int8)
        self.scales = np.ones(capacity, dtype=np.float32)

    @classmethod
    def of(cls, vectors: np.ndarray, capacity: int) -> Int8Rows:
        rows = cls(vectors.shape[1], max(capacity, len(vectors)))
        rows.set(0, vectors)
        return rows

    @property
    def capacity(self) -> int:
        return len(self.codes)

    def grow(self, capacity: int) -> None:
        if capacity > len(self.codes):
            extra = capacity - len(self.codes)
            self.codes = np.concatenate([self.codes, np.zeros((extra, self.codes.shape[1]), dtype=np.int8)])
            self.scales = np.concatenate([self.scales, np.ones(extra, dtype=np.float32)])

    def set(self, start: int, vectors: np.ndarray) -> None:
        """Quantise float32 `vectors` into rows start, start + 1, ..."""
        codes, scales = quantise(vectors)
        self.codes[start : start + len(vectors)] = codes
        self.scales[start : start + len(vectors)] = scales

    def scores(self, query: np.ndarray, n: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Approximate dot products of `query` with rows [0, n), or with the given row positions."""
        codes = self.codes[:n] if rows is None else self.codes[rows]
        scales = self.scales[:n] if rows is None else self.scales[rows]
        q = quantise_query(query)  # the query's own scale is common to every row: it cannot change the order
        out = np.empty(len(codes), dtype=np.float32)
        if len(codes) == 0:
            return out
        nk = numkong()
        if nk is not None:
            nk.cdist(q[None, :], codes, metric="dot", out=out[None, :])
        else:
            wide = np.empty((min(_BLOCK, len(codes)), codes.shape[1]), dtype=np.float32)
            qf = q.astype(np.float32)
            with single_blas_thread():
                for start in range(0, len(codes), _BLOCK):
                    block = codes[start : start + _BLOCK]
                    np.copyto(wide[: len(block)], block, casting="unsafe")
                    np.dot(wide[: len(block)], qf, out=out[start : start + len(block)])
        out *= scales
        return out
