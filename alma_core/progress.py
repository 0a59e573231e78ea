"""Progress tracking: work items with priorities, dependencies and a status machine, in the ALMA store.

Status transitions (anything else raises `InvalidTransition`; setting the current status is a no-op):

| from | to |
| --- | --- |
| pending | in_progress, blocked, failed |
| in_progress | done, failed, blocked, pending |
| blocked | pending, in_progress, failed |
| failed | pending, in_progress |
| done | (final) |

Moving to `in_progress` or `done` also needs every dependency `done`. When an item becomes `done`, each
`blocked` item that depends on it and now has every dependency done goes back to `pending` (in the same
transaction), so `get_next_item` offers it again. Agent names are case-insensitive. Items are records under
`progress/items` (key = item id); status changes are read-modify-write in one write transaction.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic import ValidationError as PydanticError

from ._checks import first_error
from ._config import agent_key
from ._errors import NotFound, ValidationError
from ._models import utcnow
from .session import resolve_store
from .storage._base import BaseStorage, GetRecord, ListRecords, PutRecord, Record, Transaction

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = ["InvalidTransition", "ProgressSummary", "ProgressTracker", "WorkItem", "WorkStatus"]

NAMESPACE = "progress/items"


class WorkStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[WorkStatus, frozenset[WorkStatus]] = {
    WorkStatus.PENDING: frozenset({WorkStatus.IN_PROGRESS, WorkStatus.BLOCKED, WorkStatus.FAILED}),
    WorkStatus.IN_PROGRESS: frozenset({WorkStatus.DONE, WorkStatus.FAILED, WorkStatus.BLOCKED, WorkStatus.PENDING}),
    WorkStatus.BLOCKED: frozenset({WorkStatus.PENDING, WorkStatus.IN_PROGRESS, WorkStatus.FAILED}),
    WorkStatus.FAILED: frozenset({WorkStatus.PENDING, WorkStatus.IN_PROGRESS}),
    WorkStatus.DONE: frozenset(),
}


class InvalidTransition(ValidationError):
    """A status change the transition table does not allow (or whose dependencies are not done)."""


class WorkItem(BaseModel):
    """One unit of work. Higher `priority` is more urgent; `estimated_effort` is in any unit you like
    (hours, points), used by the quick_win strategy."""

    id: str
    title: str = Field(min_length=1)
    description: str = ""
    priority: int = 50
    estimated_effort: float | None = Field(None, ge=0)
    agent: str | None = None
    status: WorkStatus = WorkStatus.PENDING
    dependencies: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("agent")
    @classmethod
    def _agent_key(cls, agent: str | None) -> str | None:
        return None if agent is None else agent_key(agent)


class ProgressSummary(BaseModel):
    """Counts per status, the share done, and how many items are ready to start."""

    total: int
    by_status: dict[WorkStatus, int]
    percent_done: float
    ready: int
    blocked_ids: list[str]


Strategy = Literal["priority", "quick_win", "unblock"]


class ProgressTracker:
    """Work items of one project, persisted in the ALMA store."""

    def __init__(
        self,
        project_id: str | None = None,
        alma: ALMA | None = None,
        *,
        storage: BaseStorage | str | os.PathLike[str] | None = None,
    ) -> None:
        self.project_id, self.storage = resolve_store(project_id, alma, storage)

    def create_work_item(
        self,
        title: str,
        description: str = "",
        priority: int = 50,
        agent: str | None = None,
        dependencies: list[str] | None = None,
        estimated_effort: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WorkItem:
        """Add a pending item. Its dependencies must already exist (so the graph never has cycles)."""
        now = utcnow()
        try:
            item = WorkItem(id=uuid.uuid4().hex, title=title, description=description, priority=priority,
                            estimated_effort=estimated_effort, agent=agent, dependencies=list(dependencies or []),
                            created_at=now, updated_at=now, metadata=metadata or {})  # fmt: skip
        except PydanticError as exc:
            where, msg = first_error(exc)
            raise ValidationError(f"work item {where}: {msg}") from None
        with self.storage.transaction() as tx:
            for dep in item.dependencies:
                if tx.execute(GetRecord(self.project_id, NAMESPACE, dep)) is None:
                    raise NotFound(f"dependency {dep!r} is not a work item of project {self.project_id!r}")
            self._put(tx, item)
        return item

    def get_item(self, item_id: str) -> WorkItem:
        record = self.storage.execute(GetRecord(self.project_id, NAMESPACE, item_id))
        if record is None:
            raise NotFound(f"no work item {item_id!r} in project {self.project_id!r}")
        return WorkItem.model_validate(record.metadata)

    def update_status(self, item_id: str, status: WorkStatus | str) -> WorkItem:
        """Move an item to `status` following the transition table (module docstring)."""
        try:
            target = WorkStatus(status)
        except ValueError:
            raise ValidationError(f"status must be one of {[s.value for s in WorkStatus]}, got {status!r}") from None
        with self.storage.transaction() as tx:
            record = tx.execute(GetRecord(self.project_id, NAMESPACE, item_id))
            if record is None:
                raise NotFound(f"no work item {item_id!r} in project {self.project_id!r}")
            item = WorkItem.model_validate(record.metadata)
            if item.status is target:
                return item
            if target not in TRANSITIONS[item.status]:
                allowed = ", ".join(sorted(TRANSITIONS[item.status])) or "nothing (final)"
                raise InvalidTransition(f"work item {item_id!r}: {item.status} -> {target} is not allowed; "
                                        f"from {item.status}: {allowed}")  # fmt: skip
            if target in (WorkStatus.IN_PROGRESS, WorkStatus.DONE):
                self._check_dependencies(tx, item, target)
            item = item.model_copy(update={"status": target, "updated_at": utcnow()})
            self._put(tx, item)
            if target is WorkStatus.DONE:
                self._unblock_dependents(tx, item.id)
        return item

    def list_items(self, status: WorkStatus | str | None = None, agent: str | None = None) -> list[WorkItem]:
        """Items, oldest first, optionally of one status and/or one agent."""
        where: dict[str, Any] = {}
        if status is not None:
            where["status"] = WorkStatus(status).value
        if agent is not None:
            where["agent"] = agent_key(agent)
        records = self.storage.execute(ListRecords(self.project_id, NAMESPACE, where=where or None))
        items = [WorkItem.model_validate(r.metadata) for r in records]
        return sorted(items, key=lambda i: (i.created_at, i.id))

    def get_next_item(self, strategy: Strategy = "priority", agent: str | None = None) -> WorkItem | None:
        """The pending item to start next, among those whose dependencies are all done (and that belong
        to `agent` or to nobody, if `agent` is given); None when nothing is ready.

        - `priority`: highest priority; ties go to the oldest.
        - `quick_win`: smallest estimated_effort (unestimated items last); ties by priority, then age.
        - `unblock`: the item that unfinished items depend on most, directly or transitively; ties by
          priority, then age.
        """
        items = self.list_items()
        ready = self._ready(items, agent)
        if not ready:
            return None
        order = {i.id: n for n, i in enumerate(items)}
        if strategy == "priority":
            return min(ready, key=lambda i: (-i.priority, order[i.id]))
        if strategy == "quick_win":
            inf = float("inf")
            return min(ready, key=lambda i: (i.estimated_effort if i.estimated_effort is not None else inf,
                                             -i.priority, order[i.id]))  # fmt: skip
        if strategy == "unblock":
            dependents = _transitive_dependents(items)
            return min(ready, key=lambda i: (-dependents[i.id], -i.priority, order[i.id]))
        raise ValidationError(f"strategy must be priority, quick_win or unblock, got {strategy!r}")

    def get_progress_summary(self) -> ProgressSummary:
        items = self.list_items()
        counts = {s: 0 for s in WorkStatus}
        for item in items:
            counts[item.status] += 1
        total = len(items)
        percent = round(100.0 * counts[WorkStatus.DONE] / total, 1) if total else 0.0
        return ProgressSummary(
            total=total, by_status=counts, percent_done=percent,
            ready=len(self._ready(items, None)), blocked_ids=[i.id for i in items if i.status is WorkStatus.BLOCKED],
        )  # fmt: skip

    # ---- plumbing -----------------------------------------------------------------------------

    def _put(self, tx: Transaction, item: WorkItem) -> None:
        tx.execute(PutRecord(Record(self.project_id, NAMESPACE, item.id, None, item.model_dump(mode="json"))))

    def _unblock_dependents(self, tx: Transaction, done_id: str) -> None:
        """Blocked items waiting on `done_id` whose dependencies are now all done become pending."""
        blocked = tx.execute(ListRecords(self.project_id, NAMESPACE, where={"status": WorkStatus.BLOCKED.value}))
        for record in blocked:
            item = WorkItem.model_validate(record.metadata)
            if done_id not in item.dependencies:
                continue
            statuses = [tx.execute(GetRecord(self.project_id, NAMESPACE, d)) for d in item.dependencies]
            if all(r is None or r.metadata.get("status") == WorkStatus.DONE.value for r in statuses):
                self._put(tx, item.model_copy(update={"status": WorkStatus.PENDING, "updated_at": utcnow()}))

    def _check_dependencies(self, tx: Transaction, item: WorkItem, target: WorkStatus) -> None:
        for dep in item.dependencies:
            record = tx.execute(GetRecord(self.project_id, NAMESPACE, dep))
            if record is not None and record.metadata.get("status") != WorkStatus.DONE.value:
                raise InvalidTransition(f"work item {item.id!r} cannot become {target}: dependency {dep!r} is "
                                        f"{record.metadata.get('status')}, not done")  # fmt: skip

    @staticmethod
    def _ready(items: list[WorkItem], agent: str | None) -> list[WorkItem]:
        done = {i.id for i in items if i.status is WorkStatus.DONE}
        return [
            i for i in items
            if i.status is WorkStatus.PENDING and all(d in done for d in i.dependencies)
            and (agent is None or i.agent in (None, agent_key(agent)))
        ]  # fmt: skip


def _transitive_dependents(items: list[WorkItem]) -> dict[str, int]:
    """For each item, how many unfinished items depend on it, directly or through others."""
    direct: dict[str, list[str]] = {i.id: [] for i in items}
    unfinished = {i.id for i in items if i.status is not WorkStatus.DONE}
    for item in items:
        for dep in item.dependencies:
            direct.setdefault(dep, []).append(item.id)
    counts = {}
    for item in items:
        seen: set[str] = set()
        stack = list(direct[item.id])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(direct.get(node, []))
        counts[item.id] = len(seen & unfinished)
    return counts
