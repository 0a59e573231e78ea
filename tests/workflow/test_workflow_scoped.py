"""Scoped retrieval and workflow_learn: workflow_only never leaks another workflow's memories."""

from __future__ import annotations

import pytest

from alma_core import ALMA, NotFound, ValidationError


def _learn(alma: ALMA, agent: str, workflow_id: str, n: int) -> None:
    for i in range(n):
        alma.workflow_learn(agent, workflow_id, f"test the login form case {i} in {workflow_id}", "success",
                            strategy_used=f"strategy {workflow_id}")  # fmt: skip


def test_workflow_only_never_returns_another_workflows_memories(alma: ALMA) -> None:
    _learn(alma, "helena", "wf-a", 4)
    _learn(alma, "helena", "wf-b", 4)
    alma.learn("helena", "test the login form outside any workflow", "success", strategy_used="plain")
    found = alma.retrieve_scoped("test the login form", "workflow_only", workflow_id="wf-a", top_k=50)
    assert len(found.outcomes) == 4
    assert all(m.workflow_id == "wf-a" for m in found)
    as_helena = alma.retrieve_scoped("login", "workflow_only", agent="helena", workflow_id="wf-b", top_k=50)
    assert as_helena.outcomes and all(m.workflow_id == "wf-b" for m in as_helena)


def test_agent_only_excludes_shared_and_project_wide_includes_everyone(alma: ALMA) -> None:
    _learn(alma, "helena", "wf", 2)
    alma.workflow_learn("victor", "wf", "call the login api", "success", strategy_used="retry")
    mine = alma.retrieve_scoped("login", "agent_only", agent="victor", top_k=50)
    assert {m.agent for m in mine} == {"victor"}
    everyone = alma.retrieve_scoped("login", "project_wide", top_k=50)
    assert {m.agent for m in everyone.outcomes} == {"helena", "victor"}


def test_workflow_learn_records_the_checkpoint(alma: ALMA) -> None:
    cp = alma.checkpoint("wf", {"step": 1})
    outcome = alma.workflow_learn("helena", "wf", "test the form", True, checkpoint_id=cp.id)
    assert (outcome.workflow_id, outcome.metadata["checkpoint_id"]) == ("wf", cp.id)
    with pytest.raises(NotFound):
        alma.workflow_learn("helena", "wf", "test the form", True, checkpoint_id="missing")


def test_scope_arguments_are_validated(alma: ALMA) -> None:
    with pytest.raises(ValidationError, match="scope"):
        alma.retrieve_scoped("x", "galaxy_wide")
    with pytest.raises(ValidationError, match="workflow_id"):
        alma.retrieve_scoped("x", "workflow_only")
    with pytest.raises(ValidationError, match="agent"):
        alma.retrieve_scoped("x", "agent_only")
