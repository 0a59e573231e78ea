"""A LlamaIndex `Workflow`'s `Context` saved as ALMA checkpoints and restored from them.

The state is the Context's own JSON form (`ctx.to_dict(serializer=JsonSerializer())`, no pickle),
stored under the key `llamaindex_context` of an ALMA checkpoint. A workflow stopped in one process
(for example while it waits for human input) continues in another:

    checkpoint = save_context(alma, "review-42", handler.ctx)          # process A
    ctx = restore_context(alma, "review-42", ReviewWorkflow())          # process B
    handler = workflow.run(ctx=ctx)
"""

from __future__ import annotations

from typing import Any

from llama_index.core.workflow import Context, JsonSerializer, Workflow
from workflows.errors import ContextSerdeError

from alma_core import ALMA, Checkpoint, SerializationError

__all__ = ["arestore_context", "asave_context", "restore_context", "save_context"]

STATE_KEY = "llamaindex_context"


def _state(ctx: Context) -> dict[str, Any]:
    return {STATE_KEY: ctx.to_dict(serializer=JsonSerializer())}


def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {"source": "llamaindex", **(metadata or {})}


def _context(workflow: Workflow, workflow_id: str, state: Any) -> Context:
    if not isinstance(state, dict) or not isinstance(state.get(STATE_KEY), dict):
        raise SerializationError(f"the checkpoint of workflow {workflow_id!r} holds no LlamaIndex Context")
    try:
        return Context.from_dict(workflow, state[STATE_KEY], serializer=JsonSerializer())
    except ContextSerdeError as exc:
        raise SerializationError(f"workflow {workflow_id!r}: cannot restore its Context: {exc}") from None


def save_context(
    alma: ALMA, workflow_id: str, ctx: Context, *, agent: str | None = None, metadata: dict[str, Any] | None = None
) -> Checkpoint:
    """Save the Context as the workflow's newest ALMA checkpoint."""
    return alma.checkpoint(workflow_id, _state(ctx), metadata=_metadata(metadata), agent=agent)


async def asave_context(
    alma: ALMA, workflow_id: str, ctx: Context, *, agent: str | None = None, metadata: dict[str, Any] | None = None
) -> Checkpoint:
    """Async twin of `save_context`."""
    return await alma.acheckpoint(workflow_id, _state(ctx), metadata=_metadata(metadata), agent=agent)  # type: ignore[no-any-return]


def restore_context(alma: ALMA, workflow_id: str, workflow: Workflow, *, checkpoint_id: str | None = None) -> Context:
    """A Context for `workflow` from the latest (or named) checkpoint; `NotFound` when there is none."""
    return _context(workflow, workflow_id, alma.resume(workflow_id, checkpoint_id))


async def arestore_context(
    alma: ALMA, workflow_id: str, workflow: Workflow, *, checkpoint_id: str | None = None
) -> Context:
    """Async twin of `restore_context`."""
    return _context(workflow, workflow_id, await alma.aresume(workflow_id, checkpoint_id))
