"""The 8 workflow MCP tools: checkpoints, reducers, artifacts, scoped retrieval (see the [workflow] issue).

They call `ALMA.checkpoint`, `resume`, `merge_states`, `workflow_learn`, `link_artifact`, `get_artifacts`,
`cleanup_checkpoints` and `retrieve_scoped`. States are JSON objects, capped at `MAX_STATE_BYTES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ._common import (
    DESTROY,
    MAX_NAME,
    MAX_STATE_BYTES,
    MAX_STATE_DEPTH,
    MAX_TEXT,
    READ,
    WRITE,
    Output,
    ToolArgs,
    ToolSpec,
    WithMetadata,
    agent_field,
    check_agent,
    json_size,
    jsonable,
    optional_name,
    slice_output,
)

if TYPE_CHECKING:
    from .._alma import ALMA

__all__ = ["WORKFLOW_TOOLS"]

Reducer = Literal["latest_wins", "merge_lists", "priority_agent"]


def _workflow_field() -> Any:
    return Field(min_length=1, max_length=MAX_NAME, description="Id of the workflow (any stable string you choose).")


class CheckpointArgs(WithMetadata):
    workflow_id: str = _workflow_field()
    state: dict[str, Any] = Field(
        description=f"The workflow state to save, a JSON object (<= {MAX_STATE_BYTES} bytes)."
    )
    agent: str | None = optional_name("Agent that produced this state.")
    parent_id: str | None = optional_name("Checkpoint this one follows from.")

    @field_validator("state")
    @classmethod
    def _small_state(cls, value: dict[str, Any]) -> dict[str, Any]:
        return json_size(value, MAX_STATE_BYTES, "state", MAX_STATE_DEPTH)


class ResumeArgs(ToolArgs):
    workflow_id: str = _workflow_field()
    checkpoint_id: str | None = optional_name("A specific checkpoint; omit for the latest.")


class MergeStatesArgs(ToolArgs):
    workflow_id: str = _workflow_field()
    states: list[dict[str, Any]] = Field(
        min_length=1, max_length=100, description="The states to merge (JSON objects, earliest first)."
    )
    agents: list[str] | None = Field(
        None, max_length=100, description="The agent of each state, same order and length as states (optional)."
    )
    reducer: Reducer | dict[str, Reducer] = Field(
        "latest_wins",
        description="latest_wins (later states win key by key), merge_lists (lists concatenated, de-duplicated), "
        "priority_agent (the agent earliest in priorities wins), or per key: "
        "{'findings': 'merge_lists', '*': 'latest_wins'}.",
    )
    priorities: list[str] | None = Field(None, max_length=100, description="Agents, most trusted first.")
    agent: str | None = optional_name("Agent recorded on the merged checkpoint.")

    @field_validator("states")
    @classmethod
    def _small_states(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return json_size(value, MAX_STATE_BYTES, "states", MAX_STATE_DEPTH + 1)

    @field_validator("reducer")
    @classmethod
    def _few_keys(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict) and (len(value) > 200 or any(len(k) > MAX_NAME for k in value)):
            raise ValueError("a per-key reducer takes at most 200 keys of at most 200 characters")
        return value

    @model_validator(mode="after")
    def _agents_match_states(self) -> MergeStatesArgs:
        if self.agents is not None and len(self.agents) != len(self.states):
            raise ValueError(f"agents has {len(self.agents)} names for {len(self.states)} states")
        return self


class WorkflowLearnArgs(WithMetadata):
    agent: str = agent_field()
    workflow_id: str = _workflow_field()
    task: str = Field(min_length=1, max_length=MAX_TEXT, description="The task that was attempted.")
    outcome: Literal["success", "failure"] | bool = Field(description="'success' or 'failure' (or true / false).")
    strategy_used: str = Field("", max_length=MAX_TEXT, description="What was tried.")
    task_type: str | None = optional_name("Category (must be in the agent's can_learn).")
    checkpoint_id: str | None = optional_name("Checkpoint the outcome came from.")
    duration_ms: int | None = Field(None, ge=0, le=10**10, description="How long the task took.")
    error_message: str | None = Field(None, max_length=MAX_TEXT, description="The error, for a failure.")
    feedback: str | None = Field(None, max_length=MAX_TEXT, description="Reviewer or user feedback.")


class LinkArtifactArgs(WithMetadata):
    workflow_id: str = _workflow_field()
    artifact_type: Literal["code", "test", "document", "config", "deployment"] = Field(description="Kind of artifact.")
    ref: str = Field(min_length=1, max_length=2_000, description="Where it is: a path, URL, commit or id.")


class GetArtifactsArgs(ToolArgs):
    workflow_id: str = _workflow_field()
    artifact_type: Literal["code", "test", "document", "config", "deployment"] | None = Field(
        None, description="Only this kind."
    )


class CleanupCheckpointsArgs(ToolArgs):
    older_than_days: float = Field(7, ge=0, le=100_000, description="Delete checkpoints older than this.")
    keep_latest: int = Field(1, ge=0, le=1_000_000, description="Always keep this many newest per workflow.")


class RetrieveScopedArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=MAX_TEXT, description="The task or question, in plain words.")
    scope: Literal["workflow_only", "agent_only", "project_wide"] = Field(
        description="workflow_only needs workflow_id; agent_only needs agent."
    )
    agent: str | None = optional_name("Agent whose view to use.")
    workflow_id: str | None = optional_name("Workflow to restrict to (scope workflow_only).")
    top_k: int = Field(5, ge=1, le=100, description="At most this many memories per type.")
    max_tokens: int | None = Field(None, ge=1, le=100_000, description="Token budget of the returned prompt text.")


def _checkpoint(alma: ALMA, a: CheckpointArgs) -> Output:
    check_agent(alma, a.agent)
    cp = alma.checkpoint(a.workflow_id, a.state, metadata=a.metadata, agent=a.agent, parent_id=a.parent_id)
    data = jsonable(cp)
    data.pop("state", None)  # the caller has it; echoing 1 MB back helps nobody
    return data, f"checkpoint {data.get('id')} (#{data.get('sequence')}) of workflow {a.workflow_id}"


def _resume(alma: ALMA, a: ResumeArgs) -> Output:
    state = jsonable(alma.resume(a.workflow_id, a.checkpoint_id))
    return {"workflow_id": a.workflow_id, "state": state}, f"resumed workflow {a.workflow_id}: {len(state)} keys"


def _merge_states(alma: ALMA, a: MergeStatesArgs) -> Output:
    for name in [*(a.agents or []), *(a.priorities or []), a.agent]:
        check_agent(alma, name)
    states: list[Any] = list(zip(a.agents, a.states, strict=True)) if a.agents else list(a.states)
    data = jsonable(alma.merge_states(a.workflow_id, states, a.reducer, a.priorities, agent=a.agent))
    return data, f"merged {len(a.states)} states into checkpoint {data.get('id')} of workflow {a.workflow_id}"


def _workflow_learn(alma: ALMA, a: WorkflowLearnArgs) -> Output:
    outcome = alma.workflow_learn(**a.model_dump())
    verdict = "success" if outcome.success else "failure"
    return outcome.to_dict(), f"learned {verdict} for {outcome.agent} in workflow {a.workflow_id}: {outcome.id}"


def _link_artifact(alma: ALMA, a: LinkArtifactArgs) -> Output:
    data = jsonable(alma.link_artifact(a.workflow_id, a.artifact_type, a.ref, metadata=a.metadata))
    return data, f"linked {a.artifact_type} {a.ref} to workflow {a.workflow_id}"


def _get_artifacts(alma: ALMA, a: GetArtifactsArgs) -> Output:
    found = jsonable(alma.get_artifacts(a.workflow_id, a.artifact_type))
    lines = [f"- {x.get('artifact_type', '')}: {x.get('ref', '')}" for x in found if isinstance(x, dict)]
    text = "\n".join([f"{len(found)} artifacts of workflow {a.workflow_id}", *lines])
    return {"workflow_id": a.workflow_id, "count": len(found), "artifacts": found}, text


def _cleanup_checkpoints(alma: ALMA, a: CleanupCheckpointsArgs) -> Output:
    n = alma.cleanup_checkpoints(older_than_days=a.older_than_days, keep_latest=a.keep_latest)
    return {"deleted": int(n)}, f"deleted {n} checkpoints"


def _retrieve_scoped(alma: ALMA, a: RetrieveScopedArgs) -> Output:
    check_agent(alma, a.agent)
    found = alma.retrieve_scoped(a.query, a.scope, agent=a.agent, workflow_id=a.workflow_id, top_k=a.top_k)
    return slice_output(found, a.max_tokens)


WORKFLOW_TOOLS: list[ToolSpec] = [
    ToolSpec("alma_checkpoint", "Checkpoint a workflow",
             "Save a workflow's state so it can be resumed after a crash, a restart or a handoff.",
             CheckpointArgs, _checkpoint, WRITE),
    ToolSpec("alma_resume", "Resume a workflow", "The latest (or a named) saved state of a workflow.",
             ResumeArgs, _resume, READ),
    ToolSpec("alma_merge_states", "Merge workflow states",
             "Combine the states of parallel agents with a reducer and checkpoint the result.",
             MergeStatesArgs, _merge_states, WRITE),
    ToolSpec("alma_workflow_learn", "Learn within a workflow",
             "Like alma_learn, but records the workflow (and checkpoint) the outcome came from, so workflow_only "
             "retrieval finds it.", WorkflowLearnArgs, _workflow_learn, WRITE),
    ToolSpec("alma_link_artifact", "Link an artifact",
             "Attach a produced artifact (code, test, document, config, deployment) to a workflow.",
             LinkArtifactArgs, _link_artifact, WRITE),
    ToolSpec("alma_get_artifacts", "List artifacts", "The artifacts linked to a workflow, optionally of one kind.",
             GetArtifactsArgs, _get_artifacts, READ),
    ToolSpec("alma_cleanup_checkpoints", "Clean up checkpoints",
             "Delete old checkpoints, always keeping each workflow's newest keep_latest.",
             CleanupCheckpointsArgs, _cleanup_checkpoints, DESTROY),
    ToolSpec("alma_retrieve_scoped", "Retrieve memories in a scope",
             "Like alma_retrieve, restricted to one workflow (workflow_only), one agent (agent_only) or the "
             "whole project (project_wide).", RetrieveScopedArgs, _retrieve_scoped, READ),
]  # fmt: skip
