"""Workflow methods of `ALMA`: checkpoints, reducers, artifacts and scoped retrieval.

Everything lives in the store's record space (layout in `alma_core.workflow._checkpoints`), so one
SQLite file holds memories and workflows, and both survive restarts. Docs: docs/workflow.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._async import planned, to_thread, twin
from ._errors import CheckpointConflict, NotFound, ValidationError

if TYPE_CHECKING:  # bound by ALMA() (alma_core._lazy): importing the facade stays cheap
    from ._deferred import *  # noqa: F403
    from ._plans import Plan

__all__ = ["WorkflowAPI"]


def _reducer_name(reducer: Any) -> Any:
    if isinstance(reducer, Mapping):
        return {k: _reducer_name(v) for k, v in reducer.items()}
    return reducer if isinstance(reducer, str) else getattr(reducer, "__name__", repr(reducer))


class WorkflowAPI:
    """Mixed into `ALMA`: checkpoint / resume / merge_states / link_artifact / retrieve_scoped.

    Built on the facade's public parts only: its `AlmaContext` and its `Retriever` and `Learner` services."""

    if TYPE_CHECKING:
        storage: BaseStorage
        project_id: str
        scopes: ScopePolicy
        context: AlmaContext
        retriever: Retriever
        learner: Learner

    @cached_property
    def _checkpoints(self) -> CheckpointStore:
        return CheckpointStore(self.storage, self.project_id)

    # ---- checkpoints ------------------------------------------------------------------------------

    def checkpoint(
        self,
        workflow_id: str,
        state: Any,
        metadata: dict[str, Any] | None = None,
        agent: str | None = None,
        parent_id: str | None = None,
    ) -> Checkpoint:
        """Save `state` as the workflow's newest checkpoint. `SerializationError` (naming the key path)
        for a value outside the allow-list, and `CheckpointConflict` when the id is a thread another
        framework keeps (a LangGraph thread): then nothing is written."""
        check_workflow_id(workflow_id)
        if agent is not None:
            agent = self.scopes.check_agent(agent)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError(f"metadata must be a dict, got {type(metadata).__name__}")
        for source in checkpoint_sources():  # one id, one history
            holds = getattr(source, "holds", None)  # optional for a source
            if holds is not None and holds(self, workflow_id):
                raise CheckpointConflict(
                    f"{workflow_id!r} is a thread kept by {type(source).__name__}: a checkpoint here would fork "
                    "a second history; continue it through its framework, or use another workflow id"
                )
        return self._checkpoints.put(workflow_id, state, metadata, agent, parent_id)

    def get_checkpoint(self, workflow_id: str, checkpoint_id: str | None = None) -> Checkpoint:
        """The named (or latest) checkpoint with its state; `NotFound` when there is none.

        Falls back to registered checkpoint sources (e.g. LangGraph threads, once `alma_langgraph` is imported).
        """
        try:
            return self._checkpoints.get(check_workflow_id(workflow_id), checkpoint_id)
        except NotFound:
            for source in checkpoint_sources():
                found = source.get(self, workflow_id, checkpoint_id)
                if found is not None:
                    return found
            raise

    def resume(self, workflow_id: str, checkpoint_id: str | None = None) -> Any:
        """The state of the latest (or named) checkpoint; `NotFound` when there is none."""
        return self.get_checkpoint(workflow_id, checkpoint_id).state

    def list_checkpoints(
        self, workflow_id: str, limit: int | None = None, before: int | str | None = None
    ) -> list[Checkpoint]:
        """Checkpoints newest first, without states. `before`: a sequence number or checkpoint id."""
        check_workflow_id(workflow_id)
        if limit is not None:
            check_count("limit", limit, 1)
        if before is not None and not isinstance(before, str):
            check_count("before", before)
        missing: NotFound | None = None
        try:
            history = self._checkpoints.history(workflow_id, limit, before)
        except NotFound as exc:  # `before` names a checkpoint ALMA doesn't hold: maybe another source does
            history, missing = [], exc
        for source in () if history else checkpoint_sources():
            history = source.history(self, workflow_id, limit, before)
            if history:
                return history
        if missing is not None:
            raise missing
        return history

    def cleanup_checkpoints(
        self, older_than_days: float = 7, keep_latest: int = 1, workflow_id: str | None = None
    ) -> int:
        """Delete checkpoints older than `older_than_days`, always keeping each workflow's `keep_latest`
        newest (whatever their age). All workflows unless `workflow_id` is given. Returns how many went."""
        check_number("older_than_days", older_than_days)
        check_count("keep_latest", keep_latest)
        if workflow_id is not None:
            check_workflow_id(workflow_id)
        return self._checkpoints.cleanup(older_than_days, keep_latest, workflow_id)

    # ---- reducers ---------------------------------------------------------------------------------

    def merge_states(
        self,
        workflow_id: str,
        states: Sequence[Any],
        reducer: str | Reducer | Mapping[str, str | Reducer] = "latest_wins",
        priorities: Sequence[str] | None = None,
        *,
        agent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """Merge agents' states and checkpoint the result with its provenance.

        `states` is ordered earliest first; each item is a dict (no agent), an `(agent, dict)` pair, or
        a `Checkpoint` loaded with its state. `reducer`: a name ("latest_wins", "merge_lists",
        "priority_agent" with `priorities`), a `(left, right) -> merged` callable, or a per-key mapping
        such as `{"findings": "merge_lists", "*": "latest_wins"}`. See `alma_core.workflow.reducers`.
        The checkpoint's metadata gets `merged_from` (agent and checkpoint id of each input) and `reducer`.
        """
        check_workflow_id(workflow_id)
        entries = entries_of(states)
        merged = reduce_states([(a, s) for a, s, _ in entries], reducer, priorities)
        provenance = {
            "merged_from": [{"agent": a, "checkpoint_id": c} for a, _, c in entries],
            "reducer": _reducer_name(reducer),
            **(metadata or {}),
        }
        return self.checkpoint(workflow_id, merged, provenance, agent=agent)

    # ---- artifacts --------------------------------------------------------------------------------

    def link_artifact(
        self, workflow_id: str, artifact_type: ArtifactType | str, ref: str, metadata: dict[str, Any] | None = None
    ) -> Artifact:
        """Record that the workflow produced `ref` (a path, URL, commit...) of type code, test, document,
        config or deployment."""
        check_workflow_id(workflow_id)
        kind = _artifact_type(artifact_type)
        check_text("ref", ref)
        return self._checkpoints.link(workflow_id, kind, ref, metadata or {})

    def get_artifacts(self, workflow_id: str, artifact_type: ArtifactType | str | None = None) -> list[Artifact]:
        """Artifacts of the workflow (of one type if given), newest first."""
        check_workflow_id(workflow_id)
        kind = _artifact_type(artifact_type) if artifact_type is not None else None
        return self._checkpoints.artifacts(workflow_id, kind)

    # ---- scoped retrieval and learning ------------------------------------------------------------

    @planned
    def retrieve_scoped(
        self,
        query: str,
        scope: RetrievalScope | str,
        agent: str | None = None,
        workflow_id: str | None = None,
        top_k: int = 5,
    ) -> Plan[MemorySlice]:
        """Retrieve within a scope (user preferences are not included; use `retrieve` for them):

        - `workflow_only`: memories learned in `workflow_id` (by `agent` and what it may read, if given);
        - `agent_only`: `agent`'s own memories, nothing shared or inherited;
        - `project_wide`: the project's memories that `agent` may read (its own, those it inherits or that are
          shared with it, and project-wide ones); without `agent`, every agent's memories (an operator's view).
        """
        try:
            kind = RetrievalScope(scope)
        except ValueError:
            raise ValidationError(f"scope must be one of {[s.value for s in RetrievalScope]}, got {scope!r}") from None
        check_text("query", query)
        check_count("top_k", top_k, 1)
        if agent is not None:
            agent = self.scopes.check_agent(agent)
        if kind is RetrievalScope.WORKFLOW_ONLY:
            if workflow_id is None:
                raise ValidationError("scope 'workflow_only' needs workflow_id")
            check_workflow_id(workflow_id)
            readers = (*self.scopes.readable(agent, True), "*") if agent else None
            base = self.context.filter(agents=readers, workflow_id=workflow_id)
        elif kind is RetrievalScope.AGENT_ONLY:
            if agent is None:
                raise ValidationError("scope 'agent_only' needs agent")
            base = self.context.filter(agents=(agent,))
        else:
            base = self.context.filter(agents=(*self.scopes.readable(agent, True), "*") if agent else None)
        vector = yield Compute(self.retriever.query_vector, query)
        result = yield from self.retriever.plan(base, query, top_k, AGENT_TYPES, agent or "*", vector=vector)
        yield After(self.context.emit, MemoryEventType.ACCESSED, result, agent=agent, scope=kind.value)
        return result

    def workflow_learn(
        self,
        agent: str,
        workflow_id: str,
        task: str,
        outcome: bool | str,
        strategy_used: str = "",
        task_type: str | None = None,
        duration_ms: int | None = None,
        error_message: str | None = None,
        feedback: str | None = None,
        timestamp: datetime | None = None,
        *,
        checkpoint_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Outcome:
        """`learn`, recording the workflow (and checkpoint) the outcome came from, so `workflow_only`
        retrieval finds it. A `checkpoint_id` must exist in that workflow (`NotFound` otherwise)."""
        check_workflow_id(workflow_id)
        meta = dict(metadata or {})
        if checkpoint_id is not None:
            self._checkpoints.get(workflow_id, checkpoint_id)  # NotFound if it is not there
            meta["checkpoint_id"] = checkpoint_id
        outcome_ = self.learner.outcome(agent, task, outcome, strategy_used, task_type, duration_ms, error_message,
                                        feedback, timestamp, meta, workflow_id=workflow_id)  # fmt: skip
        return self.learner.learn([outcome_])[0]

    # ---- async twins ------------------------------------------------------------------------------

    acheckpoint = to_thread(checkpoint)
    aget_checkpoint = to_thread(get_checkpoint)
    aresume = to_thread(resume)
    alist_checkpoints = to_thread(list_checkpoints)
    acleanup_checkpoints = to_thread(cleanup_checkpoints)
    amerge_states = to_thread(merge_states)
    alink_artifact = to_thread(link_artifact)
    aget_artifacts = to_thread(get_artifacts)
    aretrieve_scoped = twin(retrieve_scoped)
    aworkflow_learn = to_thread(workflow_learn)


def _artifact_type(value: ArtifactType | str) -> ArtifactType:
    try:
        return ArtifactType(value)
    except ValueError:
        raise ValidationError(
            f"artifact_type must be one of {[t.value for t in ArtifactType]}, got {value!r}"
        ) from None
