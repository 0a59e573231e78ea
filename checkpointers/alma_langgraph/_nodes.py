"""Graph nodes that bring ALMA's memory into a LangGraph agent step, through the agent's scopes.

    builder.add_node("recall", alma_retrieve_node(alma, "helena"))    # state["task"] -> state["memories"]
    builder.add_node("agent", agent_step)                              # reads state["memories"]
    builder.add_node("learn", alma_learn_node(alma, "helena"))        # state["outcome"] -> alma.learn

Both use only ALMA's public API (`retrieve`, `learn`), so scopes apply as everywhere else: retrieval
sees what the agent may read, and learning outside its `can_learn` raises `ScopeViolation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alma_core import ALMA

__all__ = ["alma_learn_node", "alma_retrieve_node"]

Node = Callable[[Mapping[str, Any]], dict[str, Any]]


def alma_retrieve_node(
    alma: ALMA,
    agent: str,
    *,
    task_key: str = "task",
    output_key: str = "memories",
    top_k: int = 5,
    user_id_key: str | None = None,
    as_prompt: bool = True,
    max_tokens: int | None = None,
) -> Node:
    """A node that retrieves `agent`'s memories for `state[task_key]` into `state[output_key]`:
    a prompt block (`as_prompt`, the default, ready for a system prompt) or the list of memories as dicts."""

    def retrieve(state: Mapping[str, Any]) -> dict[str, Any]:
        task = state.get(task_key)
        if not task:
            return {output_key: "" if as_prompt else []}
        user_id = state.get(user_id_key) if user_id_key else None
        found = alma.retrieve(str(task), agent, top_k=top_k, user_id=user_id)
        if as_prompt:
            return {output_key: found.to_prompt(max_tokens=max_tokens)}
        return {output_key: [{**m.to_dict(), "text": m.text, "score": m.score} for m in found]}

    retrieve.__name__ = f"alma_retrieve_{agent}"
    return retrieve


def alma_learn_node(
    alma: ALMA,
    agent: str,
    *,
    task_key: str = "task",
    outcome_key: str = "outcome",
    strategy_key: str = "strategy",
    task_type: str | None = None,
    error_key: str = "error",
) -> Node:
    """A node that records the step's outcome (`state[outcome_key]`: bool or "success"/"failure") for
    `agent`; it skips when the state has no task or no outcome yet. Returns no state update."""

    def learn(state: Mapping[str, Any]) -> dict[str, Any]:
        task, outcome = state.get(task_key), state.get(outcome_key)
        if not task or outcome is None:
            return {}
        alma.learn(
            agent, str(task), outcome, str(state.get(strategy_key) or ""), task_type=task_type,
            error_message=state.get(error_key) or None,
        )  # fmt: skip
        return {}

    learn.__name__ = f"alma_learn_{agent}"
    return learn
