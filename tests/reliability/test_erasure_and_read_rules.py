"""delete_user removes every record carrying the user's data, in every store; read rules hold everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest_pg import drop_schemas, new_schema

from alma_core import ALMA, ProgressTracker, ScopeViolation, SessionManager, UserErasure
from alma_core.storage._base import ListRecords

SECRET = "u1-secret-token-4711"


def _everything(alma: ALMA) -> str:
    """Every memory and record of the project, as one text to search."""
    memories = [m.to_dict() for m in alma.list_memories()]
    records = alma.storage.execute(ListRecords(alma.project_id, "", prefix=True))
    rows = [{"ns": r.namespace, "key": r.key, "meta": r.metadata, "value": (r.value or b"").decode("latin-1")}
            for r in records]  # fmt: skip
    return json.dumps([memories, rows], default=str)


class State(TypedDict):
    text: str


def _langgraph_thread(alma: ALMA, thread: str, user: str) -> None:
    from langgraph.graph import END, START, StateGraph

    from alma_langgraph import AlmaSaver

    builder = StateGraph(State)
    builder.add_node("echo", lambda s: {"text": s["text"] + " done"})
    builder.add_edge(START, "echo")
    builder.add_edge("echo", END)
    graph = builder.compile(checkpointer=AlmaSaver(alma))
    text = SECRET if user == "u1" else "hello"
    graph.invoke({"text": text}, {"configurable": {"thread_id": thread, "user_id": user}})


def _fill(alma: ALMA) -> None:
    for user in ("u1", "u2"):
        alma.add_user_preference(user, f"{user} likes short answers")
        # a strategy only u1 used: its evidence, heuristic and anti-pattern are u1's alone
        for _ in range(3):
            alma.learn("a", "deploy the service", "failure", f"{user} private strategy", task_type="ops",
                       error_message=f"{user} error {SECRET if user == 'u1' else 'plain'}",
                       metadata={"user_id": user})  # fmt: skip
        # a strategy both used: shared evidence keeps its counts but loses u1's error text
        alma.learn("a", "deploy the service", "failure", "shared strategy", task_type="ops",
                   error_message=f"shared failure {user} {SECRET if user == 'u1' else 'plain'}",
                   metadata={"user_id": user})  # fmt: skip
    alma.learn("a", "deploy the service", "failure", "shared strategy", task_type="ops",
               error_message="shared failure anonymous")  # fmt: skip
    alma.checkpoint("wf-1", {"step": SECRET}, metadata={"user_id": "u1"})
    alma.link_artifact("wf-1", "document", f"s3://{SECRET}", metadata={"user_id": "u1"})
    sessions = SessionManager(alma=alma)
    ctx = sessions.start_session("a", goal=SECRET, metadata={"user_id": "u1"})
    sessions.create_handoff("a", ctx.session_id, last_action=SECRET, last_outcome="ok", metadata={"user_id": "u1"})
    ProgressTracker(alma=alma).create_work_item(SECRET, metadata={"user_id": "u1"})
    _langgraph_thread(alma, "thread-u1", "u1")
    _langgraph_thread(alma, "thread-u2", "u2")


@pytest.fixture(params=["sqlite", "postgres"])
def any_alma(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        alma = ALMA(project_id="p", storage=tmp_path / "a.db", embedder="mock")
        yield alma
        alma.close()
        return
    from alma_core.storage.postgres import PostgresStorage

    uri, schema = request.getfixturevalue("pg_uri"), new_schema()
    alma = ALMA(project_id="p", storage=PostgresStorage(uri, schema=schema, min_pool_size=0, max_pool_size=2),
                embedder="mock")  # fmt: skip
    yield alma
    alma.close()
    drop_schemas(uri, schema)


def test_delete_user_leaves_no_trace_of_the_user_in_any_store(any_alma: ALMA) -> None:
    alma = any_alma
    _fill(alma)
    assert SECRET in _everything(alma)
    shared_before = [m for m in alma.list_memories(memory_types=["anti_pattern"]) if "shared strategy" in m.pattern]
    assert shared_before and SECRET in shared_before[0].why_bad

    erased = alma.delete_user("u1")
    assert isinstance(erased, UserErasure) and erased > 0
    assert erased.memories >= 5 and erased.records >= 6 and erased.evidence >= 1 and erased.scrubbed >= 1

    text = _everything(alma)
    assert SECRET not in text
    assert "u1" not in text  # not even the id: records, evidence counts, preferences
    assert "u2 likes short answers" in text and "thread-u2" in text  # the other user's data stays
    shared = [m for m in alma.list_memories(memory_types=["anti_pattern"]) if "shared strategy" in m.pattern]
    assert shared and "u2 plain" in shared[0].why_bad  # shared evidence: counts and others' errors kept
    assert alma.delete_user("u1") == 0


def test_retrieve_scoped_project_wide_returns_only_what_the_agent_may_read(alma: ALMA) -> None:
    alma.add_domain_knowledge("victor", "api_patterns", "victor's login form fact")
    alma.add_domain_knowledge("helena", "testing_strategies", "helena's login form fact")
    alma.add_domain_knowledge("qa_lead", "coding", "qa_lead's login form fact")

    def owners(agent: str | None) -> set[str]:
        found = alma.retrieve_scoped("login form fact", "project_wide", agent=agent, top_k=10)
        return {m.agent for m in found}

    assert owners("helena") == {"helena"}  # shares with qa_lead, reads nobody
    assert owners("qa_lead") == {"qa_lead", "helena"}  # helena shares with it
    assert owners("victor") == {"victor", "qa_lead"}  # inherits from qa_lead
    assert owners(None) == {"victor", "helena", "qa_lead"}  # the operator's view


def test_a_task_naming_a_cannot_learn_category_is_refused_without_a_task_type(alma: ALMA) -> None:
    with pytest.raises(ScopeViolation, match="backend_logic"):
        alma.learn("helena", "Fix the backend logic of the payment service", "success", "patched it")
    assert alma.stats().total == 0
    outcome = alma.learn("helena", "Test the login form", "success", "tried empty fields")
    assert outcome.task_type == "testing_strategies"
