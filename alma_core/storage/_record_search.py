"""Record search (`SearchRecords`): filters on a record's JSON value and ranking by a stored vector.

Written once here: the filter semantics (LangGraph's: equality, nested dicts, `$eq $ne $gt $gte $lt
$lte`), their SQLite translation (so a backend filters in its query, not in Python), and the ranking in
Python for a backend that has no pushdown of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._errors import ValidationError
from ._base import Record, SearchRecords

__all__ = ["encode_vector", "filter_sql", "matches", "rank", "search_in_python"]

_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATORS = frozenset({"$eq", "$ne", *_COMPARE})


def encode_vector(vector: np.ndarray) -> bytes:
    """A vector record's value (see `SearchRecords`): float32 bytes."""
    return np.asarray(vector, dtype=np.float32).tobytes()


def matches(value: Any, wanted: Any) -> bool:
    """Does `value` satisfy `wanted`: equality, a nested dict of conditions, or `$` operators."""
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(matches(value.get(k), v) for k, v in wanted.items())
    return bool(value == wanted)


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op not in _OPERATORS:
        raise ValidationError(f"unsupported filter operator {op!r} (use one of {sorted(_OPERATORS)})")
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if value is None or isinstance(value, (dict, list, str)) or isinstance(arg, (dict, list, str)):
        return False if value is None else _ordered(value, op, arg)
    return _ordered(float(value), op, float(arg))


def _ordered(value: Any, op: str, arg: Any) -> bool:
    try:
        return bool({"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op])
    except TypeError:
        return False


def filter_sql(filter: dict[str, Any] | None, column: str = "value") -> tuple[str, list[Any]]:
    """The filter as an SQLite condition on a JSON text `column` (same semantics as `matches`)."""
    clauses: list[str] = []
    args: list[Any] = []
    for path, wanted in _conditions(filter or {}, "$"):
        _clause(path, wanted, column, clauses, args)
    return " AND ".join(clauses) or "1", args


def _conditions(filter: dict[str, Any], base: str) -> Iterable[tuple[str, Any]]:
    for key, wanted in filter.items():
        path = f'{base}."{str(key).replace(chr(34), chr(34) * 2)}"'
        if isinstance(wanted, dict) and wanted and not any(str(k).startswith("$") for k in wanted):
            yield path, {}  # the nested value must be an object
            yield from _conditions(wanted, path)
        else:
            yield path, wanted


def _clause(path: str, wanted: Any, column: str, clauses: list[str], args: list[Any]) -> None:
    extract, kind = f"json_extract({column}, ?)", f"json_type({column}, ?)"
    if isinstance(wanted, dict) and not wanted:
        clauses.append(f"{kind} = 'object'")
        args.append(path)
        return
    ops = wanted if isinstance(wanted, dict) else {"$eq": wanted}
    for op, arg in ops.items():
        if op not in _OPERATORS:
            raise ValidationError(f"unsupported filter operator {op!r} (use one of {sorted(_OPERATORS)})")
        if op in ("$eq", "$ne"):
            same = f"COALESCE({_equal_sql(extract, kind, arg, path, args)}, 0)"  # NULL-safe under NOT
            clauses.append(same if op == "$eq" else f"NOT ({same})")
        elif arg is None or isinstance(arg, (dict, list)):
            clauses.append("0")
        else:
            numeric = not isinstance(arg, str)
            clauses.append(f"({kind} IN {_NUMERIC if numeric else _TEXT} AND {extract} {_COMPARE[op]} ?)")
            args.extend([path, path, float(arg) if numeric else arg])


_NUMERIC, _TEXT = "('integer', 'real', 'true', 'false')", "('text')"


def _equal_sql(extract: str, kind: str, arg: Any, path: str, args: list[Any]) -> str:
    if arg is None:  # a missing key equals None too, as in `dict.get`
        args.append(path)
        return f"COALESCE({kind}, 'null') = 'null'"
    if isinstance(arg, (dict, list)):
        args.extend([path, json.dumps(arg, separators=(",", ":"), default=str)])
        return f"{extract} = json(?)"
    if isinstance(arg, bool):
        args.append(path)
        return f"{kind} = '{'true' if arg else 'false'}'"
    if isinstance(arg, (int, float)):
        args.extend([path, path, arg])
        return f"({kind} IN ('integer', 'real', 'true', 'false') AND {extract} = ?)"
    args.extend([path, path, str(arg)])
    return f"({kind} = 'text' AND {extract} = ?)"


def rank(
    candidates: Sequence[Any], vectors: np.ndarray | None, has_vector: np.ndarray, query: np.ndarray | None
) -> list[tuple[Any, float | None]]:
    """Candidates with their cosine similarity to `query`, best first; those without a vector last,
    in their given order. Without a query: the given order, no scores."""
    if query is None or not len(candidates):
        return [(c, None) for c in candidates]
    scores = np.full(len(candidates), -np.inf, dtype=np.float32)
    if vectors is not None and has_vector.any() and vectors.shape[1] == len(query):
        q = np.asarray(query, dtype=np.float32)
        sub = vectors[has_vector]
        norms = np.linalg.norm(sub, axis=1) * (float(np.linalg.norm(q)) or 1.0)
        scores[has_vector] = (sub @ q) / np.where(norms == 0, 1.0, norms)
    else:
        has_vector = np.zeros(len(candidates), dtype=bool)
    order = np.argsort(-scores, kind="stable")
    return [(candidates[i], float(scores[i]) if has_vector[i] else None) for i in order]


def search_in_python(
    records: Sequence[Record], vectors: Sequence[Record], op: SearchRecords
) -> list[tuple[Record, float | None]]:
    """`SearchRecords` over already listed records and vector records: for backends without pushdown."""
    records = sorted(records, key=lambda r: (-r.seq, r.namespace, r.key))
    kept = [r for r in records if all(matches(_json(r).get(k), v) for k, v in (op.filter or {}).items())]
    by_item = {(op.namespace + v.namespace[len(op.vectors or "") :], v.key): v.value for v in vectors if v.value}
    found = [by_item.get((r.namespace, r.key)) for r in kept]
    dim = next((len(b) // 4 for b in found if b), 0)
    has = np.array([b is not None and len(b) == dim * 4 for b in found], dtype=bool)
    matrix = None
    if op.vector is not None and has.any():
        zero = bytes(dim * 4)
        matrix = np.frombuffer(b"".join(b if ok and b else zero for b, ok in zip(found, has, strict=True)), np.float32)
        matrix = matrix.reshape(len(found), dim)
    ranked = rank(kept, matrix, has, op.vector)
    return ranked[op.offset : op.offset + op.limit]


def _json(record: Record) -> dict[str, Any]:
    try:
        value = json.loads(record.value or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
