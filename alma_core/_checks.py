"""Argument checks and conversions shared by the public methods: one message per kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticError

from ._errors import ValidationError
from ._models import MemoryType, utcnow

__all__ = [
    "as_utc",
    "build_model",
    "check_count",
    "check_number",
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
    return ".".join(str(p) for p in err["loc"]), err["msg"]


def check_text(name: str, value: Any) -> str:
    """`value` if it is a string with something besides whitespace, else `ValidationError`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string")
    return value


def check_count(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
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
