"""The SQLite store's lexical search: FTS5's BM25, scored in memory from cached postings.

FTS5's `bm25()` reads each matching row's size and the join then reads its memory row (~4 us a
posting, ~1,000 postings a query at 10k memories), though both change only on a write. Here each
query term's postings (document, term frequency, document length and the row's scope columns) are
read once from the FTS index (an `fts5vocab` table) and kept while the file is unchanged (the
`DocCounts` key: largest rowid, `data_version`, the store's own writes), so a query's scores are
a few numpy operations. The scores are FTS5's, bit for bit: same k1 and b, same idf (clamped at
1e-6), same document count and average length (the index's own totals record), the same floating
point operations in the same order; ties break by id as the SQL did. Query words go through FTS5's
own tokenizer (a private in-memory table), so stemming and case folding are exactly the index's.
What this cannot answer the same way (a write transaction, whose own changes the cache does not
see; a query word that is not one token, which FTS5 matches as a phrase) runs the SQL statement.
"""

from __future__ import annotations

import itertools
import math
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._models import MemoryType
from ._base import Hits, MemoryFilter
from ._filters import memory_where
from ._lexical import DocCounts, choose_terms, selective_words, tokens
from ._lexindex import COLUMNS, NUMBERS, Gather, LexicalIndex, TermPostings, fts_tokens, varints, vocab

__all__ = ["lexical_hits"]

_K1, _B = 1.2, 0.75  # FTS5's bm25() constants
_MAX_CACHED_POSTINGS = 500_000  # rows kept over all terms before the cache starts again


# ---- the search -------------------------------------------------------------------------------------


def lexical_hits(
    conn: sqlite3.Connection,
    cache: DocCounts | None,
    f: MemoryFilter,
    terms: Sequence[str],
    types: Sequence[MemoryType],
    users: dict[MemoryType, str | None],
    k: int,
    index: LexicalIndex | None = None,
) -> dict[MemoryType, Hits]:
    """The `k` best BM25 matches of each type among the memories of `f`, best first (ties by id);
    `users`: the user each type keeps beyond `f` (None: any). `cache`: None in a write transaction;
    `index`: the store's in-memory index, used (and built, see `LexicalIndex.current`) when current."""
    words = tokens(" ".join(terms))
    if not words:
        return {t: [] for t in types}
    phrases = fts_tokens(words)
    if cache is None or any(len(p) != 1 for p in phrases):  # FTS5 itself, as before
        chosen = selective_words(conn, words, cache)
        return _sql_hits(conn, f, chosen, types, users, k) if chosen else {t: [] for t in types}
    (total,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM memories").fetchone()
    cache.current(conn, total)  # (the key: largest rowid, data_version, own writes)
    if index is not None and index.current(conn, (cache.key[1], cache.writes)):
        term = dict(zip(words, (p[0] for p in phrases), strict=True))
        chosen = choose_terms({w: index.docs(term[w]) for w in words}, total)
        if not chosen:
            return {t: [] for t in types}
        found = [index.postings(term[w]) for w in chosen]
        return _ranked(found, _totals(conn, cache), f, types, users, k, index.gather)
    chosen = selective_words(conn, words, cache)
    if not chosen:
        return {t: [] for t in types}
    postings = [_postings(conn, cache, p[0]) for p in fts_tokens(chosen)]
    return _ranked(postings, _totals(conn, cache), f, types, users, k, _gather(postings))


def _ranked(
    postings: Sequence[TermPostings],
    totals: tuple[int, int],
    f: MemoryFilter,
    types: Sequence[MemoryType],
    users: dict[MemoryType, str | None],
    k: int,
    gather: Gather,
) -> dict[MemoryType, Hits]:
    """FTS5's bm25() of every document holding a term (see its `fts5Bm25Function`), then per type the
    `k` best that pass the filter (`gather`: the documents' columns)."""
    rows, tokens_total = totals
    if rows <= 0:  # (an empty index: nothing matches)
        return {t: [] for t in types}
    avgdl = float(tokens_total) / float(rows)
    rowids = np.concatenate([p.rowid for p in postings])
    unique, first, inverse = np.unique(rowids, return_index=True, return_inverse=True)
    scores = np.zeros(len(unique))
    start = 0
    for p in postings:  # phrase by phrase, in the query's order: the same sums as FTS5's
        idf = math.log((rows - p.docs + 0.5) / (p.docs + 0.5))
        idf = idf if idf > 0.0 else 1e-6
        scores[inverse[start : start + len(p.rowid)]] += idf * (
            (p.tf * (_K1 + 1.0)) / (p.tf + _K1 * (1 - _B + _B * p.length / avgdl))
        )
        start += len(p.rowid)
    column = gather(_needed(f, users), unique, first)
    keep = column.pop("alive", None)
    keep = _mask(column, f) if keep is None else keep & _mask(column, f)
    at = np.flatnonzero(keep)  # the documents the filter keeps; then split by type
    kinds = column["type"][at]
    by_type = {t: at[kinds == t.value] for t in types} if len(types) > 1 else {types[0]: at}
    if any(user is not None for user in users.values()):
        owners = column["user_id"]
        by_type = {
            t: found if users.get(t) is None else found[owners[found] == users[t]] for t, found in by_type.items()
        }
    best = {t: _best(found, scores, k) for t, found in by_type.items()}
    chosen = np.concatenate(list(best.values()))
    ids = dict(zip(chosen.tolist(), gather(["id"], unique[chosen], first[chosen])["id"].tolist(), strict=True))
    return {t: _ordered(found, scores, ids, k) for t, found in best.items()}


def _gather(postings: Sequence[TermPostings]) -> Gather:
    """The columns of the documents of `postings` (each posting carries its document's columns)."""

    def gather(names: list[str], unique: np.ndarray, first: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.concatenate([p.columns[name] for p in postings])[first] for name in names}

    return gather


def _needed(f: MemoryFilter, users: dict[MemoryType, str | None]) -> list[str]:
    """The columns a filter reads (besides the type and project, which every search reads)."""
    names = ["type", "project_id"]
    names += [
        name for name, values in (("agent", f.agents), ("id", f.ids), ("category", f.categories)) if values is not None
    ]
    names += [name for name, _, _ in f.scalar_conditions() if name not in names]
    if any(user is not None for user in users.values()) and "user_id" not in names:
        names.append("user_id")
    return names


def _mask(column: dict[str, np.ndarray], f: MemoryFilter) -> np.ndarray:
    """The documents `f` keeps: `memory_where`'s conditions on the cached columns (NULL matches nothing)."""
    mask = column["project_id"] == f.project_id
    for name, values in (("agent", f.agents), ("id", f.ids), ("category", f.categories)):
        if values is None:
            continue
        if len(values) == 1:
            mask &= column[name] == values[0]
        else:
            wanted = set(values)
            mask &= np.fromiter((v in wanted for v in column[name]), dtype=bool, count=len(mask))
    for name, op, value in f.scalar_conditions():
        if name in NUMBERS:
            with np.errstate(invalid="ignore"):  # NaN (NULL) compares false, as in SQL
                mask &= {"<": np.less, ">=": np.greater_equal, "=": np.equal}[op](column[name], value)
        else:
            mask &= column[name] == value
    return mask


def _best(at: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The `k` best-scored of the documents `at`, and any tied with the k-th (ties break by id, later)."""
    if k <= 0:
        return at[:0]
    if len(at) > k:
        threshold = np.partition(scores[at], len(at) - k)[len(at) - k]
        at = at[scores[at] >= threshold]
    return at


def _ordered(at: np.ndarray, scores: np.ndarray, ids: dict[int, str], k: int) -> Hits:
    """The documents `at` best first (score descending, then id), at most `k`."""
    found = sorted(zip((-scores[at]).tolist(), [ids[i] for i in at.tolist()], strict=True))[:k]
    return [(memory_id, -negated) for negated, memory_id in found]


# ---- what is cached ---------------------------------------------------------------------------------


def _postings(conn: sqlite3.Connection, cache: DocCounts, term: str) -> TermPostings:
    """The term's postings, read from the index once while the file is unchanged."""
    kept = cache.postings.get(term)
    if kept is not None:
        return kept
    rows = conn.execute(
        f"""SELECT p.doc, p.tf, d.sz, {", ".join("m." + c for c in (*COLUMNS, *NUMBERS))}
            FROM (SELECT doc, COUNT(*) AS tf FROM {vocab(conn)} WHERE term = ? GROUP BY doc) AS p
            JOIN memories_fts_docsize AS d ON d.id = p.doc LEFT JOIN memories AS m ON m.rowid = p.doc""",
        (term,),
    ).fetchall()
    docs = len(rows)
    rows = [r for r in rows if r[3] is not None]  # an index entry without its row is counted, never found
    found = list(zip(*rows, strict=True)) if rows else [()] * (3 + len(COLUMNS) + len(NUMBERS))
    columns = {name: np.array(found[3 + i], dtype=object) for i, name in enumerate(COLUMNS)}
    for i, name in enumerate(NUMBERS):
        columns[name] = np.array([np.nan if v is None else v for v in found[3 + len(COLUMNS) + i]], dtype=np.float64)
    kept = TermPostings(
        docs=docs,
        rowid=np.array(found[0], dtype=np.int64),
        tf=np.array(found[1], dtype=np.float64),
        length=np.array([varints(sz)[0] for sz in found[2]], dtype=np.float64),
        columns=columns,
    )
    cache.cached_rows += len(rows)
    if cache.cached_rows > _MAX_CACHED_POSTINGS:
        cache.postings.clear()
        cache.cached_rows = len(rows)
    cache.postings[term] = kept
    return kept


def _totals(conn: sqlite3.Connection, cache: DocCounts) -> tuple[int, int]:
    """The index's document count and token count (its averages record, as bm25() reads it)."""
    if cache.totals is None:
        row = conn.execute("SELECT block FROM memories_fts_data WHERE id = 1").fetchone()
        values = [*(varints(row[0]) if row else []), 0, 0]  # (absent or short while the index is empty)
        cache.totals = (values[0], values[1])
    return cache.totals


# ---- the statement it replaces ----------------------------------------------------------------------


def _sql_hits(
    conn: sqlite3.Connection,
    f: MemoryFilter,
    words: Iterable[str],
    types: Sequence[MemoryType],
    users: dict[MemoryType, str | None],
    k: int,
) -> dict[MemoryType, Hits]:
    """The same search by FTS5 itself: one statement for all types, split by type here."""
    where, args = memory_where(f, "m")
    rows = conn.execute(
        f"""SELECT m.id, m.type, m.user_id, -bm25(memories_fts) AS s FROM memories_fts
            JOIN memories m ON m.rowid = memories_fts.rowid
            WHERE memories_fts MATCH ? AND {where} ORDER BY m.type, s DESC, m.id""",
        [" OR ".join(f'"{w}"' for w in words), *args],
    ).fetchall()
    groups: dict[str, Any] = {t: list(g) for t, g in itertools.groupby(rows, key=operator.itemgetter(1))}
    out: dict[MemoryType, Hits] = {}
    for t in types:
        found: Iterable[tuple[Any, ...]] = groups.get(t.value, [])
        user = users.get(t)
        if user is not None:
            found = (r for r in found if r[2] == user)
        out[t] = [(r[0], r[3]) for r in itertools.islice(found, k)]
    return out
