"""Argument checks and conversions shared by the public methods: one message per kind of bad input."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError as PydanticError

from ._errors import ValidationError
from ._models import MemoryType, utcnow

__all__ = [
    "as_utc",
    "build_model",
    "check_count",
    "check_days",
    "check_json",
    "check_memory",
    "check_number",
    "check_optional_text",
    "check_text",
    "first_error",
    "parse_success",
]

_SUCCESS = {"success", "succeeded", "successful", "pass", "passed", "ok", "true", "yes", "done", "1"}
_FAILURE = {"failure", "failed", "fail", "error", "false", "no", "0", "partial"}
_T = TypeVar("_T")


def first_error(exc: PydanticError) -> tuple[str, str]:
    """Where (a dotted field path) and what the first problem of a pydantic validation error is."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return where.encode("utf-8", "backslashreplace").decode("utf-8"), err["msg"]  # a key may be a lone surrogate


def check_text(name: str, value: Any) -> str:
    """`value` if it is a string with something besides whitespace, else `ValidationError`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string")
    return value


MAX_DEPTH = 32  # nesting of metadata values (JSON parsers and our readers recurse)
_LEAVES = (str, int, float, type(None), datetime, date, UUID)
_PLAIN = frozenset({str, int, bool, float, type(None), datetime})
_SAFE = frozenset({int, bool, type(None), datetime})  # leaves JSON always holds as written
_CONTAINERS = frozenset({dict, list})


def _bad_leaf(value: Any) -> str | None:
    """Why a leaf cannot be stored as JSON and read back unchanged, or None when it can."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone surrogate (not valid Unicode)"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value!r} (JSON has no NaN or infinity)"
    if not isinstance(value, _LEAVES):
        return f"is a {type(value).__name__} (not JSON-serialisable)"
    return None


def check_json(name: str, value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise `ValidationError` unless `value` is plain JSON that reads back as written: valid Unicode
    strings (no lone surrogates), finite numbers, bools, None, lists and string-keyed dicts at most
    `max_depth` deep (datetimes, dates and UUIDs are stored as strings). Iterative, so a 50,000-level
    value costs no recursion."""
    if type(value) in _PLAIN:  # most fields of a memory: nothing to walk
        if (why := _bad_leaf(value)) is not None:
            raise ValidationError(f"{name} {why}")
        return
    stack: list[tuple[str, Any, int]] = [(name, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise ValidationError(f"{where} is nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(f"{where} has a key {key!r} that is not a string")
                    if (why := _bad_leaf(key)) is not None:
                        raise ValidationError(f"{where} has a key that {why}")
                    stack.append((f"{where}.{key}", child, depth + 1))
            else:
                stack.extend((f"{where}[{i}]", child, depth + 1) for i, child in enumerate(item))
        elif (why := _bad_leaf(item)) is not None:
            raise ValidationError(f"{where} {why}")


def check_memory(memory: Any) -> None:
    """Every stored field of a memory (texts and metadata) is plain JSON: see `check_json`."""
    kind = type(memory).__name__
    extra = getattr(memory, "__pydantic_extra__", None)  # (a model's fields are its __dict__: pydantic's
    items = memory.__dict__.items() if not extra else [*memory.__dict__.items(), *extra.items()]  # own
    for field, value in items:  # iteration builds a list of them first, ~3x the time)
        if (type(value) is str and value.isascii()) or type(value) in _SAFE:  # most fields: nothing to check
            continue
        if type(value) in _CONTAINERS and not value:  # an empty metadata dict, an empty list
            continue
        if field not in ("score", "score_breakdown"):
            check_json(f"{kind}.{field}", value)


def check_optional_text(name: str, value: Any) -> str | None:
    """`value` if it is None or a string, else `ValidationError` (no silent str() of a number)."""
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a string or None, got {type(value).__name__}")
    return value


MAX_DAYS = 100_000.0  # about 270 years: later than any stored timestamp, and within datetime's range


def check_days(name: str, value: Any) -> float:
    """A finite number of days in 0..MAX_DAYS (a str, NaN, infinity or 1e308 is a `ValidationError`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_DAYS:
        raise ValidationError(f"{name} must be a number of days in 0..{MAX_DAYS:.0f}, got {value!r}")
    return float(value)


MAX_COUNT = 2**63 - 1  # SQLite's largest integer: a larger bound overflows the query (OverflowError)


def check_count(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise ValidationError(f"{name} must be an integer in {minimum}..2**63-1, got {value!r:.60}")


def check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValidationError(f"{name} must be a number >= 0, got {value!r}")


def build_model(cls: type[_T], **fields: Any) -> _T:
    """`cls` validated from `fields`; the first problem becomes a `ValidationError` naming the field."""
    try:
        return cls.model_validate(fields)  # type: ignore[attr-defined,no-any-return]
    except PydanticError as exc:
        where, msg = first_error(exc)
        raise ValidationError(f"{cls.__name__}.{where or cls.__name__}: {msg}") from None


def parse_success(outcome: bool | str) -> bool:
    """A task outcome as a bool: a bool, or a word such as "success" / "failed"."""
    if isinstance(outcome, bool):
        return outcome
    if isinstance(outcome, str):
        word = outcome.strip().lower()
        if word in _SUCCESS:
            return True
        if word in _FAILURE:
            return False
    raise ValidationError(f"outcome must be a bool or 'success' / 'failure', got {outcome!r}")


def as_utc(stamp: datetime | None) -> datetime:
    """An aware UTC datetime: now for None; a naive datetime is taken as UTC."""
    if stamp is None:
        return utcnow()
    if not isinstance(stamp, datetime):
        raise ValidationError(f"timestamps must be datetimes, got {type(stamp).__name__}")
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def memory_types(values: Any, default: tuple[MemoryType, ...]) -> tuple[MemoryType, ...]:
    """Memory type names or members -> members (`default` when None or empty); ValidationError otherwise."""
    if not values:
        return default
    if isinstance(values, str):
        values = [values]
    try:
        return tuple(MemoryType(v) for v in values)
    except (ValueError, TypeError):
        raise ValidationError(f"memory_types must be among {[t.value for t in MemoryType]}, got {values!r}") from None
