"""Typed state round-trips through AlmaSaver as through SqliteSaver: pydantic models, dataclasses, Enums
and messages come back as their types, in this process and in another one; nothing is imported or
pickled on load."""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Annotated, Any, TypedDict

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import EXT_CONSTRUCTOR_POS_ARGS, EXT_PYDANTIC_V2
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from alma_langgraph import AlmaSaver, AlmaSerializer


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Ticket(BaseModel):
    title: str
    priority: Priority


@dataclasses.dataclass
class Note:
    author: str
    text: str


class Triage(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    ticket: Ticket
    notes: list[Note]
    route: Priority


def _triage() -> StateGraph[Triage]:
    """open -> (HIGH: escalate, asking a human) | (LOW: file) -> END."""
    builder = StateGraph(Triage)
    builder.add_node("open", lambda s: {"notes": [Note("bot", f"opened {s['ticket'].title}")],
                                        "route": s["ticket"].priority})  # fmt: skip
    builder.add_node("escalate", lambda s: {"messages": [AIMessage(interrupt("who owns it?"))],
                                            "notes": [*s["notes"], Note("human", "escalated")]})  # fmt: skip
    builder.add_node("file", lambda s: {"notes": [*s["notes"], Note("bot", "filed")]})
    builder.add_edge(START, "open")
    builder.add_conditional_edges("open", lambda s: "escalate" if s["route"] is Priority.HIGH else "file")
    builder.add_edge("escalate", END)
    builder.add_edge("file", END)
    return builder


def _cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def _start(saver: Any, thread: str) -> None:
    graph = _triage().compile(checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("disk full")], "ticket": Ticket(title="disk", priority=Priority.HIGH)},
                 _cfg(thread))  # fmt: skip


def _assert_typed(values: dict[str, Any]) -> None:
    assert isinstance(values["ticket"], Ticket) and values["ticket"].priority is Priority.HIGH
    assert values["route"] is Priority.HIGH
    assert all(isinstance(n, Note) for n in values["notes"])
    assert [type(m) for m in values["messages"]][:1] == [HumanMessage]


@pytest.fixture(params=["alma", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The same graph on AlmaSaver and on LangGraph's SqliteSaver: both must behave alike."""
    if request.param == "alma":
        with AlmaSaver.from_conn_string(tmp_path / "alma.db") as s:
            yield s
    else:
        conn = sqlite3.connect(tmp_path / "lg.db", check_same_thread=False)
        yield SqliteSaver(conn)
        conn.close()


def test_typed_state_survives_interrupt_and_resume_like_sqlite_saver(saver: Any) -> None:
    _start(saver, "t1")
    graph = _triage().compile(checkpointer=saver)
    paused = graph.get_state(_cfg("t1"))
    assert paused.next == ("escalate",)
    _assert_typed(paused.values)
    done = graph.invoke(Command(resume="storage team"), _cfg("t1"))
    _assert_typed(done)
    assert done["notes"][-1] == Note("human", "escalated") and done["messages"][-1].content == "storage team"
    history = list(graph.get_state_history(_cfg("t1")))
    assert all(isinstance(h.values["ticket"], Ticket) for h in history if "ticket" in h.values)


def test_typed_state_resumes_in_another_process(tmp_path: Path) -> None:
    db = tmp_path / "alma.db"
    with AlmaSaver.from_conn_string(db) as saver:
        _start(saver, "proc")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_typed_state import _triage, _cfg, _assert_typed, Note
        from langgraph.types import Command
        from alma_langgraph import AlmaSaver
        with AlmaSaver.from_conn_string({str(db)!r}) as saver:
            graph = _triage().compile(checkpointer=saver)
            _assert_typed(graph.get_state(_cfg("proc")).values)
            out = graph.invoke(Command(resume="ops"), _cfg("proc"))
        _assert_typed(out)
        assert out["notes"][-1] == Note("human", "escalated")
        print(type(out["ticket"]).__name__, out["route"].name, out["messages"][-1].content)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Ticket", "HIGH", "ops"]


def test_strict_mode_revives_only_registered_types(tmp_path: Path) -> None:
    value = {"ticket": Ticket(title="x", priority=Priority.LOW), "note": Note("a", "b")}
    blob = AlmaSerializer().dumps_typed(value)
    strict = AlmaSerializer(strict=True).loads_typed(blob)
    assert strict == {"ticket": {"title": "x", "priority": "low"}, "note": {"author": "a", "text": "b"}}
    registered = AlmaSerializer(strict=True).register(Ticket, Priority).loads_typed(blob)
    assert registered["ticket"] == value["ticket"] and registered["note"] == {"author": "a", "text": "b"}
    # what a compiled graph does with its state schema's types under LANGGRAPH_STRICT_MSGPACK
    allowed = AlmaSerializer(strict=True).with_msgpack_allowlist([Note]).loads_typed(blob)
    assert allowed["note"] == Note("a", "b")


def test_loading_never_imports_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("alma_test_not_loaded")
    monkeypatch.setitem(sys.modules, "alma_test_not_loaded", module)
    exec("import dataclasses\n@dataclasses.dataclass\nclass Secret:\n    x: int\n", module.__dict__)
    blob = AlmaSerializer().dumps_typed({"s": module.Secret(1)})
    assert type(AlmaSerializer().loads_typed(blob)["s"]).__name__ == "Secret"  # imported: revived
    monkeypatch.delitem(sys.modules, "alma_test_not_loaded")
    assert AlmaSerializer().loads_typed(blob) == {"s": {"x": 1}}  # not imported: its fields only
    assert "alma_test_not_loaded" not in sys.modules


def test_only_models_dataclasses_and_enums_are_constructed() -> None:
    """A blob naming an imported callable (`os.system`) gets its arguments back, never a call."""
    payload = ormsgpack.packb(
        {"x": ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb(("os", "system", ["exit 3"])))}
    )
    assert AlmaSerializer().loads_typed(("msgpack", payload)) == {"x": ["exit 3"]}
    fake = ormsgpack.packb(("subprocess", "Popen", {"args": "true"}, "model_validate_json"))
    assert AlmaSerializer().loads_typed(("msgpack", ormsgpack.packb(ormsgpack.Ext(EXT_PYDANTIC_V2, fake)))) == {
        "args": "true"
    }
