"""Which query terms SQLite's lexical search ranks: an FTS5 MATCH expression under a postings budget.

BM25 costs ~2 us per matching posting (plus ~1 us for the join that filters by project and agent), so
the search bounds the rows it ranks. In a store of more than LEXICAL_SMALL_STORE documents, terms
found in more than half of them (FTS5 clamps their idf to ~0: they cannot change the order, only add
rows) or in more than LEXICAL_TERM_CAP (weak evidence, slow to rank) are dropped; then the rarest terms
are kept while their document counts stay under LEXICAL_POSTINGS_BUDGET.
"""

from __future__ import annotations

import re
import sqlite3

__all__ = ["LEXICAL_POSTINGS_BUDGET", "LEXICAL_SMALL_STORE", "LEXICAL_TERM_CAP", "selective_match", "tokens"]

LEXICAL_POSTINGS_BUDGET = 2_000
LEXICAL_SMALL_STORE = 500
LEXICAL_TERM_CAP = 8_000
_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """The distinct lower-cased words of `text` (at most 64)."""
    return list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))[:64]


def selective_match(conn: sqlite3.Connection, words: list[str]) -> str:
    """The FTS query over the informative terms of `words` (see the module docstring)."""
    if not words:
        return ""
    (total,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM memories").fetchone()
    big = total > LEXICAL_SMALL_STORE
    cap = min(total // 2, LEXICAL_TERM_CAP) if big else total
    # Document counts through the FTS tokenizer (porter), counted only as far as they matter: past the
    # budget a term is never a second term, so only when every term is past it do counts go on to the
    # cap (the rarest one is then kept alone).
    df = {word: _doc_count(conn, word, min(cap, LEXICAL_POSTINGS_BUDGET)) for word in words}
    if cap > LEXICAL_POSTINGS_BUDGET and min(df.values()) > LEXICAL_POSTINGS_BUDGET:
        df = {word: _doc_count(conn, word, cap) for word in words}
    kept: list[str] = []
    postings = 0
    for word in sorted(words, key=lambda w: df[w]):
        n = df[word]
        if (kept and postings + n > LEXICAL_POSTINGS_BUDGET) or (big and n > cap):
            break
        kept.append(word)
        postings += n
    return " OR ".join(f'"{w}"' for w in kept)


def _doc_count(conn: sqlite3.Connection, word: str, cap: int) -> int:
    """How many documents hold `word`, counted up to cap + 1."""
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)", (f'"{word}"', cap + 1)
    ).fetchone()
    return int(n)
