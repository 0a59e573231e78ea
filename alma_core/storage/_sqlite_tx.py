"""The SQLite store's transaction state: the connection, the scopes' generations, what a commit changes.

Each group of operations (`_sqlite_writes`, `_sqlite_search`, `_sqlite_records`) is a mixin over `TxState`;
`sqlite._Tx` joins them and dispatches the ops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._lexindex import Change
from ._vectors import VectorRow

if TYPE_CHECKING:
    from .sqlite import SQLiteStorage

__all__ = ["MAX_CHAR", "TxState", "scope_of"]

MAX_CHAR = "\U0010ffff"


def scope_of(project_id: str, agent: str | None = None, mtype: str | None = None) -> str:
    """A generation's scope: the project's own, or one (agent, type) of it."""
    return project_id if agent is None else f"{project_id}\x1f{agent}\x1f{mtype}"


class TxState:
    """One open transaction on the store's connection."""

    def __init__(self, store: SQLiteStorage, write: bool) -> None:
        self.store, self.conn, self.write = store, store._conn, write
        self.bumped: dict[str, tuple[int, int]] = {}  # scope -> (generation before, after)
        self.vector_changes: dict[str, list[VectorRow | str]] = {}  # scope -> upserts / deleted ids
        self.project_generations: dict[str, dict[str, int]] = {}  # read transactions: project -> scopes
        self._snapshot: tuple[int, int] | None = None
        # the memory rows this transaction replaces, writes and deletes, for the lexical index (when built)
        self.lexical: list[Change] | None = [] if write and store._lexical.built else None
        # what the index will know after this transaction: (project, id) -> (rowid, text hash); None: deleted
        self.lexical_rows: dict[tuple[str, str], tuple[int, int] | None] = {}

    def bump(self, scope: str) -> None:
        """Move the scope's generation, once per transaction."""
        self.bump_all([scope])

    def bump_all(self, scopes: Iterable[str]) -> None:
        """Move the generation of each scope not yet moved by this transaction (one statement)."""
        todo = [scope for scope in dict.fromkeys(scopes) if scope not in self.bumped]
        for start in range(0, len(todo), 500):  # under SQLite's bound-parameter limit
            chunk = todo[start : start + 500]
            rows = self.conn.execute(
                f"INSERT INTO generations (scope, value) VALUES {','.join(['(?, 1)'] * len(chunk))} "
                "ON CONFLICT (scope) DO UPDATE SET value = value + 1 RETURNING scope, value",
                chunk,
            ).fetchall()
            for scope, value in rows:
                self.bumped[scope] = (value - 1, value)

    def snapshot(self) -> tuple[int, int]:
        """What a read transaction sees, as the store's read caches are keyed: SQLite's `data_version`
        (moves when another connection commits) and this store's committed write transactions. Read once."""
        if self._snapshot is None:
            (version,) = self.conn.execute("PRAGMA data_version").fetchone()
            self._snapshot = (int(version), self.store._doc_counts.writes)
        return self._snapshot

    def generations(self, project_id: str, scopes: list[str]) -> dict[str, int]:
        """The generations of `scopes` (absent: never written). A read transaction reads every scope of
        the project once: its snapshot cannot change, and a retrieve searches several types. They are kept
        for the next read transactions while the file is unchanged (`snapshot`)."""
        if self.write:
            if not scopes:
                return {}
            sql = f"SELECT scope, value FROM generations WHERE scope IN ({','.join('?' * len(scopes))})"
            return dict(self.conn.execute(sql, scopes).fetchall())
        known = self.project_generations.get(project_id)
        if known is None:  # the project's own scope and each of its (agent, type) scopes
            known = self.project_generations[project_id] = self._project_generations(project_id)
        return {scope: known[scope] for scope in scopes if scope in known}

    def _project_generations(self, project_id: str) -> dict[str, int]:
        """Every generation of the project, kept by the store while the file is unchanged (`snapshot`)."""
        kept = self.store._generations
        snapshot = self.snapshot()
        found = kept.get(project_id)
        if found is not None and found[0] == snapshot:
            return found[1]
        known = dict(
            self.conn.execute(
                "SELECT scope, value FROM generations WHERE scope >= ? AND scope < ?",
                (project_id, project_id + "\x1f" + MAX_CHAR),
            ).fetchall()
        )
        if len(kept) >= 64:
            kept.clear()
        kept[project_id] = (snapshot, known)
        return known
