"""AlmaFlowPersistence against CrewAI's own SQLiteFlowPersistence: the same operations on both, each on its
own real SQLite file, must give the same answers (load_state, load_pending_feedback, final flow states).

The one documented difference (docs/crewai.md, "Flow persistence"): a flow id ALMA cannot hold as a
workflow id (empty, or over 200 characters) is refused by `save_state` with `ValidationError`;
loading one finds nothing, as with CrewAI's.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from crewai.flow.async_feedback.types import HumanFeedbackPending, PendingFeedbackContext
from crewai.flow.flow import Flow, listen, start
from crewai.flow.human_feedback import human_feedback
from crewai.flow.persistence import SQLiteFlowPersistence, persist
from crewai.flow.persistence.base import FlowPersistence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from alma_core import ALMA, ValidationError
from alma_crewai import AlmaFlowPersistence

Pair = tuple[SQLiteFlowPersistence, AlmaFlowPersistence]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("flowdiff")
    alma = ALMA(project_id="flows", storage=root / "alma.db", embedder="mock")
    yield SQLiteFlowPersistence(str(root / "crewai.db")), AlmaFlowPersistence(alma)
    alma.close()


def canon(value: Any) -> Any:
    """A comparable form that keeps types apart (1 vs 1.0 vs True, list vs tuple, str vs datetime, NaN)."""
    if isinstance(value, dict):
        return ("dict", [(canon(k), canon(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple, set)):
        return (type(value).__name__, [canon(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value)
    return (type(value).__name__, value)


def same(theirs: Any, ours: Any) -> None:
    assert canon(ours) == canon(theirs)


def pending(loaded: tuple[dict[str, Any], PendingFeedbackContext] | None) -> Any:
    return None if loaded is None else (loaded[0], loaded[1].to_dict())


# ---- states ---------------------------------------------------------------------------------------


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Any text, lone surrogates included (what `surrogateescape` decoding leaves in file names)."""
    return st.text(st.characters(exclude_categories=()), max_size=max_size)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts(8)
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(texts(5), inner, max_size=4)
        | st.dictionaries(st.integers(-3, 3) | st.booleans() | st.none() | st.floats(0, 1), inner, max_size=3)
    ),
    max_leaves=12,
)
dict_states = st.dictionaries(texts(6), values, max_size=5)


class Nested(BaseModel):
    when: datetime
    tags: set[str] = set()


class Report(BaseModel):
    id: str = ""
    title: str = ""
    score: float = 0.0
    count: int = 0
    day: date | None = None
    pair: tuple[int, str] = (0, "")
    nested: Nested | None = None
    extra: dict[str, Any] = {}


model_states = st.builds(
    Report,
    title=texts(8),
    score=st.floats(allow_nan=False, allow_infinity=False),
    count=st.integers(-(2**40), 2**40),
    day=st.none() | st.dates(),
    pair=st.tuples(st.integers(-5, 5), texts(3)),
    nested=st.none() | st.builds(Nested, when=st.datetimes(), tags=st.sets(texts(3), max_size=3)),
    extra=st.dictionaries(texts(4), values, max_size=3),
)
states = dict_states | model_states
contexts = st.builds(
    PendingFeedbackContext,
    flow_id=st.just("f"),
    flow_class=st.just("tests.Review"),
    method_name=st.sampled_from(["review", "approve"]),
    method_output=values,
    message=texts(10),
    emit=st.none() | st.lists(texts(4), max_size=2),
    metadata=st.dictionaries(texts(4) | st.integers(0, 3), values, max_size=3),
    llm=st.none() | texts(5) | st.dictionaries(texts(3), values, max_size=2),
    requested_at=st.datetimes(),
)
# (op, flow index, method name, state, context); method names are Python names: no lone surrogates
# (CrewAI's sqlite3 cannot bind one and raises UnicodeEncodeError; ALMA stores it)
operations = st.lists(
    st.tuples(st.sampled_from(["save", "pending", "clear"]), st.integers(0, 1), st.text(max_size=5), states, contexts),
    min_size=1,
    max_size=8,
)


def apply(persistence: FlowPersistence, op: str, flow_id: str, method: str, state: Any, ctx: Any) -> None:
    if op == "save":
        persistence.save_state(flow_id, method, state)
    elif op == "pending":
        persistence.save_pending_feedback(flow_id, ctx, state)
    else:
        persistence.clear_pending_feedback(flow_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_every_operation_sequence_loads_the_same_as_crewais_sqlite(pair: Pair, ops: list[Any]) -> None:
    theirs, ours = pair
    run = uuid.uuid4().hex
    flows = [f"{run}-a", f"{run}-b", f"{run}-never"]
    for op, index, method, state, ctx in ops:
        apply(theirs, op, flows[index], method, state, ctx)
        apply(ours, op, flows[index], method, state, ctx)
        for flow_id in flows:
            same(theirs.load_state(flow_id), ours.load_state(flow_id))
            same(pending(theirs.load_pending_feedback(flow_id)), pending(ours.load_pending_feedback(flow_id)))


# ---- focused cases (each was a difference) --------------------------------------------------------


def test_values_come_back_as_crewai_json_not_as_python_objects(pair: Pair) -> None:
    state = {"when": datetime(2026, 1, 2, 3, 4, 5), "day": date(2026, 1, 2), "pair": (1, "a"), 3: "int key",
             "tags": {"x"}, "path": Path("a/b"), "none": {None: 1.5, True: 0}, "name": "caf\udce9"}  # fmt: skip
    flow_id = uuid.uuid4().hex
    for persistence in pair:
        persistence.save_state(flow_id, "m", state)
    same(pair[0].load_state(flow_id), pair[1].load_state(flow_id))
    assert pair[1].load_state(flow_id) == {"when": "2026-01-02T03:04:05", "day": "2026-01-02", "pair": [1, "a"],
                                           "3": "int key", "tags": ["x"], "path": "a/b",
                                           "none": {"null": 1.5, "true": 0}, "name": "caf\udce9"}  # fmt: skip


def test_a_model_field_json_mode_cannot_dump_falls_back_like_crewai(pair: Pair) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    class Loose(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: Opaque
        n: int = 1

    flow_id = uuid.uuid4().hex
    for persistence in pair:
        persistence.save_state(flow_id, "m", Loose(thing=Opaque()))
    assert pair[1].load_state(flow_id) == pair[0].load_state(flow_id) == {"thing": "opaque", "n": 1}


def test_pending_feedback_survives_later_saves_until_cleared(pair: Pair) -> None:
    flow_id = uuid.uuid4().hex
    ctx = PendingFeedbackContext(flow_id=flow_id, flow_class="t.R", method_name="review", method_output="v1",
                                 message="ok?", metadata={1: "int key"})  # fmt: skip
    for persistence in pair:
        persistence.save_pending_feedback(flow_id, ctx, {"draft": "v1"})
        persistence.save_state(flow_id, "after", {"draft": "v2"})
    same(pending(pair[0].load_pending_feedback(flow_id)), pending(pair[1].load_pending_feedback(flow_id)))
    loaded = pair[1].load_pending_feedback(flow_id)
    assert loaded is not None and loaded[0] == {"draft": "v1"} and loaded[1].metadata == {"1": "int key"}
    for persistence in pair:
        persistence.clear_pending_feedback(flow_id)
        assert persistence.load_pending_feedback(flow_id) is None
        assert persistence.load_state(flow_id) == {"draft": "v2"}  # clearing does not bring back the paused state


@pytest.mark.parametrize("bad", [42, ["a"], "text", None])
def test_a_state_that_is_neither_dict_nor_model_is_a_value_error_on_both(pair: Pair, bad: Any) -> None:
    for persistence in pair:
        with pytest.raises(ValueError, match="BaseModel or dict"):
            persistence.save_state("f", "m", bad)
    with pytest.raises(ValidationError):
        pair[1].save_state("f", "m", bad)


def test_a_state_json_cannot_hold_is_refused_with_the_same_builtin_error(pair: Pair) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    for bad, error in (({(1, 2): "tuple key"}, TypeError), (cyclic, ValueError)):
        for persistence in pair:
            with pytest.raises(error):
                persistence.save_state("refused", "m", bad)
    assert pair[1].load_state("refused") is None


@pytest.mark.parametrize("flow_id", ["", "x" * 201])
def test_a_flow_id_alma_cannot_hold_loads_nothing_and_is_refused_on_save(pair: Pair, flow_id: str) -> None:
    theirs, ours = pair
    assert ours.load_state(flow_id) is None and theirs.load_state(flow_id) is None
    assert ours.load_pending_feedback(flow_id) is None
    ours.clear_pending_feedback(flow_id)
    with pytest.raises(ValidationError, match="workflow_id"):  # documented difference: CrewAI's stores it
        ours.save_state(flow_id, "m", {"a": 1})


# ---- real flows -----------------------------------------------------------------------------------


class Counter(BaseModel):
    id: str = ""
    count: int = 0
    steps: list[str] = []
    seen: datetime | None = None


def class_level(persistence: FlowPersistence, structured: bool) -> type[Flow[Any]]:
    if structured:

        @persist(persistence)
        class Typed(Flow[Counter]):
            @start()
            def first(self) -> None:
                self.state.count += 1
                self.state.steps.append("first")
                self.state.seen = datetime(2026, 5, 6, 7, 8, 9)

            @listen(first)
            def second(self) -> None:
                self.state.count += 10
                self.state.steps.append("second")

        return Typed

    @persist(persistence)
    class Loose(Flow[dict[str, Any]]):
        @start()
        def first(self) -> None:
            self.state["count"] = self.state.get("count", 0) + 1
            self.state.setdefault("steps", []).append("first")
            self.state["seen"] = datetime(2026, 5, 6, 7, 8, 9)
            self.state["pair"] = (1, 2.0)

        @listen(first)
        def second(self) -> None:
            self.state["count"] += 10
            self.state["steps"].append("second")

    return Loose


def method_level(persistence: FlowPersistence, structured: bool) -> type[Flow[Any]]:
    if structured:

        class Typed(Flow[Counter]):
            @start()
            def first(self) -> None:  # not persisted
                self.state.count += 1

            @listen(first)
            @persist(persistence)
            def second(self) -> None:
                self.state.count += 10
                self.state.steps.append("second")

        return Typed

    class Loose(Flow[dict[str, Any]]):
        @start()
        def first(self) -> None:
            self.state["count"] = self.state.get("count", 0) + 1

        @listen(first)
        @persist(persistence)
        def second(self) -> None:
            self.state["count"] += 10
            self.state["at"] = date(2026, 1, 1)

    return Loose


def final(flow: Flow[Any]) -> Any:
    state = flow.state
    return state.model_dump() if isinstance(state, BaseModel) else dict(state)


@pytest.mark.parametrize("structured", [True, False], ids=["structured", "unstructured"])
@pytest.mark.parametrize("build", [class_level, method_level], ids=["class", "method"])
def test_a_flow_run_then_resumed_by_id_ends_the_same_on_both(pair: Pair, build: Any, structured: bool) -> None:
    results = []
    for persistence in pair:
        flow_cls = build(persistence, structured)
        first = flow_cls()
        first.kickoff()
        flow_id = str(final(first)["id"])
        again = flow_cls()
        again.kickoff(inputs={"id": flow_id})  # restores, then runs every method again
        assert str(final(again)["id"]) == flow_id
        results.append((final(first), final(again), persistence.load_state(flow_id), flow_id))
    (t_first, t_again, t_loaded, t_id), (o_first, o_again, o_loaded, o_id) = results
    for theirs, ours in ((t_first, o_first), (t_again, o_again), (t_loaded, o_loaded)):
        theirs, ours = dict(theirs), dict(ours)
        assert (theirs.pop("id"), ours.pop("id")) == (t_id, o_id)
        same(theirs, ours)
    # a class-level @persist restores by id (1 + 10, twice); a method-level one only saves (CrewAI's too)
    assert t_loaded is not None and t_loaded["count"] == (22 if build is class_level else 11)


class Pause:
    """An async feedback provider: asks, then pauses the flow (as a Slack or e-mail provider would)."""

    def request_feedback(self, context: PendingFeedbackContext, flow: Flow[Any]) -> str:
        raise HumanFeedbackPending(context=context)


def review_flow(persistence: FlowPersistence) -> type[Flow[Any]]:
    @persist(persistence)
    class Review(Flow[dict[str, Any]]):
        @start()
        @human_feedback(message="Approve the draft?", provider=Pause(), metadata={1: date(2026, 1, 1)})
        def draft(self) -> str:
            self.state["draft"] = "v1"
            self.state["asked"] = datetime(2026, 1, 2, 3, 4)
            return "v1"

        @listen(draft)
        def publish(self, result: Any) -> None:
            self.state["published"] = [self.last_human_feedback.feedback, (1, 2)]

    return Review


def test_a_flow_paused_for_feedback_then_resumed_from_pending_ends_the_same_on_both(pair: Pair) -> None:
    seen = []
    for persistence in pair:
        flow_cls = review_flow(persistence)
        paused = flow_cls().kickoff()
        assert isinstance(paused, HumanFeedbackPending)
        flow_id = paused.context.flow_id
        waiting = pending(persistence.load_pending_feedback(flow_id))
        resumed = flow_cls.from_pending(flow_id, persistence)
        resumed.resume("ship it")
        state = dict(resumed.state)
        assert state.pop("id") == flow_id
        loaded = persistence.load_state(flow_id)
        assert loaded is not None and loaded.pop("id") == flow_id
        seen.append((waiting, state, loaded, persistence.load_pending_feedback(flow_id)))
    (t_wait, *theirs), (o_wait, *ours) = seen
    for context in (t_wait[1], o_wait[1]):
        del context["flow_id"], context["requested_at"], context["execution_uuid"]
    t_wait[0].pop("id"), o_wait[0].pop("id")
    same(t_wait, o_wait)
    same(theirs, ours)
    assert ours[1]["published"] == ["ship it", [1, 2]] and ours[2] is None
