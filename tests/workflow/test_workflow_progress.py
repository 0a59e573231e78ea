"""Work items: the transition table, dependencies, the three next-item strategies, the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from alma_core import ALMA, InvalidTransition, NotFound, ProgressTracker, ValidationError, WorkStatus


@pytest.fixture
def tracker(open_alma: ALMA) -> ProgressTracker:
    return ProgressTracker(alma=open_alma)


def test_legal_and_illegal_transitions(tracker: ProgressTracker) -> None:
    item = tracker.create_work_item("write docs")
    assert tracker.update_status(item.id, "in_progress").status is WorkStatus.IN_PROGRESS
    assert tracker.update_status(item.id, "done").status is WorkStatus.DONE
    with pytest.raises(InvalidTransition, match="done -> pending"):
        tracker.update_status(item.id, "pending")
    other = tracker.create_work_item("x")
    with pytest.raises(InvalidTransition):
        tracker.update_status(other.id, "done")  # pending -> done skips the work
    assert tracker.get_item(other.id).status is WorkStatus.PENDING
    with pytest.raises(ValidationError):
        tracker.update_status(other.id, "someday")
    with pytest.raises(NotFound):
        tracker.update_status("missing", "done")


def test_unfinished_dependencies_block_start_and_next(tracker: ProgressTracker) -> None:
    base = tracker.create_work_item("schema", priority=1)
    top = tracker.create_work_item("api", priority=99, dependencies=[base.id])
    assert tracker.get_next_item("priority").id == base.id  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition, match="dependency"):
        tracker.update_status(top.id, "in_progress")
    tracker.update_status(base.id, "in_progress")
    assert tracker.get_next_item("priority") is None
    tracker.update_status(base.id, "done")
    assert tracker.get_next_item("priority").id == top.id  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        tracker.create_work_item("dangling", dependencies=["nope"])


def test_strategies_pick_different_items(tracker: ProgressTracker) -> None:
    urgent = tracker.create_work_item("urgent", priority=90, estimated_effort=8)
    quick = tracker.create_work_item("quick", priority=10, estimated_effort=0.5)
    keystone = tracker.create_work_item("keystone", priority=50, estimated_effort=3)
    a = tracker.create_work_item("needs keystone", dependencies=[keystone.id])
    tracker.create_work_item("needs a", dependencies=[a.id])
    tracker.create_work_item("needs urgent", dependencies=[urgent.id])
    assert tracker.get_next_item("priority").id == urgent.id  # type: ignore[union-attr]
    assert tracker.get_next_item("quick_win").id == quick.id  # type: ignore[union-attr]
    assert tracker.get_next_item("unblock").id == keystone.id  # type: ignore[union-attr]  (2 transitive vs 1)
    with pytest.raises(ValidationError):
        tracker.get_next_item("random")  # type: ignore[arg-type]


def test_agent_filter_and_summary(tracker: ProgressTracker) -> None:
    mine = tracker.create_work_item("mine", agent="helena", priority=1)
    tracker.create_work_item("theirs", agent="victor", priority=99)
    assert tracker.get_next_item(agent="helena").id == mine.id  # type: ignore[union-attr]
    tracker.update_status(mine.id, "in_progress")
    tracker.update_status(mine.id, "done")
    summary = tracker.get_progress_summary()
    assert (summary.total, summary.by_status[WorkStatus.DONE], summary.percent_done, summary.ready) == (2, 1, 50.0, 1)
    assert [i.title for i in tracker.list_items(status="pending")] == ["theirs"]


def test_items_persist_across_instances(db_path: Path) -> None:
    item = ProgressTracker("proj", storage=db_path).create_work_item("persist me")
    assert ProgressTracker("proj", storage=db_path).get_item(item.id).title == "persist me"


def test_a_blocked_item_unblocks_when_its_blockers_are_done(tracker: ProgressTracker) -> None:
    first = tracker.create_work_item("schema")
    second = tracker.create_work_item("fixtures")
    waiting = tracker.create_work_item("api", dependencies=[first.id, second.id])
    manual = tracker.create_work_item("waits on a vendor")
    tracker.update_status(waiting.id, "blocked")
    tracker.update_status(manual.id, "blocked")
    for item in (first, second):
        tracker.update_status(item.id, "in_progress")
    tracker.update_status(first.id, "done")
    assert tracker.get_item(waiting.id).status is WorkStatus.BLOCKED  # one blocker left
    tracker.update_status(second.id, "done")
    assert tracker.get_item(waiting.id).status is WorkStatus.PENDING
    assert tracker.get_next_item().id == waiting.id  # type: ignore[union-attr]
    assert tracker.get_item(manual.id).status is WorkStatus.BLOCKED  # blocked by nothing we track


def test_no_storage_means_the_projects_default_store_and_names_ignore_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    item = ProgressTracker("my-project").create_work_item("Fix authentication bug", agent="Victor")
    assert (tmp_path / ".alma" / "alma.db").is_file() and item.agent == "victor"
    with ALMA(project_id="my-project", embedder="mock") as alma:  # the same store ALMA() opens
        assert ProgressTracker(alma=alma).list_items(agent="VICTOR")[0].id == item.id
