"""Sessions and handoffs, including a handoff written by one process and read by the next."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alma_core import ALMA, NotFound, SessionManager, ValidationError

ROOT = Path(__file__).resolve().parents[2]


def test_previous_handoff_is_the_agents_last_one(open_alma: ALMA) -> None:
    sessions = SessionManager(alma=open_alma)
    first = sessions.start_session("helena", goal="fix login tests")
    assert first.previous_handoff is None
    sessions.create_handoff("helena", first.session_id, "ran tests", "2 failing", ["fix selector"], ["flaky CI"])
    sessions.create_handoff("victor", sessions.start_session("victor").session_id, "api", "ok", [])
    sessions.end_session("helena", first.session_id, summary="half done")
    second = sessions.start_session("helena", goal="finish")
    sessions.create_handoff("helena", second.session_id, "own", "ignored", [])  # written before the lazy read
    prev = second.previous_handoff
    assert prev is not None
    assert (prev.session_id, prev.next_steps, prev.blockers) == (first.session_id, ["fix selector"], ["flaky CI"])
    assert sessions.get_latest_handoff("helena").last_action == "own"  # type: ignore[union-attr]
    assert [s.status for s in sessions.list_sessions("helena")] == ["active", "ended"]


def test_handoffs_are_scoped_to_the_project(db_path: Path) -> None:
    one = SessionManager("p1", storage=db_path)
    ctx = one.start_session("helena")
    one.create_handoff("helena", ctx.session_id, "a", "b", [])
    assert SessionManager("p2", storage=db_path).get_latest_handoff("helena") is None


def test_bad_handoffs_are_rejected(open_alma: ALMA) -> None:
    sessions = SessionManager(alma=open_alma)
    with pytest.raises(NotFound):
        sessions.create_handoff("helena", "no-session", "a", "b", [])
    ctx = sessions.start_session("helena")
    with pytest.raises(ValidationError):
        sessions.create_handoff("helena", ctx.session_id, "", "b", [])
    with pytest.raises(ValidationError):
        sessions.create_handoff("helena", ctx.session_id, "a", "b", "not a list")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SessionManager("  ")


def test_a_handoff_written_by_one_process_is_read_by_the_next(db_path: Path) -> None:
    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    run(f"""
        from alma_core import ALMA, SessionManager
        with ALMA(project_id="proj", storage={str(db_path)!r}, embedder="mock") as alma:
            s = SessionManager("proj", alma=alma)
            ctx = s.start_session("helena", goal="g")
            s.create_handoff("helena", ctx.session_id, "wrote tests", "3 pass", ["deploy"], blockers=["review"])
            s.end_session("helena", ctx.session_id)
    """)
    out = run(f"""
        from alma_core import ALMA, SessionManager
        with ALMA(project_id="proj", storage={str(db_path)!r}, embedder="mock") as alma:
            h = SessionManager("proj", alma=alma).start_session("helena", goal="next").previous_handoff
            print(h.last_action, h.next_steps, h.blockers)
    """)
    assert out == "wrote tests ['deploy'] ['review']"


def test_no_storage_means_the_projects_default_store_and_names_ignore_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manager = SessionManager("my-project")
    ctx = manager.start_session(agent="Helena", goal="Complete auth testing")
    manager.create_handoff("Helena", ctx.session_id, last_action="completed_oauth_tests", last_outcome="success")
    later = SessionManager("my-project").start_session(agent="helena")
    assert later.previous_handoff is not None and later.previous_handoff.last_action == "completed_oauth_tests"
    assert (tmp_path / ".alma" / "alma.db").is_file() and later.agent == "helena"
