"""`as_tools(alma, agent)`: ALMA as LangChain tools for tool-calling agents.

A bad argument (pydantic validation) or an ALMA error (scope, unknown agent, bad value) comes back to
the model as the tool's error message (a ToolMessage with status "error"), never as a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from alma_core import ALMA, AlmaError, MemoryType, Outcome

__all__ = ["LearnOutcomeArgs", "RetrieveMemoriesArgs", "as_tools"]

_T = TypeVar("_T")


class RetrieveMemoriesArgs(BaseModel):
    """Arguments of `retrieve_memories`."""

    task: str = Field(min_length=1, description="The task you are about to do, in a sentence.")
    top_k: int = Field(5, ge=1, le=50, description="How many memories of each type to return.")
    memory_types: list[MemoryType] | None = Field(
        None, description="Only these types: outcome, heuristic, anti_pattern, preference, knowledge."
    )
    max_tokens: int | None = Field(None, ge=1, description="Cap the answer to about this many tokens.")


class LearnOutcomeArgs(BaseModel):
    """Arguments of `learn_outcome`."""

    task: str = Field(min_length=1, description="The task that was done.")
    outcome: Literal["success", "failure"] = Field(description="Whether it worked.")
    strategy_used: str = Field("", description="How it was done (the approach, in a sentence).")
    task_type: str | None = Field(None, description="The task's category; inferred when omitted.")
    error_message: str | None = Field(None, description="What went wrong, on failure.")


def _validation_message(exc: PydanticValidationError | Any) -> str:
    errors = exc.errors() if hasattr(exc, "errors") else []
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in errors)
    return f"invalid arguments: {details or exc}"


def _guarded(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except AlmaError as exc:
        raise ToolException(f"{type(exc).__name__}: {exc}") from exc


async def _aguarded(call: Callable[[], Awaitable[_T]]) -> _T:
    try:
        return await call()
    except AlmaError as exc:
        raise ToolException(f"{type(exc).__name__}: {exc}") from exc


def as_tools(alma: ALMA, agent: str, *, user_id: str | None = None) -> list[BaseTool]:
    """`retrieve_memories` (what worked and what to avoid, as a prompt block) and `learn_outcome`."""

    def _retrieve_kwargs(task: str, top_k: int, memory_types: list[MemoryType] | None) -> dict[str, Any]:
        return {"task": task, "agent": agent, "top_k": top_k, "user_id": user_id, "memory_types": memory_types}

    def retrieve(task: str, top_k: int = 5, memory_types: list[MemoryType] | None = None,
                 max_tokens: int | None = None) -> str:  # fmt: skip
        found = _guarded(lambda: alma.retrieve(**_retrieve_kwargs(task, top_k, memory_types)))
        return found.to_prompt(max_tokens=max_tokens) or "No relevant memories."

    async def aretrieve(task: str, top_k: int = 5, memory_types: list[MemoryType] | None = None,
                        max_tokens: int | None = None) -> str:  # fmt: skip
        found = await _aguarded(lambda: alma.aretrieve(**_retrieve_kwargs(task, top_k, memory_types)))
        return found.to_prompt(max_tokens=max_tokens) or "No relevant memories."

    def _learn_kwargs(**args: Any) -> dict[str, Any]:
        return {"agent": agent, **args, "metadata": {"source": "langchain_tool"}}

    def _recorded(outcome: Outcome) -> str:
        verdict = "success" if outcome.success else "failure"
        return f"Recorded {verdict} of {outcome.task_type!r} task (id {outcome.id})."

    def learn(**args: Any) -> str:
        return _recorded(_guarded(lambda: alma.learn(**_learn_kwargs(**args))))

    async def alearn(**args: Any) -> str:
        return _recorded(await _aguarded(lambda: alma.alearn(**_learn_kwargs(**args))))

    common: dict[str, Any] = {"handle_tool_error": True, "handle_validation_error": _validation_message}
    return [
        StructuredTool.from_function(
            func=retrieve, coroutine=aretrieve, name="retrieve_memories", args_schema=RetrieveMemoriesArgs,
            description="Recall what worked, what failed and what to avoid for a task, before doing it.", **common,
        ),
        StructuredTool.from_function(
            func=learn, coroutine=alearn, name="learn_outcome", args_schema=LearnOutcomeArgs,
            description="Record whether a task succeeded and how it was done, so the strategy is learned.", **common,
        ),
    ]  # fmt: skip
