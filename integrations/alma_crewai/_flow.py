"""`AlmaFlowPersistence`: CrewAI Flow state saved as ALMA checkpoints (one workflow per flow id).

    @persist(AlmaFlowPersistence(alma))
    class MyFlow(Flow[MyState]): ...

Each completed method saves the state (a dict, or a pydantic model dumped to JSON) with
`alma.checkpoint(flow_id, state, metadata={"method": name})`; `flow.kickoff(inputs={"id": flow_id})`
restores the newest one, in any process. `alma.resume(flow_id)` and `alma.list_checkpoints(flow_id)`
show the same states.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, PrivateAttr

from alma_core import ALMA, NotFound

from ._deps import require_crewai

require_crewai()

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
    """CrewAI `FlowPersistence` over ALMA checkpoints; `agent` (optional) tags every checkpoint."""

    persistence_type: str = "alma"
    agent: str | None = None
    _alma: ALMA = PrivateAttr()

    def __init__(self, alma: ALMA, /, **data: Any) -> None:
        super().__init__(**data)
        self._alma = alma

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
