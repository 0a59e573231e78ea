"""Request and response bodies of the HTTP API that the MCP tools don't already define.

Bodies reuse the MCP tools' strict models (`alma_core.mcp._tools`): one definition of what a valid
`learn` or `checkpoint` call is, whichever door it comes through. Responses reuse the core's models
(`Checkpoint`, `WorkItem`, `Handoff`...) so the OpenAPI document describes exactly what is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..mcp._common import MAX_TEXT, MemoryTypeName, ToolArgs, WithMetadata, agent_field, optional_name
from ..mcp._tools import LearnArgs
from ..mcp._workflow_tools import CleanupCheckpointsArgs
from ..progress import WorkItem
from ..session import Handoff, SessionInfo
from ..workflow._models import Artifact, Checkpoint

__all__ = [
    "PROBLEMS",
    "AddAntiPatternArgs",
    "ArtifactList",
    "CheckpointList",
    "CleanupArgs",
    "Count",
    "EndSessionArgs",
    "ForgetResult",
    "HandoffArgs",
    "HandoffList",
    "Imported",
    "LearnManyArgs",
    "LearnManyResult",
    "MemoryList",
    "MemoryOut",
    "Problem",
    "ResumeResult",
    "RetrieveResult",
    "SessionList",
    "SessionStarted",
    "StartSessionArgs",
    "StatusArgs",
    "WorkItemArgs",
    "WorkItemList",
    "WorkStatusName",
]

MAX_BATCH = 1000  # outcomes in one learn_many


# ---- bodies -------------------------------------------------------------------------------------------


class LearnManyArgs(ToolArgs):
    items: list[LearnArgs] = Field(min_length=1, max_length=MAX_BATCH, description="Outcomes, all stored or none.")


class AddAntiPatternArgs(WithMetadata):
    agent: str = agent_field()
    pattern: str = Field(min_length=1, max_length=MAX_TEXT, description="What not to do.")
    why_bad: str = Field("", max_length=MAX_TEXT, description="Why it fails.")
    better_alternative: str = Field("", max_length=MAX_TEXT, description="What to do instead.")
    task_type: str | None = optional_name("Category (must be in the agent's can_learn).")
    confidence: float = Field(1.0, ge=0, le=1, description="How sure, 0..1.")


class CleanupArgs(CleanupCheckpointsArgs):
    workflow_id: str | None = optional_name("Only this workflow; omit for all.")


class StartSessionArgs(WithMetadata):
    agent: str = agent_field()
    goal: str = Field("", max_length=MAX_TEXT, description="What the session is for.")


class EndSessionArgs(ToolArgs):
    summary: str | None = Field(None, max_length=MAX_TEXT, description="How it went.")


_Items = Field(None, max_length=100, description="Short items, one each.")


class HandoffArgs(WithMetadata):
    last_action: str = Field(min_length=1, max_length=MAX_TEXT, description="What the agent did last.")
    last_outcome: str = Field(min_length=1, max_length=MAX_TEXT, description="How that went.")
    next_steps: list[str] | None = _Items
    blockers: list[str] | None = _Items
    decisions: list[str] | None = _Items
    notes: str = Field("", max_length=MAX_TEXT)


class WorkItemArgs(WithMetadata):
    title: str = Field(min_length=1, max_length=MAX_TEXT)
    description: str = Field("", max_length=MAX_TEXT)
    priority: int = Field(50, ge=-1_000_000, le=1_000_000, description="Higher is more urgent.")
    agent: str | None = optional_name("Who should do it; omit for anyone.")
    dependencies: list[str] | None = Field(None, max_length=1000, description="Ids of existing work items.")
    estimated_effort: float | None = Field(None, ge=0, le=1e9, description="Any unit (hours, points).")


WorkStatusName = Literal["pending", "in_progress", "blocked", "done", "failed"]


class StatusArgs(ToolArgs):
    status: WorkStatusName


# ---- responses ----------------------------------------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem document: every error the API answers (`error` names the ALMA error class)."""

    type: str = Field(description="urn:alma:error:<error>")
    title: str
    status: int
    error: str = Field(
        description="The AlmaError class (ValidationError, ScopeViolation, NotFound...) or HTTP condition."
    )
    detail: str = Field(description="One line: what went wrong.")


PROBLEMS: dict[int | str, dict[str, Any]] = {
    "default": {"model": Problem, "description": "An error, as application/problem+json."}
}


class MemoryOut(BaseModel):
    """A memory as JSON: the common fields, plus those of its `type` (task, strategy_used, fact...)."""

    model_config = ConfigDict(extra="allow")

    type: MemoryTypeName
    id: str
    project_id: str
    agent: str
    created_at: str
    updated_at: str
    confidence: float
    metadata: dict[str, Any]
    workflow_id: str | None = None


class RetrieveResult(BaseModel):
    query: str
    agent: str
    total: int
    prompt: str = Field(description="The memories rendered for a prompt (empty when none).")
    memories: dict[MemoryTypeName, list[MemoryOut]]


class MemoryList(BaseModel):
    memories: list[MemoryOut]


class LearnManyResult(BaseModel):
    count: int
    outcomes: list[MemoryOut]


class ForgetResult(BaseModel):
    count: int
    dry_run: bool
    ids: list[str]


class Count(BaseModel):
    deleted: int


class Imported(BaseModel):
    imported: int


class ResumeResult(BaseModel):
    workflow_id: str
    state: Any


class CheckpointList(BaseModel):
    checkpoints: list[Checkpoint]


class ArtifactList(BaseModel):
    workflow_id: str
    count: int
    artifacts: list[Artifact]


class SessionStarted(SessionInfo):
    previous_handoff: Handoff | None = None


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class HandoffList(BaseModel):
    handoffs: list[Handoff]


class WorkItemList(BaseModel):
    items: list[WorkItem]
