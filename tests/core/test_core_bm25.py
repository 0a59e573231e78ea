"""The SQLite store's in-memory BM25 (`storage/_bm25.py`, `_lexindex.py`) answers exactly as FTS5's bm25().

Every search is compared with FTS5 itself, asked on a separate connection to the same file: the same ids in
the same order and the same scores, bit for bit, for rare and common words, stemmed forms, scoped filters,
and after updates, deletes and another connection's commits.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alma_core import DomainKnowledge, MemoryType, UserPreference
from alma_core.storage import DeleteMemories, FindMemories, MemoryFilter, PutMemories, SearchMemories, SQLiteStorage
from alma_core.storage._lexical import selective_match, tokens

P, Q = "proj", "other"
COMMON = ["login", "form", "email", "password", "selector"]
RARE = [f"zephyr{i}" for i in range(40)]
STEMMED = ["running", "runs", "runner", "connection", "connected", "connects"]
ODD = ["café", "naïve", "foo_bar", "x2y", "日本語"]
QUERIES = [
    "login", "zephyr3", "zephyr3 zephyr7 login", "running connection", "runs form email password",
    "connected zephyr12 selector", "café naïve", "foo_bar zephyr1", "日本語 form", "the and of",
    "login form email password selector", "zephyr39 runner connects x2y", "absent words only", "quokka zephyr3",
]  # fmt: skip


def _memories(rng: np.random.Generator, n: int, start: int = 0) -> list:
    words = COMMON * 6 + RARE + STEMMED * 2 + ODD
    out = []
    for i in range(start, start + n):
        text = " ".join(rng.choice(words, size=int(rng.integers(2, 25))))
        project, agent = (Q if i % 7 == 0 else P), ("a" if i % 3 else "b")
        created = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=i)
        if i % 4 == 0:
            memory = UserPreference(id=f"m{i}", project_id=project, agent=agent, user_id=f"u{i % 3}", preference=text,
                                    category="style" if i % 8 else "tools", created_at=created)  # fmt: skip
        else:
            memory = DomainKnowledge(id=f"m{i}", project_id=project, agent=agent, domain="d1" if i % 5 else "d2",
                                     fact=text, created_at=created)  # fmt: skip
        memory.embedding = np.ones(8, dtype=np.float32)
        out.append(memory)
    return out


def _fts5(path: Path, f: MemoryFilter, query: str, k: int, user: str | None = None) -> dict[MemoryType, list]:
    """FTS5's own answer, per type: the terms the store keeps, `-bm25()`, best first, ties by id."""
    conn = sqlite3.connect(path)
    try:
        match = selective_match(conn, tokens(query))
        if not match:
            return {}
        clauses, args = ["m.project_id = ?"], [f.project_id]
        types = None if f.types is None else tuple(t.value for t in f.types)
        for column, values in (("agent", f.agents), ("category", f.categories), ("type", types)):
            if values is not None:
                clauses.append(f"m.{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        for column, op, value in f.scalar_conditions():
            if column != "user_id" or user is None:  # (`user`: the user applies to preferences only)
                clauses.append(f"m.{column} {op} ?")
                args.append(value)
        if f.ids is not None:
            clauses.append(f"m.id IN ({','.join('?' * len(f.ids))})")
            args.extend(f.ids)
        rows = conn.execute(
            f"""SELECT m.id, m.type, m.user_id, -bm25(memories_fts) AS s FROM memories_fts
                JOIN memories m ON m.rowid = memories_fts.rowid
                WHERE memories_fts MATCH ? AND {" AND ".join(clauses)} ORDER BY s DESC, m.id""",
            [match, *args],
        ).fetchall()
    finally:
        conn.close()
    out: dict[MemoryType, list] = {}
    for memory_id, mtype, user_id, score in rows:
        if user is not None and mtype == MemoryType.PREFERENCE.value and user_id != user:
            continue
        hits = out.setdefault(MemoryType(mtype), [])
        if len(hits) < k:
            hits.append((memory_id, score))
    return out


def _search(store: SQLiteStorage, f: MemoryFilter, query: str, k: int, user_types=None) -> dict[MemoryType, list]:
    hits = store.execute(SearchMemories(f, terms=tuple(query.split()), k=k, user_types=user_types))
    return {t: found for t, found in hits.lexical.items() if found}


FILTERS = [
    MemoryFilter(project_id=P),
    MemoryFilter(project_id=P, agents=("a",)),
    MemoryFilter(project_id=P, agents=("a", "b"), categories=("d1", "style")),
    MemoryFilter(project_id=Q),
    MemoryFilter(project_id=P, created_after=datetime(2025, 3, 1, tzinfo=UTC)),
    MemoryFilter(project_id=P, user_id="u2"),
    MemoryFilter(project_id=P, types=(MemoryType.PREFERENCE,)),
    MemoryFilter(project_id=P, ids=tuple(f"m{i}" for i in range(0, 600, 3))),
]


@pytest.fixture
def filled(db_path: Path):
    store = SQLiteStorage(db_path)
    store.execute(PutMemories(_memories(np.random.default_rng(3), 600)))
    yield store
    store.close()


def _check_all(store: SQLiteStorage, path: Path, filters: list[MemoryFilter] = FILTERS) -> None:
    for f in filters:
        for query in QUERIES:
            for k in (3, 50):
                assert _search(store, f, query, k) == _fts5(path, f, query, k), (f, query, k)


def test_scores_and_order_equal_fts5_bm25_for_every_query_and_scope(filled: SQLiteStorage, db_path: Path) -> None:
    _search(filled, FILTERS[0], "login", 5)  # the index is built on the second search at an unchanged file
    _check_all(filled, db_path)
    assert filled._lexical.built  # (the answers above came from it)
    user = MemoryFilter(project_id=P, user_id="u1")
    for query in QUERIES:
        expected = _fts5(db_path, user, query, 10, user="u1")
        assert _search(filled, user, query, 10, user_types=(MemoryType.PREFERENCE,)) == expected


def test_the_index_follows_updates_and_deletes_of_its_own_store(filled: SQLiteStorage, db_path: Path) -> None:
    for _ in range(2):
        _search(filled, FILTERS[0], "login", 5)
    assert filled._lexical.built
    rng = np.random.default_rng(11)
    kept = filled.execute(FindMemories(MemoryFilter(project_id=P), limit=40))
    for memory in kept[:20]:  # new texts (and one unchanged) under the same ids
        memory.embedding = np.ones(8, dtype=np.float32)
        if isinstance(memory, DomainKnowledge):
            memory.fact = " ".join(rng.choice(RARE + COMMON, size=int(rng.integers(1, 30))))
    filled.execute(PutMemories(kept[:20]))
    filled.execute(DeleteMemories(MemoryFilter(project_id=P, ids=tuple(m.id for m in kept[20:40]))))
    filled.execute(PutMemories(_memories(rng, 50, start=1000)))
    with filled.transaction() as tx:  # several changes to one row in one transaction
        again = _memories(rng, 1, start=2001)  # a DomainKnowledge
        tx.execute(PutMemories(again))
        again[0].fact = "zephyr3 zephyr3 login"
        tx.execute(PutMemories(again))
        tx.execute(DeleteMemories(MemoryFilter(project_id=P, ids=(kept[0].id,))))
    fresh = _memories(rng, 3, start=3001)  # DomainKnowledge: written, rewritten, deleted, unsearched between
    filled.execute(PutMemories(fresh))
    fresh[0].fact = "zephyr3 login login quokka"
    filled.execute(PutMemories(fresh[:1]))
    filled.execute(DeleteMemories(MemoryFilter(project_id=P, ids=(fresh[1].id,))))
    assert filled._lexical.built  # followed, not dropped
    _check_all(filled, db_path)


def test_another_connections_commit_is_seen(filled: SQLiteStorage, db_path: Path) -> None:
    for _ in range(2):
        _search(filled, FILTERS[0], "zephyr5", 5)
    other = SQLiteStorage(db_path)
    try:
        fresh = DomainKnowledge(project_id=P, agent="a", domain="d1", fact="zephyr5 zephyr5 written elsewhere")
        fresh.embedding = np.ones(8, dtype=np.float32)
        other.execute(PutMemories([fresh]))
        other.execute(DeleteMemories(MemoryFilter(project_id=P, agents=("b",))))
    finally:
        other.close()
    found = _search(filled, FILTERS[0], "zephyr5", 5)
    assert found[MemoryType.KNOWLEDGE][0][0] == fresh.id
    assert found == _fts5(db_path, FILTERS[0], "zephyr5", 5)
    _check_all(filled, db_path)


def test_a_write_transaction_searches_its_own_uncommitted_rows(filled: SQLiteStorage) -> None:
    for _ in range(2):
        _search(filled, FILTERS[0], "login", 5)
    fresh = DomainKnowledge(project_id=P, agent="a", domain="d1", fact="quokka sighting")
    fresh.embedding = np.ones(8, dtype=np.float32)
    with filled.transaction() as tx:
        tx.execute(PutMemories([fresh]))
        hits = tx.execute(SearchMemories(MemoryFilter(project_id=P), terms=("quokka",), k=5))
        assert [i for i, _ in hits.lexical[MemoryType.KNOWLEDGE]] == [fresh.id]
    assert [i for i, _ in _search(filled, FILTERS[0], "quokka", 5)[MemoryType.KNOWLEDGE]] == [fresh.id]


def test_an_empty_store_finds_nothing_then_finds_its_first_memory(db_path: Path) -> None:
    store = SQLiteStorage(db_path)
    try:
        for _ in range(3):  # the FTS index's totals record is empty until the first row
            assert _search(store, MemoryFilter(project_id=P), "quokka", 5) == {}
        fresh = DomainKnowledge(project_id=P, agent="a", domain="d1", fact="quokka")
        fresh.embedding = np.ones(8, dtype=np.float32)
        store.execute(PutMemories([fresh]))
        for _ in range(2):
            assert _search(store, MemoryFilter(project_id=P), "quokka", 5) == _fts5(db_path, FILTERS[0], "quokka", 5)
    finally:
        store.close()


LATER = datetime(2030, 1, 1, tzinfo=UTC)
NUMBER_FILTERS = [  # the columns a rewrite that keeps the text changes
    MemoryFilter(project_id=P, confidence_below=0.5),
    MemoryFilter(project_id=P, updated_before=LATER),
    MemoryFilter(project_id=P, agents=("a",), confidence_below=0.9, updated_before=LATER),
]


def _built(store: SQLiteStorage) -> None:
    for _ in range(2):
        _search(store, FILTERS[0], "login", 5)
    assert store._lexical.built


def _statements(store: SQLiteStorage) -> list[str]:
    """The statements `store`'s connection runs from now on (appended as they run)."""
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


def _row_reads(seen: list[str]) -> list[str]:
    """The SELECTs among `seen` that read memory rows (not the largest rowid, which every upsert reads)."""
    return [s for s in seen if s.lstrip().upper().startswith("SELECT") and "MAX(rowid)" not in s]


def test_a_rewrite_that_keeps_the_text_reads_no_row_and_follows_the_numbers(
    filled: SQLiteStorage, db_path: Path
) -> None:
    _built(filled)
    kept = filled.execute(FindMemories(MemoryFilter(project_id=P), limit=60, with_embeddings=True))
    for i, memory in enumerate(kept):  # a heuristic's update: counts, confidence and time move, the text stays
        memory.confidence = (i % 10) / 10
        memory.updated_at = LATER + timedelta(days=i - 30)
    seen = _statements(filled)
    filled.execute(PutMemories(kept))
    filled.execute(PutMemories(kept[:5]))  # (twice: the second write knows the rows from the first)
    filled._conn.set_trace_callback(None)
    assert seen and not _row_reads(seen)
    assert filled._lexical.built
    _check_all(filled, db_path, [*NUMBER_FILTERS, FILTERS[0]])


def test_the_index_follows_text_and_scope_changes_under_the_same_ids(filled: SQLiteStorage, db_path: Path) -> None:
    _built(filled)
    rng = np.random.default_rng(5)
    kept = filled.execute(FindMemories(MemoryFilter(project_id=P), limit=80, with_embeddings=True))
    knowledge = [m for m in kept if isinstance(m, DomainKnowledge)]
    for i, memory in enumerate(knowledge[:30]):
        if i % 3 == 0:
            memory.fact = " ".join(rng.choice(RARE + COMMON, size=int(rng.integers(1, 20))))  # text
        if i % 3 == 1:
            memory.agent = "b" if memory.agent == "a" else "a"  # scope, text kept
        if i % 3 == 2:
            memory.domain, memory.confidence = "d3", 0.25  # category and a number, text kept
    moved = [UserPreference(id=m.id, project_id=P, agent=m.agent, user_id="u2", preference=m.fact)
             for m in knowledge[30:36]]  # another type (and a user) under the same ids, the text kept  # fmt: skip
    for memory in moved:
        memory.embedding = np.ones(8, dtype=np.float32)
    seen = _statements(filled)
    with filled.transaction() as tx:
        tx.execute(PutMemories(knowledge[:30]))
        tx.execute(PutMemories(moved))
        tx.execute(DeleteMemories(MemoryFilter(project_id=P, ids=(knowledge[36].id, knowledge[0].id))))
        tx.execute(PutMemories([knowledge[36]]))  # deleted and written again: a new row
    filled._conn.set_trace_callback(None)
    reads = _row_reads(seen)
    # the changed texts' old texts; the old scopes of rows that move (in each of the two puts); the new row's rowid
    assert len(reads) == 4, reads
    assert filled._lexical.built
    _check_all(filled, db_path, [*FILTERS, *NUMBER_FILTERS, MemoryFilter(project_id=P, categories=("d3",))])


def test_a_write_after_another_connections_commit_keeps_the_answers_exact(filled: SQLiteStorage, db_path: Path) -> None:
    _built(filled)
    kept = filled.execute(FindMemories(MemoryFilter(project_id=P), limit=20, with_embeddings=True))
    other = SQLiteStorage(db_path)
    try:  # another connection changes texts and deletes rows the index knows
        changed = [m.model_copy(deep=True) for m in kept[:10] if isinstance(m, DomainKnowledge)]
        for memory in changed:
            memory.fact = "zephyr5 quokka written elsewhere"
        other.execute(PutMemories(changed))
        other.execute(DeleteMemories(MemoryFilter(project_id=P, ids=tuple(m.id for m in kept[10:15]))))
    finally:
        other.close()
    for memory in kept[:15]:  # this store writes its own (stale) copies back, its index not read since
        memory.confidence = 0.3
    filled.execute(PutMemories(kept[:15]))
    _check_all(filled, db_path, [*FILTERS, *NUMBER_FILTERS])


def test_ascii_documents_are_tokenized_as_fts5_tokenizes_them() -> None:
    """A written text's terms, frequencies and length (merged into the index at the next search) equal
    what FTS5's tokenizer gives, for ASCII texts split here: punctuation, underscores, case, digits,
    stemmed and long words; a non-ASCII text goes through FTS5 itself."""
    from alma_core.storage import _lexindex

    rng = np.random.default_rng(4)
    words = ["running", "caresses", "ponies", "Login", "FORM", "e-mail", "w12", "generalizations", "x" * 80, "a_b"]
    marks = list(" _-.,:;!?'\"()[]/\\\t\n@#$%&*+=<>|~`0123456789")
    texts = ["", "  ", "Running runs RAN", "foo_bar baz-qux x.y", "co-operate co_operate", "café naïve Straße"]
    for _ in range(400):
        parts = [str(rng.choice(words)) if rng.random() < 0.6 else str(rng.choice(marks)) for _ in range(20)]
        texts.append("".join(part + (" " if rng.random() < 0.5 else "") for part in parts))
    _lexindex._documents.clear()
    made = _lexindex.documents(texts)
    found: dict[int, list[tuple[str, int]]] = {}
    distinct = list(dict.fromkeys(texts))
    for doc, term, n in _lexindex._tokenize(distinct, "SELECT doc, term, COUNT(*) FROM v GROUP BY doc, term"):
        found.setdefault(doc, []).append((term, n))
    for i, text in enumerate(distinct, 1):
        counts = tuple(found.get(i, ()))
        assert made[text] == (counts, sum(n for _, n in counts)), text
    assert sum(made[text][1] for text in distinct) > 4000


def test_full_term_caches_start_again_without_losing_the_words_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the word and text caches fill up, a call mixing words (or texts) seen before and new ones
    still answers every one (the caches used to drop the old ones before answering: a KeyError)."""
    from alma_core.storage import _lexindex

    monkeypatch.setattr(_lexindex, "WORDS_KEPT", 8)
    _lexindex._words.clear()
    _lexindex._documents.clear()
    first = _lexindex.fts_tokens(["running", "ponies", "caresses", "login", "forms"])
    assert _lexindex.fts_tokens(["ponies", "a1", "b2", "c3", "d4", "running"]) == [
        first[1], ("a1",), ("b2",), ("c3",), ("d4",), first[0]
    ]  # fmt: skip
    texts = [f"text {i} running" for i in range(4090)]
    _lexindex.documents(texts)
    found = _lexindex.documents([texts[0], *(f"new {i} ponies" for i in range(10)), texts[-1]])
    assert found[texts[0]] == ((("0", 1), ("run", 1), ("text", 1)), 3)
    assert found["new 9 ponies"] == ((("9", 1), ("new", 1), ("poni", 1)), 3)


def test_kept_term_weights_and_scope_masks_follow_every_kind_of_write(filled: SQLiteStorage, db_path: Path) -> None:
    """Searches keep each term's weights and each filter's mask while the index is unchanged (`_bm25`):
    after texts, scopes, numbers and types change, rows are deleted and new ones written, and after another
    connection's commit, the answers are FTS5's again."""
    _built(filled)
    filters = [*FILTERS, *NUMBER_FILTERS]
    _check_all(filled, db_path, filters)  # (asked twice each: kept)
    index = filled._lexical
    assert index.weights and any(kinds is not None for _, kinds in index.masks.values())
    rng = np.random.default_rng(8)
    kept = filled.execute(FindMemories(MemoryFilter(project_id=P), limit=90, with_embeddings=True))
    knowledge = [m for m in kept if isinstance(m, DomainKnowledge)]
    # first changes that keep the document count, the token count and the rowids (only the postings and the
    # columns tell the kept weights and masks apart): two rows swap texts, then scopes and numbers change
    first, second = knowledge[50], knowledge[51]
    first.fact, second.fact = "zephyr3 zephyr7", "zephyr3 zephyr12 zephyr12 zephyr7 zephyr1"  # (rare words only)
    filled.execute(PutMemories([first, second]))
    _check_all(filled, db_path, filters)
    first.fact, second.fact = second.fact, first.fact
    filled.execute(PutMemories([first, second]))
    _check_all(filled, db_path, filters)
    knowledge[52].agent = "b" if knowledge[52].agent == "a" else "a"
    knowledge[53].domain = "d1" if knowledge[53].domain == "d2" else "d2"
    knowledge[54].project_id, knowledge[55].confidence = Q, 0.1
    filled.execute(PutMemories(knowledge[52:56]))
    _check_all(filled, db_path, filters)
    for i, memory in enumerate(knowledge[:40]):
        if i % 4 == 0:
            memory.fact = " ".join(rng.choice(RARE + COMMON, size=int(rng.integers(1, 40))))  # text and length
        elif i % 4 == 1:
            memory.agent = "b" if memory.agent == "a" else "a"
        elif i % 4 == 2:
            memory.domain, memory.confidence = "d1" if memory.domain == "d2" else "d2", 0.2
        else:
            memory.project_id = Q
    filled.execute(PutMemories(knowledge[:40]))
    filled.execute(DeleteMemories(MemoryFilter(project_id=P, ids=tuple(m.id for m in knowledge[40:50]))))
    filled.execute(PutMemories(_memories(rng, 30, start=5000)))
    assert index.built
    _check_all(filled, db_path, filters)
    other = SQLiteStorage(db_path)
    try:
        other.execute(PutMemories(_memories(rng, 10, start=6000)))
    finally:
        other.close()
    _check_all(filled, db_path, filters)
