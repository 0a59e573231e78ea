"""`RunLessons`: opt-in learning from finished LangGraph runs, hooked into `AlmaSaver`.

    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena"))           # rules read the final state
    saver = AlmaSaver(alma, lessons=RunLessons(alma, "helena", llm=chat_model))   # a chat model does

A run has finished when the saver stores a root-graph "loop" checkpoint that leaves nothing to run (no
`branch:to:*` trigger, no pending `Send`): that checkpoint's state becomes one outcome through
`alma_core.run_lessons.learn_from_run`. A node that raises (LangGraph writes `__error__`) becomes a
failure from the state of the checkpoint it started from. LangGraph may store that error before the
checkpoint itself (both go through its background writer): the failure then waits for the checkpoint.
Each lesson's `metadata["run"]` holds `thread_id`, `checkpoint_ns` and `checkpoint_id`:
`RunLessons.config_of(lesson)` gives the config that opens the checkpoint (`saver.get_tuple(...)`).
"""

from __future__ import annotations

import asyncio
import threading
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
        self._lock = threading.Lock()
        self._waiting: dict[tuple[Any, ...], str] = {}  # failures whose checkpoint is not stored yet

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
        for state, error in self._lessons_at(saved, checkpoint, metadata):
            self._learn(state, saved, error)

    async def aon_put(self, saved: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata) -> None:
        for state, error in self._lessons_at(saved, checkpoint, metadata):
            await asyncio.to_thread(self._learn, state, saved, error)

    def on_writes(
        self, saver: BaseCheckpointSaver[Any], config: RunnableConfig, writes: Sequence[tuple[str, Any]]
    ) -> None:
        if (error := self._error(config, writes)) is None:
            return
        found = saver.get_tuple(config)
        if found is None:
            self._park(config, error)
            found = saver.get_tuple(config)  # stored meanwhile, maybe before `on_put` could see it parked?
            if found is None or not self._unpark(config):
                return  # `on_put` learns it, or already did
        self._learn(_state(found.checkpoint), found.config, error)

    async def aon_writes(
        self, saver: BaseCheckpointSaver[Any], config: RunnableConfig, writes: Sequence[tuple[str, Any]]
    ) -> None:
        if (error := self._error(config, writes)) is None:
            return
        found = await saver.aget_tuple(config)
        if found is None:
            self._park(config, error)
            found = await saver.aget_tuple(config)
            if found is None or not self._unpark(config):
                return
        await asyncio.to_thread(self._learn, _state(found.checkpoint), found.config, error)

    # ---- a failure written before its checkpoint -----------------------------------------------

    @staticmethod
    def _key(config: RunnableConfig) -> tuple[Any, ...]:
        conf = config.get("configurable") or {}
        return str(conf.get("thread_id")), conf.get("checkpoint_ns", ""), conf.get("checkpoint_id")

    @staticmethod
    def _error(config: RunnableConfig, writes: Sequence[tuple[str, Any]]) -> str | None:
        """The root graph's node error among `writes`, as "Type: message"."""
        error = next((value for channel, value in writes if channel == _ERROR), None)
        if error is None or (config.get("configurable") or {}).get("checkpoint_ns"):
            return None
        return f"{type(error).__name__}: {error}"

    def _park(self, config: RunnableConfig, error: str) -> None:
        """Keep a failure for `on_put` of its checkpoint, not stored yet."""
        with self._lock:
            self._waiting[self._key(config)] = error

    def _unpark(self, config: RunnableConfig) -> bool:
        """Take back a parked failure; False when `on_put` has taken it."""
        with self._lock:
            return self._waiting.pop(self._key(config), None) is not None

    def _lessons_at(
        self, saved: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> list[tuple[dict[str, Any], str | None]]:
        """What a stored checkpoint teaches: a failure parked for it, and the run's end if it is one."""
        with self._lock:
            error = self._waiting.pop(self._key(saved), None)
        found: list[tuple[dict[str, Any], str | None]] = [(_state(checkpoint), error)] if error else []
        if self.finished(checkpoint, metadata, saved):
            found.append((_state(checkpoint), None))
        return found
