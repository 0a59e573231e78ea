"""The five memory types and the small value objects around them (pydantic v2).

Every memory carries id, project_id, agent, created_at, updated_at, confidence and metadata. Its
embedding lives in a private attribute: it never shows in reprs or exports unless asked for.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ._config import agent_key

__all__ = [
    "AntiPattern",
    "DomainKnowledge",
    "Heuristic",
    "Memory",
    "MemoryStats",
    "MemoryType",
    "Outcome",
    "UserPreference",
    "memory_class",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random id in `uuid.uuid4().hex`'s form (version 4, RFC 4122 variant), from 16 random bytes
    without building a `UUID` (a quarter of the time: every learn makes one)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class MemoryType(StrEnum):
    """The five kinds of memory. The value is what the store and the exports use."""

    OUTCOME = "outcome"
    HEURISTIC = "heuristic"
    ANTI_PATTERN = "anti_pattern"
    PREFERENCE = "preference"
    KNOWLEDGE = "knowledge"

    @classmethod
    def _missing_(cls, value: object) -> MemoryType | None:
        """The seed's names are accepted too: plurals (`heuristics`), `domain_knowledge`, `anti_patterns`."""
        if isinstance(value, str):
            return _TYPE_ALIASES.get(value.strip().lower().replace("-", "_"))
        return None


_TYPE_ALIASES = {
    "outcomes": MemoryType.OUTCOME,
    "heuristics": MemoryType.HEURISTIC,
    "anti_patterns": MemoryType.ANTI_PATTERN,
    "antipattern": MemoryType.ANTI_PATTERN,
    "antipatterns": MemoryType.ANTI_PATTERN,
    "preferences": MemoryType.PREFERENCE,
    "user_preference": MemoryType.PREFERENCE,
    "user_preferences": MemoryType.PREFERENCE,
    "domain_knowledge": MemoryType.KNOWLEDGE,
    **{m.value: m for m in MemoryType},
}


class _MemoryBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    memory_type: ClassVar[MemoryType]

    id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    project_id: str = Field("default", min_length=1, max_length=200)
    agent: str = Field(min_length=1, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    workflow_id: str | None = Field(None, max_length=200, description="Workflow this was learned in, if any.")
    # Set by retrieval only; never stored or exported.
    score: float | None = Field(None, exclude=True)
    score_breakdown: dict[str, float] | None = Field(None, exclude=True, repr=False)

    _embedding: np.ndarray | None = PrivateAttr(None)

    @field_validator("agent")
    @classmethod
    def _agent_key(cls, agent: str) -> str:
        return agent_key(agent)  # agent names are case-insensitive (see _scopes)

    @property
    def embedding(self) -> np.ndarray | None:
        """The float32 vector the store holds for this memory (None until embedded)."""
        # (read from pydantic's private dict: `self._embedding` goes through an AttributeError and
        # pydantic's __getattr__, ~5.6 us against ~0.15; a write path reads it for every memory)
        private = self.__pydantic_private__
        return None if private is None else private.get("_embedding")

    @embedding.setter
    def embedding(self, value: Any) -> None:
        self._embedding = None if value is None else np.asarray(value, dtype=np.float32)

    @property
    def type(self) -> MemoryType:
        return self.memory_type

    @property
    def text(self) -> str:
        """The text that is embedded, searched and shown for this memory."""
        raise NotImplementedError

    @property
    def category(self) -> str | None:
        """What scopes (can_learn / cannot_learn) are checked against."""
        return None

    @property
    def user_id_value(self) -> str | None:
        """The user this memory is about, if any (used by delete_user and user filters)."""
        uid = self.metadata.get("user_id")
        return str(uid) if uid is not None else None

    def to_dict(self, *, with_embedding: bool = False) -> dict[str, Any]:
        """A JSON-ready dict, tagged with its type; the embedding only when asked."""
        data = {"type": self.memory_type.value, **self.model_dump(mode="json")}
        if with_embedding and (vector := self.embedding) is not None:
            data["embedding"] = [float(x) for x in vector]
        return data


class Outcome(_MemoryBase):
    """The result of one task: what was tried and whether it worked."""

    memory_type: ClassVar[MemoryType] = MemoryType.OUTCOME
    task: str = Field(min_length=1, max_length=20_000)
    task_type: str = Field("general", min_length=1, max_length=200)
    success: bool
    strategy_used: str = Field("", max_length=20_000)
    duration_ms: int | None = Field(None, ge=0)
    error_message: str | None = Field(None, max_length=20_000)
    feedback: str | None = Field(None, max_length=20_000)

    @property
    def text(self) -> str:
        return f"{self.task} | {self.strategy_used}" if self.strategy_used else self.task

    @property
    def category(self) -> str | None:
        return self.task_type


class Heuristic(_MemoryBase):
    """A strategy that keeps working under a condition, with the evidence behind it."""

    memory_type: ClassVar[MemoryType] = MemoryType.HEURISTIC
    condition: str = Field(min_length=1, max_length=20_000)
    strategy: str = Field(min_length=1, max_length=20_000)
    task_type: str | None = Field(None, max_length=200)
    occurrence_count: int = Field(1, ge=0)
    success_count: int = Field(0, ge=0)
    last_validated: datetime = Field(default_factory=utcnow)

    @property
    def failure_count(self) -> int:
        return max(0, self.occurrence_count - self.success_count)

    @property
    def success_rate(self) -> float:
        return self.success_count / self.occurrence_count if self.occurrence_count else 0.0

    @property
    def text(self) -> str:
        return f"{self.condition}: {self.strategy}"

    @property
    def category(self) -> str | None:
        return self.task_type


class AntiPattern(_MemoryBase):
    """What not to do, why, and what to do instead."""

    memory_type: ClassVar[MemoryType] = MemoryType.ANTI_PATTERN
    pattern: str = Field(min_length=1, max_length=20_000)
    why_bad: str = Field("", max_length=20_000)
    better_alternative: str = Field("", max_length=20_000)
    task_type: str | None = Field(None, max_length=200)
    occurrence_count: int = Field(1, ge=0)
    last_seen: datetime = Field(default_factory=utcnow)

    @property
    def text(self) -> str:
        return f"{self.pattern}. {self.why_bad}" if self.why_bad else self.pattern

    @property
    def category(self) -> str | None:
        return self.task_type


class UserPreference(_MemoryBase):
    """Something a user wants (style, tools, constraints)."""

    memory_type: ClassVar[MemoryType] = MemoryType.PREFERENCE
    user_id: str = Field(min_length=1, max_length=200)
    category_name: str = Field("general", alias="category", min_length=1, max_length=200)
    preference: str = Field(min_length=1, max_length=20_000)
    source: str = Field("explicit", max_length=200)

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    @property
    def text(self) -> str:
        return self.preference

    @property
    def category(self) -> str | None:
        return self.category_name

    @property
    def user_id_value(self) -> str | None:
        return self.user_id

    def to_dict(self, *, with_embedding: bool = False) -> dict[str, Any]:
        data = super().to_dict(with_embedding=with_embedding)
        data["category"] = data.pop("category_name")
        return data


class DomainKnowledge(_MemoryBase):
    """A fact about the domain the agent works in."""

    memory_type: ClassVar[MemoryType] = MemoryType.KNOWLEDGE
    domain: str = Field(min_length=1, max_length=200)
    fact: str = Field(min_length=1, max_length=20_000)
    source: str = Field("", max_length=2_000)

    @property
    def text(self) -> str:
        return self.fact

    @property
    def category(self) -> str | None:
        return self.domain


Memory = Outcome | Heuristic | AntiPattern | UserPreference | DomainKnowledge

_CLASSES: dict[MemoryType, type[_MemoryBase]] = {
    cls.memory_type: cls for cls in (Outcome, Heuristic, AntiPattern, UserPreference, DomainKnowledge)
}


def memory_class(memory_type: MemoryType | str) -> type[_MemoryBase]:
    """The model class of a memory type ("heuristic" -> Heuristic)."""
    return _CLASSES[MemoryType(memory_type)]


def idle_days(memory: Memory, now_ts: float) -> float:
    """Days since the memory was last validated (heuristics) or updated (the others), at `now_ts`."""
    stamp = memory.last_validated if isinstance(memory, Heuristic) else memory.updated_at
    return max(0.0, (now_ts - stamp.timestamp()) / 86400.0)


def memory_from_dict(data: dict[str, Any]) -> Memory:
    """Rebuild a memory from `to_dict()` output (type tag required; embedding optional)."""
    data = dict(data)
    embedding = data.pop("embedding", None)
    memory = memory_class(data.pop("type")).model_validate(data)
    if embedding is not None:
        memory.embedding = embedding
    return memory  # type: ignore[return-value]


class MemoryStats(BaseModel):
    """Counts of what an agent (or the whole project) remembers."""

    total: int = 0
    outcomes: int = 0
    heuristics: int = 0
    anti_patterns: int = 0
    preferences: int = 0
    knowledge: int = 0
    by_agent: dict[str, int] = Field(default_factory=dict)
    cache_hit_ratio: float | None = None


# What agents learn, as opposed to what users prefer: scoped retrieval and `forget` default to these.
AGENT_TYPES: tuple[MemoryType, ...] = tuple(t for t in MemoryType if t is not MemoryType.PREFERENCE)

# Each type's plural name: its count in `MemoryStats` and its list in `MemorySlice`.
TYPE_FIELDS: dict[MemoryType, str] = {
    MemoryType.OUTCOME: "outcomes",
    MemoryType.HEURISTIC: "heuristics",
    MemoryType.ANTI_PATTERN: "anti_patterns",
    MemoryType.PREFERENCE: "preferences",
    MemoryType.KNOWLEDGE: "knowledge",
}
