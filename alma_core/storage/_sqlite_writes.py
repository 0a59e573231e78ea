"""Memory writes on SQLite: upserts and deletes, with what they change for the matrices and the lexical index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._models import Memory
from ._base import DeleteMemories, PutMemories
from ._filters import memory_where
from ._lexindex import COLUMNS, NUMBERS
from ._sqlite_schema import UPSERT_MEMORY, UPSERT_MEMORY_SAME_KEYS
from ._sqlite_tx import TxState, scope_of
from ._vectors import VectorRow

__all__ = ["MemoryWrites"]


class MemoryWrites(TxState):
    """`PutMemories` and `DeleteMemories`."""

    def put_memories(self, op: PutMemories) -> int:
        """Upsert the memories. A row whose indexed columns (agent, type, category, user, workflow,
        creation time) are unchanged is updated without touching its index entries (a heuristic's
        counts change at each outcome: 1 page written instead of 4); if any row's did change, one more
        statement rewrites every column."""
        rows = []
        scopes: list[str] = []
        for m in op.memories:
            vec = None if (embedding := m.embedding) is None else np.asarray(embedding, dtype=np.float32)
            blob = None if vec is None else vec.tobytes()
            rows.append(
                (
                    m.project_id, m.id, m.agent, m.memory_type.value, m.category, m.user_id_value,
                    m.workflow_id, m.text, m.confidence, m.created_at.timestamp(),
                    m.updated_at.timestamp(), m.model_dump_json(), blob,
                )
            )  # fmt: skip
            scope = scope_of(m.project_id, m.agent, m.memory_type.value)
            scopes.extend((scope, scope_of(m.project_id)))
            if vec is not None:
                self.vector_changes.setdefault(scope, []).append(
                    VectorRow(m.id, vec, m.user_id_value, m.workflow_id, m.category)
                )
        self.bump_all(scopes)
        if self.lexical is not None:
            self._record_rows(op.memories, "del")
        if self.conn.executemany(UPSERT_MEMORY_SAME_KEYS, rows).rowcount != len(rows):
            self.conn.executemany(UPSERT_MEMORY, rows)
        if self.lexical is not None:
            self._record_rows(op.memories, "put")
        return len(rows)

    def _record_rows(self, memories: Sequence[Memory], kind: str) -> None:
        """Record the stored rows of `memories` for the lexical index: before a write the rows it
        replaces ("del": rowid, text), after it the rows written ("put": rowid, text, columns)."""
        assert self.lexical is not None
        names = "rowid, text, " + ", ".join((*COLUMNS, *NUMBERS))
        by_project: dict[str, list[str]] = {}
        for m in memories:
            by_project.setdefault(m.project_id, []).append(m.id)
        for project_id, ids in by_project.items():
            ids = list(dict.fromkeys(ids))
            for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                found = self.conn.execute(
                    f"SELECT {names} FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})",
                    [project_id, *chunk],
                )
                self.lexical.extend((kind, r[0], r[1], None if kind == "del" else r[2:]) for r in found)

    def delete_memories(self, op: DeleteMemories) -> int:
        where, args = memory_where(op.filter)
        gone = self.conn.execute(
            f"DELETE FROM memories WHERE {where} RETURNING id, agent, type, rowid, text", args
        ).fetchall()
        scopes = []
        for memory_id, agent, mtype, rowid, text in gone:
            if self.lexical is not None:
                self.lexical.append(("del", rowid, text, None))
            scope = scope_of(op.filter.project_id, agent, mtype)
            scopes.append(scope)
            self.vector_changes.setdefault(scope, []).append(memory_id)
        if gone:
            self.bump_all([*scopes, scope_of(op.filter.project_id)])
        return len(gone)
