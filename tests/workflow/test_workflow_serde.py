"""The allow-list serializer: round trips, typed errors with key paths, and safe decoding."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from pydantic import BaseModel

from alma_core import SerializationError
from alma_core.workflow import Serializer, dumps, loads


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    tags: set[str] = dataclasses.field(default_factory=set)


class Plan(BaseModel):
    steps: list[str]
    at: datetime
    where: Point | None = None


def test_allow_listed_values_round_trip() -> None:
    state = {
        "json": {"a": [1, 2.5, None, True, "x"]},
        "tuple": (1, (2, 3)),
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "bytes": b"\x00\xff",
        "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "naive": datetime(2024, 1, 2),
        "day": date(2024, 5, 6),
        "clock": time(7, 8),
        "span": timedelta(days=1, seconds=3),
        "id": uuid.uuid4(),
        "money": Decimal("1.10"),
        "color": Color.RED,
        "point": Point(1, {"a"}),
        "plan": Plan(steps=["a"], at=datetime(2024, 1, 1, tzinfo=UTC), where=Point(2)),
        7: "int key",
        ("t", 1): "tuple key",
        "tricky": {"__alma__": "not a tag"},
    }
    back = loads(dumps(state))
    assert back == state
    assert isinstance(back["tuple"], tuple) and isinstance(back["tuple"][1], tuple)
    assert isinstance(back["plan"].where, Point)
    assert back["color"] is Color.RED


def test_unserializable_value_names_its_key_path() -> None:
    with pytest.raises(SerializationError, match=r'state\["a"\]\["b"\]\[2\]'):
        dumps({"a": {"b": [1, 2, object()]}})
    with pytest.raises(SerializationError, match=r"state\[\"p\"\]\.x"):
        dumps({"p": Point(x=lambda: 1)})  # type: ignore[arg-type]


def test_circular_reference_is_a_typed_error() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="circular"):
        dumps({"loop": loop})


def test_decoding_never_imports_unknown_modules() -> None:
    payload = {"__alma__": "model", "cls": "os:system", "fields": {"x": 1}}
    assert loads(json.dumps({"v": payload})) == {"v": {"x": 1}}  # not a BaseModel -> plain dict
    unknown = {"__alma__": "dataclass", "cls": "some_unimported_pkg.evil:Thing", "fields": {"a": 1}}
    assert loads(json.dumps(unknown)) == {"a": 1}
    import sys

    assert "some_unimported_pkg" not in sys.modules


def test_class_of_the_wrong_kind_is_not_rebuilt() -> None:
    encoded = json.loads(dumps(Point(1)))
    encoded["__alma__"] = "model"  # claims to be a pydantic model, but Point is a dataclass
    assert Serializer().loads(json.dumps(encoded)) == {"x": 1, "tags": set()}
    enum_payload = {"__alma__": "enum", "cls": f"{__name__}:Point", "value": "red"}
    assert loads(json.dumps(enum_payload)) == "red"


def test_allowed_modules_may_be_imported_on_decode() -> None:
    payload = json.dumps({"__alma__": "enum", "cls": "http:HTTPStatus", "value": 404})
    from http import HTTPStatus

    assert Serializer(allowed_modules=["http"]).loads(payload) is HTTPStatus.NOT_FOUND


def test_a_lone_surrogate_round_trips_as_a_json_escape() -> None:
    state = {"path": "caf\udce9", "\ud800": ["\udfff"]}  # e.g. a file name decoded with surrogateescape
    data = dumps(state)
    assert data.isascii() and loads(data) == state
    assert dumps({"word": "café"}) == '{"word":"café"}'.encode()  # other text stays UTF-8
