"""ALMA's reducers as LangGraph channel reducers: `Annotated[list, merge_lists]`.

`latest_wins` and `merge_lists` are the core's binary reducers, re-exported as they are. In a graph,
parallel branches write one channel in the same step and LangGraph folds their writes with the
channel's reducer, so `priority_agent` needs to know who wrote what: each write is a mapping with an
`"agent"` key, and the channel keeps who set each key under `OWNERS` so that a later write from a
lower-priority agent cannot replace a higher-priority agent's key (keys only it set are still added).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alma_core.workflow.reducers import PriorityAgent, latest_wins, merge_lists

__all__ = ["OWNERS", "GraphPriorityAgent", "latest_wins", "merge_lists", "priority_agent"]

OWNERS = "_agents"  # key -> agent that set it, kept in a priority_agent channel's value


class GraphPriorityAgent(PriorityAgent):
    """`priority_agent` for LangGraph channels (see the module docstring). Without an `"agent"` key in
    the write it is `latest_wins`, like the core reducer."""

    def __call__(self, left: Any, right: Any) -> Any:
        if not (isinstance(left, Mapping) and isinstance(right, Mapping) and "agent" in right):
            return latest_wins(left, right)
        agent = right["agent"]
        owners: dict[str, Any] = dict(left.get(OWNERS) or {})
        merged = {k: v for k, v in left.items() if k != OWNERS}
        for key, value in right.items():
            if key in ("agent", OWNERS):
                continue
            if key not in merged:
                merged[key], owners[key] = value, agent
            elif self.rank(agent) >= self.rank(owners.get(key)):
                merged[key], owners[key] = latest_wins(merged[key], value), agent
            else:
                merged[key] = latest_wins(value, merged[key])
        merged[OWNERS] = owners
        return merged


def priority_agent(priorities: Sequence[str]) -> GraphPriorityAgent:
    """A channel reducer where the first agent of `priorities` wins conflicting keys."""
    return GraphPriorityAgent(priorities)
