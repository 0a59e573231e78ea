"""`RunLessons`: opt-in learning from finished LangGraph runs, hooked into `AlmaSaver`.

    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))           # rules read the final state
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena", llm=chat_model))   # a chat model does

A run has finished when the saver stores a root-graph "loop" checkpoint that leaves nothing to run (no
`branch:to:*` trigger, no pending `Send`): that checkpoint's state becomes one outcome through
`alma_core.run_lessons.learn_from_run`. A node that raises (LangGraph writes `__error__`) becomes a
failure from the state of the checkpoint it started from. Each lesson's `metadata["run"]` holds
`thread_id`, `checkpoint_ns` and `checkpoint_id`: `RunLessons.config_of(lesson)` gives the config that
opens the checkpoint (`saver.get_tuple(...)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, CheckpointMetadata

from alma_core import ALMA, Memory, Outcome
from alma_core.run_lessons import ChatModelExtractor, Extractor, RuleExtractor, learn_from_run

__all__ = ["RunLessons"]

_ERROR = "__error__"  # the channel LangGraph writes a node's exception to
_PENDING = ("branch:to:", "__start__", "__pregel_tasks")  # channels that mean "more to run"


def _state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The graph's own channels (LangGraph's internal ones left out)."""
    values = checkpoint.get("channel_values", {})
    return {k: v for k, v in values.items() if not k.startswith(("branch:", "__"))}


class RunLessons:
    """Learns one outcome for `agent` from each finished run of a thread (see the module docstring).

    `extractor(state) -> RunLesson | None` decides what is learned; default: a `ChatModelExtractor` over
    `llm` when given, else `RuleExtractor`. `task_type` as for `alma.learn` (inferred when None)."""

    def __init__(
        self,
        alma: ALMA,
        agent: str,
        *,
        llm: Any = None,
        extractor: Extractor | None = None,
        task_type: str | None = None,
    ) -> None:
        alma.scopes.check_agent(agent)
        self.alma, self.agent, self.task_type = alma, agent, task_type
        self.extractor: Extractor = extractor or (ChatModelExtractor(llm) if llm is not None else RuleExtractor())

    @staticmethod
    def finished(checkpoint: Checkpoint, metadata: CheckpointMetadata, config: RunnableConfig) -> bool:
        """Whether this checkpoint ends a run of the root graph."""
        if (config.get("configurable") or {}).get("checkpoint_ns") or metadata.get("source") != "loop":
            return False
        return not any(k.startswith(_PENDING) for k in checkpoint.get("channel_values", {}))

    @staticmethod
    def config_of(lesson: Memory) -> RunnableConfig:
        """The config that opens the checkpoint a lesson was learned from."""
        run = lesson.metadata.get("run") or {}
        keys = ("thread_id", "checkpoint_ns", "checkpoint_id")
        return {"configurable": {k: run.get(k, "") for k in keys}}

    def _learn(self, state: Mapping[str, Any], saved: RunnableConfig, error: str | None = None) -> Outcome | None:
        conf = saved.get("configurable") or {}
        return learn_from_run(
            self.alma, self.agent, state, source="langgraph", extractor=self.extractor, task_type=self.task_type,
            error=error,
            thread_id=conf.get("thread_id"), checkpoint_ns=conf.get("checkpoint_ns", ""),
            checkpoint_id=conf.get("checkpoint_id"),
        )  # fmt: skip

    # ---- the saver's hooks --------------------------------------------------------------------

    def on_put(self, saved: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata) -> None:
        if self.finished(checkpoint, metadata, saved):
            self._learn(_state(checkpoint), saved)

    async def aon_put(self, saved: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata) -> None:
        if self.finished(checkpoint, metadata, saved):
            await asyncio.to_thread(self._learn, _state(checkpoint), saved)

    def on_writes(
        self, saver: BaseCheckpointSaver[Any], config: RunnableConfig, writes: Sequence[tuple[str, Any]]
    ) -> None:
        error = next((value for channel, value in writes if channel == _ERROR), None)
        if error is None or (config.get("configurable") or {}).get("checkpoint_ns"):
            return
        found = saver.get_tuple(config)
        if found is not None:
            self._learn(_state(found.checkpoint), found.config, f"{type(error).__name__}: {error}")

    async def aon_writes(
        self, saver: BaseCheckpointSaver[Any], config: RunnableConfig, writes: Sequence[tuple[str, Any]]
    ) -> None:
        error = next((value for channel, value in writes if channel == _ERROR), None)
        if error is None or (config.get("configurable") or {}).get("checkpoint_ns"):
            return
        found = await saver.aget_tuple(config)
        if found is not None:
            await asyncio.to_thread(self._learn, _state(found.checkpoint), found.config,
                                    f"{type(error).__name__}: {error}")  # fmt: skip
