"""Memories without a full-text entry (written by an ALMA older than migration 5 while a newer one had
migrated the file: no insert trigger any more) are indexed on the next open, so lexical search finds them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from _helpers import lexical

from alma_core import ALMA
from alma_core.storage import MemoryFilter, SQLiteStorage


def _fts_count(db_path: Path) -> int:
    with sqlite3.connect(db_path) as raw:
        return int(raw.execute("SELECT COUNT(*) FROM memories_fts_docsize").fetchone()[0])


def test_memories_missing_from_the_index_are_indexed_again_on_open(db_path: Path) -> None:
    alma = ALMA(project_id="p", agents={"a": {}}, storage=db_path, embedder="mock")
    for i in range(6):
        alma.add_domain_knowledge("a", "auth", f"fact {i} about the zebrafish login")
    alma.close()
    with sqlite3.connect(db_path) as raw:  # behind the store's back: three rows lose their entries
        raw.execute(
            """INSERT INTO memories_fts (memories_fts, rowid, text)
               SELECT 'delete', rowid, text FROM memories ORDER BY rowid LIMIT 3"""
        )
    assert _fts_count(db_path) == 3
    store = SQLiteStorage(db_path)
    try:
        assert _fts_count(db_path) == 6
        found = lexical(store, MemoryFilter(project_id="p"), "zebrafish", 10)
        assert len(found) == 6
        store.close()
        store = SQLiteStorage(db_path)  # an index that matches is left as it is
        assert _fts_count(db_path) == 6 and len(lexical(store, MemoryFilter(project_id="p"), "zebrafish", 10)) == 6
    finally:
        store.close()
