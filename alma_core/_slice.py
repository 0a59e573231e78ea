"""`MemorySlice`: what `retrieve()` returns, and its rendering into a compact prompt block."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ._models import TYPE_FIELDS, AntiPattern, DomainKnowledge, Heuristic, Memory, MemoryType, Outcome, UserPreference

__all__ = ["MemorySlice", "estimate_tokens"]

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A fast, slightly pessimistic token estimate: one token per 3.5 characters (~15% above GPT/Claude
    tokenizers on English), rounded up. Pass a real tokenizer to `to_prompt` for exact budgets."""
    return math.ceil(len(text) / 3.5)


_SECTIONS: list[tuple[MemoryType, str]] = [
    (MemoryType.ANTI_PATTERN, "Avoid"),
    (MemoryType.HEURISTIC, "Strategies that worked"),
    (MemoryType.PREFERENCE, "User preferences"),
    (MemoryType.KNOWLEDGE, "Domain knowledge"),
    (MemoryType.OUTCOME, "Recent outcomes"),
]
# Within one score, a warning is worth more than a strategy, and a strategy more than a raw outcome.
_TYPE_WEIGHT = {
    MemoryType.ANTI_PATTERN: 1.15,
    MemoryType.HEURISTIC: 1.1,
    MemoryType.PREFERENCE: 1.05,
    MemoryType.KNOWLEDGE: 1.0,
    MemoryType.OUTCOME: 0.9,
}


def _lesson_strategy(memory: Memory) -> str | None:
    """The strategy a heuristic recommends or a strategy anti-pattern warns against, else None."""
    if isinstance(memory, Heuristic):
        return memory.strategy
    if isinstance(memory, AntiPattern) and memory.metadata.get("kind") != "recurring_error":
        return memory.pattern
    return None


def _line(memory: Memory) -> str:
    shared = memory.metadata.get("shared_from")
    tag = f" (from {shared})" if shared else ""
    if isinstance(memory, AntiPattern):
        line = f"- Don't: {memory.pattern}"
        if memory.why_bad:
            line += f" — why: {memory.why_bad}"
        if memory.better_alternative:
            line += f" — instead: {memory.better_alternative}"
        return line + tag
    if isinstance(memory, Heuristic):
        return (
            f"- When {memory.condition}: {memory.strategy} "
            f"({memory.success_count}/{memory.occurrence_count} succeeded, confidence {memory.confidence:.2f}){tag}"
        )
    if isinstance(memory, UserPreference):
        return f"- [{memory.category}] {memory.preference}{tag}"
    if isinstance(memory, DomainKnowledge):
        return f"- [{memory.domain}] {memory.fact}{tag}"
    assert isinstance(memory, Outcome)
    verdict = "succeeded" if memory.success else "failed"
    line = f"- {memory.task} → {verdict}"
    if memory.strategy_used:
        line += f" using: {memory.strategy_used}"
    if not memory.success and memory.error_message:
        line += f" (error: {memory.error_message})"
    return line + tag


@dataclass
class MemorySlice:
    """The memories retrieved for one task: a list per type, each ranked best first."""

    heuristics: list[Heuristic] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    anti_patterns: list[AntiPattern] = field(default_factory=list)
    preferences: list[UserPreference] = field(default_factory=list)
    knowledge: list[DomainKnowledge] = field(default_factory=list)
    query: str = ""
    agent: str = ""
    retrieval_ms: float = 0.0

    def of_type(self, memory_type: MemoryType) -> list[Memory]:
        return getattr(self, TYPE_FIELDS[memory_type])  # type: ignore[no-any-return]

    def add(self, memory: Memory) -> None:
        self.of_type(memory.memory_type).append(memory)

    def __iter__(self) -> Iterator[Memory]:
        for memory_type, _ in _SECTIONS:
            yield from self.of_type(memory_type)

    def __len__(self) -> int:
        return sum(len(self.of_type(t)) for t, _ in _SECTIONS)

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def total_items(self) -> int:
        return len(self)

    def ranked(self, k: int | None = None) -> list[Memory]:
        """Every memory of the slice in one list, best first, at most `k` long.

        Scores compare across types (see `alma_core._retrieval`); a memory without a score counts as
        1 / (its rank in its type + 1). A raw outcome never comes before the lesson learned from it: an
        outcome whose strategy a heuristic or anti-pattern of this slice holds (same agent, task type
        and normalised strategy) is placed just below that lesson.
        """
        from ._learning import normalise_strategy  # the learner's notion of "the same strategy"

        value: dict[int, float] = {}
        lessons: dict[tuple[str, str, str], float] = {}
        for memory_type, _ in _SECTIONS:
            for rank, memory in enumerate(self.of_type(memory_type)):
                value[id(memory)] = memory.score if memory.score is not None else 1.0 / (rank + 1)
                strategy = _lesson_strategy(memory)
                if strategy is not None:
                    key = (memory.agent, memory.task_type or "", normalise_strategy(strategy))  # type: ignore[union-attr]
                    lessons[key] = max(lessons.get(key, 0.0), value[id(memory)])
        covered: set[int] = set()
        for outcome in self.outcomes:
            lesson = lessons.get((outcome.agent, outcome.task_type, normalise_strategy(outcome.strategy_used)))
            if lesson is not None and lesson <= value[id(outcome)]:
                value[id(outcome)] = lesson
                covered.add(id(outcome))
        order = {t: i for i, (t, _) in enumerate(_SECTIONS)}
        out = sorted(self, key=lambda m: (-value[id(m)], id(m) in covered, order[m.memory_type], m.id))
        return out if k is None else out[:k]

    def to_prompt(
        self,
        max_tokens: int | None = None,
        include: Iterable[MemoryType | str] | None = None,
        token_counter: TokenCounter | None = None,
        title: str = "Relevant memory",
    ) -> str:
        """Markdown sections per type (anti-patterns first), never longer than `max_tokens`.

        When the budget is tight, the most valuable items survive: each item's value is its retrieval
        score weighted by type (warnings > strategies > preferences > knowledge > outcomes).
        Returns "" when nothing is retrieved or nothing fits.
        """
        count = token_counter or estimate_tokens
        wanted = {MemoryType(t) for t in include} if include is not None else {t for t, _ in _SECTIONS}
        candidates: list[tuple[float, int, MemoryType, str]] = []
        for memory_type, _ in _SECTIONS:
            if memory_type not in wanted:
                continue
            for rank, memory in enumerate(self.of_type(memory_type)):
                base = memory.score if memory.score is not None else 1.0 / (rank + 1)
                candidates.append((base * _TYPE_WEIGHT[memory_type], rank, memory_type, _line(memory)))
        if not candidates:
            return ""
        chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))
        if max_tokens is None:
            return self._render(chosen, title)
        kept: list[tuple[float, int, MemoryType, str]] = []
        for candidate in chosen:  # greedy by value; the full render is measured each time
            trial = [*kept, candidate]
            if count(self._render(trial, title)) <= max_tokens:
                kept = trial
        return self._render(kept, title) if kept else ""

    @staticmethod
    def _render(items: list[tuple[float, int, MemoryType, str]], title: str) -> str:
        if not items:
            return ""
        parts = [f"## {title}"]
        for memory_type, heading in _SECTIONS:
            lines = sorted((c for c in items if c[2] == memory_type), key=lambda c: c[1])
            if lines:
                parts.append(f"### {heading}")
                parts.extend(c[3] for c in lines)
        return "\n".join(parts)
