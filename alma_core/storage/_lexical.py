"""Which query terms a lexical search ranks: the rarest, under a postings budget (`choose_terms`, the
one definition every backend uses), and SQLite's FTS5 MATCH expression built from them.

BM25 costs ~2 us per matching posting (plus ~1 us for the join that filters by project and agent), so
the search bounds the rows it ranks. In a store of more than LEXICAL_SMALL_STORE documents, terms
found in more than half of them (FTS5 clamps their idf to ~0: they cannot change the order, only add
rows) or in more than LEXICAL_TERM_CAP (weak evidence, slow to rank) are dropped; then the rarest terms
are kept while their document counts stay under LEXICAL_POSTINGS_BUDGET.
"""

from __future__ import annotations

import re
import sqlite3

__all__ = [
    "LEXICAL_POSTINGS_BUDGET",
    "LEXICAL_SMALL_STORE",
    "LEXICAL_TERM_CAP",
    "DocCounts",
    "choose_terms",
    "selective_match",
    "selective_words",
    "term_cap",
    "tokens",
]

LEXICAL_POSTINGS_BUDGET = 2_000
LEXICAL_SMALL_STORE = 500
LEXICAL_TERM_CAP = 8_000
_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """The distinct lower-cased words of `text` (at most 64)."""
    return list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))[:64]


class DocCounts:
    """A store's cache of FTS document counts (and the FTS index's totals, see `_bm25`), kept while
    the file is unchanged: its key is the largest rowid, SQLite's `data_version` (moves when another
    connection commits) and `writes` (this connection's committed write transactions, counted by the
    store)."""

    def __init__(self) -> None:
        self.writes = 0
        self.key: tuple[int, int, int] = (-1, -1, -1)
        self.counts: dict[tuple[str, int], int] = {}
        self.totals: tuple[int, int] | None = None  # the FTS index's (documents, tokens)

    def checked(self, conn: sqlite3.Connection, version: int | None = None) -> int:
        """The key brought up to the file as the current transaction sees it (`version`: its data_version,
        if read already); returns its largest rowid, read only when the file changed since the key was made
        (a commit moves `data_version` or `writes`)."""
        if version is None:
            (version,) = conn.execute("PRAGMA data_version").fetchone()
        if self.key[1:] == (version, self.writes):
            return self.key[0]
        (total,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM memories").fetchone()
        self._update((total, int(version), self.writes))
        return int(total)

    def current(self, conn: sqlite3.Connection, total: int) -> dict[tuple[str, int], int]:
        """The counts valid for the file as the current transaction sees it."""
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        self._update((total, int(version), self.writes))
        return self.counts

    def _update(self, key: tuple[int, int, int]) -> None:
        """Drop what was counted unless `key` is the one it was counted at."""
        if key != self.key:
            self.key, self.counts = key, {}
            self.totals = None
        if len(self.counts) > 50_000:
            self.counts.clear()


def term_cap(total: float) -> float:
    """The most documents a kept term may hold in a store of `total` documents."""
    return min(total // 2, LEXICAL_TERM_CAP) if total > LEXICAL_SMALL_STORE else total


def choose_terms(df: dict[str, float], total: float) -> list[str]:
    """The terms a lexical search ranks, rarest first: the rarest term (unless a big store holds it in
    more than `term_cap` documents), then more while their document counts `df` stay under
    LEXICAL_POSTINGS_BUDGET. Counts may be clipped at any value above the budget."""
    cap = term_cap(total)
    kept: list[str] = []
    postings = 0.0
    for word in sorted(df, key=lambda w: (df[w], w)):
        n = df[word]
        if (kept and postings + n > LEXICAL_POSTINGS_BUDGET) or (total > LEXICAL_SMALL_STORE and n > cap):
            break
        kept.append(word)
        postings += n
    return kept


def selective_match(conn: sqlite3.Connection, words: list[str], cache: DocCounts | None = None) -> str:
    """The FTS query over the terms of `words` that `choose_terms` keeps. `cache`: only in read
    transactions (a write transaction's own changes do not move its key)."""
    return " OR ".join(f'"{w}"' for w in selective_words(conn, words, cache))


def selective_words(conn: sqlite3.Connection, words: list[str], cache: DocCounts | None = None) -> list[str]:
    """The words of `words` that `choose_terms` keeps, rarest first (see `selective_match`)."""
    if not words:
        return []
    (total,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM memories").fetchone()
    known = {} if cache is None else cache.current(conn, total)

    def _count(word: str, cap: int) -> int:
        n = known.get((word, cap))
        if n is None:
            n = known[word, cap] = _doc_count(conn, word, cap)
        return n

    cap = int(term_cap(total))
    # Document counts through the FTS tokenizer (porter), counted only as far as they matter: past the
    # budget a term is never a second term, so only when every term is past it do counts go on to the
    # cap (the rarest one is then kept alone).
    df = {word: _count(word, min(cap, LEXICAL_POSTINGS_BUDGET)) for word in words}
    if cap > LEXICAL_POSTINGS_BUDGET and min(df.values()) > LEXICAL_POSTINGS_BUDGET:
        df = {word: _count(word, cap) for word in words}
    return choose_terms(dict(df), total)


def _doc_count(conn: sqlite3.Connection, word: str, cap: int) -> int:
    """How many documents hold `word`, counted up to cap + 1."""
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)", (f'"{word}"', cap + 1)
    ).fetchone()
    return int(n)
