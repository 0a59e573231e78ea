"""A LlamaIndex `Workflow`'s `Context` saved as ALMA checkpoints and restored from them.

The state is the Context's own JSON form (`ctx.to_dict(serializer=JsonSerializer())`, no pickle),
stored under the key `llamaindex_context` of an ALMA checkpoint. A workflow stopped in one process
(for example while it waits for human input) continues in another:

    checkpoint = save_context(alma, "review-42", handler.ctx)          # process A
    ctx = restore_context(alma, "review-42", ReviewWorkflow())          # process B
    handler = workflow.run(ctx=ctx)

`alearn_from_run(alma, agent, workflow_id, handler)` (opt-in) awaits a run and learns one outcome from
how it ended: the Context's state plus the result (or the error), through
`alma_core.run_lessons.learn_from_run`. The final Context is saved as a checkpoint first, and the lesson
cites it (`metadata["run"]`: workflow_id, checkpoint_id), so `restore_context(..., checkpoint_id=...)`
opens the run the lesson came from.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.workflow import Context, JsonSerializer, Workflow
from workflows.errors import ContextSerdeError

from alma_core import ALMA, Checkpoint, SerializationError
from alma_core.run_lessons import ChatModelExtractor, Extractor, learn_from_run

__all__ = ["alearn_from_run", "arestore_context", "asave_context", "restore_context", "save_context"]

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


async def alearn_from_run(
    alma: ALMA,
    agent: str,
    workflow_id: str,
    handler: Any,
    *,
    task: str | None = None,
    llm: Any = None,
    extractor: Extractor | None = None,
    task_type: str | None = None,
) -> Any:
    """Await a workflow run (`workflow.run(...)`'s handler), learn from how it ended, return its result
    (or raise its error). The state read is the Context's state store, with `task` (when given) and
    the result; `llm` (a LangChain chat model) or `extractor` decides what is learned (default: rules)."""
    alma.scopes.check_agent(agent)
    result, error = None, None
    try:
        result = await handler
    except Exception as exc:
        error = exc
    ctx = handler.ctx
    found = await ctx.store.get_state()
    state = dict(found) if hasattr(found, "keys") else found.model_dump(mode="json")  # DictState, or a typed one
    state.update({k: v for k, v in (("task", task), ("result", result)) if v is not None})
    checkpoint = await asave_context(alma, workflow_id, ctx, agent=agent, metadata={"final": True})
    await asyncio.to_thread(
        learn_from_run, alma, agent, state, source="llamaindex_workflow", task_type=task_type,
        extractor=extractor or (ChatModelExtractor(llm) if llm is not None else None),
        error=f"{type(error).__name__}: {error}" if error is not None else None,
        workflow_id=workflow_id, checkpoint_id=checkpoint.id,
    )  # fmt: skip
    if error is not None:
        raise error
    return result
