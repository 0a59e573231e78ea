"""Candidates as ranking reads them: the few fields of a memory that fusion and scoring use.

A retrieve ranks ~100 candidates to return ~10. Building and validating a pydantic model for each one
cost more than ranking it, so ranking reads a `Candidate`: id, type, agent, text, user, task type,
confidence, and the success factor, recency timestamp and lesson inputs computed once. A store may answer
a search with candidates made from its raw row (`Candidate.of_row`: its columns and the stored JSON read
as plain data, no validation); only the memories a retrieve returns are built as models (`build`). A
backend that returns models gets them wrapped (`Candidate.of`): one ranking path for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._models import Heuristic, Memory, MemoryType, memory_class

__all__ = ["Candidate", "as_candidates", "success_of"]

_HEURISTIC, _OUTCOME, _ANTI = MemoryType.HEURISTIC, MemoryType.OUTCOME, MemoryType.ANTI_PATTERN
_TYPES = {t.value: t for t in MemoryType}


def success_of(
    memory_type: MemoryType,
    metadata: Mapping[str, Any],
    confidence: float,
    success: Any = None,
    success_count: int = 0,
    occurrence_count: int = 1,
) -> float:
    """The success factor (see `_retrieval.success_factor`) from a memory's fields."""
    if memory_type is _HEURISTIC:
        if "success_lcb" in metadata:
            return float(metadata["success_lcb"])
        if "evidence_key" in metadata:
            return confidence
        return (success_count + 1) / (occurrence_count + 2)
    if memory_type is _OUTCOME:
        return 1.0 if success else 0.25
    return 1.0  # a confirmed warning, a preference or a fact is always worth showing


class Candidate:
    """One candidate memory as ranking reads it (see the module docstring). `build()` gives the model;
    it is shared (kept for later reads): callers copy it before changing it."""

    __slots__ = ("_memory", "agent", "confidence", "data", "id", "memory_type", "occurrences", "pattern",
                 "retired", "stamp", "success", "task_type", "text", "user_id", "warning")  # fmt: skip

    def __init__(
        self,
        memory_id: str,
        memory_type: MemoryType,
        agent: str,
        text: str,
        user_id: str | None,
        task_type: str | None,
        confidence: float,
        metadata: Mapping[str, Any],
        success: float,
        stamp: float,
        occurrences: int,
        pattern: str | None,
    ) -> None:
        self.id, self.memory_type, self.agent, self.text = memory_id, memory_type, agent, text
        self.user_id, self.task_type, self.confidence = user_id, task_type, confidence
        self.success, self.stamp, self.occurrences, self.pattern = success, stamp, occurrences, pattern
        self.retired = bool(metadata.get("retired"))
        self.warning = memory_type is _ANTI and metadata.get("kind") == "recurring_error"
        self._memory: Memory | None = None
        self.data: str | None = None  # the stored JSON it was read from (None: made from a model)

    @classmethod
    def of(cls, memory: Memory) -> Candidate:
        """The candidate of a built memory (`build()` returns that memory)."""
        fields = memory.__dict__
        mtype = memory.memory_type
        stamp = memory.last_validated if isinstance(memory, Heuristic) else memory.updated_at
        success = success_of(mtype, memory.metadata, memory.confidence, fields.get("success"),
                             fields.get("success_count", 0), fields.get("occurrence_count", 1))  # fmt: skip
        candidate = cls(memory.id, mtype, memory.agent, memory.text, memory.user_id_value, fields.get("task_type"),
                        memory.confidence, memory.metadata, success, stamp.timestamp(),
                        fields.get("occurrence_count", 1), fields.get("pattern"))  # fmt: skip
        candidate._memory = memory
        return candidate

    @classmethod
    def of_row(
        cls,
        mtype: str,
        memory_id: str,
        agent: str,
        text: str,
        user_id: str | None,
        category: str | None,
        confidence: float,
        updated_at: float,
        fields: dict[str, Any],
        data: str,
    ) -> Candidate:
        """The candidate of a stored row: its columns (as the store wrote them from the model: `text`,
        `user_id` = `user_id_value`, `category` = the task type of outcomes and lessons, `updated_at` as a
        timestamp) and `fields`, its JSON `data` parsed as plain data. Raises ValueError, TypeError or
        KeyError on data a model would not be built from as it is read here; the caller then validates
        `data` itself."""
        memory_type = _TYPES[mtype]
        metadata = fields.get("metadata", {})
        if type(metadata) is not dict:
            raise TypeError("metadata is not an object")
        success, stamp, occurrences = 1.0, updated_at, 1
        if memory_type is _OUTCOME:
            if type(fields["success"]) is not bool:
                raise TypeError("success is not a boolean")
            success = 1.0 if fields["success"] else 0.25
        elif memory_type is _HEURISTIC or memory_type is _ANTI:
            occurrences = fields.get("occurrence_count", 1)
            if type(occurrences) is not int:
                raise TypeError("occurrence_count is not an integer")
            if memory_type is _HEURISTIC:
                stamp = datetime.fromisoformat(fields["last_validated"]).timestamp()
                count = fields.get("success_count", 0)
                if type(count) is not int:
                    raise TypeError("success_count is not an integer")
                success = success_of(memory_type, metadata, confidence, None, count, occurrences)
        pattern = fields["pattern"] if memory_type is _ANTI else None
        task_type = category if memory_type in (_OUTCOME, _HEURISTIC, _ANTI) else None
        candidate = cls(memory_id, memory_type, agent, text, user_id, task_type, confidence, metadata, success,
                        stamp, occurrences, pattern)  # fmt: skip
        candidate.data = data
        return candidate

    def build(self) -> Memory:
        """The memory as a validated model (built once; shared: copy it before changing it). Raises
        pydantic's ValidationError (a ValueError) for a stored row that is not a valid memory."""
        memory = self._memory
        if memory is None:
            memory = self._memory = memory_class(self.memory_type).model_validate_json(self.data or "")  # type: ignore[assignment]
        return memory  # type: ignore[return-value]


def as_candidates(memories: Mapping[str, Memory | Candidate]) -> dict[str, Candidate]:
    """Candidates by id (memories wrapped by `Candidate.of`, candidates as they are)."""
    return {i: m if isinstance(m, Candidate) else Candidate.of(m) for i, m in memories.items()}
