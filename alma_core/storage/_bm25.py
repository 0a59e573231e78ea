"""The SQLite store's lexical search: FTS5's BM25, scored in memory from the store's `LexicalIndex`.

FTS5's `bm25()` reads each matching row's size and the join then reads its memory row (~4 us a
posting, ~1,000 postings a query at 10k memories), though both change only on a write. The store keeps
the FTS index in memory (`_lexindex`: postings, document lengths, each row's scope columns), so a
query's scores are a few numpy operations over the postings of its kept terms. The scores are FTS5's,
bit for bit: same k1 and b, same idf (clamped at 1e-6), same document count and average length (the
index's own totals record), the same floating point operations in the same order; ties break by id as
the SQL did; the kept terms are `choose_terms`' (exact document counts instead of clipped ones: the
same choice). Query words go through FTS5's own tokenizer, so stemming and case folding are the
index's. What the index cannot answer (not built yet, another connection committed since, a write
transaction whose own changes it does not see, a query word FTS5 splits into a phrase) runs the one
SQL statement it replaces.
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
from ._lexindex import NUMBERS, LexicalIndex, TermPostings, fts_tokens, varints

__all__ = ["lexical_hits"]

_K1, _B = 1.2, 0.75  # FTS5's bm25() constants


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
    version: int | None = None,
) -> dict[MemoryType, Hits]:
    """The `k` best BM25 matches of each type among the memories of `f`, best first (ties by id);
    `users`: the user each type keeps beyond `f` (None: any). `cache`: None in a write transaction;
    `index`: the store's in-memory index, used (and built, see `LexicalIndex.current`) when current;
    else FTS5 answers. `version`: the read transaction's data_version, if read already."""
    words = tokens(" ".join(terms))
    if not words:
        return {t: [] for t in types}
    phrases = fts_tokens(words)
    if cache is not None and index is not None and all(len(p) == 1 for p in phrases):
        total = cache.checked(conn, version)  # (the key: largest rowid, data_version, own writes)
        if index.current(conn, (cache.key[1], cache.writes)):
            term = dict(zip(words, (p[0] for p in phrases), strict=True))
            chosen = choose_terms({w: index.docs(term[w]) for w in words}, total)
            postings = [index.postings(term[w]) for w in chosen]
            return _ranked(postings, _totals(conn, cache), f, types, users, k, index)
    chosen = selective_words(conn, words, cache)  # FTS5 itself
    return _sql_hits(conn, f, chosen, types, users, k) if chosen else {t: [] for t in types}


def _ranked(
    postings: Sequence[TermPostings],
    totals: tuple[int, int],
    f: MemoryFilter,
    types: Sequence[MemoryType],
    users: dict[MemoryType, str | None],
    k: int,
    index: LexicalIndex,
) -> dict[MemoryType, Hits]:
    """FTS5's bm25() of every document holding a term (see its `fts5Bm25Function`), then per type the
    `k` best that pass the filter (`_mask`, over the index's columns)."""
    rows, tokens_total = totals
    if rows <= 0 or not postings:  # (an empty index, or only words in most documents: nothing ranked)
        return {t: [] for t in types}
    # Each document's terms are added phrase by phrase, in the query's order, into one array by rowid (a
    # term's rowids are distinct): the same sums, in the same order, as FTS5's.
    # (The array is the index's, zero between searches: a new one by search was ~0.2 ms of page faults at 100k.)
    if len(index.sums) != len(index.alive):
        index.sums = np.zeros(len(index.alive))
    total = index.sums
    try:
        for p in postings:
            total[p.rowid] += _weights(index, p, rows, tokens_total)
        if len(total) <= 12 * sum(len(p.rowid) for p in postings):  # every weight is > 0: the documents found
            unique = np.flatnonzero(total > 0.0)  # (a bool array: `flatnonzero(total)` is ~4x slower)
        else:  # (a large index and few postings: sort them instead of scanning every document)
            unique = np.sort(np.concatenate([p.rowid for p in postings]), kind="stable")  # (np.unique hashes)
            if len(unique) > 1:
                unique = unique[np.concatenate(([True], unique[1:] != unique[:-1]))]
        scores = total[unique]
    finally:
        for p in postings:
            total[p.rowid] = 0.0
    kept = _kinds(index, f)  # the type code of each document the filter keeps, -1 for the rest
    if kept is None:
        at = np.flatnonzero(_mask(index, unique, f))  # the documents the filter keeps; then split by type
        kinds = index.codes["type"][unique[at]]
    else:
        kinds = kept[unique]
        at = np.flatnonzero(kinds >= 0)
        kinds = kinds[at]
    # (usually one or two types: compare only with those; one type is seen without a set of every document's)
    present = set(kinds.tolist()) if len(kinds) and kinds.min() != kinds.max() else set(kinds[:1].tolist())
    wanted = {t: index.code("type", t.value) for t in types}
    if len(present) == 1:
        by_type = {t: at if wanted[t] in present else at[:0] for t in types}
    else:
        by_type = {t: at[kinds == wanted[t]] if wanted[t] in present else at[:0] for t in types}
    if any(user is not None for user in users.values()):
        owners = index.codes["user_id"][unique]
        by_type = {
            t: found if users.get(t) is None else found[owners[found] == index.code("user_id", users[t])]
            for t, found in by_type.items()
        }
    ids = index.columns["id"]
    return {t: _top(found, scores, unique, ids, k) if len(found) else [] for t, found in by_type.items()}


def _weights(index: LexicalIndex, p: TermPostings, rows: int, tokens_total: int) -> np.ndarray:
    """Each posting's BM25 term score (`fts5Bm25Function`'s idf times its tf part), kept per term while the
    term's postings and the index's totals are unchanged (`LexicalIndex.weights`)."""
    kept = index.weights.get(p.term)
    if kept is not None and kept[0] == (rows, tokens_total):
        return kept[1]
    avgdl = float(tokens_total) / float(rows)
    idf = math.log((rows - p.docs + 0.5) / (p.docs + 0.5))
    idf = idf if idf > 0.0 else 1e-6
    length = index.length[p.rowid]
    weights = idf * ((p.tf * (_K1 + 1.0)) / (p.tf + _K1 * (1 - _B + _B * length / avgdl)))
    index.weights[p.term] = ((rows, tokens_total), weights)
    return weights


def _kinds(index: LexicalIndex, f: MemoryFilter) -> np.ndarray | None:
    """For a filter without ids asked again while the index is unchanged: the type code of every document
    it keeps (`_mask` over all of them), -1 for the others, kept until the index changes
    (`LexicalIndex.epoch`). None the first time (the caller masks only the documents found)."""
    if f.ids is not None:
        return None
    key = (f.project_id, f.agents, f.categories, tuple(f.scalar_conditions()))
    epoch, kinds = index.masks.get(key, (-1, None))
    if epoch != index.epoch:
        if len(index.masks) >= 16:
            index.masks.clear()
        index.masks[key] = (index.epoch, None)
        return None
    if kinds is None:
        everything = np.arange(len(index.alive))
        kinds = np.where(_mask(index, everything, f), index.codes["type"], -1)
        index.masks[key] = (index.epoch, kinds)
    return kinds


def _mask(index: LexicalIndex, rowids: np.ndarray, f: MemoryFilter) -> np.ndarray:
    """The documents `rowids` that have a memory row and that `f` keeps: `memory_where`'s conditions on the
    index's columns (NULL matches nothing); the CODED ones compared as integer codes."""
    codes, columns = index.codes, index.columns
    mask = index.alive[rowids] & (codes["project_id"][rowids] == index.code("project_id", f.project_id))
    for name, values in (("agent", f.agents), ("id", f.ids), ("category", f.categories)):
        if values is None:
            continue
        if name == "id":
            wanted = set(values)
            mask &= np.fromiter((v in wanted for v in columns["id"][rowids]), dtype=bool, count=len(mask))
            continue
        column = codes[name][rowids]
        found = [code for value in values if (code := index.code(name, value)) >= 0]
        if not found:
            mask[:] = False
        elif len(found) <= 8:  # a comparison per value over the array (an agent and the project's own "*")
            kept = column == found[0]
            for code in found[1:]:
                kept |= column == code
            mask &= kept
        else:
            mask &= np.isin(column, found)
    for name, op, value in f.scalar_conditions():
        if name in NUMBERS:
            with np.errstate(invalid="ignore"):  # NaN (NULL) compares false, as in SQL
                mask &= {"<": np.less, ">=": np.greater_equal, "=": np.equal}[op](columns[name][rowids], value)
        else:
            mask &= codes[name][rowids] == index.code(name, value)
    return mask


def _top(at: np.ndarray, scores: np.ndarray, rowids: np.ndarray, ids: np.ndarray, k: int) -> Hits:
    """The `k` best-scored of the documents `at` (positions in `scores` and `rowids`), best first (score
    descending, then id: `ids` by rowid). Only the documents tied with the k-th best are compared by id."""
    if k <= 0 or len(at) == 0:
        return []
    tied: list[str] = []
    if len(at) > k:
        values = scores[at]
        threshold = np.partition(values, len(at) - k)[len(at) - k]
        tied = ids[rowids[at[values == threshold]]].tolist()
        at = at[values > threshold]  # fewer than k
        tied = sorted(tied)[: k - len(at)] if len(tied) > 1 else tied
    found = sorted(zip((-scores[at]).tolist(), ids[rowids[at]].tolist(), strict=True))
    out = [(memory_id, -negated) for negated, memory_id in found]
    if tied:
        score = float(threshold)
        out.extend((memory_id, score) for memory_id in tied)
    return out


# ---- what is cached ---------------------------------------------------------------------------------


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
