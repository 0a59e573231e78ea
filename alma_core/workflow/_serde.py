"""Allow-list serialization of workflow state: JSON plus tagged values, never pickle.

Plain JSON values (None, bool, int, float, str, lists, dicts with string keys) are stored as they
are. Everything else on the allow-list becomes a tagged object `{"__alma__": tag, ...}`:

    tuple, set, frozenset, bytes, bytearray, datetime, date, time, timedelta, UUID, Decimal,
    Enum, pydantic models, dataclasses, and dicts with non-string keys (or a "__alma__" key)

Anything else raises `SerializationError` naming its key path (`state["a"]["b"][2]`) before any byte
is written.

Safety of reading back: decoding never imports a module that the process has not imported already
(unless its prefix was explicitly allowed with `Serializer(allowed_modules=...)`), never calls
anything but the class's own constructor, and only rebuilds a class of the kind the tag promises
(an `Enum` subclass for "enum", a pydantic `BaseModel` subclass for "model", a dataclass for
"dataclass"). A class that cannot be resolved under these rules comes back as plain data: an enum
as its value, a model or dataclass as a dict of its fields.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from .._errors import SerializationError

__all__ = ["Serializer", "dumps", "loads"]

TAG = "__alma__"
_PLAIN = (str, int, float, bool, type(None))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class Serializer:
    """Encodes state to JSON bytes and back, with an allow-list of types (see the module docstring).

    `allowed_modules`: module prefixes (e.g. `("myapp.state",)`) that decoding may import when not yet
    imported. Without it, only classes of already-imported modules are rebuilt.
    """

    def __init__(self, allowed_modules: Iterable[str] = ()) -> None:
        self.allowed_modules = tuple(allowed_modules)

    # ---- encode -------------------------------------------------------------------------------

    def dumps(self, value: Any, root: str = "state") -> bytes:
        """JSON bytes for `value`, or `SerializationError` naming the first bad key path."""
        try:
            encoded = self.encode(value, root, set())
            text = json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # the encoders recurse: a state some 300 levels deep exhausts Python's stack
            raise SerializationError(f"{root} is nested too deeply to store (hundreds of levels); flatten it") from None
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (text decoded with surrogateescape): kept as a \u escape
            return json.dumps(encoded, separators=(",", ":")).encode("ascii")

    def encode(self, value: Any, path: str, seen: set[int]) -> Any:
        if isinstance(value, _PLAIN) and not isinstance(value, enum.Enum):
            return value
        if isinstance(value, (dict, list, tuple, set, frozenset)) or _is_object(value):
            if id(value) in seen:
                raise SerializationError(f"{path}: circular reference")
            seen.add(id(value))
            try:
                return self._container(value, path, seen)
            finally:
                seen.discard(id(value))
        return self._scalar(value, path)

    def _container(self, value: Any, path: str, seen: set[int]) -> Any:
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and TAG not in value:
                return {k: self.encode(v, f"{path}[{json.dumps(k)}]", seen) for k, v in value.items()}
            items = [
                [self.encode(k, f"{path}.keys()[{i}]", seen), self.encode(v, f"{path}[{_key(k)}]", seen)]
                for i, (k, v) in enumerate(value.items())
            ]
            return {TAG: "dict", "items": items}
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]", seen) for i, v in enumerate(value)]
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {TAG: "tuple", "items": [self.encode(v, f"{path}[{i}]", seen) for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            items = [self.encode(v, f"{path}{{{i}}}", seen) for i, v in enumerate(value)]
            items.sort(key=lambda x: json.dumps(x, sort_keys=True))  # deterministic bytes
            return {TAG: "frozenset" if isinstance(value, frozenset) else "set", "items": items}
        if isinstance(value, BaseModel):
            fields = dict(value)
            fields.update(value.model_extra or {})
            return {TAG: "model", "cls": _class_path(type(value)), "fields": self._fields(fields, path, seen)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return {TAG: "dataclass", "cls": _class_path(type(value)), "fields": self._fields(fields, path, seen)}
        raise SerializationError(f"{path}: {type(value).__name__} is not serializable (named tuples are not)")

    def _fields(self, fields: dict[str, Any], path: str, seen: set[int]) -> dict[str, Any]:
        return {k: self.encode(v, f"{path}.{k}", seen) for k, v in fields.items()}

    def _scalar(self, value: Any, path: str) -> Any:
        if isinstance(value, enum.Enum):
            raw = value.value
            if not isinstance(raw, _PLAIN):
                raise SerializationError(f"{path}: enum {type(value).__name__} has a non-JSON value")
            return {TAG: "enum", "cls": _class_path(type(value)), "value": raw}
        if isinstance(value, datetime):
            return {TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, date):
            return {TAG: "date", "v": value.isoformat()}
        if isinstance(value, time):
            return {TAG: "time", "v": value.isoformat()}
        if isinstance(value, timedelta):
            return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, uuid.UUID):
            return {TAG: "uuid", "v": value.hex}
        if isinstance(value, Decimal):
            return {TAG: "decimal", "v": str(value)}
        if isinstance(value, (bytes, bytearray)):
            tag = "bytes" if isinstance(value, bytes) else "bytearray"
            return {TAG: tag, "v": base64.b64encode(bytes(value)).decode("ascii")}
        raise SerializationError(
            f"{path}: {type(value).__module__}.{type(value).__qualname__} is not serializable; use JSON "
            f"values, datetimes, UUIDs, bytes, Decimal, enums, pydantic models or dataclasses"
        )

    # ---- decode -------------------------------------------------------------------------------

    def loads(self, data: bytes | str) -> Any:
        """The value `dumps` encoded. Never imports unknown modules or runs foreign code."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise SerializationError(f"stored state is not valid JSON: {exc}") from None
        return self.decode(raw)

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        tag = value.get(TAG)
        if tag is None:
            return {k: self.decode(v) for k, v in value.items()}
        handler = _DECODERS.get(tag)
        if handler is None:
            raise SerializationError(f"unknown stored type tag {tag!r}")
        return handler(self, value)

    def _items(self, value: dict[str, Any]) -> list[Any]:
        return [self.decode(v) for v in value["items"]]

    def resolve(self, path: str, kind: Callable[[type], bool]) -> type | None:
        """The class at `module:qualname` if its module may be used and it is of the expected kind."""
        module_name, _, qualname = path.partition(":")
        module = sys.modules.get(module_name)
        if module is None and any(module_name == p or module_name.startswith(p + ".") for p in self.allowed_modules):
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                return None
        if module is None or "<locals>" in qualname:
            return None
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        return obj if isinstance(obj, type) and kind(obj) else None

    def _enum(self, value: dict[str, Any]) -> Any:
        cls = self.resolve(value["cls"], lambda c: issubclass(c, enum.Enum))
        if cls is None:
            return value["value"]
        try:
            return cls(value["value"])
        except ValueError:
            return value["value"]

    def _model(self, value: dict[str, Any]) -> Any:
        fields = {k: self.decode(v) for k, v in value["fields"].items()}
        cls = self.resolve(value["cls"], lambda c: issubclass(c, BaseModel))
        return cls.model_validate(fields) if cls is not None else fields  # type: ignore[attr-defined]

    def _dataclass(self, value: dict[str, Any]) -> Any:
        fields = {k: self.decode(v) for k, v in value["fields"].items()}
        cls = self.resolve(value["cls"], dataclasses.is_dataclass)
        if cls is None:
            return fields
        spec = {f.name: f for f in dataclasses.fields(cls)}
        obj = cls(**{k: v for k, v in fields.items() if k in spec and spec[k].init})
        for k, v in fields.items():
            if k in spec and not spec[k].init:
                object.__setattr__(obj, k, v)
        return obj


def _key(key: Any) -> str:
    return json.dumps(key) if isinstance(key, str) else repr(key)


def _is_object(value: Any) -> bool:
    return isinstance(value, BaseModel) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _dict(s: Serializer, v: dict[str, Any]) -> Any:
    return {s.decode(key): s.decode(item) for key, item in v["items"]}


_DECODERS: dict[str, Callable[[Serializer, dict[str, Any]], Any]] = {
    "dict": _dict,
    "tuple": lambda s, v: tuple(s._items(v)),
    "set": lambda s, v: set(s._items(v)),
    "frozenset": lambda s, v: frozenset(s._items(v)),
    "datetime": lambda s, v: datetime.fromisoformat(v["v"]),
    "date": lambda s, v: date.fromisoformat(v["v"]),
    "time": lambda s, v: time.fromisoformat(v["v"]),
    "timedelta": lambda s, v: timedelta(days=v["v"][0], seconds=v["v"][1], microseconds=v["v"][2]),
    "uuid": lambda s, v: uuid.UUID(hex=v["v"]),
    "decimal": lambda s, v: Decimal(v["v"]),
    "bytes": lambda s, v: base64.b64decode(v["v"]),
    "bytearray": lambda s, v: bytearray(base64.b64decode(v["v"])),
    "enum": Serializer._enum,
    "model": Serializer._model,
    "dataclass": Serializer._dataclass,
}

_DEFAULT = Serializer()


def dumps(value: Any, root: str = "state") -> bytes:
    """Encode with the default serializer (only already-imported classes are rebuilt on load)."""
    return _DEFAULT.dumps(value, root)


def loads(data: bytes | str) -> Any:
    """Decode with the default serializer."""
    return _DEFAULT.loads(data)
