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

import json
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, PrivateAttr

from alma_core import ALMA, Checkpoint, NotFound, SerializationError, ValidationError
from alma_core.run_lessons import ChatModelExtractor, Extractor, learn_from_run

from ._deps import require_crewai
from ._events import Subscriptions

require_crewai()

from crewai.events import FlowFailedEvent, FlowFinishedEvent  # noqa: E402
from crewai.flow.async_feedback.types import PendingFeedbackContext  # noqa: E402
from crewai.flow.persistence.base import FlowPersistence  # noqa: E402

__all__ = ["AlmaFlowPersistence"]

_PENDING = "pending_feedback"
_CLEARED = "feedback_cleared"
_PAGE = 100


def _json_default(value: Any) -> Any:
    """CrewAI's fallback for what `json` cannot write (as `SQLiteFlowPersistence` stores it)."""
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(mode="json")
        except Exception:
            return value.model_dump(mode="python")
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _as_crewai_json(value: dict[str, Any]) -> dict[str, Any]:
    """The dict CrewAI's SQLite persistence would load back: datetimes as ISO strings, tuples and sets
    as lists, keys as strings, anything else as `str()`. Errors keep their built-in base."""
    try:
        return json.loads(json.dumps(value, default=_json_default))  # type: ignore[no-any-return]
    except TypeError as exc:  # e.g. a tuple as a dict key
        raise SerializationError(f"flow state cannot be stored as JSON: {exc}") from None
    except ValueError as exc:  # e.g. a circular reference
        raise ValidationError(f"flow state cannot be stored as JSON: {exc}") from None


def _state_dict(state_data: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """The state as `SQLiteFlowPersistence` saves it (a model dumped in JSON mode, else Python mode)."""
    if isinstance(state_data, BaseModel):
        state = _json_default(state_data)
    elif isinstance(state_data, dict):
        state = state_data
    else:
        raise ValidationError(f"state_data must be either a Pydantic BaseModel or dict, got {type(state_data)}")
    return _as_crewai_json(state)


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
        """Checkpoint the state as CrewAI's SQLite persistence would store it (JSON values).

        `ValidationError` for a flow id ALMA cannot hold (empty, or over 200 characters)."""
        self._alma.checkpoint(flow_uuid, _state_dict(state_data), {"method": method_name}, agent=self.agent)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        try:
            state = self._alma.resume(flow_uuid)
        except (NotFound, ValidationError):  # an id ALMA refuses was never saved
            return None
        return state if isinstance(state, dict) else None

    def save_pending_feedback(
        self, flow_uuid: str, context: PendingFeedbackContext, state_data: dict[str, Any] | BaseModel
    ) -> None:
        """Save the state with the paused method's feedback context (for `Flow.from_pending`)."""
        metadata = {"method": context.method_name, _PENDING: _as_crewai_json(context.to_dict())}
        self._alma.checkpoint(flow_uuid, _state_dict(state_data), metadata, agent=self.agent)

    def _pending(self, flow_uuid: str) -> Checkpoint | None:
        """The newest checkpoint with a feedback context not cleared since (later saves keep it pending)."""
        before: str | None = None
        while True:
            try:
                page = self._alma.list_checkpoints(flow_uuid, limit=_PAGE, before=before)
            except ValidationError:
                return None
            for checkpoint in page:
                if _PENDING in checkpoint.metadata:
                    return checkpoint
                if checkpoint.metadata.get(_CLEARED):
                    return None
            if len(page) < _PAGE:
                return None
            before = page[-1].id

    def load_pending_feedback(self, flow_uuid: str) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        found = self._pending(flow_uuid)
        if found is None:
            return None
        state = self._alma.get_checkpoint(flow_uuid, found.id).state
        return state, PendingFeedbackContext.from_dict(found.metadata[_PENDING])

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        """Checkpoint the newest state again with a cleared marker (`load_state` is unchanged; history
        keeps the paused one)."""
        if self._pending(flow_uuid) is not None:
            newest = self._alma.get_checkpoint(flow_uuid)
            metadata = {"method": newest.metadata.get("method"), _CLEARED: True}
            self._alma.checkpoint(flow_uuid, newest.state, metadata, agent=self.agent)
