"""The SQLite store's schema: versioned, append-only migrations, applied by an idempotent `migrate()`."""

from __future__ import annotations

import functools
import sqlite3
import time

from .._errors import StorageError
from ._lexindex import varints

__all__ = [
    "INDEX_NEW_MEMORIES",
    "MIGRATIONS",
    "UNSEQUENCED_ROWS",
    "UPSERT_MEMORY",
    "UPSERT_MEMORY_SAME_KEYS",
    "UPSERT_RECORD",
    "UPSERT_RECORD_IF_ABSENT",
    "insert_unsequenced",
    "migrate",
]

MIGRATIONS: list[str] = [
    # 1: memories, their full-text index, the record space, generations
    """
    CREATE TABLE memories (
        project_id TEXT NOT NULL,
        id TEXT NOT NULL,
        agent TEXT NOT NULL,
        type TEXT NOT NULL,
        category TEXT,
        user_id TEXT,
        workflow_id TEXT,
        text TEXT NOT NULL,
        confidence REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        data TEXT NOT NULL,
        embedding BLOB,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX memories_scope ON memories (project_id, agent, type, created_at);
    CREATE INDEX memories_user ON memories (project_id, user_id);
    CREATE INDEX memories_workflow ON memories (project_id, workflow_id);
    CREATE VIRTUAL TABLE memories_fts USING fts5 (
        text, content='memories', content_rowid='rowid', tokenize='porter unicode61'
    );
    CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END;
    CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TABLE records (
        project_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        value BLOB,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL,
        PRIMARY KEY (project_id, namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX records_seq ON records (project_id, namespace, seq);
    CREATE TABLE record_seq (
        project_id TEXT NOT NULL, namespace TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (project_id, namespace)
    ) WITHOUT ROWID;
    CREATE TABLE generations (scope TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    """,
    # 2: an upsert lists `text` in its SET clause, so the full-text index was rewritten on every update
    # (a heuristic's counts change at each outcome); re-index only when the text really changed
    """
    DROP TRIGGER memories_au;
    CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories WHEN old.text IS NOT new.text BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
    END;
    """,
    # 3: records in a rowid table (a WITHOUT ROWID table stores a large value inside its b-tree pages:
    # checkpoints of tens of KB made every put slow), and `record_seq` becomes the high-water mark of
    # deleted records only: a put takes MAX(seq) of its namespace + 1 in its own INSERT
    """
    CREATE TABLE records_v3 (
        project_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        value BLOB,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL,
        PRIMARY KEY (project_id, namespace, key)
    );
    INSERT INTO records_v3 SELECT project_id, namespace, key, seq, value, metadata, created_at, updated_at,
        expires_at FROM records;
    DROP TABLE records;
    ALTER TABLE records_v3 RENAME TO records;
    CREATE INDEX records_seq ON records (project_id, namespace, seq);
    """,
    # 4: the user and workflow indexes hold only the rows that have one: most memories have neither, and
    # each write of one touched two index pages for nothing (filters `user_id = ?` still use them)
    """
    DROP INDEX memories_user;
    CREATE INDEX memories_user ON memories (project_id, user_id) WHERE user_id IS NOT NULL;
    DROP INDEX memories_workflow;
    CREATE INDEX memories_workflow ON memories (project_id, workflow_id) WHERE workflow_id IS NOT NULL;
    """,
    # 5: a new memory's full-text entry is written by the store, one statement for the new rows of each
    # upsert (`INDEX_NEW_MEMORIES`), not by a trigger per row: FTS5 costs ~25 us a row inside a trigger and
    # ~3 us outside one (updates and deletes keep their triggers: a changed text is rare)
    """
    DROP TRIGGER memories_ai;
    """,
    # 6: each scope's number of memories, kept by triggers (exact under every writer, other processes and
    # older code included), so that a count by project, agents and types reads a few rows, not the table
    """
    CREATE TABLE memory_counts (
        project_id TEXT NOT NULL, agent TEXT NOT NULL, type TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (project_id, agent, type)
    ) WITHOUT ROWID;
    INSERT INTO memory_counts SELECT project_id, agent, type, COUNT(*) FROM memories GROUP BY project_id, agent, type;
    CREATE TRIGGER memory_counts_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memory_counts VALUES (new.project_id, new.agent, new.type, 1)
            ON CONFLICT (project_id, agent, type) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER memory_counts_ad AFTER DELETE ON memories BEGIN
        UPDATE memory_counts SET n = n - 1
            WHERE project_id = old.project_id AND agent = old.agent AND type = old.type;
    END;
    CREATE TRIGGER memory_counts_au AFTER UPDATE OF project_id, agent, type ON memories
        WHEN old.project_id IS NOT new.project_id OR old.agent IS NOT new.agent OR old.type IS NOT new.type BEGIN
        UPDATE memory_counts SET n = n - 1
            WHERE project_id = old.project_id AND agent = old.agent AND type = old.type;
        INSERT INTO memory_counts VALUES (new.project_id, new.agent, new.type, 1)
            ON CONFLICT (project_id, agent, type) DO UPDATE SET n = n + 1;
    END;
    """,
    # 7: `records_seq` holds only sequenced records (seq > 0): an unsequenced put (a LangGraph checkpoint
    # or a task's writes, seq 0) wrote an entry there no reader used, one more b-tree page per commit
    # (a task's two writes: 5.3 -> 3.3 WAL frames, half the CPU of the call). Readers that order by seq
    # say `seq > 0` to use it (`_sqlite_linked.seq_page`).
    """
    DROP INDEX records_seq;
    CREATE INDEX records_seq ON records (project_id, namespace, seq) WHERE seq > 0;
    """,
]


_INSERT_MEMORY = """INSERT INTO memories (project_id, id, agent, type, category, user_id, workflow_id, text,
    confidence, created_at, updated_at, data, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT (project_id, id) DO UPDATE SET text=excluded.text, confidence=excluded.confidence,
    updated_at=excluded.updated_at, data=excluded.data, embedding=excluded.embedding"""
# A memory's upsert when its indexed columns are unchanged: SQLite rewrites an index entry whenever the
# SET list names one of its columns, equal or not. Rows whose indexed columns differ are left alone
# (not counted in the statement's changes); `UPSERT_MEMORY` then sets every column.
UPSERT_MEMORY_SAME_KEYS = f"""{_INSERT_MEMORY} WHERE memories.agent IS excluded.agent
    AND memories.type IS excluded.type AND memories.category IS excluded.category
    AND memories.user_id IS excluded.user_id AND memories.workflow_id IS excluded.workflow_id
    AND memories.created_at IS excluded.created_at"""
UPSERT_MEMORY = f"""{_INSERT_MEMORY}, agent=excluded.agent, type=excluded.type, category=excluded.category,
    user_id=excluded.user_id, workflow_id=excluded.workflow_id, created_at=excluded.created_at"""
# The full-text entries of the rows an upsert inserted: those above the largest rowid before it (SQLite gives
# a new row the largest rowid + 1 until rowids near 2**63, where `put_memories` names the rows instead).
INDEX_NEW_MEMORIES = "INSERT INTO memories_fts (rowid, text) SELECT rowid, text FROM memories WHERE rowid > ?"

# `PutRecords`' statement: seq = 1 + the namespace's highest, live or deleted (see `delete_records`);
# with if_absent, a live record of the key is kept (an expired one is replaced). ?9 is the time of the
# put (it is in the SELECT's WHERE, always true, which SQLite's upsert syntax needs there).
UPSERT_RECORD = """INSERT INTO records (project_id, namespace, key, seq, value, metadata, created_at, updated_at,
        expires_at)
    SELECT ?1, ?2, ?3, 1 + MAX(
        COALESCE((SELECT MAX(seq) FROM records WHERE project_id = ?1 AND namespace = ?2 AND seq > 0), 0),
        COALESCE((SELECT seq FROM record_seq WHERE project_id = ?1 AND namespace = ?2), 0)),
        ?4, ?5, ?6, ?7, ?8 WHERE ?9 IS NOT NULL
    ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq=excluded.seq, value=excluded.value,
        metadata=excluded.metadata, updated_at=excluded.updated_at, expires_at=excluded.expires_at"""
UPSERT_RECORD_IF_ABSENT = UPSERT_RECORD + " WHERE records.expires_at <= ?9"
# `PutRecords(sequenced=False)`: rows with seq 0, without the two lookups of the namespace's seq, all of
# them in one statement (`insert_unsequenced`): ?1 is the time of the put, then 8 columns a row.
_UNSEQUENCED_ROW = "(?{}, ?{}, ?{}, 0, ?{}, ?{}, ?{}, ?{}, ?{})"
_UNSEQUENCED = """INSERT INTO records (project_id, namespace, key, seq, value, metadata, created_at, updated_at,
        expires_at) VALUES {rows}
    ON CONFLICT (project_id, namespace, key) DO UPDATE SET seq=0, value=excluded.value,
        metadata=excluded.metadata, updated_at=excluded.updated_at, expires_at=excluded.expires_at"""
UNSEQUENCED_ROWS = 500  # rows at most in one statement (8 parameters each: under SQLite's limit of 32766)


@functools.lru_cache(maxsize=64)
def insert_unsequenced(rows: int, if_absent: bool) -> str:
    """The statement that writes `rows` unsequenced records at once; `if_absent`: a live record of a key
    is kept (an expired one replaced). Later rows of one key replace earlier ones, as in order."""
    values = ", ".join(_UNSEQUENCED_ROW.format(*range(2 + 8 * i, 10 + 8 * i)) for i in range(rows))
    sql = _UNSEQUENCED.format(rows=values)
    return sql + " WHERE records.expires_at <= ?1" if if_absent else sql


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create or upgrade the schema in one `BEGIN IMMEDIATE` transaction, so several processes can
    start at once; refuse a partial schema or one written by a newer ALMA."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS alma_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        (done,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM alma_migrations").fetchone()
        if done == 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'memories'").fetchone():
            raise StorageError(f"{path}: a partial ALMA schema without migration records; refusing")
        if done > len(MIGRATIONS):
            raise StorageError(f"{path} was written by a newer ALMA (schema {done} > {len(MIGRATIONS)}); upgrade")
        for version, sql in enumerate(MIGRATIONS[done:], start=done + 1):
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO alma_migrations VALUES (?, ?)", (version, time.time()))
        _index_unindexed(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _index_unindexed(conn: sqlite3.Connection) -> None:
    """Give full-text entries to memories without one. Since migration 5 the store writes them itself,
    so an older ALMA process that had the file open then inserts memories lexical search cannot find.
    Checked on every open at the cost of two small reads: the memory count (`memory_counts`) against
    the index's document count (FTS5's averages record); a scan only when they differ."""
    (memories,) = conn.execute("SELECT COALESCE(SUM(n), 0) FROM memory_counts").fetchone()
    row = conn.execute("SELECT block FROM memories_fts_data WHERE id = 1").fetchone()
    if memories == [*(varints(row[0]) if row else []), 0][0]:
        return
    conn.execute(
        """INSERT INTO memories_fts (rowid, text) SELECT rowid, text FROM memories
            WHERE rowid NOT IN (SELECT id FROM memories_fts_docsize)"""
    )


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN ... END)."""
    statements, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
