"""Checkpoints: resume (also after a restart), listing, cleanup, atomic failures, cross-process sequences."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alma_core import ALMA, NotFound, SerializationError, ValidationError
from alma_core.storage import ListRecords

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_resume_returns_latest_or_named_state(open_alma: ALMA) -> None:
    first = open_alma.checkpoint("wf", {"step": 1})
    second = open_alma.checkpoint("wf", {"step": 2}, metadata={"note": "x"}, agent="helena", parent_id=first.id)
    assert open_alma.resume("wf") == {"step": 2}
    assert open_alma.resume("wf", first.id) == {"step": 1}
    loaded = open_alma.get_checkpoint("wf")
    assert (loaded.id, loaded.agent, loaded.parent_id, loaded.metadata) == (
        second.id,
        "helena",
        first.id,
        {"note": "x"},
    )
    assert (first.sequence, second.sequence) == (1, 2)


def test_resume_without_checkpoints_is_not_found(open_alma: ALMA) -> None:
    with pytest.raises(NotFound):
        open_alma.resume("nothing-here")
    open_alma.checkpoint("wf", {})
    with pytest.raises(NotFound):
        open_alma.resume("wf", "no-such-id")
    with pytest.raises(NotFound):
        open_alma.checkpoint("wf", {}, parent_id="no-such-id")


def test_resume_after_a_process_restart(db_path: Path) -> None:
    _run(f"""
        from alma_core import ALMA
        with ALMA(project_id="open", storage={str(db_path)!r}, embedder="mock") as a:
            a.checkpoint("wf", {{"step": 7, "done": ["a", "b"]}}, agent="helena")
    """)
    out = _run(f"""
        from alma_core import ALMA
        with ALMA(project_id="open", storage={str(db_path)!r}, embedder="mock") as a:
            print(a.resume("wf"), a.list_checkpoints("wf")[0].agent)
    """)
    assert out.strip() == "{'step': 7, 'done': ['a', 'b']} helena"


def test_list_checkpoints_newest_first_with_limit_and_before(open_alma: ALMA) -> None:
    made = [open_alma.checkpoint("wf", {"i": i}) for i in range(5)]
    listed = open_alma.list_checkpoints("wf")
    assert [c.id for c in listed] == [c.id for c in reversed(made)]
    assert all(c.state is None for c in listed)
    assert [c.sequence for c in open_alma.list_checkpoints("wf", limit=2, before=4)] == [3, 2]
    assert [c.sequence for c in open_alma.list_checkpoints("wf", before=made[1].id)] == [1]
    with pytest.raises(ValidationError):
        open_alma.list_checkpoints("wf", limit=0)


@pytest.mark.parametrize("bound", [{"before": 2**63}, {"limit": 10**30}])
def test_a_count_past_sqlites_integers_is_a_validation_error_not_an_overflow(open_alma: ALMA, bound: dict) -> None:
    open_alma.checkpoint("wf", {"i": 1})
    with pytest.raises(ValidationError, match=r"2\*\*63-1"):  # was OverflowError from the driver
        open_alma.list_checkpoints("wf", **bound)


def test_a_state_too_deep_to_encode_is_a_serialization_error_and_nothing_is_stored(open_alma: ALMA) -> None:
    open_alma.checkpoint("wf", {"ok": 1})
    deep: dict = {}
    for _ in range(5_000):
        deep = {"b": deep}
    with pytest.raises(SerializationError, match="nested too deeply"):  # was a bare RecursionError
        open_alma.checkpoint("wf", deep)
    assert open_alma.resume("wf") == {"ok": 1} and len(open_alma.list_checkpoints("wf")) == 1


def test_unserializable_state_leaves_the_store_unchanged(open_alma: ALMA) -> None:
    open_alma.checkpoint("wf", {"ok": 1})
    with pytest.raises(SerializationError, match=r'state\["a"\]\["b"\]\[2\]'):
        open_alma.checkpoint("wf", {"a": {"b": [1, 2, object()]}})
    with pytest.raises(SerializationError):
        open_alma.checkpoint("wf", {"ok": 2}, metadata={"bad": object()})
    assert [c.sequence for c in open_alma.list_checkpoints("wf")] == [1]
    assert open_alma.resume("wf") == {"ok": 1}


def _age(alma: ALMA, days: float) -> None:
    """Backdate every checkpoint record of the project (the store sets timestamps itself)."""
    conn = alma.storage._conn  # type: ignore[attr-defined]
    stamp = time.time() - days * 86400
    conn.execute("UPDATE records SET created_at = ?, updated_at = ? WHERE project_id = ?", (stamp, stamp, "open"))
    conn.commit()


def test_cleanup_deletes_old_checkpoints_but_keeps_the_latest(open_alma: ALMA) -> None:
    for i in range(5):
        open_alma.checkpoint("old", {"i": i})
    for i in range(2):
        open_alma.checkpoint("other", {"i": i})
    _age(open_alma, 10)
    fresh = open_alma.checkpoint("old", {"i": "fresh"})
    assert open_alma.cleanup_checkpoints(older_than_days=7, keep_latest=2) == 4 + 0
    left = open_alma.list_checkpoints("old")
    assert [c.sequence for c in left] == [6, 5]  # the fresh one plus the newest old one
    assert left[0].id == fresh.id
    assert len(open_alma.list_checkpoints("other")) == 2  # keep_latest=2 protects both
    assert open_alma.cleanup_checkpoints(older_than_days=7, keep_latest=0, workflow_id="other") == 2
    assert open_alma.cleanup_checkpoints(older_than_days=30) == 0


def test_cleanup_keeps_the_latest_even_when_everything_is_old(open_alma: ALMA) -> None:
    for i in range(3):
        open_alma.checkpoint("wf", {"i": i})
    _age(open_alma, 100)
    assert open_alma.cleanup_checkpoints() == 2
    assert open_alma.resume("wf") == {"i": 2}


def test_checkpoints_with_a_user_id_go_with_delete_user(open_alma: ALMA) -> None:
    open_alma.checkpoint("wf", {"x": 1}, metadata={"user_id": "u1"})
    open_alma.checkpoint("wf", {"x": 2})
    open_alma.delete_user("u1")
    assert [c.sequence for c in open_alma.list_checkpoints("wf")] == [2]


def test_artifacts_link_and_filter(open_alma: ALMA) -> None:
    open_alma.link_artifact("wf", "code", "src/app.py", {"lines": 10})
    open_alma.link_artifact("wf", "test", "tests/test_app.py")
    open_alma.link_artifact("other", "code", "elsewhere.py")
    assert [a.ref for a in open_alma.get_artifacts("wf")] == ["tests/test_app.py", "src/app.py"]
    code = open_alma.get_artifacts("wf", "code")
    assert [(a.ref, a.metadata) for a in code] == [("src/app.py", {"lines": 10})]
    with pytest.raises(ValidationError, match="artifact_type"):
        open_alma.link_artifact("wf", "binary", "x")


async def test_async_twins(open_alma: ALMA) -> None:
    made = await open_alma.acheckpoint("wf", {"a": 1})
    assert await open_alma.aresume("wf") == {"a": 1}
    assert [c.id for c in await open_alma.alist_checkpoints("wf")] == [made.id]


def test_concurrent_checkpoints_from_two_processes_keep_a_strict_sequence(db_path: Path) -> None:
    ALMA(project_id="open", storage=db_path, embedder="mock").close()
    code = textwrap.dedent(f"""
        import sys
        from alma_core import ALMA
        with ALMA(project_id="open", storage={str(db_path)!r}, embedder="mock") as a:
            for i in range(100):
                a.checkpoint("shared", {{"writer": sys.argv[1], "i": i}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, name], cwd=ROOT) for name in ("p1", "p2")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with ALMA(project_id="open", storage=db_path, embedder="mock") as alma:
        listed = alma.list_checkpoints("shared")
        assert sorted(c.sequence for c in listed) == list(range(1, 201))
        records = alma.storage.execute(ListRecords("open", "wf/shared/checkpoints", descending=False))
        by_writer: dict[str, list[int]] = {}
        for record in records:
            state = alma.resume("shared", record.key)
            by_writer.setdefault(state["writer"], []).append(state["i"])
        assert by_writer == {"p1": list(range(100)), "p2": list(range(100))}  # each writer's order is kept
