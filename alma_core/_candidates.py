"""Candidates as ranking reads them: the few fields of a memory that fusion and scoring use.

A retrieve ranks ~100 candidates to return ~10. Building and validating a pydantic model for each one
cost more than ranking it, so ranking reads a `Candidate`: id, type, agent, text, user, task type and
confidence, plus the success factor, recency timestamp and lesson inputs. A store may answer a search
with candidates made from its raw rows (`Candidate.of_row`): the columns at once, the stored JSON only
when a field that lives there is first read (`success`, `retired`...), as plain data, without validation
(fusion reads columns only; the pruned ranking scores ~10-30 of ~100 candidates); only the memories a
retrieve returns are built as models (`build`). A backend that returns models gets them wrapped
(`Candidate.of`): one ranking path for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic_core import from_json

from ._models import Heuristic, Memory, MemoryType, memory_class

__all__ = ["Candidate", "UnreadableRow", "as_candidates", "success_of"]

_HEURISTIC, _OUTCOME, _ANTI = MemoryType.HEURISTIC, MemoryType.OUTCOME, MemoryType.ANTI_PATTERN
_LESSONS = (_HEURISTIC, _ANTI)
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


class UnreadableRow(ValueError):
    """A candidate's stored row is not a valid memory (found when its JSON was read or its model built)."""

    def __init__(self, candidate: Candidate, error: Exception) -> None:
        super().__init__(f"memory {candidate.id}: {error}")
        self.candidate, self.error = candidate, error


class Candidate:
    """One candidate memory as ranking reads it (see the module docstring). `build()` gives the model;
    it is shared (kept for later reads): callers copy it before changing it. Reading a field of a row
    that turns out not to be a valid memory raises `UnreadableRow`."""

    __slots__ = ("_may_retire", "_memory", "_occurrences", "_pattern", "_read", "_retired", "_stamp", "_success",
                 "_warning", "agent", "confidence", "data", "id", "kept_at", "memory_type", "seen", "task_type",
                 "text", "updated_at", "user_id")  # fmt: skip

    def __init__(
        self,
        memory_id: str,
        memory_type: MemoryType,
        agent: str,
        text: str,
        user_id: str | None,
        task_type: str | None,
        confidence: float,
        updated_at: float,
        data: str | None = None,
    ) -> None:
        self.id, self.memory_type, self.agent, self.text = memory_id, memory_type, agent, text
        self.user_id, self.task_type, self.confidence, self.updated_at = user_id, task_type, confidence, updated_at
        self.data = data  # the stored JSON it is read from (None: made from a model)
        self.kept_at: int | None = None  # the project's generation when a store kept it (`ParsedMemories`)
        self.seen: int | None = None  # the store's lexical index tick it was current at (`ParsedMemories`)
        self._memory: Memory | None = None
        self._read = False  # the fields below set (from the JSON or the model)
        self._success, self._stamp, self._occurrences = 1.0, updated_at, 1
        self._retired = self._warning = False
        self._may_retire = True  # whether `retired` must read the JSON (see `of_row`)
        self._pattern: str | None = None

    @classmethod
    def of(cls, memory: Memory) -> Candidate:
        """The candidate of a built memory (`build()` returns that memory)."""
        candidate = cls(memory.id, memory.memory_type, memory.agent, memory.text, memory.user_id_value,
                        memory.__dict__.get("task_type"), memory.confidence, memory.updated_at.timestamp())  # fmt: skip
        candidate._set(memory)
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
        data: str,
    ) -> Candidate:
        """The candidate of a stored row: its columns (as the store wrote them from the model: `text`,
        `user_id` = `user_id_value`, `category` = the task type of outcomes and lessons, `updated_at` as a
        timestamp) and its JSON `data`, read when first needed. Raises KeyError for an unknown type."""
        memory_type = _TYPES[mtype]
        task_type = category if memory_type in (_OUTCOME, _HEURISTIC, _ANTI) else None
        candidate = cls(memory_id, memory_type, agent, text, user_id, task_type, confidence, updated_at, data)
        # (JSON holds the key `"retired"` as written: absent, the memory is not retired; looked for once)
        candidate._may_retire = memory_type in _LESSONS or '"retired"' in data
        return candidate

    # -- the fields that live in the JSON -------------------------------------------------------------

    @property
    def success(self) -> float:
        if not self._read and self.memory_type in (_OUTCOME, _HEURISTIC):
            self._fields()
        return self._success

    @property
    def success_at_most_one(self) -> bool:
        """Whether the success factor is at most 1 (always, but for a heuristic's stored bound)."""
        return self.memory_type is not _HEURISTIC or self.success <= 1.0

    @property
    def stamp(self) -> float:
        """The timestamp recency counts from: last validation (heuristics) or last update."""
        if not self._read and self.memory_type is _HEURISTIC:
            self._fields()
        return self._stamp

    @property
    def retired(self) -> bool:
        if not self._read and self._may_retire:
            self._fields()
        return self._retired

    @property
    def warning(self) -> bool:
        """Whether it is a recurring-error warning (an anti-pattern of that kind)."""
        if not self._read and self.memory_type is _ANTI:
            self._fields()
        return self._warning

    @property
    def occurrences(self) -> int:
        if not self._read and self.memory_type in _LESSONS:
            self._fields()
        return self._occurrences

    @property
    def pattern(self) -> str | None:
        if not self._read and self.memory_type is _ANTI:
            self._fields()
        return self._pattern

    def _set(self, memory: Memory) -> None:
        fields = memory.__dict__
        mtype = memory.memory_type
        stamp = memory.last_validated if isinstance(memory, Heuristic) else memory.updated_at
        self._success = success_of(mtype, memory.metadata, memory.confidence, fields.get("success"),
                                   fields.get("success_count", 0), fields.get("occurrence_count", 1))  # fmt: skip
        self._stamp, self._occurrences = stamp.timestamp(), fields.get("occurrence_count", 1)
        self._pattern = fields.get("pattern")
        self._set_flags(memory.metadata)
        self._memory, self._read = memory, True

    def _set_flags(self, metadata: Mapping[str, Any]) -> None:
        self._retired = bool(metadata.get("retired"))
        self._warning = self.memory_type is _ANTI and metadata.get("kind") == "recurring_error"

    def _fields(self) -> None:
        """Read the fields that live in the JSON, as plain data; what that reading does not cover is
        validated as a model (raises `UnreadableRow` when the row is not a valid memory)."""
        try:
            self._plain(from_json(self.data or ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            self._set(self.build())

    def _plain(self, fields: dict[str, Any]) -> None:
        metadata = fields.get("metadata", {})
        if type(metadata) is not dict:
            raise TypeError("metadata is not an object")
        mtype = self.memory_type
        if mtype is _OUTCOME:
            if type(fields["success"]) is not bool:
                raise TypeError("success is not a boolean")
            self._success = 1.0 if fields["success"] else 0.25
        elif mtype in _LESSONS:
            occurrences = fields.get("occurrence_count", 1)
            if type(occurrences) is not int:
                raise TypeError("occurrence_count is not an integer")
            self._occurrences = occurrences
            if mtype is _HEURISTIC:
                count = fields.get("success_count", 0)
                if type(count) is not int:
                    raise TypeError("success_count is not an integer")
                stamp = datetime.fromisoformat(fields["last_validated"]).timestamp()
                self._success = success_of(mtype, metadata, self.confidence, None, count, occurrences)
                self._stamp = stamp
            else:
                pattern = fields["pattern"]
                if type(pattern) is not str:
                    raise TypeError("pattern is not a string")
                self._pattern = pattern
        self._set_flags(metadata)
        self._read = True

    def build(self) -> Memory:
        """The memory as a validated model (built once; shared: copy it before changing it). Raises
        `UnreadableRow` for a stored row that is not a valid memory."""
        memory = self._memory
        if memory is None:
            try:
                memory = memory_class(self.memory_type).model_validate_json(self.data or "")  # type: ignore[assignment]
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise UnreadableRow(self, exc) from exc
            self._memory = memory
        return memory  # type: ignore[return-value]


def as_candidates(memories: Mapping[str, Memory | Candidate]) -> dict[str, Candidate]:
    """Candidates by id (memories wrapped by `Candidate.of`, candidates as they are)."""
    return {i: m if isinstance(m, Candidate) else Candidate.of(m) for i, m in memories.items()}
