"""Forgetting: deleting what `ALMA.forget` selects, and confidence decay of idle memories.

Confidence decay: memories that are never validated again slowly lose confidence.

confidence = base * 0.5 ** (idle_days / half_life_days), where base is the confidence the memory had
when decay first touched it (kept in metadata["decay_base"], so repeated runs never compound) and
idle_days counts from its last validation (heuristics) or last update. `forget(below_confidence=...)`
then removes what has faded. A new outcome for the strategy resets a heuristic's confidence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ._errors import ValidationError
from ._learning import evidence_namespace
from ._models import Heuristic, Memory, MemoryType, idle_days, utcnow
from .storage._base import DeleteMemories, DeleteRecords, FindMemories, MemoryFilter, PutMemories

if TYPE_CHECKING:
    from ._alma import ALMA
    from .storage._base import Transaction

__all__ = ["decay_confidence", "forget_memories"]

DECAYING = (MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN, MemoryType.KNOWLEDGE)


def decay_confidence(alma: ALMA, agent: str | None, half_life_days: float, dry_run: bool) -> list[Memory]:
    """Lower the confidence of idle memories (see the module docstring); returns the changed ones."""
    if isinstance(half_life_days, bool) or not half_life_days > 0:
        raise ValidationError(f"half_life_days must be > 0, got {half_life_days!r}")
    now = utcnow().timestamp()
    flt = alma._filter(agents=(agent,) if agent else None, types=DECAYING)
    changed: list[Memory] = []
    with alma.storage.transaction(write=not dry_run) as tx:
        for memory in tx.execute(FindMemories(flt, with_embeddings=True)):
            base = float(memory.metadata.get("decay_base", memory.confidence))
            confidence = round(base * 0.5 ** (idle_days(memory, now) / half_life_days), 6)
            if abs(confidence - memory.confidence) < 1e-6:
                continue
            memory.metadata["decay_base"] = base
            memory.confidence = confidence
            changed.append(memory)
        if changed and not dry_run:
            tx.execute(PutMemories(changed))
    return changed


def forget_memories(alma: ALMA, base: MemoryFilter, max_per_agent: int | None, dry_run: bool) -> list[Memory]:
    """Delete (unless `dry_run`) what `_forgettable` selects, in one transaction; returns it. A
    forgotten heuristic's evidence goes too, so the next outcome does not rebuild it."""
    with alma.storage.transaction(write=not dry_run) as tx:
        doomed = _forgettable(tx, base, max_per_agent)
        if doomed and not dry_run:
            tx.execute(DeleteMemories(alma._filter(ids=tuple(m.id for m in doomed))))
            for m in doomed:
                if isinstance(m, Heuristic) and m.task_type and m.metadata.get("evidence_key"):
                    ns = evidence_namespace(m.agent, m.task_type)
                    tx.execute(DeleteRecords(base.project_id, ns, (str(m.metadata["evidence_key"]),)))
    return doomed


def _forgettable(tx: Transaction, base: MemoryFilter, max_per_agent: int | None) -> list[Memory]:
    """The memories `base` matches; with `max_per_agent`, only those beyond each agent's newest N of a
    type (every memory counts towards N, whatever `base`'s age and confidence bounds)."""
    if max_per_agent is None:
        return tx.execute(FindMemories(base))  # type: ignore[no-any-return]
    seen: dict[tuple[str, MemoryType], int] = {}
    over = []
    for m in tx.execute(FindMemories(replace(base, created_before=None, confidence_below=None))):
        key = (m.agent, m.memory_type)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > max_per_agent:
            over.append(m)
    if base.created_before is None and base.confidence_below is None:
        return over
    matching = {m.id for m in tx.execute(FindMemories(base))}
    return [m for m in over if m.id in matching]
