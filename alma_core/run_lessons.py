"""Lessons from finished runs: a run's final state becomes one outcome, linked to where it came from.

    lesson = learn_from_run(alma, "helena", final_state, source="langgraph", thread_id="t1", checkpoint_id="1ef...")
    lesson.metadata["run"]   # {"source": "langgraph", "thread_id": "t1", "checkpoint_id": "1ef...", ...}

The framework adapters call this when a run ends (LangGraph's `AlmaSaver(lessons=...)`, ...). What the run
was, how it went and what it did is read from the state by an extractor: `RuleExtractor` (the default)
reads the usual shapes (a `messages` list, `task`/`input`/`question` and `answer`/`output`/`result`
keys, an `error` key); `ChatModelExtractor(llm)` asks a LangChain chat model (any object with
`invoke(messages)` returning a message) and falls back to the rules when its answer is not usable.
No framework is imported here: messages are read by their `type`/`role` and `content`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import UnknownAgent

if TYPE_CHECKING:
    from ._alma import ALMA
    from ._models import Outcome

__all__ = ["ChatModelExtractor", "Extractor", "RuleExtractor", "RunLesson", "category_for", "learn_from_run"]

_TASK_KEYS = ("task", "input", "question", "query", "topic")
_ANSWER_KEYS = ("answer", "output", "result", "response", "final_answer")
_HUMAN, _AI = ("human", "user"), ("ai", "assistant")
_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class RunLesson:
    """What a finished run teaches: the task, whether it succeeded, the strategy, the error if any."""

    task: str
    success: bool
    strategy: str = ""
    error: str | None = None


Extractor = Callable[[Mapping[str, Any]], RunLesson | None]  # final state -> lesson (None: nothing to learn)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return " ".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if b)
    return "" if content is None else str(content)


def _role_text(message: Any) -> tuple[str, str]:
    if isinstance(message, Mapping):
        return str(message.get("role", message.get("type", ""))), _text(message.get("content"))
    if isinstance(message, tuple) and len(message) == 2:
        return str(message[0]), _text(message[1])
    return str(getattr(message, "type", getattr(message, "role", ""))), _text(getattr(message, "content", ""))


def _last(messages: list[Any], roles: tuple[str, ...]) -> str:
    for message in reversed(messages):
        role, text = _role_text(message)
        if role in roles and text.strip():
            return text.strip()
    return ""


def _first_str(state: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return next((str(state[k]).strip() for k in keys if isinstance(state.get(k), str) and state[k].strip()), "")


class RuleExtractor:
    """The default extractor: the first human message (or a task key) is the task, the last AI message (or
    an answer key) the strategy; an `error` key, or a last tool message with status "error", is a failure."""

    def __call__(self, state: Mapping[str, Any]) -> RunLesson | None:
        messages = state.get("messages")
        messages = list(messages) if isinstance(messages, list | tuple) else []
        humans = [t for r, t in map(_role_text, messages) if r in _HUMAN and t.strip()]
        task = _first_str(state, _TASK_KEYS) or (humans[0].strip() if humans else "")
        if not task:
            return None
        strategy = _first_str(state, _ANSWER_KEYS) or _last(messages, _AI)
        error = state.get("error")
        last = messages[-1] if messages else None
        if not error and getattr(last, "status", None) == "error":
            error = _role_text(last)[1]
        return RunLesson(task[:_LIMIT], not error, strategy[:_LIMIT], str(error)[:_LIMIT] if error else None)


_PROMPT = (
    "A run of an AI agent has finished. From its final state, say what the task was, whether it succeeded, "
    'and the strategy worth remembering. Answer with JSON only: {"task": str, "success": bool, '
    '"strategy": str, "error": str or null}.'
)


class ChatModelExtractor:
    """Asks a LangChain chat model (`llm.invoke(messages)`) for the lesson; the rules decide when its
    answer is not a usable JSON object."""

    def __init__(self, llm: Any, fallback: Extractor | None = None) -> None:
        self.llm, self.fallback = llm, fallback or RuleExtractor()

    def __call__(self, state: Mapping[str, Any]) -> RunLesson | None:
        shown = json.dumps(state, default=lambda o: _role_text(o)[1] or str(o), ensure_ascii=False)[:8000]
        try:
            answer = _text(getattr(self.llm.invoke([("system", _PROMPT), ("human", shown)]), "content", ""))
            data = json.loads(answer[answer.index("{") : answer.rindex("}") + 1])
            task = str(data.get("task") or "").strip()
            if task and isinstance(data.get("success"), bool):
                error = data.get("error")
                return RunLesson(task[:_LIMIT], data["success"], str(data.get("strategy") or "")[:_LIMIT],
                                 str(error)[:_LIMIT] if error else None)  # fmt: skip
        except (ValueError, AttributeError, TypeError):
            pass
        return self.fallback(state)


def category_for(alma: ALMA, agent: str, text: str) -> str | None:
    """The category a run's outcome is learned under: the agent's `can_learn` entry closest to `text`,
    else its first one (a run of a scoped agent never lands in a category it may not learn); None for an
    agent without `can_learn` (ALMA infers it)."""
    try:
        config = alma.scopes.config(agent)
    except UnknownAgent:
        return None  # the write will say so
    if not config.can_learn:
        return None
    return alma.scopes.infer_category(agent, text, default=config.can_learn[0])


def learn_from_run(
    alma: ALMA,
    agent: str,
    state: Mapping[str, Any],
    *,
    source: str,
    extractor: Extractor | None = None,
    task_type: str | None = None,
    error: str | None = None,
    **run: Any,
) -> Outcome | None:
    """Learn one outcome from a finished run's final `state` (None when the extractor finds no task).

    `run` (thread_id, checkpoint_id, flow_id, ...) goes with `source` into the outcome's
    `metadata["run"]`, so a retrieved lesson says which run and checkpoint it came from. Without
    `task_type`, `category_for` picks it. `error` (the run raised) makes the lesson a failure with it."""
    lesson = (extractor or RuleExtractor())(state)
    if lesson is None:
        return None
    if error is not None:
        lesson = RunLesson(lesson.task, False, lesson.strategy, error[:_LIMIT])
    cited = {"source": source, **{k: str(v) for k, v in run.items() if v is not None}}
    return alma.learn(
        agent, lesson.task, lesson.success, lesson.strategy, error_message=lesson.error,
        task_type=task_type or category_for(alma, agent, lesson.task),
        metadata={"source": source, "run": cited},
    )  # fmt: skip
