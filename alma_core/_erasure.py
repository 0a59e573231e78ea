"""`ALMA.delete_user`: remove every record carrying one user's data, in one transaction.

What goes, for user `u` of the project:
- memories about `u`: preferences, and any memory whose `metadata["user_id"]` is `u`;
- records tagged with `u`: `user_id` at the top of their metadata (checkpoints, chat histories, LangGraph
  checkpoints run with `configurable.user_id`) or in their nested `metadata` / `meta` (handoffs, work
  items, sessions, artifacts);
- learning evidence built from `u`'s outcomes (the learner counts outcomes per user in each evidence
  record): evidence that only `u` contributed goes, with the heuristic and anti-pattern derived from it;
  evidence shared with others keeps its counts (numbers, not personal data) but loses `u`'s error texts,
  which are also cut from the derived heuristic's `recent_errors` and the anti-pattern's `why_bad`;
- whatever registered erasure hooks add (an adapter that keeps related records, such as the writes of a
  LangGraph thread, registers one: `register_erasure_hook`).
Evidence written before per-user counting (older stores) cannot be attributed and is left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._checks import check_text
from ._models import AntiPattern, Heuristic, Memory, Outcome
from .storage._base import DeleteMemories, DeleteRecords, FindMemories, ListRecords, Op, PutMemories, PutRecord, Record

if TYPE_CHECKING:
    from ._alma import ALMA
    from .storage._base import Transaction

__all__ = ["ErasureHook", "UserErasure", "erase_user", "register_erasure_hook"]

ErasureHook = Callable[[str, Sequence[Record]], Sequence[DeleteRecords]]
"""Given the project id and the records delete_user removed, more record deletions to run with them."""

_hooks: list[ErasureHook] = []
_lock = threading.Lock()
_REMOVED = "[removed]"


def register_erasure_hook(hook: ErasureHook) -> None:
    """Have `delete_user` also run `hook`'s deletions (idempotent)."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)


class UserErasure(int):
    """How many memories and records `delete_user` removed (an int), with the breakdown:
    `memories`, `records`, `evidence` (evidence records removed), `scrubbed` (shared evidence records
    and derived memories whose user texts were cut) and `graph` (what the knowledge graph forgot)."""

    memories: int
    records: int
    evidence: int
    scrubbed: int
    graph: int

    def __new__(cls, memories: int, records: int, evidence: int, scrubbed: int, graph: int = 0) -> UserErasure:
        self = super().__new__(cls, memories + records + evidence + graph)
        self.memories, self.records, self.evidence, self.scrubbed = memories, records, evidence, scrubbed
        self.graph = graph
        return self

    def __repr__(self) -> str:
        return (
            f"UserErasure(memories={self.memories}, records={self.records}, evidence={self.evidence}, "
            f"scrubbed={self.scrubbed}, graph={self.graph})"
        )


def _tagged(metadata: dict[str, Any], user_id: str) -> bool:
    if metadata.get("user_id") == user_id:
        return True
    return any(isinstance(inner, dict) and inner.get("user_id") == user_id
               for inner in (metadata.get("metadata"), metadata.get("meta")))  # fmt: skip


def _scrub_text(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _REMOVED)
    return text


def _evidence(tx: Transaction, alma: ALMA, user_id: str, errors: set[str]) -> tuple[int, int, set[str]]:
    """Remove or scrub the evidence `user_id` contributed to; returns (removed, scrubbed, derived
    memory ids to delete)."""
    removed = scrubbed = 0
    doomed: set[str] = set()
    project = alma.project_id
    for record in tx.execute(ListRecords(project, "learn/", prefix=True)):
        meta = record.metadata
        users = meta.get("users")
        if not isinstance(users, dict) or user_id not in users:
            continue
        total = (
            meta.get("successes", 0) + meta.get("failures", 0)
            if meta.get("kind") == "strategy"
            else meta.get("count", 0)
        )
        derived = [i for i in (meta.get("heuristic_id"), meta.get("anti_pattern_id")) if i]
        if users[user_id] >= total:
            tx.execute(DeleteRecords(project, record.namespace, (record.key,)))
            doomed.update(derived)
            removed += 1
            continue
        kept = {k: v for k, v in users.items() if k != user_id}
        new_meta = {**meta, "users": kept}
        if isinstance(meta.get("errors"), list):
            new_meta["errors"] = [e for e in meta["errors"] if e not in errors]
        tx.execute(PutRecord(replace(record, metadata=new_meta)))
        scrubbed += 1 + _scrub_derived(tx, alma, derived, errors)
    return removed, scrubbed, doomed


def _scrub_derived(tx: Transaction, alma: ALMA, ids: list[str], errors: set[str]) -> int:
    """Cut `errors` out of derived heuristics and anti-patterns; returns how many changed."""
    if not ids or not errors:
        return 0
    changed: list[Memory] = []
    for memory in tx.execute(FindMemories(alma.context.filter(ids=tuple(ids)), with_embeddings=True)):
        before = memory.model_dump()
        if isinstance(memory, Heuristic | AntiPattern) and isinstance(memory.metadata.get("recent_errors"), list):
            memory.metadata["recent_errors"] = [e for e in memory.metadata["recent_errors"] if e not in errors]
        if isinstance(memory, AntiPattern):
            memory.why_bad = _scrub_text(memory.why_bad, errors)
            memory.pattern = _scrub_text(memory.pattern, errors) or _REMOVED
        if memory.model_dump() != before:
            changed.append(memory)
    if changed:
        alma.context.embed([m for m in changed if isinstance(m, AntiPattern)])
        tx.execute(PutMemories(changed))
    return len(changed)


def erase_user(
    alma: ALMA, user_id: str, stage: Callable[[Transaction, list[Memory]], None] | None = None
) -> tuple[UserErasure, list[Memory]]:
    """Delete everything of `user_id` in the project (see the module docstring); returns the count
    and the memories removed. `stage(tx, removed)` runs last inside the transaction (event outboxes)."""
    check_text("user_id", user_id)
    project = alma.project_id
    with alma.storage.transaction() as tx:
        gone: list[Memory] = tx.execute(FindMemories(alma.context.filter(user_id=user_id)))
        tx.execute(DeleteMemories(alma.context.filter(user_id=user_id)))
        errors = {o.error_message.strip() for o in gone if isinstance(o, Outcome) and o.error_message}
        errors.discard("")
        records = [r for r in tx.execute(ListRecords(project, "", prefix=True, with_values=False))
                   if _tagged(r.metadata, user_id)]  # fmt: skip
        ops: list[Op] = []
        by_namespace: dict[str, list[str]] = {}
        for record in records:
            by_namespace.setdefault(record.namespace, []).append(record.key)
        ops.extend(DeleteRecords(project, ns, tuple(keys)) for ns, keys in by_namespace.items())
        with _lock:
            hooks = list(_hooks)
        for hook in hooks:
            ops.extend(hook(project, records))
        extra = 0
        for op in ops:
            extra += tx.execute(op)
        removed, scrubbed, doomed = _evidence(tx, alma, user_id, errors)
        derived: list[Memory] = []
        if doomed:
            derived = tx.execute(FindMemories(alma.context.filter(ids=tuple(sorted(doomed)))))
            tx.execute(DeleteMemories(alma.context.filter(ids=tuple(sorted(doomed)))))
        memories = [*gone, *derived]
        if stage is not None:
            stage(tx, memories)
    return UserErasure(len(memories), extra, removed, scrubbed), memories
