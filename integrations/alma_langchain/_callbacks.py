"""`AlmaLearningCallback`: a chain or agent run's end becomes `alma.learn(...)` for one agent.

Only the outermost run counts (nested chain, retriever and model runs are ignored): its end is a
success, its error a failure carrying the error message. On a LangGraph agent (input
`{"messages": [...]}`) the task is the last human message's text and, unless `strategy` is given, the
strategy is the start of the final AI answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage

from alma_core import ALMA

__all__ = ["AlmaLearningCallback"]

_TASK_KEYS = ("input", "question", "query", "task")
_HUMAN, _AI = ("human", "user"), ("ai", "assistant")


def _role_and_text(message: Any) -> tuple[str, str]:
    """A message's role and text, for LangChain messages, (role, text) tuples and {"role", "content"} dicts."""
    if isinstance(message, BaseMessage):
        return message.type, str(message.text)
    if isinstance(message, tuple) and len(message) == 2:
        return str(message[0]), str(message[1])
    if isinstance(message, Mapping):
        return str(message.get("role", message.get("type", ""))), str(message.get("content", ""))
    if isinstance(message, str):
        return "human", message
    return "", ""


def _last_text(messages: Any, roles: tuple[str, ...]) -> str | None:
    """The text of the last message of one of `roles` in a LangGraph `messages` list."""
    if not isinstance(messages, list | tuple):
        return None
    for message in reversed(messages):
        role, text = _role_and_text(message)
        if role in roles and text.strip():
            return text.strip()
    return None


def _task_text(inputs: Any) -> str:
    """The run's task as text: a string input, a usual key of a dict input, the last human message of
    a `messages` input, or the input as JSON."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, Mapping):
        for key in _TASK_KEYS:
            if isinstance(inputs.get(key), str) and inputs[key].strip():
                return str(inputs[key])
        human = _last_text(inputs.get("messages"), _HUMAN)
        if human is not None:
            return human
    return json.dumps(inputs, default=str, ensure_ascii=False)[:2000]


def _answer_text(outputs: Any) -> str:
    """The start of a run's final AI answer (a LangGraph agent's last AI message), or ""."""
    messages = outputs.get("messages") if isinstance(outputs, Mapping) else None
    return (_last_text(messages, _AI) or "")[:2000]


class AlmaLearningCallback(BaseCallbackHandler):
    """Learns one outcome per top-level run: `callbacks=[AlmaLearningCallback(alma, "helena")]`.

    `task` overrides the task text (otherwise taken from the run's input); `strategy` is recorded as
    `strategy_used`; `task_type` as given (or inferred by ALMA). `raise_error` is True so that a
    scope violation surfaces instead of being logged and lost.
    """

    raise_error = True

    def __init__(
        self,
        alma: ALMA,
        agent: str,
        *,
        task: str | None = None,
        strategy: str = "",
        task_type: str | None = None,
    ) -> None:
        self.alma, self.agent = alma, agent
        self.task, self.strategy, self.task_type = task, strategy, task_type
        self._runs: dict[UUID, tuple[str, float]] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            self._runs[run_id] = (self.task or _task_text(inputs), time.monotonic())

    def _learn(self, run_id: UUID, success: bool, error: str | None, answer: str = "") -> None:
        started = self._runs.pop(run_id, None)
        if started is None:
            return
        task, began = started
        self.alma.learn(
            agent=self.agent, task=task, outcome=success, strategy_used=self.strategy or answer,
            task_type=self.task_type,
            duration_ms=int((time.monotonic() - began) * 1000), error_message=error,
            metadata={"source": "langchain", "run_id": str(run_id)},
        )  # fmt: skip

    def on_chain_end(self, outputs: dict[str, Any] | Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._learn(run_id, True, None, _answer_text(outputs))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._learn(run_id, False, f"{type(error).__name__}: {error}")
