"""Record search (`SearchRecords`): filters on a record's JSON value and ranking by a stored vector.

Written once here: the filter semantics (LangGraph's: equality, nested dicts, `$eq $ne $gt $gte $lt
$lte`), their SQLite translation (so a backend filters in its query, not in Python), and the ranking in
Python for a backend that has no pushdown of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    """Does `value` satisfy `wanted`: `$` operators, a nested dict of conditions (the value holds at least
    those keys), a list matched element by element, or equality (Python's: `1 == 1.0 == True`)."""
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(matches(v, w) for v, w in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op not in _OPERATORS:
        raise ValidationError(f"unsupported filter operator {op!r} (use one of {sorted(_OPERATORS)})")
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if isinstance(value, str) and isinstance(arg, str):
        return _ordered(value, op, arg)
    if not _is_number(value) or not _is_number(arg):
        return False  # a number is compared with a number, text with text; nothing else matches
    return _ordered(float(value), op, float(arg))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool included, as LangGraph's float() reads it


def _ordered(value: Any, op: str, arg: Any) -> bool:
    return bool({"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op])


def filter_sql(filter: dict[str, Any] | None, column: str = "value") -> tuple[str, list[Any]]:
    """The filter as an SQLite condition on a JSON text `column` (same semantics as `matches`)."""
    clauses: list[str] = []
    args: list[Any] = []
    for key, wanted in (filter or {}).items():
        _condition(_member("$", key), wanted, column, clauses, args)
    return " AND ".join(clauses) or "1", args


def _member(path: str, key: Any) -> str:
    return f'{path}."{str(key).replace(chr(34), chr(34) * 2)}"'


def _condition(path: str, wanted: Any, column: str, clauses: list[str], args: list[Any]) -> None:
    """`matches(<the value at path>, wanted)` as SQL clauses."""
    kind = f"json_type({column}, ?)"
    if isinstance(wanted, dict) and any(str(k).startswith("$") for k in wanted):
        for op, arg in wanted.items():
            clauses.append(_operator_sql(path, op, arg, column, args))
    elif isinstance(wanted, dict):
        clauses.append(f"{kind} = 'object'")
        args.append(path)
        for key, inner in wanted.items():
            _condition(_member(path, key), inner, column, clauses, args)
    elif isinstance(wanted, (list, tuple)):
        clauses.append(f"({kind} = 'array' AND json_array_length({column}, ?) = {len(wanted)})")
        args.extend([path, path])
        for i, inner in enumerate(wanted):
            _condition(f"{path}[{i}]", inner, column, clauses, args)
    else:
        clauses.append(f"COALESCE({_equal_sql(path, wanted, column, args)}, 0)")


def _operator_sql(path: str, op: str, arg: Any, column: str, args: list[Any]) -> str:
    if op not in _OPERATORS:
        raise ValidationError(f"unsupported filter operator {op!r} (use one of {sorted(_OPERATORS)})")
    if op in ("$eq", "$ne"):
        same = f"COALESCE({_equal_sql(path, arg, column, args)}, 0)"  # NULL-safe under NOT
        return same if op == "$eq" else f"NOT ({same})"
    if not isinstance(arg, str) and not _is_number(arg):
        return "0"
    extract, kind = f"json_extract({column}, ?)", f"json_type({column}, ?)"
    numeric = not isinstance(arg, str)
    args.extend([path, path, _number(arg) if numeric else arg])
    return f"({kind} IN {_NUMERIC if numeric else _TEXT} AND {extract} {_COMPARE[op]} ?)"


_NUMERIC, _TEXT = "('integer', 'real', 'true', 'false')", "('text')"


def _number(arg: Any) -> int | float:
    """A number as SQLite binds it: a bool as 0/1 (JSON true reads as 1), an int beyond 64 bits as a float."""
    if isinstance(arg, bool) or not isinstance(arg, int):
        return float(arg)
    return arg if -(2**63) <= arg < 2**63 else float(arg)


def _equal_sql(path: str, arg: Any, column: str, args: list[Any], member: bool = False) -> str:
    """Python's `value == arg` for the value at `path`: dicts by their items, lists element by element,
    numbers (bools included) by value. A missing key equals None, unless it is a `member` of an object."""
    extract, kind = f"json_extract({column}, ?)", f"json_type({column}, ?)"
    args.append(path)
    if arg is None:
        return f"{kind} = 'null'" if member else f"COALESCE({kind}, 'null') = 'null'"
    if isinstance(arg, str):
        args.extend([path, arg])
        return f"({kind} = 'text' AND {extract} = ?)"
    if _is_number(arg):
        args.extend([path, _number(arg)])
        return f"({kind} IN {_NUMERIC} AND {extract} = ?)"
    if isinstance(arg, dict):
        members = [_member(path, k) for k in arg]
        rest = f"json_remove({column}{', ?' * len(members)})" if members else column
        parts = [f"{kind} = 'object'", f"json_extract({rest}, ?) = '{{}}'"]  # no key besides these
        args.extend([*members, path])
        parts += [_equal_sql(m, v, column, args, member=True) for m, v in zip(members, arg.values(), strict=True)]
        return f"({' AND '.join(parts)})"
    if isinstance(arg, (list, tuple)):
        parts = [f"{kind} = 'array'", f"json_array_length({column}, ?) = {len(arg)}"]
        args.append(path)
        parts += [_equal_sql(f"{path}[{i}]", v, column, args) for i, v in enumerate(arg)]
        return f"({' AND '.join(parts)})"
    args.extend([path, str(arg)])  # any other object: as json.dumps(default=str) stored it
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
