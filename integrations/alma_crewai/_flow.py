"""`AlmaFlowPersistence`: CrewAI Flow state saved as ALMA checkpoints (one workflow per flow id).

    @persist(AlmaFlowPersistence(alma))
    class MyFlow(Flow[MyState]): ...

Each completed method saves the state (a dict, or a pydantic model dumped to JSON) with
`alma.checkpoint(flow_id, state, metadata={"method": name})`; `flow.kickoff(inputs={"id": flow_id})`
restores the newest one, in any process. `alma.resume(flow_id)` and `alma.list_checkpoints(flow_id)`
show the same states.

`AlmaFlowPersistence(alma, learn_as="writer")` (opt-in) also learns one outcome for that agent when a
flow using it finishes (CrewAI's `FlowFinishedEvent`) or fails (`FlowFailedEvent`), from its final
state and result, through `alma_core.run_lessons.learn_from_run`; the lesson cites the flow id and its
newest checkpoint id.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, PrivateAttr

from alma_core import ALMA, NotFound
from alma_core.run_lessons import ChatModelExtractor, Extractor, learn_from_run

from ._deps import require_crewai
from ._events import Subscriptions

require_crewai()

from crewai.events import FlowFailedEvent, FlowFinishedEvent  # noqa: E402
from crewai.flow.async_feedback.types import PendingFeedbackContext  # noqa: E402
from crewai.flow.persistence.base import FlowPersistence  # noqa: E402

__all__ = ["AlmaFlowPersistence"]

_PENDING = "pending_feedback"


def _state_dict(state_data: dict[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(state_data, BaseModel):
        return state_data.model_dump(mode="json")
    if isinstance(state_data, dict):
        return state_data
    raise TypeError(f"flow state must be a dict or a pydantic model, got {type(state_data).__name__}")


class AlmaFlowPersistence(FlowPersistence):
    """CrewAI `FlowPersistence` over ALMA checkpoints; `agent` (optional) tags every checkpoint.

    `learn_as` (opt-in) names the ALMA agent that learns from each finished or failed flow; `llm` (a
    LangChain chat model) or `extractor` decides what is learned (default: rules over the state)."""

    persistence_type: str = "alma"
    agent: str | None = None
    learn_as: str | None = None
    _alma: ALMA = PrivateAttr()
    _extractor: Extractor | None = PrivateAttr(default=None)
    _handlers: Subscriptions = PrivateAttr(default_factory=Subscriptions)

    def __init__(self, alma: ALMA, /, *, llm: Any = None, extractor: Extractor | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._alma = alma
        self._extractor = extractor or (ChatModelExtractor(llm) if llm is not None else None)
        if self.learn_as is not None:
            alma.scopes.check_agent(self.learn_as)
            for event_type, handler in ((FlowFinishedEvent, self._on_finished), (FlowFailedEvent, self._on_failed)):
                self._handlers.on(event_type, handler)

    def stop_learning(self) -> None:
        """Stop learning from flows (after the pending flow events are handled)."""
        self._handlers.off()

    def _ours(self, flow: Any) -> bool:
        return getattr(flow, "persistence", None) is self

    def _learn(self, flow: Any, state: dict[str, Any], error: str | None = None) -> None:
        flow_id = str(state.get("id") or "")
        try:
            checkpoint_id: str | None = self._alma.get_checkpoint(flow_id).id if flow_id else None
        except NotFound:
            checkpoint_id = None
        learn_from_run(
            self._alma, str(self.learn_as), state, source="crewai_flow", extractor=self._extractor, error=error,
            flow=type(flow).__name__, flow_id=flow_id or None, checkpoint_id=checkpoint_id,
        )  # fmt: skip

    def _on_finished(self, source: Any, event: Any) -> None:
        if self._ours(source):
            state = _state_dict(event.state)
            if event.result is not None and not any(k in state for k in ("answer", "output", "result")):
                state = {**state, "result": str(event.result)}
            self._learn(source, state)

    def _on_failed(self, source: Any, event: Any) -> None:
        if self._ours(source):
            error = event.error
            self._learn(source, _state_dict(source.state), f"{type(error).__name__}: {error}")

    @property
    def alma(self) -> ALMA:
        return self._alma

    def init_db(self) -> None:
        """Nothing to do: ALMA's store is set up when ALMA opens it."""

    def save_state(self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel) -> None:
        self._alma.checkpoint(flow_uuid, _state_dict(state_data), {"method": method_name}, agent=self.agent)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        try:
            state = self._alma.resume(flow_uuid)
        except NotFound:
            return None
        return state if isinstance(state, dict) else None

    def save_pending_feedback(
        self, flow_uuid: str, context: PendingFeedbackContext, state_data: dict[str, Any] | BaseModel
    ) -> None:
        """Save the state with the paused method's feedback context (for `Flow.from_pending`)."""
        metadata = {"method": context.method_name, _PENDING: context.to_dict()}
        self._alma.checkpoint(flow_uuid, _state_dict(state_data), metadata, agent=self.agent)

    def load_pending_feedback(self, flow_uuid: str) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        try:
            checkpoint = self._alma.get_checkpoint(flow_uuid)
        except NotFound:
            return None
        pending = checkpoint.metadata.get(_PENDING)
        if pending is None or not isinstance(checkpoint.state, dict):
            return None
        return checkpoint.state, PendingFeedbackContext.from_dict(pending)

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        """Checkpoint the same state again without the marker (history keeps the paused one)."""
        loaded = self.load_pending_feedback(flow_uuid)
        if loaded is not None:
            state, context = loaded
            self._alma.checkpoint(flow_uuid, state, {"method": context.method_name, "feedback": "received"},
                                  agent=self.agent)  # fmt: skip
