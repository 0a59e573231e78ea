"""Workflow, session and progress endpoints under `/v1/projects/{project_id}`: checkpoints, resume,
merge_states, workflow_learn, artifacts, scoped retrieval, cleanup; sessions and handoffs; work items.

Writes are POSTs whose bodies are the MCP tools' models; reads are GETs with query parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..mcp._common import MAX_NAME, check_agent, jsonable
from ..mcp._workflow_tools import (
    CheckpointArgs,
    GetArtifactsArgs,
    LinkArtifactArgs,
    MergeStatesArgs,
    ResumeArgs,
    RetrieveScopedArgs,
    WorkflowLearnArgs,
)
from ..progress import ProgressSummary, ProgressTracker, WorkItem
from ..session import Handoff, SessionInfo, SessionManager
from ..workflow._models import Artifact, Checkpoint
from ._models import (
    PROBLEMS,
    ArtifactList,
    CheckpointList,
    CleanupArgs,
    Count,
    EndSessionArgs,
    HandoffArgs,
    HandoffList,
    MemoryOut,
    ResumeResult,
    RetrieveResult,
    SessionList,
    SessionStarted,
    StartSessionArgs,
    StatusArgs,
    WorkItemArgs,
    WorkItemList,
    WorkStatusName,
)
from ._routes import Alma, Name, tool

__all__ = ["router"]

router = APIRouter(prefix="/v1/projects/{project_id}", responses=PROBLEMS)
OptionalName = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)]
Limit = Annotated[int | None, Query(ge=1, le=10_000)]
ArtifactKind = Literal["code", "test", "document", "config", "deployment"]

# ---- checkpoints and workflows ------------------------------------------------------------------------


@router.post("/checkpoints", response_model=Checkpoint, status_code=201, tags=["workflow"])
def checkpoint(body: CheckpointArgs, alma: Alma) -> Any:
    """Save a workflow's state as its newest checkpoint (the reply omits the state)."""
    return tool("alma_checkpoint", alma, body)


@router.get("/workflows/{workflow_id}/checkpoints", response_model=CheckpointList, tags=["workflow"])
def list_checkpoints(workflow_id: Name, alma: Alma, limit: Limit = None, before: OptionalName = None) -> Any:
    """Checkpoints newest first, without states; `before` is a sequence number or a checkpoint id."""
    cursor: int | str | None = int(before) if before is not None and before.isascii() and before.isdigit() else before
    return {"checkpoints": jsonable(alma.list_checkpoints(workflow_id, limit, cursor))}


@router.get("/workflows/{workflow_id}/checkpoint", response_model=Checkpoint, tags=["workflow"])
def get_checkpoint(workflow_id: Name, alma: Alma, checkpoint_id: OptionalName = None) -> Any:
    """One checkpoint with its state: the named one, or the latest."""
    return jsonable(alma.get_checkpoint(workflow_id, checkpoint_id))


@router.get("/workflows/{workflow_id}/resume", response_model=ResumeResult, tags=["workflow"])
def resume(workflow_id: Name, alma: Alma, checkpoint_id: OptionalName = None) -> Any:
    """The state to resume from: the latest (or named) checkpoint's."""
    return tool("alma_resume", alma, ResumeArgs(workflow_id=workflow_id, checkpoint_id=checkpoint_id))


@router.post("/merge_states", response_model=Checkpoint, status_code=201, tags=["workflow"])
def merge_states(body: MergeStatesArgs, alma: Alma) -> Any:
    """Merge parallel agents' states with a reducer and checkpoint the result (with its provenance)."""
    return tool("alma_merge_states", alma, body)


@router.post("/workflow_learn", response_model=MemoryOut, status_code=201, tags=["workflow"])
def workflow_learn(body: WorkflowLearnArgs, alma: Alma) -> Any:
    """`learn`, recording the workflow (and checkpoint) the outcome came from."""
    return tool("alma_workflow_learn", alma, body)


@router.post("/artifacts", response_model=Artifact, status_code=201, tags=["workflow"])
def link_artifact(body: LinkArtifactArgs, alma: Alma) -> Any:
    """Record that the workflow produced `ref` (a path, URL, commit...)."""
    return tool("alma_link_artifact", alma, body)


@router.get("/workflows/{workflow_id}/artifacts", response_model=ArtifactList, tags=["workflow"])
def get_artifacts(workflow_id: Name, alma: Alma, artifact_type: ArtifactKind | None = None) -> Any:
    """The workflow's artifacts, newest first (of one type if given)."""
    return tool("alma_get_artifacts", alma, GetArtifactsArgs(workflow_id=workflow_id, artifact_type=artifact_type))


@router.post("/checkpoints/cleanup", response_model=Count, tags=["workflow"])
def cleanup_checkpoints(body: CleanupArgs, alma: Alma) -> Any:
    """Delete checkpoints older than `older_than_days`, keeping each workflow's `keep_latest` newest."""
    n = alma.cleanup_checkpoints(body.older_than_days, body.keep_latest, body.workflow_id)
    return {"deleted": n}


@router.post("/retrieve_scoped", response_model=RetrieveResult, tags=["workflow"])
def retrieve_scoped(body: RetrieveScopedArgs, alma: Alma) -> Any:
    """Retrieve within one workflow (`workflow_only`), one agent (`agent_only`) or the whole project."""
    return tool("alma_retrieve_scoped", alma, body)


# ---- sessions and handoffs ----------------------------------------------------------------------------


@router.post("/sessions", response_model=SessionStarted, status_code=201, tags=["sessions"])
def start_session(body: StartSessionArgs, alma: Alma) -> Any:
    """Open a session; the reply carries the agent's previous handoff, if any."""
    check_agent(alma, body.agent)
    ctx = SessionManager(alma=alma).start_session(body.agent, body.goal, body.metadata)
    return {**ctx.model_dump(mode="json"), "previous_handoff": jsonable(ctx.previous_handoff)}


@router.get("/sessions", response_model=SessionList, tags=["sessions"])
def list_sessions(
    alma: Alma, agent: Annotated[str, Query(min_length=1, max_length=MAX_NAME)], limit: Limit = None
) -> Any:
    check_agent(alma, agent)
    return {"sessions": SessionManager(alma=alma).list_sessions(agent, limit)}


@router.get("/sessions/{agent}/{session_id}", response_model=SessionInfo, tags=["sessions"])
def get_session(agent: Name, session_id: Name, alma: Alma) -> Any:
    check_agent(alma, agent)
    return SessionManager(alma=alma).get_session(agent, session_id)


@router.post("/sessions/{agent}/{session_id}/end", response_model=SessionInfo, tags=["sessions"])
def end_session(agent: Name, session_id: Name, body: EndSessionArgs, alma: Alma) -> Any:
    """Mark the session ended (ending twice keeps the first end)."""
    check_agent(alma, agent)
    return SessionManager(alma=alma).end_session(agent, session_id, body.summary)


@router.post("/sessions/{agent}/{session_id}/handoff", response_model=Handoff, status_code=201, tags=["sessions"])
def create_handoff(agent: Name, session_id: Name, body: HandoffArgs, alma: Alma) -> Any:
    """Leave a handoff for the agent's next session."""
    check_agent(alma, agent)
    return SessionManager(alma=alma).create_handoff(agent, session_id, **body.model_dump())


@router.get("/handoffs", response_model=HandoffList, tags=["sessions"])
def list_handoffs(
    alma: Alma, agent: Annotated[str, Query(min_length=1, max_length=MAX_NAME)], limit: Limit = None
) -> Any:
    check_agent(alma, agent)
    return {"handoffs": SessionManager(alma=alma).list_handoffs(agent, limit)}


@router.get("/handoffs/latest", response_model=Handoff | None, tags=["sessions"])
def latest_handoff(alma: Alma, agent: Annotated[str, Query(min_length=1, max_length=MAX_NAME)]) -> Any:
    """The agent's newest handoff, or null."""
    check_agent(alma, agent)
    return SessionManager(alma=alma).get_latest_handoff(agent)


# ---- progress -----------------------------------------------------------------------------------------


@router.post("/work_items", response_model=WorkItem, status_code=201, tags=["progress"])
def create_work_item(body: WorkItemArgs, alma: Alma) -> Any:
    """A pending work item; its dependencies must already exist."""
    check_agent(alma, body.agent)
    return ProgressTracker(alma=alma).create_work_item(**body.model_dump())


@router.get("/work_items", response_model=WorkItemList, tags=["progress"])
def list_work_items(
    alma: Alma,
    status: WorkStatusName | None = None,
    agent: OptionalName = None,
) -> Any:
    """Work items, oldest first (of one status and/or agent if given)."""
    check_agent(alma, agent)
    return {"items": ProgressTracker(alma=alma).list_items(status, agent)}


@router.get("/work_items/next", response_model=WorkItem | None, tags=["progress"])
def next_work_item(
    alma: Alma, strategy: Literal["priority", "quick_win", "unblock"] = "priority", agent: OptionalName = None
) -> Any:
    """The ready item to start next (all its dependencies done), or null."""
    check_agent(alma, agent)
    return ProgressTracker(alma=alma).get_next_item(strategy, agent)


@router.get("/work_items/{item_id}", response_model=WorkItem, tags=["progress"])
def get_work_item(item_id: Name, alma: Alma) -> Any:
    return ProgressTracker(alma=alma).get_item(item_id)


@router.post("/work_items/{item_id}/status", response_model=WorkItem, tags=["progress"])
def update_status(item_id: Name, body: StatusArgs, alma: Alma) -> Any:
    """Move the item along the transition table (InvalidTransition otherwise)."""
    return ProgressTracker(alma=alma).update_status(item_id, body.status)


@router.get("/progress", response_model=ProgressSummary, tags=["progress"])
def progress(alma: Alma) -> Any:
    """Counts per status, the share done, how many items are ready."""
    return ProgressTracker(alma=alma).get_progress_summary()
