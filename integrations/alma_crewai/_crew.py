"""ALMA as a crew's memory: agents recall from ALMA, and every task's outcome is learned.

CrewAI 1.15's native injection point is agent memory: before a task, an agent recalls memories for
the task description and appends them to its prompt. `AlmaCrewMemory.attach(crew)` gives each agent
a scope (`/crew/<crew>/agent/<role>`) of one `Memory` over `AlmaStorage`, so what ALMA retrieves for
that agent (anti-patterns, heuristics, outcomes, knowledge) lands in its prompt. CrewAI's event bus
(`TaskCompletedEvent` / `TaskFailedEvent`) carries each task's outcome to `alma.learn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alma_core import ALMA
from alma_core.run_lessons import category_for

from ._deps import require_crewai
from ._events import Subscriptions
from ._storage import AlmaStorage, may_learn

require_crewai()

from crewai.events import TaskCompletedEvent, TaskFailedEvent  # noqa: E402
from crewai.memory.unified_memory import Memory  # noqa: E402
from crewai.memory.utils import sanitize_scope_name  # noqa: E402

__all__ = ["AlmaCrewMemory", "alma_memory"]

Strategy = Callable[[Any, Any], str]  # (task, output or None) -> strategy_used
TaskType = Callable[[Any], str | None] | Mapping[str, str]  # task -> category, or {task name or description: category}


def alma_memory(alma: ALMA, *, llm: Any = None, **options: Any) -> Memory:
    """A CrewAI `Memory` stored in ALMA (`options` go to `AlmaStorage`: agent, agents, root_scope, ...).

    `llm` runs CrewAI's own analysis steps (extraction, categories); ALMA does the embedding."""
    return _memory_over(AlmaStorage(alma, **options), llm)


def _memory_over(storage: AlmaStorage, llm: Any) -> Memory:
    return Memory(storage=storage, embedder=storage.embedder, **({"llm": llm} if llm is not None else {}))


def _default_strategy(task: Any, output: Any) -> str:
    """What the agent did: the start of its answer (or nothing, for a failure)."""
    raw = getattr(output, "raw", "") or ""
    return raw.strip()[:2000]


class AlmaCrewMemory:
    """Connects a `Crew` to ALMA: per-agent recall through `AlmaStorage`, learning after each task.

    `agents` maps sanitized CrewAI roles ("senior-researcher") to ALMA agent names (default: the
    sanitized role itself). `strategy(task, output)` says what goes in `strategy_used`.

    Each task's category (its outcome's `task_type`, and the domain of what CrewAI's memory saves
    during it) comes from, in order: `task_type` (a callable, or a mapping keyed by task name or
    description); the task's `name` when the agent may learn it; the agent's `can_learn` (the entry
    closest to the description, else the first). An agent without `can_learn` lets ALMA infer it.
    """

    def __init__(
        self,
        alma: ALMA,
        *,
        agents: Mapping[str, str] | None = None,
        default_agent: str = "crew",
        llm: Any = None,
        strategy: Strategy | None = None,
        task_type: TaskType | None = None,
    ) -> None:
        self.alma = alma
        self.agents = dict(agents or {})
        self.default_agent = default_agent
        self.llm = llm
        self.strategy = strategy or _default_strategy
        self.task_type = task_type
        self.memory: Memory | None = None
        self._tasks: dict[int, Any] = {}
        self._handlers = Subscriptions()
        self.errors: list[Exception] = []

    def agent_name(self, role: str) -> str:
        """The ALMA agent of a CrewAI role."""
        role = sanitize_scope_name(role or "unknown")
        return self.agents.get(role, role)

    def task_category(self, task: Any) -> str | None:
        """The category a task's outcome is learned under (None: let ALMA infer it)."""
        explicit = self._explicit_type(task)
        if explicit is not None or task.agent is None:
            return explicit
        agent = self.agent_name(task.agent.role)
        if task.name and may_learn(self.alma, agent, task.name):
            return str(task.name)
        return category_for(self.alma, agent, task.description)

    def _explicit_type(self, task: Any) -> str | None:
        if self.task_type is None:
            return None
        if callable(self.task_type):
            return self.task_type(task)
        return self.task_type.get(task.name or "") or self.task_type.get(task.description)

    def attach(self, crew: Any) -> Any:
        """Give every agent of `crew` ALMA-backed memory and learn from its tasks; returns the crew.

        One `Memory` serves the crew; each agent gets its scope `/crew/<crew>/agent/<role>` of it, so
        it reads only what ALMA lets it read (its own memories and those shared with it)."""
        root = f"/crew/{sanitize_scope_name(crew.name or 'crew')}"
        llm = self.llm if self.llm is not None else next((a.llm for a in crew.agents if a.llm is not None), None)
        storage = AlmaStorage(self.alma, agent=self.default_agent, agents=self.agents, root_scope=root)
        self.memory = _memory_over(storage, llm)
        for task in crew.tasks:  # what CrewAI's memory saves during a task lands in the task's category
            category = self.task_category(task) if task.agent is not None else None
            if category is not None:
                storage.domains.setdefault(self.agent_name(task.agent.role), category)
        for agent in crew.agents:
            agent.memory = self.memory.scope(f"{root}/agent/{sanitize_scope_name(agent.role or 'unknown')}")
        self._tasks.update({id(task): task for task in crew.tasks})
        if not self._handlers:
            self._listen(TaskCompletedEvent, self._on_completed)
            self._listen(TaskFailedEvent, self._on_failed)
        return crew

    inject = attach

    def detach(self) -> None:
        """Stop learning (after the pending task events are handled) and drain pending memory writes."""
        self._handlers.off()
        self._tasks.clear()
        if self.memory is not None:
            self.memory.drain_writes()

    def _listen(self, event_type: type, handler: Callable[[Any, Any], None]) -> None:
        self._handlers.on(event_type, handler)

    def _on_completed(self, source: Any, event: Any) -> None:
        self._learn(event.task, event.output, None)

    def _on_failed(self, source: Any, event: Any) -> None:
        self._learn(event.task, None, event.error or "task failed")

    def _learn(self, task: Any, output: Any, error: str | None) -> None:
        if task is None or id(task) not in self._tasks or task.agent is None:
            return
        try:
            self.alma.learn(
                agent=self.agent_name(task.agent.role), task=task.description, outcome=error is None,
                strategy_used=self.strategy(task, output) if error is None else "",
                task_type=self.task_category(task), error_message=error,
                metadata={"crewai_task": str(task.id), "expected_output": task.expected_output or ""},
            )  # fmt: skip
        except Exception as exc:  # the bus prints handler errors; keep them inspectable too
            self.errors.append(exc)
            raise
