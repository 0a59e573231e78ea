"""The FTS index of the SQLite store's memories, held in memory for BM25 (`_bm25`).

`LexicalIndex` holds every rankable term's postings (document rowids and term frequencies; a term in
more than LEXICAL_TERM_CAP documents is never ranked, so only counted) and, by rowid, each document's
length in tokens and its memory's scope columns. It is built from the FTS index itself (`fts5vocab`
tables: the terms, frequencies and lengths FTS5 scores with) at the second lexical query while no other
connection commits, so a process that searches once (a CLI call) never pays for it (10k memories:
~0.3 s; 100k: ~1.5 s of CPU). It follows this store's own commits: a write transaction records the
memory rows it replaces, writes and deletes, and after its commit `apply` tokenizes their texts with
FTS5's own tokenizer (a private in-memory table) and updates the postings. It knows each memory's
rowid and text hash by id (`known`), so a write that keeps a row's text records only its columns,
without reading the row (`_sqlite_writes`). A commit by another connection (SQLite's `data_version`
moves) drops it; it is built again.
"""

from __future__ import annotations

import collections
import operator
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._lexical import LEXICAL_TERM_CAP, tokens

__all__ = ["CODED", "COLUMNS", "NUMBERS", "Change", "LexicalIndex", "TermPostings", "fts_tokens", "varints", "vocab"]

COLUMNS = ("id", "project_id", "agent", "type", "user_id", "workflow_id", "category")  # object arrays
CODED = COLUMNS[1:]  # also held as int32 codes (`LexicalIndex.codes`): a filter compares integers
NUMBERS = ("created_at", "updated_at", "confidence")  # float64 arrays (NaN: NULL)
_TOKENIZE = "porter unicode61"  # the `memories_fts` tokenizer (`_sqlite_schema`)
_VOCAB = "alma_fts_vocab"  # temp fts5vocab tables over `memories_fts`, per connection
_MAX_UNAPPLIED = 20_000  # row changes kept for the next search before the index is dropped instead
WARM_WORDS = 20_000  # distinct words of stored texts whose terms a first build looks up (`warm_words`)
BUILD_AFTER = 2  # lexical queries at one unchanged file before the index is built

# ("put", rowid, text, columns): a row written; ("set", rowid, None, columns): a row rewritten, its text
# unchanged; ("del", rowid, old text, (id, project_id)): a row replaced or deleted. A written row's columns
# are COLUMNS then NUMBERS, then (optionally) its JSON `data` as stored: the index then makes its
# candidate row (`rows`) without reading it back
Change = tuple[str, int, str | None, tuple[Any, ...] | None]
Row = tuple[Any, ...]  # a memory row in `_parsed.ROW_COLUMNS` order


@dataclass(frozen=True, slots=True)
class TermPostings:
    """One term's postings: what BM25 reads."""

    term: str
    docs: int  # documents holding the term (FTS5's nHit)
    rowid: np.ndarray  # int64
    tf: np.ndarray  # float64: occurrences in the document


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
    """Rows of `sql` over a private FTS5 table holding `texts` (rowids 1, 2, ...), rolled back after."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute(f"CREATE VIRTUAL TABLE t USING fts5 (x, content='', columnsize=0, tokenize='{_TOKENIZE}')")
            conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, instance)")
            _tokenizer = conn
        _tokenizer.execute("BEGIN")
        try:
            _tokenizer.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts, 1))
            return _tokenizer.execute(sql).fetchall()
        finally:
            _tokenizer.execute("ROLLBACK")


_words: dict[str, tuple[str, ...]] = {}  # word -> its terms (bounded: cleared when full)
WORDS_KEPT = 65_536  # words whose terms `fts_tokens` keeps; `documents` keeps 4,096 texts


def fts_tokens(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The index terms FTS5 makes of each of `words` (porter stemming, unicode61 folding), in order.
    Words not seen before are tokenized together, in one statement."""
    with _tokenizer_lock:
        new = [w for w in dict.fromkeys(words) if w not in _words]
        if new:
            if len(_words) + len(new) > WORDS_KEPT:  # full: start again with these words (all of them)
                _words.clear()
                new = list(dict.fromkeys(words))
            found: dict[int, list[str]] = {}
            for doc, term in _tokenize(new, "SELECT doc, term FROM v ORDER BY doc, offset"):
                found.setdefault(doc, []).append(term)
            _words.update((w, tuple(found.get(i, ()))) for i, w in enumerate(new, 1))
        return [_words[w] for w in words]


def warm_words(words: Sequence[str]) -> None:
    """Look up the FTS5 terms of `words` ahead (`fts_tokens`, a few thousand per statement): a query word
    not seen before costs ~0.15-0.2 ms (the private table's segment is flushed for `fts5vocab`), and
    queries mostly use the stored texts' words. A first build does it for the words of up to 4,096 stored
    texts (WARM_WORDS at most): ~0.03 s of CPU once per store and process."""
    with _tokenizer_lock:
        new = [w for w in words if w not in _words]
    for start in range(0, len(new), 4096):
        fts_tokens(new[start : start + 4096])


Document = tuple[tuple[tuple[str, int], ...], int]  # (term, frequency) pairs by term, length in tokens
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")  # unicode61's tokens of lower-cased ASCII text
_documents: dict[str, Document] = {}  # the texts tokenized last (a heuristic's is written again each time)


def documents(texts: Sequence[str]) -> dict[str, Document]:
    """Each text's terms with their frequencies, and its length in tokens, as FTS5 indexes it; the
    texts not seen lately are tokenized together, in one statement. An ASCII text is split into
    unicode61's tokens here (runs of letters and digits: every other ASCII character separates) and
    each token's term is FTS5's own (`fts_tokens`, looked up once per word): the same terms, counts and
    length as the statement gives, without a round trip through the private table for each new text
    (a learned outcome's text, merged at the next search)."""
    with _tokenizer_lock:
        new = [t for t in dict.fromkeys(texts) if t not in _documents]
        if len(_documents) + len(new) > 4096:  # full: start again with these texts (all of them)
            _documents.clear()
            new = list(dict.fromkeys(texts))
        ascii_words = {t: _ASCII_TOKEN.findall(t.lower()) for t in new if t.isascii()}
        if ascii_words:
            words = list(dict.fromkeys(w for found in ascii_words.values() for w in found))
            term = dict(zip(words, fts_tokens(words), strict=True))
            for text, found in ascii_words.items():
                counts = collections.Counter(t for w in found for t in term[w])
                _documents[text] = (tuple(sorted(counts.items())), sum(counts.values()))
        rest = [t for t in new if t not in ascii_words]
        if rest:
            found_terms: dict[int, list[tuple[str, int]]] = {}
            for doc, term_, n in _tokenize(rest, "SELECT doc, term, COUNT(*) FROM v GROUP BY doc, term"):
                found_terms.setdefault(doc, []).append((term_, n))
            for i, text in enumerate(rest, 1):
                counts_ = tuple(found_terms.get(i, ()))
                _documents[text] = (counts_, sum(n for _, n in counts_))
        return {t: _documents[t] for t in texts}


def _row(
    memory_id: str,
    mtype: str,
    agent: str,
    text: str,
    user_id: str | None,
    category: str | None,
    confidence: float | None,
    updated_at: float | None,
    data: str | None,
) -> Row | None:
    """A candidate row (`_parsed.ROW_COLUMNS` order) as the store reads it back (REAL columns as floats);
    None when a value it needs is missing (the row is then read from the store)."""
    if confidence is None or updated_at is None or data is None:
        return None
    return (memory_id, mtype, agent, text, user_id, category, float(confidence), float(updated_at), data)


_ROWID = operator.itemgetter(0)
_NEVER = 2**62  # the tick of a rowid the index never knew: later than any
_NO_POSTINGS = (np.zeros(0, dtype=np.int64), np.zeros(0))
_NOTHING: tuple[dict[int, int], set[int]] = ({}, set())


# ---- the index --------------------------------------------------------------------------------------


class LexicalIndex:
    """The FTS index's postings and each document's length and columns, by rowid (see the module)."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None  # (data_version, own writes) it reflects; None: not built
        self.terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (rowids, tf)
        # terms in more than LEXICAL_TERM_CAP documents: never ranked (`choose_terms`), so only counted
        self.counts: dict[str, int] = {}
        # commits since a term was last read: its new postings (rowid -> tf) and the rowids it lost
        self.pending: dict[str, tuple[dict[int, int], set[int]]] = {}
        self.length = np.zeros(0)
        self.alive = np.zeros(0, dtype=bool)  # rowids with a memory row
        self.columns: dict[str, np.ndarray] = {}
        # CODED columns as int32 codes (one per distinct value, None included; -1: no row) and each value's code
        self.codes: dict[str, np.ndarray] = {}
        self.code_of: dict[str, dict[Any, int]] = {name: {} for name in CODED}
        self._waiting: tuple[int | None, int] = (None, 0)  # a data_version and the queries seen at it
        self.stale = False  # a counted term became rankable: read it all again
        self.unapplied: list[Change] = []  # committed changes not merged yet
        self.warmed = False  # the stored texts' words were looked up (`warm_words`) at a build
        # every row's (project -> id -> rowid) and text hash, as of `key` (unapplied changes included)
        self.ids: dict[str, dict[str, int]] = {}
        self.hashes = np.zeros(0, dtype=np.int64)
        # each rowid's tick: when its row was last written or deleted as the index knows (a build gives
        # all one tick); `tick` only grows, never reset (a rebuild's ticks exceed every earlier one), so a
        # row made at tick T is current while its rowid's tick is <= T (`ParsedMemories.current_candidates`)
        self.tick = 0
        self.version: list[int] = []  # (a list: read one by one, ~100 a retrieve)
        # each rowid's memory row in `_parsed.ROW_COLUMNS` order (`rows` makes candidates from it); None:
        # not known here (no row, or a row written without its JSON: read from the store)
        self.made: list[Row | None] = []
        # what searches derive from the index and keep while it is unchanged (`_bm25`): each term's BM25
        # weights by posting, and scope masks; `epoch` moves whenever the rows' columns or sizes change
        self.weights: dict[str, tuple[tuple[int, int], np.ndarray]] = {}
        self.masks: dict[Any, tuple[int, np.ndarray | None]] = {}
        self.epoch = 0
        self.sums = np.zeros(0)  # a search's BM25 sums by rowid (`_bm25`), zero between searches

    @property
    def built(self) -> bool:
        return self.key is not None

    def current(self, conn: sqlite3.Connection, key: tuple[int, int]) -> bool:
        """Whether the index reflects the file at `key` (data_version, own writes); built here at the
        BUILD_AFTER-th lexical query while no other connection committed (own commits in between are
        fine: the index follows them once built)."""
        if self.key == key:
            if self.unapplied:
                self._merge()
            if not self.stale:
                return True
        if self.key is not None:
            self.clear()  # another connection committed (or a counted term became rankable): stale
        seen = self._waiting[1] + 1 if self._waiting[0] == key[0] else 1
        self._waiting = (key[0], seen)
        if seen < BUILD_AFTER:
            return False
        self.build(conn, key)
        return True

    def clear(self) -> None:
        self.key, self.terms, self.counts, self.columns, self.pending = None, {}, {}, {}, {}
        self.codes, self.code_of = {}, {name: {} for name in CODED}
        self.unapplied, self.stale, self.ids = [], False, {}
        self.length, self.alive, self.hashes = np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
        self.version, self.made = [], []
        self.weights, self.masks = {}, {}
        self.epoch += 1

    def known(self, project_id: str, memory_id: str) -> tuple[int, int] | None:
        """The memory's (rowid, text hash), None when it has no row (see `ids`)."""
        rowid = self.ids.get(project_id, {}).get(memory_id)
        return None if rowid is None else (rowid, int(self.hashes[rowid]))

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
        self.tick += 1
        self.version = [self.tick] * len(self.version)
        names = ", ".join(f"m.{c}" for c in (*COLUMNS, *NUMBERS))
        cursor = conn.execute(
            f"SELECT m.rowid, d.sz, m.text, {names}, m.data FROM memories AS m "
            "JOIN memories_fts_docsize AS d ON d.id = m.rowid"
        )
        seen: dict[Any, Any] = {}  # few distinct scope values: one string object each
        words: dict[str, None] = {}  # the stored texts' words, for `warm_words` (once per index)
        while docs := cursor.fetchmany(4096):
            if not self.warmed and not words:  # (the first 4,096 texts: a bounded cost, most of the vocabulary)
                for row in docs:
                    words.update(dict.fromkeys(tokens(row[2])))
            at = np.array([row[0] for row in docs], dtype=np.int64)
            self.length[at] = [varints(row[1])[0] for row in docs]
            self.alive[at] = True
            self.hashes[at] = [hash(row[2]) for row in docs]
            for rowid, memory_id, project_id in zip(at.tolist(), (row[3] for row in docs), (row[4] for row in docs),
                                                    strict=True):  # fmt: skip
                self.ids.setdefault(project_id, {})[memory_id] = rowid
            for i, name in enumerate((*COLUMNS, *NUMBERS)):
                values = [row[3 + i] for row in docs]
                if name in NUMBERS:
                    values = [np.nan if v is None else v for v in values]
                elif name != "id":
                    values = [seen.setdefault(v, v) for v in values]
                    self.codes[name][at] = self._coded(name, values)
                self.columns[name][at] = values
            made, one = self.made, seen.setdefault  # (the scope values as the columns hold them: one object each)
            for rowid, row in zip(at.tolist(), docs, strict=True):  # (id, type, agent, text, user, category, ...)
                mtype, agent, user_id, category = (one(row[i], row[i]) for i in (6, 5, 7, 9))
                made[rowid] = _row(row[3], mtype, agent, row[2], user_id, category, row[12], row[11], row[-1])
        self.terms, self.counts, self.key = terms, counts, key
        if not self.warmed:
            self.warmed = True
            warm_words(list(words)[:WARM_WORDS])

    def _grow(self, size: int) -> None:
        if size <= len(self.alive):
            return
        size = max(size, 2 * len(self.alive))
        old = len(self.alive)
        self.epoch += 1
        self.length = np.concatenate([self.length, np.zeros(size - old)])
        self.alive = np.concatenate([self.alive, np.zeros(size - old, dtype=bool)])
        self.hashes = np.concatenate([self.hashes, np.zeros(size - old, dtype=np.int64)])
        self.version.extend([_NEVER] * (size - len(self.version)))  # (rowids it never knew)
        self.made.extend([None] * (size - len(self.made)))
        for name in (*COLUMNS, *NUMBERS):
            fill = np.full(size - old, np.nan) if name in NUMBERS else np.full(size - old, None, dtype=object)
            kept = self.columns.get(name)
            self.columns[name] = fill if kept is None else np.concatenate([kept, fill])
        for name in CODED:
            codes = self.codes.get(name)
            fill = np.full(size - old, -1, dtype=np.int32)
            self.codes[name] = fill if codes is None else np.concatenate([codes, fill])

    def _coded(self, name: str, values: Sequence[Any]) -> list[int]:
        """The codes of `values` in the column `name` (new values get new codes)."""
        known = self.code_of[name]
        return [known.setdefault(v, len(known)) for v in values]

    def code(self, name: str, value: Any) -> int:
        """The code of `value` in the CODED column `name`; -1 (no document) when no row ever held it."""
        return self.code_of[name].get(value, -1)

    # -- reads --------------------------------------------------------------------------------------

    def docs(self, term: str) -> int:
        """How many documents hold `term`."""
        found = self.terms.get(term)
        if found is None:
            return self.counts.get(term, 0)
        adds, drops = self.pending.get(term, _NOTHING)
        return len(found[0]) + len(adds) - len(drops)

    def postings(self, term: str) -> TermPostings:
        """The term's postings, with the changes of commits since it was last read merged in."""
        rowids, tf = self.terms.get(term, _NO_POSTINGS)
        changes = self.pending.pop(term, None)
        if changes is not None:
            adds, drops = changes
            if drops:
                keep = ~np.isin(rowids, list(drops))
                rowids, tf = rowids[keep], tf[keep]
            if adds:
                rowids = np.concatenate([rowids, np.fromiter(adds, dtype=np.int64, count=len(adds))])
                tf = np.concatenate([tf, np.fromiter(adds.values(), dtype=np.float64, count=len(adds))])
            self.terms[term] = (rowids, tf)
            self.weights.pop(term, None)
        return TermPostings(term, len(rowids), rowids, tf)

    def rows(
        self, project_id: str, ids: Sequence[str]
    ) -> tuple[list[tuple[int, tuple[Any, ...]]], dict[int, str], list[str]]:
        """The memory rows of `ids` made from the index, as (rowid, row in `_parsed.ROW_COLUMNS` order) by
        rowid ascending; the rowids (-> id) of those whose JSON it does not know (written since it was built:
        read them from the store), and the ids it does not know (rows without a full-text entry)."""
        known, made = self.ids.get(project_id, {}), self.made
        found: list[tuple[int, Row]] = []
        unread: dict[int, str] = {}
        unknown: list[str] = []
        for memory_id in ids:
            rowid = known.get(memory_id)
            if rowid is None:
                unknown.append(memory_id)
            elif (row := made[rowid]) is None:
                unread[rowid] = memory_id
            else:
                found.append((rowid, row))
        found.sort(key=_ROWID)
        return found, dict(sorted(unread.items())) if len(unread) > 1 else unread, unknown

    # -- this store's own commits -------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], before: tuple[int, int], after: tuple[int, int]) -> None:
        """Follow one committed transaction of this store (`changes` in order: each replaced or deleted
        row's rowid and old text, each written row's rowid, text and columns), if the index reflected the
        file just before it; else drop it. The changes are merged at the next search (`current`), those
        of several commits together."""
        if self.key != before or len(self.unapplied) + len(changes) > _MAX_UNAPPLIED:
            self.clear()  # (many writes and no search: cheaper to read it all again when next searched)
            return
        self.tick += 1
        for kind, rowid, text, columns in changes:  # who is where, now (`known`); the postings wait
            assert columns is not None
            self._grow(rowid + 1)
            self.version[rowid] = self.tick
            if kind == "put":
                self.ids.setdefault(columns[1], {})[columns[0]] = rowid
                self.hashes[rowid] = hash(text)
            elif kind == "del" and self.ids.get(columns[1], {}).get(columns[0]) == rowid:
                del self.ids[columns[1]][columns[0]]
        self.unapplied.extend(changes)
        self.key = after

    def _merge(self) -> None:
        """Merge the changes of the commits since the last search (see `apply`)."""
        changes, self.unapplied = self.unapplied, []
        self.stale = False
        self.epoch += 1
        removed: dict[int, str | None] = {}
        added: dict[int, tuple[str | None, tuple[Any, ...] | None]] = {}
        rewritten: dict[int, tuple[Any, ...] | None] = {}  # rows whose text stays: their columns only
        for kind, rowid, text, columns in changes:
            if kind == "set":
                if rowid in added:
                    added[rowid] = (added[rowid][0], columns)
                else:
                    rewritten[rowid] = columns
                continue
            rewritten.pop(rowid, None)
            if kind == "del":
                if rowid not in removed and rowid not in added:
                    removed[rowid] = text  # the text the index holds for it
                added.pop(rowid, None)
            else:
                added[rowid] = (text, columns)
        same = {r for r, (text, _) in added.items() if r in removed and removed[r] == text}
        old = {r: text or "" for r, text in removed.items() if r not in same}
        texts = documents([*old.values(), *(text or "" for r, (text, _) in added.items() if r not in same)])
        for rowid, text in old.items():
            self._unindex(rowid, texts[text])
        for rowid, (text, columns) in added.items():
            if rowid not in same:
                self._index(rowid, texts[text or ""])
            self._set_columns(rowid, columns, text)
        for rowid, columns in rewritten.items():
            row = self.made[rowid] if rowid < len(self.made) else None
            self._set_columns(rowid, columns, None if row is None else row[3])
        for rowid in removed.keys() - added.keys():
            self.alive[rowid] = False
            self.made[rowid] = None

    def _unindex(self, rowid: int, document: Document) -> None:
        """Take the document `rowid` out of its terms' postings (the change is merged when next read)."""
        for term, _ in document[0]:
            if term in self.counts:
                self.counts[term] -= 1
                if self.counts[term] <= LEXICAL_TERM_CAP:  # rankable again: its postings are needed
                    self.stale = True
            elif term in self.terms:
                adds, drops = self.pending.setdefault(term, ({}, set()))
                if adds.pop(rowid, None) is None:
                    drops.add(rowid)

    def _index(self, rowid: int, document: Document) -> None:
        """Add the document `rowid` to its terms' postings (merged when next read)."""
        counts, length = document
        self._grow(rowid + 1)
        self.length[rowid] = length
        for term, n in counts:
            if term in self.counts:
                self.counts[term] += 1
                continue
            if term not in self.terms:
                self.terms[term] = _NO_POSTINGS
            self.pending.setdefault(term, ({}, set()))[0][rowid] = n

    def _set_columns(self, rowid: int, columns: tuple[Any, ...] | None, text: str | None) -> None:
        """A row written: its columns, and its candidate row when its text and JSON are known (see `Change`),
        else `rows` reads it from the store."""
        self._grow(rowid + 1)
        self.alive[rowid] = True
        c = columns = columns or ()
        named = len(COLUMNS) + len(NUMBERS)
        data = columns[named] if len(columns) > named else None
        made = None if text is None or data is None else _row(c[0], c[3], c[2], text, c[4], c[6], c[9], c[8], data)
        self.made[rowid] = made
        for name, value in zip((*COLUMNS, *NUMBERS), columns[:named], strict=True):
            self.columns[name][rowid] = (np.nan if value is None else value) if name in NUMBERS else value
            if name in self.code_of:
                self.codes[name][rowid] = self._coded(name, (value,))[0]
