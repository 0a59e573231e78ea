"""Confidence decay: memories that are never validated again slowly lose confidence.

confidence = base * 0.5 ** (idle_days / half_life_days), where base is the confidence the memory had
when decay first touched it (kept in metadata["decay_base"], so repeated runs never compound) and
idle_days counts from its last validation (heuristics) or last update. `forget(below_confidence=...)`
then removes what has faded. A new outcome for the strategy resets a heuristic's confidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import ValidationError
from ._models import Heuristic, Memory, MemoryType, utcnow
from .storage._base import FindMemories, PutMemories

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = ["decay_confidence"]

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
            stamp = memory.last_validated if isinstance(memory, Heuristic) else memory.updated_at
            idle_days = max(0.0, (now - stamp.timestamp()) / 86400.0)
            base = float(memory.metadata.get("decay_base", memory.confidence))
            confidence = round(base * 0.5 ** (idle_days / half_life_days), 6)
            if abs(confidence - memory.confidence) < 1e-6:
                continue
            memory.metadata["decay_base"] = base
            memory.confidence = confidence
            changed.append(memory)
        if changed and not dry_run:
            tx.execute(PutMemories(changed))
    return changed
