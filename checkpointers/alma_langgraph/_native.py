"""LangGraph threads seen through ALMA's workflow API: `alma.resume(thread_id)` and
`alma.list_checkpoints(thread_id)` read the root namespace ("") of a thread saved by `AlmaSaver`.

Mapping: workflow_id = thread_id; Checkpoint.id = checkpoint_id; sequence = position in the thread's
history (1 = oldest); state = the checkpoint's state values (internal channels left out); metadata =
LangGraph's checkpoint metadata plus `checkpoint_ns` and `source: "langgraph"`; parent_id = the parent checkpoint id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from alma_core.storage import ListRecords
from alma_core.workflow import Checkpoint

from ._layout import CHECKPOINTS, thread_prefix
from ._saver import AlmaSaver

__all__ = ["LangGraphCheckpoints"]


def _when(ts: str | None) -> datetime:
    try:
        return datetime.fromisoformat(ts) if ts else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)


def _convert(t: CheckpointTuple, workflow_id: str, sequence: int, with_state: bool) -> Checkpoint:
    parent = (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    return Checkpoint(
        id=t.config["configurable"]["checkpoint_id"], workflow_id=workflow_id, sequence=sequence,
        created_at=_when(t.checkpoint.get("ts")), parent_id=parent,
        metadata={**dict(t.metadata or {}), "checkpoint_ns": "", "source": "langgraph"},
        state=state_values(t.checkpoint.get("channel_values") or {}) if with_state else None,
    )  # fmt: skip


def state_values(channel_values: dict[str, Any]) -> dict[str, Any]:
    """The graph's state keys of a checkpoint, without LangGraph's internal channels (`__start__`,
    `branch:to:<node>`, `join:...`, `__pregel_*`): what `graph.get_state(config).values` holds."""
    return {k: v for k, v in channel_values.items() if not k.startswith("__") and ":" not in k}


class LangGraphCheckpoints:
    """The checkpoint source `alma_langgraph` registers in alma_core on import."""

    def _thread(self, alma: Any, workflow_id: str) -> list[CheckpointTuple]:
        config: RunnableConfig = {"configurable": {"thread_id": workflow_id, "checkpoint_ns": ""}}
        return list(AlmaSaver(alma).list(config))  # newest first

    def holds(self, alma: Any, workflow_id: str) -> bool:
        saver = AlmaSaver(alma)
        found = saver.storage.execute(
            ListRecords(
                saver.project_id, thread_prefix(CHECKPOINTS, workflow_id), prefix=True, limit=1, with_values=False
            )
        )
        return bool(found)

    def get(self, alma: Any, workflow_id: str, checkpoint_id: str | None) -> Checkpoint | None:
        tuples = self._thread(alma, workflow_id)
        for i, t in enumerate(tuples):
            if checkpoint_id is None or t.config["configurable"]["checkpoint_id"] == checkpoint_id:
                return _convert(t, workflow_id, len(tuples) - i, with_state=True)
        return None

    def history(self, alma: Any, workflow_id: str, limit: int | None, before: int | str | None) -> list[Checkpoint]:
        tuples = self._thread(alma, workflow_id)
        found = [_convert(t, workflow_id, len(tuples) - i, with_state=False) for i, t in enumerate(tuples)]
        if isinstance(before, int):
            found = [c for c in found if c.sequence < before]
        elif isinstance(before, str):
            ids = [c.id for c in found]
            found = found[ids.index(before) + 1 :] if before in ids else []
        return found[:limit] if limit is not None else found
