"""Forgetting: deleting what `ALMA.forget` selects, and confidence decay of idle memories.

Confidence decay: memories that are never validated again slowly lose confidence.

confidence = base * 0.5 ** (idle_days / half_life_days), where base is the confidence the memory had
when decay first touched it (kept in metadata["decay_base"], so repeated runs never compound) and
idle_days counts from its last validation (heuristics) or last update. `forget(below_confidence=...)`
then removes what has faded. A new outcome for the strategy resets a heuristic's confidence.

Both are write plans (`alma_core._plans`): what they select and change is read and written in one
transaction, with their events (`deleted`, `updated`) staged for the outboxes (webhooks) in it and
emitted to subscribers after the commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from ._checks import check_count, check_days
from ._checks import memory_types as check_memory_types
from ._errors import ValidationError
from ._learning import evidence_namespace
from ._models import AGENT_TYPES, Heuristic, Memory, MemoryType, idle_days, utcnow
from ._plans import WRITE, After, Plan
from .events import MemoryEventType
from .storage._base import DeleteMemories, DeleteRecords, FindMemories, MemoryFilter, Op, PutMemories

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._context import AlmaContext

__all__ = ["Forgetting"]

DECAYING = (MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN, MemoryType.KNOWLEDGE)


class Forgetting:
    """The forgetting service of an `AlmaContext`: `forget` and `decay_confidence` as plans."""

    def __init__(self, context: AlmaContext) -> None:
        self.context = context

    def forget(
        self,
        agent: str | None = None,
        older_than_days: float | None = None,
        below_confidence: float | None = None,
        max_per_agent: int | None = None,
        dry_run: bool = False,
        memory_types: Iterable[MemoryType | str] | None = None,
    ) -> Plan[list[Memory]]:
        """Delete (unless `dry_run`) the memories matching every criterion; a forgotten heuristic's
        evidence goes too, so the next outcome does not rebuild it. Returns them (see `ALMA.forget`)."""
        ctx = self.context
        if agent is not None:
            ctx.scopes.check_agent(agent)
        if older_than_days is not None:
            older_than_days = check_days("older_than_days", older_than_days)
        if max_per_agent is not None:
            check_count("max_per_agent", max_per_agent)
        if below_confidence is not None and (
            isinstance(below_confidence, bool)
            or not isinstance(below_confidence, int | float)
            or not 0 <= below_confidence <= 1
        ):
            raise ValidationError(f"below_confidence must be a number in 0..1, got {below_confidence!r}")
        types = check_memory_types(memory_types, AGENT_TYPES)
        if older_than_days is None and below_confidence is None and max_per_agent is None:
            raise ValidationError("forget needs older_than_days, below_confidence or max_per_agent")
        cutoff = utcnow() - timedelta(days=older_than_days) if older_than_days is not None else None
        base = ctx.filter(
            agents=(agent,) if agent else None, types=types, created_before=cutoff,
            confidence_below=below_confidence,
        )  # fmt: skip
        if not dry_run:
            yield WRITE  # what is selected is what is deleted
        doomed = yield from _forgettable(base, max_per_agent)
        if doomed and not dry_run:
            ops: list[Op] = [DeleteMemories(ctx.filter(ids=tuple(m.id for m in doomed)))]
            for m in doomed:
                if isinstance(m, Heuristic) and m.task_type and m.metadata.get("evidence_key"):
                    ns = evidence_namespace(m.agent, m.task_type)
                    ops.append(DeleteRecords(base.project_id, ns, (str(m.metadata["evidence_key"]),)))
            yield [*ops, *ctx.staged(MemoryEventType.DELETED, doomed, reason="forget")]
            yield After(ctx.emit, MemoryEventType.DELETED, doomed, reason="forget")
            yield After(ctx.unindex, doomed)
        return doomed

    def decay_confidence(
        self, agent: str | None = None, half_life_days: float = 90.0, dry_run: bool = False
    ) -> Plan[list[Memory]]:
        """Lower the confidence of idle memories (see the module docstring); returns the changed ones."""
        ctx = self.context
        if agent is not None:
            ctx.scopes.check_agent(agent)
        if isinstance(half_life_days, bool) or not half_life_days > 0:
            raise ValidationError(f"half_life_days must be > 0, got {half_life_days!r}")
        if not dry_run:
            yield WRITE
        now = utcnow().timestamp()
        flt = ctx.filter(agents=(agent,) if agent else None, types=DECAYING)
        changed: list[Memory] = []
        for memory in (yield [FindMemories(flt, with_embeddings=True)])[0]:
            base = float(memory.metadata.get("decay_base", memory.confidence))
            confidence = round(base * 0.5 ** (idle_days(memory, now) / half_life_days), 6)
            if abs(confidence - memory.confidence) < 1e-6:
                continue
            memory.metadata["decay_base"] = base
            memory.confidence = confidence
            changed.append(memory)
        if changed and not dry_run:
            yield [PutMemories(changed), *ctx.staged(MemoryEventType.UPDATED, changed, reason="decay")]
            yield After(ctx.emit, MemoryEventType.UPDATED, changed, reason="decay")
        return changed


def _forgettable(base: MemoryFilter, max_per_agent: int | None) -> Plan[list[Memory]]:
    """The memories `base` matches; with `max_per_agent`, only those beyond each agent's newest N of a
    type (every memory counts towards N, whatever `base`'s age and confidence bounds)."""
    if max_per_agent is None:
        return (yield [FindMemories(base)])[0]  # type: ignore[no-any-return]
    seen: dict[tuple[str, MemoryType], int] = {}
    over = []
    for m in (yield [FindMemories(replace(base, created_before=None, confidence_below=None))])[0]:
        key = (m.agent, m.memory_type)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > max_per_agent:
            over.append(m)
    if base.created_before is None and base.confidence_below is None:
        return over
    matching = {m.id for m in (yield [FindMemories(base)])[0]}
    return [m for m in over if m.id in matching]
