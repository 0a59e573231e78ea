"""The harness: one loop that makes any executor learn. Retrieve, prompt, execute, judge, learn.

    from alma_core import create_harness, Context
    harness = create_harness("coding", "helena", alma, executor=chat_model)
    result = harness.run(Context(task="Test the login form"))
    result.output, result.success, result.prompt, result.memories

A run: `alma.retrieve(task)` -> prompt = setting + memories (`to_prompt`) + task -> the executor (a
LangChain chat model or runnable: anything with `.invoke`; or a plain callable) -> the evaluator judges
success -> `alma.learn(...)` records the outcome, so the next run's prompt carries the lesson.

With no executor, `run()` stops after the prompt: it returns the prepared run (`result.executed` is
False, `result.prompt` carries the memories) for the caller's own agent, and `harness.complete(result,
output)` judges and learns from what that agent produced. A `Context.project_id` other than the ALMA's
runs in that project of the same store (memories never cross projects).

An executor may return a mapping `{"output": ..., "strategy": ...}` to say which strategy it used (the
learning engine forms heuristics and anti-patterns per strategy); otherwise the strategy is
`Context.strategy`. The core never imports LangChain: chat models are duck-typed.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._alma import ALMA
from ._errors import ValidationError
from ._models import Outcome
from ._slice import MemorySlice
from .domains import DomainSchema, get_schema
from .extraction import content_text

__all__ = [
    "Agent",
    "Context",
    "Evaluator",
    "Harness",
    "MemorySchema",
    "RunResult",
    "Setting",
    "Tool",
    "create_harness",
    "default_evaluator",
]

MemorySchema = DomainSchema
"""The harness's name for a domain schema: what a domain's agents may learn."""

Evaluator = Callable[["Context", Any], "bool | tuple[bool, str | None]"]


@dataclass(frozen=True)
class Tool:
    """A tool the agent may use, as shown in the prompt."""

    name: str
    description: str = ""

    def to_prompt(self) -> str:
        return f"- {self.name}: {self.description}" if self.description else f"- {self.name}"


@dataclass
class Setting:
    """The fixed environment of every run: what the agent can use and must respect."""

    name: str = ""
    description: str = ""
    tools: list[Tool | str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)

    def to_prompt(self) -> str:
        lines = [f"## Setting: {self.name}" if self.name else "## Setting"]
        if self.description:
            lines.append(self.description)
        if self.tools:
            lines.append("### Tools")
            lines.extend(t.to_prompt() if isinstance(t, Tool) else f"- {t}" for t in self.tools)
        if self.constraints:
            lines.append("### Constraints")
            lines.extend(f"- {c}" for c in self.constraints)
        return "\n".join(lines)


@dataclass
class Context:
    """The inputs of one run: the task, who it is for, and anything else the executor needs."""

    task: str
    user: str | None = None
    project_id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    task_type: str | None = None

    def to_prompt(self) -> str:
        lines = ["## Task", self.task]
        if self.inputs:
            lines.append("### Inputs")
            lines.extend(f"- {k}: {v}" for k, v in self.inputs.items())
        return "\n".join(lines)


@dataclass
class Agent:
    """Who acts: a name known to ALMA, the categories it learns in, and optionally its executor."""

    name: str
    scopes: list[str] = field(default_factory=list)
    executor: Any = None
    role: str = ""

    def to_prompt(self) -> str:
        return f"## You are {self.name}" + (f", {self.role}" if self.role else "")


@dataclass
class RunResult:
    """What one run did: the executor's output, the verdict, the memories and prompt it was given."""

    output: Any
    text: str
    success: bool
    prompt: str
    memories: MemorySlice
    strategy: str = ""
    error: str | None = None
    outcome: Outcome | None = None
    duration_ms: int = 0
    executed: bool = True
    """False for a prepared run (no executor): nothing ran, judged or learned yet (see `Harness.complete`)."""
    context: Context | None = field(default=None, repr=False)


def default_evaluator(context: Context, output: Any) -> tuple[bool, str | None]:
    """Success unless the output is empty (an executor exception is a failure before this is called)."""
    if output is None or (isinstance(output, str | Sequence | Mapping) and not output):
        return False, "empty output"
    if isinstance(output, str) and not output.strip():
        return False, "empty output"
    return True, None


def _takes_context(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


class Harness:
    """Setting + agent + memory schema + ALMA around an executor (see the module docstring)."""

    def __init__(
        self,
        setting: Setting,
        agent: Agent,
        alma: ALMA,
        schema: DomainSchema | None = None,
        executor: Any = None,
        evaluator: Evaluator | None = None,
        *,
        top_k: int = 5,
        max_tokens: int | None = 800,
    ) -> None:
        alma.scopes.check_agent(agent.name)
        self.setting, self.agent, self.alma, self.schema = setting, agent, alma, schema
        self.executor = executor if executor is not None else agent.executor
        self._projects: dict[str, ALMA] = {alma.project_id: alma}
        if self.executor is not None and not hasattr(self.executor, "invoke") and not callable(self.executor):
            raise ValidationError(f"executor must have .invoke or be callable, got {type(self.executor).__name__}")
        if evaluator is not None and not callable(evaluator):
            raise ValidationError("evaluator must be a callable (context, output) -> bool | (bool, error)")
        self.evaluator: Evaluator = evaluator or default_evaluator
        self.top_k, self.max_tokens = top_k, max_tokens

    # ---- steps --------------------------------------------------------------------------------------

    def _alma_for(self, context: Context) -> ALMA:
        """The ALMA of the context's project: this one, or a sibling on the same store and config."""
        if not isinstance(context, Context):
            raise ValidationError(f"run() takes a Context, got {type(context).__name__}")
        project = context.project_id or self.alma.project_id
        if project not in self._projects:
            base = self.alma
            self._projects[project] = ALMA(project, storage=base.storage, embedder=base.embedder,
                                           config=base.config, emitter=base.events)  # fmt: skip
        return self._projects[project]

    def build_prompt(self, context: Context, memories: MemorySlice) -> str:
        """Agent identity, setting, memories (rendered within `max_tokens`) and the task."""
        sections = [self.agent.to_prompt(), self.setting.to_prompt()]
        block = memories.to_prompt(max_tokens=self.max_tokens, title="What you learned from past runs")
        if block:
            sections.append(block)
        sections.append(context.to_prompt())
        return "\n\n".join(sections)

    def _judge(self, context: Context, output: Any, text: str) -> tuple[bool, str | None]:
        judged = text if isinstance(output, str) or hasattr(output, "content") else output
        verdict = self.evaluator(context, judged)
        if isinstance(verdict, tuple):
            ok, error = bool(verdict[0]), (str(verdict[1]) if len(verdict) > 1 and verdict[1] else None)
        else:
            ok, error = bool(verdict), None
        return ok, (None if ok else error or "judged a failure by the evaluator")

    def _task_type(self, context: Context) -> str | None:
        """The context's task type, else the agent's scope that best matches the task (first by default)."""
        if context.task_type or not self.agent.scopes:
            return context.task_type
        best = self.alma.scopes.infer_category(self.agent.name, context.task, default="")
        return best if best in self.agent.scopes else self.agent.scopes[0]

    def _finish(
        self, context: Context, memories: MemorySlice, prompt: str, raw: Any, error: str | None, start: float
    ) -> RunResult:
        strategy = context.strategy
        if isinstance(raw, Mapping) and "output" in raw:
            strategy = str(raw.get("strategy") or strategy)
            raw = raw["output"]
        text = content_text(getattr(raw, "content", raw))  # a chat message's content, a string, or its str()
        success = False
        if error is None:
            success, error = self._judge(context, raw, text)
        return RunResult(raw, text, success, prompt, memories, strategy, error,
                         duration_ms=int((time.perf_counter() - start) * 1000))  # fmt: skip

    def _learn_kwargs(self, context: Context, result: RunResult) -> dict[str, Any]:
        metadata = {"user_id": context.user} if context.user else None
        return dict(
            agent=self.agent.name, task=context.task, outcome=result.success, strategy_used=result.strategy,
            task_type=self._task_type(context), duration_ms=result.duration_ms, error_message=result.error,
            metadata=metadata,
        )  # fmt: skip

    # ---- run ----------------------------------------------------------------------------------------

    def _prepared(self, context: Context, memories: MemorySlice, prompt: str) -> RunResult:
        return RunResult(None, "", False, prompt, memories, context.strategy, executed=False, context=context)

    def complete(self, prepared: RunResult, output: Any, success: bool | None = None) -> RunResult:
        """Judge (unless `success` is given) and learn from what the caller's own agent produced for a
        prepared run. Output may be a mapping with "output" and "strategy", as an executor's."""
        context = prepared.context
        if prepared.executed or context is None:
            raise ValidationError("complete() takes the prepared run of a harness without an executor")
        alma = self._alma_for(context)
        result = self._finish(context, prepared.memories, prepared.prompt, output, None, time.perf_counter())
        if success is not None:
            result.success, result.error = bool(success), None if success else "reported as a failure"
        result.context = context
        result.outcome = alma.learn(**self._learn_kwargs(context, result))
        return result

    def run(self, context: Context) -> RunResult:
        """Retrieve, prompt, execute, judge, learn. An executor exception is a failed run, not a crash.
        Without an executor: retrieve and prompt only (the prepared run)."""
        alma = self._alma_for(context)
        start = time.perf_counter()
        memories = alma.retrieve(context.task, self.agent.name, top_k=self.top_k, user_id=context.user)
        prompt = self.build_prompt(context, memories)
        if self.executor is None:
            return self._prepared(context, memories, prompt)
        raw: Any = None
        error: str | None = None
        try:
            raw = self._call(prompt, context)
        except Exception as exc:  # the executor's failure is the lesson
            error = f"{type(exc).__name__}: {exc}"
        result = self._finish(context, memories, prompt, raw, error, start)
        result.context = context
        result.outcome = alma.learn(**self._learn_kwargs(context, result))
        return result

    async def arun(self, context: Context) -> RunResult:
        """Async twin of `run`: `ainvoke` when the executor has it, an awaited coroutine function, or a
        worker thread for a plain callable."""
        alma = self._alma_for(context)
        start = time.perf_counter()
        memories = await alma.aretrieve(context.task, self.agent.name, top_k=self.top_k, user_id=context.user)
        prompt = self.build_prompt(context, memories)
        if self.executor is None:
            return self._prepared(context, memories, prompt)
        raw: Any = None
        error: str | None = None
        try:
            raw = await self._acall(prompt, context)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        result = self._finish(context, memories, prompt, raw, error, start)
        result.context = context
        result.outcome = await alma.alearn(**self._learn_kwargs(context, result))
        return result

    def _call(self, prompt: str, context: Context) -> Any:
        ex = self.executor
        if hasattr(ex, "invoke"):
            return ex.invoke(prompt)
        return ex(prompt, context) if _takes_context(ex) else ex(prompt)

    async def _acall(self, prompt: str, context: Context) -> Any:
        ex = self.executor
        if hasattr(ex, "ainvoke"):
            return await ex.ainvoke(prompt)
        if hasattr(ex, "invoke"):
            return await asyncio.to_thread(ex.invoke, prompt)
        args = (prompt, context) if _takes_context(ex) else (prompt,)
        if inspect.iscoroutinefunction(ex):
            return await ex(*args)
        value = await asyncio.to_thread(ex, *args)
        return await value if isinstance(value, Awaitable) else value


def create_harness(
    domain: DomainSchema | str,
    agent: Agent | str,
    alma: ALMA,
    executor: Any = None,
    *,
    setting: Setting | None = None,
    evaluator: Evaluator | None = None,
    top_k: int = 5,
    max_tokens: int | None = 800,
) -> Harness:
    """A `Harness` for a domain (a schema or a pre-built schema's name) and an agent (an `Agent` or the
    name of one of `alma`'s agents; its scopes default to its `can_learn`, else the schema's categories)."""
    schema = get_schema(domain) if isinstance(domain, str) else domain
    if not isinstance(schema, DomainSchema):
        raise ValidationError(f"domain must be a schema or a schema name, got {type(domain).__name__}")
    if isinstance(agent, str):
        can_learn = alma.scopes.config(agent).can_learn
        agent = Agent(agent, scopes=list(can_learn or schema.learning_categories))
    if not isinstance(agent, Agent):
        raise ValidationError(f"agent must be an Agent or an agent name, got {type(agent).__name__}")
    setting = setting or Setting(schema.name, schema.description)
    return Harness(setting, agent, alma, schema, executor, evaluator, top_k=top_k, max_tokens=max_tokens)
