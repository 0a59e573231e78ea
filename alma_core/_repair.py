"""`ALMA.repair()` (`alma repair`): set aside stored memories that cannot be read back.

A memory row that no longer decodes (written by an older version without edge checks, or edited by
hand) is skipped by every read and counted in `storage.bad_rows`. Repair reads the whole project once,
moves each such row's raw data into the record namespace `alma/quarantine` (key: the memory id; metadata:
the error and when) and deletes it from the memories, in one transaction.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .storage._base import DeleteMemories, FindMemories, PutRecord, Record

if TYPE_CHECKING:
    from ._alma import ALMA

__all__ = ["QUARANTINE", "repair_project"]

QUARANTINE = "alma/quarantine"


def repair_project(alma: ALMA) -> dict[str, Any]:
    """Quarantine the project's unreadable memories; returns their ids and the store's own check."""
    bad_rows = alma.storage.bad_rows
    bad_rows.take(alma.project_id)  # forget rows an earlier read saw: this pass sees what is there now
    alma.storage.execute(FindMemories(alma.context.filter()))  # decodes every row, reporting the bad ones
    bad = bad_rows.take(alma.project_id)
    if bad:
        now = time.time()
        ops: list[Any] = [
            PutRecord(Record(alma.project_id, QUARANTINE, memory_id, raw.encode("utf-8", "backslashreplace"),
                             {"error": error, "quarantined_at": now}))
            for memory_id, (raw, error) in sorted(bad.items())
        ]  # fmt: skip
        ops.append(DeleteMemories(alma.context.filter(ids=tuple(sorted(bad)))))
        alma.storage.batch(ops)
    report: dict[str, Any] = {"project_id": alma.project_id, "quarantined": sorted(bad), "namespace": QUARANTINE}
    check = getattr(alma.storage, "integrity_check", None)
    if callable(check):
        report["integrity"] = check()
    return report
