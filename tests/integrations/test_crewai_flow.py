"""AlmaFlowPersistence: `@persist` flows save their state to ALMA checkpoints after each method and
restore it by id in another process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from crewai.flow.async_feedback.types import PendingFeedbackContext
from crewai.flow.flow import Flow, listen, start
from crewai.flow.persistence import persist
from pydantic import BaseModel

from alma_core import ALMA
from alma_crewai import AlmaFlowPersistence

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from crewai.flow.flow import Flow, listen, start
    from crewai.flow.persistence import persist
    from pydantic import BaseModel
    from alma_core import ALMA
    from alma_crewai import AlmaFlowPersistence

    class Counter(BaseModel):
        id: str = ""
        count: int = 0
        steps: list[str] = []

    alma = ALMA(project_id="flows", storage=sys.argv[1], embedder="mock")

    @persist(AlmaFlowPersistence(alma))
    class CountFlow(Flow[Counter]):
        @start()
        def first(self):
            self.state.count += 1
            self.state.steps.append("first")

        @listen(first)
        def second(self):
            self.state.count += 10
            self.state.steps.append("second")

    flow = CountFlow()
    flow.kickoff(inputs={"id": sys.argv[2]} if len(sys.argv) > 2 else None)
    print(json.dumps(flow.state.model_dump()))
    alma.close()
    """
)


def run_flow(tmp_path: Path, db: Path, *flow_id: str) -> dict[str, Any]:
    script = tmp_path / "count_flow.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(db), *flow_id], check=True, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_pydantic_state_is_restored_by_id_in_another_process(tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    first = run_flow(tmp_path, db)
    assert (first["count"], first["steps"]) == (11, ["first", "second"])
    second = run_flow(tmp_path, db, first["id"])  # restores, then runs both methods again
    assert (second["id"], second["count"], second["steps"]) == (first["id"], 22, ["first", "second"] * 2)
    with ALMA(project_id="flows", storage=db, embedder="mock") as alma:
        assert alma.resume(first["id"]) == second
        history = alma.list_checkpoints(first["id"])
        assert [c.metadata["method"] for c in history] == ["second", "first", "second", "first"]  # newest first


def test_dict_state_saves_after_each_method(open_alma: ALMA) -> None:
    @persist(AlmaFlowPersistence(open_alma))
    class DictFlow(Flow[dict[str, Any]]):
        @start()
        def begin(self) -> None:
            self.state["topic"] = "wal"

        @listen(begin)
        def finish(self) -> None:
            self.state["done"] = True

    flow = DictFlow()
    flow.kickoff()
    flow_id = flow.state["id"]
    states = [open_alma.get_checkpoint(flow_id, c.id).state for c in open_alma.list_checkpoints(flow_id)]
    assert states == [{"id": flow_id, "topic": "wal", "done": True}, {"id": flow_id, "topic": "wal"}]
    assert AlmaFlowPersistence(open_alma).load_state(flow_id) == states[0]


def test_unknown_flow_loads_nothing(open_alma: ALMA) -> None:
    persistence = AlmaFlowPersistence(open_alma)
    assert persistence.load_state("never-ran") is None
    assert persistence.load_pending_feedback("never-ran") is None


def test_pending_feedback_round_trip(open_alma: ALMA) -> None:
    class State(BaseModel):
        id: str = "flow-1"
        draft: str = "v1"

    persistence = AlmaFlowPersistence(open_alma)
    context = PendingFeedbackContext(flow_id="flow-1", flow_class="tests.Review", method_name="review",
                                     method_output="v1", message="Approve?")  # fmt: skip
    persistence.save_pending_feedback("flow-1", context, State())
    loaded = persistence.load_pending_feedback("flow-1")
    assert loaded is not None
    assert loaded[0] == {"id": "flow-1", "draft": "v1"} and loaded[1].method_name == "review"
    persistence.clear_pending_feedback("flow-1")
    assert persistence.load_pending_feedback("flow-1") is None
    assert persistence.load_state("flow-1") == {"id": "flow-1", "draft": "v1"}


def test_a_finished_or_failed_flow_becomes_a_lesson_citing_its_checkpoint(open_alma: ALMA) -> None:
    persistence = AlmaFlowPersistence(open_alma, learn_as="writer")

    @persist(persistence)
    class BriefFlow(Flow[dict[str, Any]]):
        @start()
        def draft(self) -> str:
            self.state["topic"] = "SQLite WAL mode"
            if self.state.get("fail"):
                raise ValueError("no sources found")
            return "A brief that cites sqlite.org"

    try:
        flow = BriefFlow()
        flow.kickoff()
        with pytest.raises(ValueError):
            BriefFlow().kickoff(inputs={"fail": True})
    finally:
        persistence.stop_learning()  # waits for the flow events
    lessons = {o.success: o for o in open_alma.list_memories(agent="writer", memory_types=["outcome"])}
    done = lessons[True]
    assert (done.task, done.strategy_used) == ("SQLite WAL mode", "A brief that cites sqlite.org")
    flow_id = flow.state["id"]
    assert done.metadata["run"] == {"source": "crewai_flow", "flow": "BriefFlow", "flow_id": flow_id,
                                    "checkpoint_id": open_alma.get_checkpoint(flow_id).id}  # fmt: skip
    assert lessons[False].error_message == "ValueError: no sources found"
