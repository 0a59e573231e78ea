"""Reducers: how several agents' states combine into one. Binary `(left, right) -> merged` functions.

`left` is the earlier value, `right` the later one. They are plain functions so that they also work
as LangGraph channel reducers (`Annotated[list, merge_lists]`).

| reducer | both dicts | both lists / tuples | both sets | anything else (incl. type conflicts) |
| --- | --- | --- | --- | --- |
| `latest_wins` | merged key by key, recursively | right replaces left | right | right |
| `merge_lists` | merged key by key, recursively | left + right, de-duplicated (==), order kept | union | right |
| `priority_agent(p)` | like `latest_wins`, but states are applied in priority order (see below) | | | |

None is a value like any other: a later None replaces an earlier value. Keys present on one side
only are kept. Inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from .._errors import ValidationError

__all__ = ["PriorityAgent", "Reducer", "latest_wins", "merge_lists", "priority_agent", "reduce_states", "resolve"]

Reducer = Callable[[Any, Any], Any]


def latest_wins(left: Any, right: Any) -> Any:
    """The later value wins; two dicts merge key by key (recursively), so keys only the earlier state
    set survive. Lists are replaced whole, and a type conflict goes to the later value."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return _merge_dicts(left, right, latest_wins)
    return right


def merge_lists(left: Any, right: Any) -> Any:
    """Lists (and tuples) concatenate, in order, without duplicates (compared with ==, so dicts and
    other unhashable items work; hashable items must also share a type, so 1 and True stay distinct);
    sets unite; dicts merge key by key with this same rule; any other
    pair, including a list against a non-list, goes to the later value."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return _merge_dicts(left, right, merge_lists)
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        merged = _dedupe([*left, *right])
        return tuple(merged) if isinstance(left, tuple) and isinstance(right, tuple) else merged
    if isinstance(left, (set, frozenset)) and isinstance(right, (set, frozenset)):
        return left | right
    return right


class PriorityAgent:
    """`latest_wins` in agent-priority order: the state of the agent listed first wins conflicts.

    `merge_states` sorts the states so that agents missing from `priorities` (and states without an
    agent) come first in their original order, then listed agents from last to first; then it folds
    them with `latest_wins`. So a key set only by a low-priority agent survives, and a conflicting
    key (at any depth of nested dicts) takes the value of the highest-priority agent that set it.
    Called as a plain binary function (no agents known), it is `latest_wins`.
    """

    def __init__(self, priorities: Sequence[str]) -> None:
        if isinstance(priorities, str) or not priorities or not all(isinstance(p, str) for p in priorities):
            raise ValidationError("priority_agent needs a non-empty list of agent names, highest first")
        self.priorities = list(priorities)
        self._rank = {agent: len(priorities) - i for i, agent in enumerate(priorities)}

    def rank(self, agent: str | None) -> int:
        """Higher wins; unlisted agents rank 0."""
        return self._rank.get(agent, 0) if agent is not None else 0

    def __call__(self, left: Any, right: Any) -> Any:
        return latest_wins(left, right)

    def __repr__(self) -> str:
        return f"priority_agent({self.priorities!r})"


def priority_agent(priorities: Sequence[str]) -> PriorityAgent:
    """A reducer where the first agent of `priorities` wins conflicts (see `PriorityAgent`)."""
    return PriorityAgent(priorities)


_BUILTINS: dict[str, Reducer] = {"latest_wins": latest_wins, "merge_lists": merge_lists}


def resolve(reducer: str | Reducer, priorities: Sequence[str] | None = None) -> Reducer:
    """A reducer from its name ("latest_wins", "merge_lists", "priority_agent") or a callable."""
    if callable(reducer):
        return reducer
    if reducer == "priority_agent":
        if priorities is None:
            raise ValidationError("reducer 'priority_agent' needs priorities=[agent, ...] (highest first)")
        return PriorityAgent(priorities)
    if isinstance(reducer, str) and reducer in _BUILTINS:
        return _BUILTINS[reducer]
    raise ValidationError(f"unknown reducer {reducer!r}; use latest_wins, merge_lists, priority_agent or a callable")


def _fold(entries: Sequence[tuple[str | None, Any]], reducer: Reducer) -> Any:
    if isinstance(reducer, PriorityAgent):
        order = sorted(range(len(entries)), key=lambda i: reducer.rank(entries[i][0]))
        entries = [entries[i] for i in order]
    result = entries[0][1]
    for _, value in entries[1:]:
        result = reducer(result, value)
    return result


def reduce_states(
    entries: Sequence[tuple[str | None, Mapping[str, Any]]],
    reducer: str | Reducer | Mapping[str, str | Reducer] = "latest_wins",
    priorities: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fold `(agent, state)` pairs (earliest first) into one state.

    `reducer` is one reducer for the whole state, or a mapping of top-level key -> reducer where "*"
    covers the other keys (default `latest_wins`). Per key, only the states that have the key take part.
    """
    if not entries:
        raise ValidationError("merge_states needs at least one state")
    if not isinstance(reducer, Mapping):
        return dict(_fold(entries, resolve(reducer, priorities)))
    per_key = {key: resolve(r, priorities) for key, r in reducer.items()}
    default = per_key.get("*", latest_wins)
    keys: dict[str, None] = {}
    for _, state in entries:
        keys.update(dict.fromkeys(state))
    return {
        key: _fold([(agent, state[key]) for agent, state in entries if key in state], per_key.get(key, default))
        for key in keys
    }


def _merge_dicts(left: Mapping[Any, Any], right: Mapping[Any, Any], reducer: Reducer) -> dict[Any, Any]:
    merged = dict(left)
    for key, value in right.items():
        merged[key] = reducer(merged[key], value) if key in merged else value
    return merged


def _dedupe(items: Iterable[Any]) -> list[Any]:
    """Keep the first of equal items. Hashable items use a set; others a linear == scan."""
    seen: set[tuple[type, Hashable]] = set()
    unhashable: list[Any] = []
    out = []
    for item in items:
        try:
            key = (type(item), item)
            hash(key)
        except TypeError:
            if any(item == other for other in unhashable):
                continue
            unhashable.append(item)
        else:
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return out
