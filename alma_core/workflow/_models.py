"""Value objects of the workflow layer: checkpoints, artifacts, artifact types and retrieval scopes."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ValidationError

__all__ = ["Artifact", "ArtifactType", "Checkpoint", "RetrievalScope", "check_workflow_id", "stamp"]


class ArtifactType(StrEnum):
    """What an artifact linked to a workflow is."""

    CODE = "code"
    TEST = "test"
    DOCUMENT = "document"
    CONFIG = "config"
    DEPLOYMENT = "deployment"


class RetrievalScope(StrEnum):
    """How far `retrieve_scoped` looks: one workflow, one agent's own memories, or the whole project."""

    WORKFLOW_ONLY = "workflow_only"
    AGENT_ONLY = "agent_only"
    PROJECT_WIDE = "project_wide"


class Checkpoint(BaseModel):
    """One saved state of a workflow. `sequence` is strict and increasing per workflow, across
    processes. `state` is set when the checkpoint was loaded with its state (`get_checkpoint`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow_id: str
    sequence: int
    created_at: datetime
    agent: str | None = None
    parent_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    state: Any = None
    size_bytes: int | None = None


class Artifact(BaseModel):
    """Something a workflow produced (code, a test, a document, config, a deployment), by reference."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow_id: str
    artifact_type: ArtifactType
    ref: str
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


def check_workflow_id(workflow_id: Any) -> str:
    """Workflow ids are non-empty strings of at most 200 characters (LangGraph thread ids fit)."""
    if not isinstance(workflow_id, str) or not workflow_id or len(workflow_id) > 200:
        raise ValidationError(f"workflow_id must be a non-empty string of at most 200 characters, got {workflow_id!r}")
    return workflow_id


def stamp(seconds: float) -> datetime:
    """A store timestamp (epoch seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
