"""Memory writes on SQLite: upserts and deletes, with what they change for the matrices and the lexical index.

While the lexical index is built (`_lexindex`), a write records the memory rows whose index entries it
changes, without reading them where the index can tell: a rewritten row the index knows (its rowid and
text hash by id) whose text is unchanged is recorded from the memory itself ("set": its columns); only
a changed text is read (its old text, to take its terms out) and only new rows' rowids are read after
the write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import DeleteMemories, PutMemories
from ._filters import memory_where
from ._sqlite_schema import INDEX_NEW_MEMORIES, UPSERT_MEMORY, UPSERT_MEMORY_SAME_KEYS
from ._sqlite_tx import TxState, scope_of
from ._vectors import VectorRow

if TYPE_CHECKING:
    from .._models import Memory

__all__ = ["MemoryWrites", "memory_json"]

Row = tuple[Any, ...]  # a memory's upsert parameters (`UPSERT_MEMORY`'s order)
_CHUNK = 500  # ids per `IN (...)`: under SQLite's bound-parameter limit
SEQUENTIAL_ROWIDS_BELOW = 2**62  # SQLite numbers new rows max(rowid) + 1 until the largest rowid, 2**63 - 1
_LARGEST_ROWID = "SELECT COALESCE(MAX(rowid), 0) FROM memories"


class MemoryWrites(TxState):
    """`PutMemories` and `DeleteMemories`."""

    def put_memories(self, op: PutMemories) -> int:
        """Upsert the memories. A row whose indexed columns (agent, type, category, user, workflow,
        creation time) are unchanged is updated without touching its index entries (a heuristic's
        counts change at each outcome: 1 page written instead of 4); if any row's did change, one more
        statement rewrites every column."""
        rows = []
        scopes: dict[str, None] = {}  # each (agent, type) scope written and its project's, once, in order
        cached = self.store._matrices  # (a scope's matrix loaded later in this transaction is dropped at its commit)
        for m in op.memories:
            vec = None if (embedding := m.embedding) is None else np.asarray(embedding, dtype=np.float32)
            mtype, user_id = m.memory_type._value_, m.user_id_value  # (`_value_`: `.value` is a Python property)
            rows.append(
                (
                    m.project_id, m.id, m.agent, mtype, m.category, user_id, m.workflow_id, m.text,
                    m.confidence, m.created_at.timestamp(), m.updated_at.timestamp(),
                    memory_json(m),
                    None if vec is None else vec.tobytes(),
                )
            )  # fmt: skip
            scope = scope_of(m.project_id, m.agent, mtype)
            scopes[scope] = scopes[scope_of(m.project_id)] = None
            if scope in cached:  # a memory written without a vector leaves its scope's matrix
                self.vector_changes.setdefault(scope, []).append(
                    m.id if vec is None else VectorRow(m.id, vec, user_id, m.workflow_id, m.category)
                )
        self.bump_all(scopes)
        # an id written twice is written once, with its last values at its first place (as two upserts
        # would leave it): a row inserted here has no full-text entry for an update to take out
        latest = {(row[0], row[1]): row for row in rows}
        unique = list(latest.values()) if len(latest) < len(rows) else rows
        new = None if self.lexical is None else self._lexical_before(latest)
        (top,) = self.conn.execute(_LARGEST_ROWID).fetchone()
        if self.conn.executemany(UPSERT_MEMORY_SAME_KEYS, unique).rowcount != len(unique):
            self._leave_old_scopes(latest)
            self.conn.executemany(UPSERT_MEMORY, unique)
        self._index_new_rows(top, latest)
        if new:
            self._lexical_new(new, latest)
        return len(rows)

    def _index_new_rows(self, top: int, latest: dict[tuple[str, str], Row]) -> None:
        """The full-text entries of the rows the upsert inserted: rowids above `top` (none when it only
        updated stored rows: the statement then reads no row and writes nothing, 3.6 us, less than asking
        for the largest rowid first); near the end of the rowid range, where SQLite picks them at random:
        the written ids without one."""
        if top < SEQUENTIAL_ROWIDS_BELOW:
            self.conn.execute(INDEX_NEW_MEMORIES, (top,))
            return
        for project_id, chunk in _chunks(list(latest)):
            self.conn.execute(
                "INSERT INTO memories_fts (rowid, text) SELECT m.rowid, m.text FROM memories AS m WHERE "
                f"m.project_id = ? AND m.id IN ({','.join('?' * len(chunk))}) "
                "AND NOT EXISTS (SELECT 1 FROM memories_fts_docsize AS d WHERE d.id = m.rowid)",
                [project_id, *chunk],
            )

    def _leave_old_scopes(self, latest: dict[tuple[str, str], Row]) -> None:
        """Before rows whose indexed columns changed are rewritten: a memory that moves to another
        (agent, type) leaves the old scope's matrix."""
        moved = []
        for project_id, chunk in _chunks(list(latest)):
            sql = f"SELECT id, agent, type FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})"
            for memory_id, agent, mtype in self.conn.execute(sql, [project_id, *chunk]):
                row = latest[(project_id, memory_id)]
                if (agent, mtype) != (row[2], row[3]):
                    old = scope_of(project_id, agent, mtype)
                    self.vector_changes.setdefault(old, []).append(memory_id)
                    moved.append(old)
        self.bump_all(moved)

    # -- the lexical index ----------------------------------------------------------------------

    def _known(self, key: tuple[str, str]) -> tuple[int, int] | None:
        """The (rowid, text hash) of a memory as the index knows it after this transaction's writes."""
        if key in self.lexical_rows:
            return self.lexical_rows[key]
        return self.store._lexical.known(*key)

    def _lexical_before(self, latest: dict[tuple[str, str], Row]) -> list[tuple[str, str]]:
        """Record the changes of rows the index knows (reading the old text of those whose text
        changes); the keys of the others (new rows), whose rowids are read after the write."""
        assert self.lexical is not None
        new, changed = [], []
        for key, row in latest.items():
            known = self._known(key)
            if known is None:
                new.append(key)
            elif hash(row[7]) == known[1]:
                self.lexical.append(("set", known[0], None, _columns(row)))
            else:
                changed.append((known[0], key, row))
        for start in range(0, len(changed), _CHUNK):
            chunk = changed[start : start + _CHUNK]
            sql = f"SELECT rowid, text FROM memories WHERE rowid IN ({','.join('?' * len(chunk))})"
            old = dict(self.conn.execute(sql, [rowid for rowid, _, _ in chunk]).fetchall())
            for rowid, key, row in chunk:
                self.lexical.append(("del", rowid, old.get(rowid), key[::-1]))
                self.lexical.append(("put", rowid, row[7], _columns(row)))
                self.lexical_rows[key] = (rowid, hash(row[7]))
        return new

    def _lexical_new(self, new: list[tuple[str, str]], latest: dict[tuple[str, str], Row]) -> None:
        """Record the rows the write added (their rowids read back)."""
        assert self.lexical is not None
        for project_id, chunk in _chunks(new):
            sql = f"SELECT rowid, id FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))})"
            for rowid, memory_id in self.conn.execute(sql, [project_id, *chunk]):
                row = latest[(project_id, memory_id)]
                self.lexical.append(("put", rowid, row[7], _columns(row)))
                self.lexical_rows[(project_id, memory_id)] = (rowid, hash(row[7]))

    def delete_memories(self, op: DeleteMemories) -> int:
        where, args = memory_where(op.filter)
        gone = self.conn.execute(
            f"DELETE FROM memories WHERE {where} RETURNING id, agent, type, rowid, text", args
        ).fetchall()
        scopes = []
        project_id = op.filter.project_id
        for memory_id, agent, mtype, rowid, text in gone:
            if self.lexical is not None:
                self.lexical.append(("del", rowid, text, (memory_id, project_id)))
                self.lexical_rows[(project_id, memory_id)] = None
            scope = scope_of(project_id, agent, mtype)
            scopes.append(scope)
            self.vector_changes.setdefault(scope, []).append(memory_id)
        if gone:
            self.bump_all([*scopes, scope_of(project_id)])
        return len(gone)


def memory_json(memory: Memory) -> str:
    """The `data` column: the model's JSON without its fields that are None (each reads back as its
    default, None; values inside `metadata` are kept as they are), made by its serializer directly
    (`model_dump_json()` walked its dozen keyword arguments first: ~2 of ~7 us). An outcome's row was
    ~2,050 bytes, just over the ~2,037 of which a 4 KB page holds two: one row a page, half of it unused.
    Without its four nulls most outcome rows fit two to a page: an outcome-heavy file is about half the size."""
    return memory.__pydantic_serializer__.to_json(memory, exclude_none=True).decode()


def _columns(row: Row) -> tuple[Any, ...]:
    """The lexical index's columns of a row (`_lexindex.COLUMNS` then `NUMBERS`) and its JSON, as written."""
    return (row[1], row[0], row[2], row[3], row[5], row[6], row[4], row[9], row[10], row[8], row[11])


def _chunks(keys: Sequence[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """(project, ids) in chunks of at most `_CHUNK` ids."""
    by_project: dict[str, list[str]] = {}
    for project_id, memory_id in keys:
        by_project.setdefault(project_id, []).append(memory_id)
    for project_id, ids in by_project.items():
        for start in range(0, len(ids), _CHUNK):
            yield project_id, ids[start : start + _CHUNK]
