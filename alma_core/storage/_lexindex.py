"""The FTS index of the SQLite store's memories, held in memory for BM25 (`_bm25`).

`LexicalIndex` holds every term's postings (document rowids and term frequencies) and, by rowid,
each document's length in tokens and its memory's scope columns. It is built from the FTS index
itself (an `fts5vocab` table: the same terms, frequencies and lengths FTS5 scores with) once a
second lexical query meets an unchanged file, so a process that searches once (a CLI call) never
pays for it. It stays valid while nothing else commits (SQLite's `data_version`) and follows this
store's own commits: a write transaction records the memory rows it replaces, writes and deletes,
and after its commit `apply` tokenizes their texts with FTS5's own tokenizer (a private in-memory
table) and updates the postings. A commit by another connection drops it; it is built again.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._lexical import LEXICAL_TERM_CAP

__all__ = ["COLUMNS", "NUMBERS", "Change", "Gather", "LexicalIndex", "TermPostings", "fts_tokens", "varints", "vocab"]

COLUMNS = ("id", "project_id", "agent", "type", "user_id", "workflow_id", "category")  # object arrays
NUMBERS = ("created_at", "updated_at", "confidence")  # float64 arrays (NaN: NULL)
_TOKENIZE = "porter unicode61"  # the `memories_fts` tokenizer (`_sqlite_schema`)
_VOCAB = "alma_fts_vocab"  # temp fts5vocab tables over `memories_fts`, per connection
BUILD_AFTER = 2  # lexical queries at one unchanged file before the index is built

# (names, unique rowids, index of each one's first posting) -> the documents' columns
Gather = Callable[[list[str], np.ndarray, np.ndarray], dict[str, np.ndarray]]
Change = tuple[str, int, str | None, tuple[Any, ...] | None]  # ("del" | "put", rowid, text, columns)


@dataclass(frozen=True, slots=True)
class TermPostings:
    """One term's postings: what scoring reads, and (read from SQL per term) the documents' columns."""

    docs: int  # documents holding the term (FTS5's nHit)
    rowid: np.ndarray  # int64
    tf: np.ndarray  # float64: occurrences in the document
    length: np.ndarray  # float64: the document's tokens
    columns: dict[str, np.ndarray]


def vocab(conn: sqlite3.Connection, kind: str = "instance") -> str:
    """This connection's temp fts5vocab table of `kind` over `memories_fts` ("instance": one row per
    token; "row": each term's document count), created once (temp tables are private)."""
    name = f"temp.{_VOCAB}_{kind}"
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING fts5vocab (main, memories_fts, {kind})")
    return name


def varints(blob: bytes) -> list[int]:
    """SQLite's varints (big-endian groups of 7 bits, a 9th byte of 8), as FTS5 stores sizes."""
    out: list[int] = []
    at = 0
    while at < len(blob):
        value = 0
        for n in range(9):
            byte = blob[at]
            at += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        out.append(value)
    return out


# ---- FTS5's tokenizer -------------------------------------------------------------------------------

_tokenizer_lock = threading.RLock()
_tokenizer: sqlite3.Connection | None = None


def _tokenize(texts: Sequence[str], sql: str) -> list[Any]:
    """Rows of `sql` over the private table holding `texts` (rowids 1, 2, ...)."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute(f"CREATE VIRTUAL TABLE t USING fts5 (x, tokenize='{_TOKENIZE}')")
            conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, instance)")
            _tokenizer = conn
        _tokenizer.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts, 1))
        try:
            return _tokenizer.execute(sql).fetchall()
        finally:
            _tokenizer.execute("DELETE FROM t")


_words: dict[str, tuple[str, ...]] = {}  # word -> its terms (bounded: cleared when full)


def fts_tokens(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The index terms FTS5 makes of each of `words` (porter stemming, unicode61 folding), in order.
    Words not seen before are tokenized together, in one statement."""
    with _tokenizer_lock:
        new = [w for w in dict.fromkeys(words) if w not in _words]
        if new:
            found: dict[int, list[str]] = {}
            for doc, term in _tokenize(new, "SELECT doc, term FROM v ORDER BY doc, offset"):
                found.setdefault(doc, []).append(term)
            if len(_words) > 65_536:
                _words.clear()
            _words.update((w, tuple(found.get(i, ()))) for i, w in enumerate(new, 1))
        return [_words[w] for w in words]


@functools.lru_cache(maxsize=4096)  # a heuristic's text is written again each time it learns
def _document(text: str) -> tuple[tuple[tuple[str, int], ...], int]:
    """A text's terms with their frequencies, and its length in tokens, as FTS5 indexes it."""
    counts = _tokenize([text], "SELECT term, COUNT(*) FROM v GROUP BY term")
    return tuple((term, n) for term, n in counts), sum(n for _, n in counts)


# ---- the index --------------------------------------------------------------------------------------


class LexicalIndex:
    """The FTS index's postings and each document's length and columns, by rowid (see the module)."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None  # (data_version, own writes) it reflects; None: not built
        self.terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (rowids, tf)
        # terms in more than LEXICAL_TERM_CAP documents: never ranked (`choose_terms`), so only counted
        self.counts: dict[str, int] = {}
        self.length = np.zeros(0)
        self.alive = np.zeros(0, dtype=bool)  # rowids with a memory row
        self.columns: dict[str, np.ndarray] = {}
        self._waiting: tuple[tuple[int, int] | None, int] = (None, 0)  # a key and the queries seen at it
        self.stale = False  # (while applying a commit: a counted term became rankable)

    @property
    def built(self) -> bool:
        return self.key is not None

    def current(self, conn: sqlite3.Connection, key: tuple[int, int]) -> bool:
        """Whether the index reflects the file at `key`; built here at the BUILD_AFTER-th query at one key."""
        if self.key == key:
            return True
        if self.key is not None:
            self.clear()  # another connection committed: stale
        seen = self._waiting[1] + 1 if self._waiting[0] == key else 1
        self._waiting = (key, seen)
        if seen < BUILD_AFTER:
            return False
        self.build(conn, key)
        return True

    def clear(self) -> None:
        self.key, self.terms, self.counts, self.columns = None, {}, {}, {}
        self.length, self.alive = np.zeros(0), np.zeros(0, dtype=bool)

    def build(self, conn: sqlite3.Connection, key: tuple[int, int]) -> None:
        """Read every posting, length and memory row (in the caller's read transaction), in chunks."""
        table = vocab(conn)
        terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        counts: dict[str, int] = {}
        top = 0
        for term, n in conn.execute(f"SELECT term, doc FROM {vocab(conn, 'row')}").fetchall():
            if n > LEXICAL_TERM_CAP:
                counts[term] = n
                continue
            found = np.array(
                conn.execute(f"SELECT doc, COUNT(*) FROM {table} WHERE term = ? GROUP BY doc", (term,)).fetchall(),
                dtype=np.int64,
            ).reshape(-1, 2)
            terms[term] = (found[:, 0].copy(), found[:, 1].astype(np.float64))
            top = max(top, int(found[:, 0].max(initial=0)))
        self.clear()
        (last,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM memories").fetchone()
        self._grow(max(top, last) + 1)
        names = ", ".join(f"m.{c}" for c in (*COLUMNS, *NUMBERS))
        cursor = conn.execute(
            f"SELECT m.rowid, d.sz, {names} FROM memories AS m JOIN memories_fts_docsize AS d ON d.id = m.rowid"
        )
        seen: dict[Any, Any] = {}  # few distinct scope values: one string object each
        while docs := cursor.fetchmany(4096):
            at = np.array([row[0] for row in docs], dtype=np.int64)
            self.length[at] = [varints(row[1])[0] for row in docs]
            self.alive[at] = True
            for i, name in enumerate((*COLUMNS, *NUMBERS)):
                values = [row[2 + i] for row in docs]
                if name in NUMBERS:
                    values = [np.nan if v is None else v for v in values]
                elif name != "id":
                    values = [seen.setdefault(v, v) for v in values]
                self.columns[name][at] = values
        self.terms, self.counts, self.key = terms, counts, key

    def _grow(self, size: int) -> None:
        if size <= len(self.alive):
            return
        size = max(size, 2 * len(self.alive))
        old = len(self.alive)
        self.length = np.concatenate([self.length, np.zeros(size - old)])
        self.alive = np.concatenate([self.alive, np.zeros(size - old, dtype=bool)])
        for name in (*COLUMNS, *NUMBERS):
            fill = np.full(size - old, np.nan) if name in NUMBERS else np.full(size - old, None, dtype=object)
            kept = self.columns.get(name)
            self.columns[name] = fill if kept is None else np.concatenate([kept, fill])

    # -- reads --------------------------------------------------------------------------------------

    def docs(self, term: str) -> int:
        """How many documents hold `term`."""
        found = self.terms.get(term)
        return self.counts.get(term, 0) if found is None else len(found[0])

    def postings(self, term: str) -> TermPostings:
        rowids, tf = self.terms.get(term, (np.zeros(0, dtype=np.int64), np.zeros(0)))
        return TermPostings(len(rowids), rowids, tf, self.length[rowids], {})

    def gather(self, names: list[str], unique: np.ndarray, first: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of the documents `unique` (rowids), and whether each has a memory row."""
        out = {name: self.columns[name][unique] for name in names}
        out["alive"] = self.alive[unique]
        return out

    # -- this store's own commits -------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], before: tuple[int, int], after: tuple[int, int]) -> None:
        """Follow one committed transaction of this store (`changes` in order: each replaced or deleted
        row's rowid and old text, each written row's rowid, text and columns), if the index reflected the
        file just before it; else drop it."""
        if self.key != before:
            self.clear()
            return
        self.stale = False
        removed: dict[int, str | None] = {}
        added: dict[int, tuple[str | None, tuple[Any, ...] | None]] = {}
        for kind, rowid, text, columns in changes:
            if kind == "del":
                if rowid not in removed and rowid not in added:
                    removed[rowid] = text  # the text the index holds for it
                added.pop(rowid, None)
            else:
                added[rowid] = (text, columns)
        same = {r for r, (text, _) in added.items() if r in removed and removed[r] == text}
        self._unindex({r: t for r, t in removed.items() if r not in same})
        self._index({r: v for r, v in added.items() if r not in same})
        for rowid, (_, columns) in added.items():
            self._set_columns(rowid, columns)
        for rowid in removed.keys() - added.keys():
            self.alive[rowid] = False
        self.key = after
        if self.stale:
            self.clear()

    def _unindex(self, removed: dict[int, str | None]) -> None:
        by_term: dict[str, list[int]] = {}
        for rowid, text in removed.items():
            for term, _ in _document(text or "")[0]:
                by_term.setdefault(term, []).append(rowid)
        for term, rowids in by_term.items():
            if term in self.counts:
                self.counts[term] -= len(rowids)
                if self.counts[term] <= LEXICAL_TERM_CAP:  # rankable again: its postings are needed
                    self.stale = True
                continue
            found = self.terms.get(term)
            if found is None:
                continue
            keep = ~np.isin(found[0], rowids)
            if keep.all():
                continue
            if keep.any():
                self.terms[term] = (found[0][keep], found[1][keep])
            else:
                del self.terms[term]

    def _index(self, added: dict[int, tuple[str | None, tuple[Any, ...] | None]]) -> None:
        if added:
            self._grow(max(added) + 1)
        by_term: dict[str, list[tuple[int, int]]] = {}
        for rowid, (text, _) in added.items():
            counts, length = _document(text or "")
            self.length[rowid] = length
            for term, n in counts:
                by_term.setdefault(term, []).append((rowid, n))
        for term, postings in by_term.items():
            if term in self.counts:
                self.counts[term] += len(postings)
                continue
            new = np.array(postings, dtype=np.int64)
            found = self.terms.get(term)
            rowids, tf = new[:, 0], new[:, 1].astype(np.float64)
            if found is not None:
                rowids, tf = np.concatenate([found[0], rowids]), np.concatenate([found[1], tf])
            self.terms[term] = (rowids, tf)

    def _set_columns(self, rowid: int, columns: tuple[Any, ...] | None) -> None:
        self._grow(rowid + 1)
        self.alive[rowid] = True
        for name, value in zip((*COLUMNS, *NUMBERS), columns or (), strict=True):
            self.columns[name][rowid] = (np.nan if value is None else value) if name in NUMBERS else value
