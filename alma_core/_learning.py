"""The learning protocol: how outcomes become heuristics and anti-patterns.

`ALMA.learn()` calls `prepare()` outside the write transaction (embedding work) and `apply()` inside
it, so evidence updates commit atomically with the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._models import Memory, Outcome

if TYPE_CHECKING:
    from ._alma import ALMA
    from .storage._base import Transaction

__all__ = ["Learner"]


class Learner:
    """Turns outcomes into evidence. (The [learning] issue builds heuristics and anti-patterns here.)"""

    def __init__(self, alma: ALMA) -> None:
        self.alma = alma

    def prepare(self, outcomes: Sequence[Outcome]) -> Any:
        """Work done before the transaction (e.g. embedding strategies)."""
        return None

    def apply(self, tx: Transaction, outcomes: Sequence[Outcome], prepared: Any) -> list[tuple[Memory, bool]]:
        """Update evidence inside the outcome's transaction. Returns (memory, created) for each write."""
        return []
