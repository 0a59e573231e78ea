"""Memory reads on SQLite: find, count, and the search of every type (dense over the matrices, BM25)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from .._candidates import Candidate
from .._models import Memory, MemoryType
from ._base import CountMemories, FindMemories, MemoryFilter, SearchHits, SearchMemories, user_filter
from ._bm25 import lexical_hits
from ._filters import dense_mask, matches_nothing, memory_where
from ._parsed import ROW_COLUMNS
from ._sqlite_tx import TxState, scope_of

__all__ = ["MemoryReads"]

_ORDER = {"created_at": "created_at", "updated_at": "updated_at", "confidence": "confidence"}


class MemoryReads(TxState):
    """`FindMemories`, `CountMemories` and `SearchMemories`."""

    def find_memories(self, op: FindMemories, shared: bool = False, generation: int | None = None) -> list[Memory]:
        """`shared`: memories the caller only reads may be the store's kept ones (`ParsedMemories`);
        `generation`: the project's, in a read transaction (kept with what is parsed)."""
        where, args = memory_where(op.filter)
        vectors = "embedding" if op.with_embeddings else "NULL"
        sql = f"SELECT type, data, {vectors}, id FROM memories WHERE {where} ORDER BY {_ORDER[op.order_by]}"
        sql += " DESC, rowid DESC" if op.descending else " ASC, rowid ASC"
        if op.limit is not None:
            sql += " LIMIT ?"
            args.append(op.limit)
        out: list[Memory] = []
        parsed = self.store._parsed
        for mtype, data, blob, memory_id in self.conn.execute(sql, args):
            try:
                memory = parsed.parse(op.filter.project_id, memory_id, mtype, data, shared, generation)
            except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
                self.store.bad_rows.report(op.filter.project_id, memory_id, data, exc)
                continue
            if op.with_embeddings and blob is not None:
                memory.embedding = np.frombuffer(blob, dtype=np.float32)
            out.append(memory)
        return out

    def count_memories(self, op: CountMemories) -> dict[tuple[str, MemoryType], int]:
        """From `memory_counts` (kept by triggers, migration 6) when the filter names only the project,
        agents and types; else COUNT(*) over the matching rows."""
        f = op.filter
        if f.ids is None and f.categories is None and not f.scalar_conditions():
            where, args = memory_where(f)  # only project_id, agent and type: columns of both tables
            rows = self.conn.execute(f"SELECT agent, type, n FROM memory_counts WHERE {where} AND n > 0", args)
            return {(agent, MemoryType(mtype)): n for agent, mtype, n in rows}
        where, args = memory_where(f)
        rows = self.conn.execute(f"SELECT agent, type, COUNT(*) FROM memories WHERE {where} GROUP BY agent, type", args)
        return {(agent, MemoryType(mtype)): n for agent, mtype, n in rows}

    def search_memories(self, op: SearchMemories) -> SearchHits:
        """Every type's dense and lexical top-k: BM25 from cached postings for all types (`_bm25`),
        cosine over the in-memory matrices, then one statement loads the candidates."""
        f = op.filter
        types = list(MemoryType) if f.types is None else list(dict.fromkeys(f.types))
        out = SearchHits()
        if op.k <= 0 or not types or matches_nothing(f):
            return out
        pushed = f if op.user_types is None else f.narrowed(user_id=None)  # the user, per type, below
        if op.terms:
            users = {t: user_filter(f, t, op.user_types) if pushed.user_id is None else None for t in types}
            cache, version = (None, None) if self.write else (self.store._doc_counts, self.snapshot()[0])
            index = self.store._lexical
            out.lexical = lexical_hits(self.conn, cache, pushed, op.terms, types, users, op.k, index, version)
        if op.vector is not None:
            query = np.asarray(op.vector, dtype=np.float32)
            allowed = self._allowed(pushed)
            agents = self._agents(pushed)
            indexed = bool(op.terms) and self._index_current()  # (the lexical search just checked it)
            written = self._written(f.project_id, agents, types)
            for t in types:
                scopes = written[t]
                if not scopes:  # (no memory of this type was ever written in these scopes)
                    out.dense[t] = []
                    continue
                scoped = pushed.narrowed(types=(t,), user_id=user_filter(f, t, op.user_types))
                out.dense[t] = self._dense(scoped, query, op.k, allowed, scopes, indexed)
        ids = tuple({i: None for hits in (*out.dense.values(), *out.lexical.values()) for i, _ in hits})
        if ids and op.rows and not op.with_embeddings:
            tick = self.store._lexical.tick  # (before the check: a later commit's rows have a later tick)
            out.candidates = self._candidate_rows(f.project_id, ids, bool(op.terms) and self._index_current(), tick)
        elif ids:
            out.memories = self._candidates(f.project_id, ids, op.shared and not op.with_embeddings, op.with_embeddings)
        return out

    def _index_current(self) -> bool:
        """Whether the lexical search of this read transaction found the in-memory index current (its rows
        and rowids are then this transaction's: `LexicalIndex.rows`)."""
        index, counts = self.store._lexical, self.store._doc_counts
        return not (self.write or index.key is None or index.unapplied or index.key != (counts.key[1], counts.writes))

    def _candidate_rows(
        self, project_id: str, ids: tuple[str, ...], indexed: bool = False, tick: int | None = None
    ) -> dict[str, Candidate]:
        """The candidates of `ids` made from their rows (`ParsedMemories.candidate`: nothing validated);
        those kept at the project's current generation are not read again, nor, with `indexed` (the lexical
        index is current: `_index_current`, at `tick`), those whose row the index saw unchanged since they
        were kept. With `indexed`, rows are made from the index where it knows them, else read by rowid
        (one b-tree instead of the primary key's index and the table); the rest are read by id. A row of an
        unknown type is skipped (`BadRows`)."""
        generation = None if self.write else self.generations(project_id, [project_id]).get(project_id)
        parsed = self.store._parsed
        index = self.store._lexical if indexed and tick is not None and generation is not None else None
        tick = tick if index is not None else None
        kept = {} if generation is None else parsed.current_candidates(project_id, ids, generation, index, tick or 0)
        missing = [i for i in ids if i not in kept] if kept else list(ids)
        rows: list[tuple[Any, ...]] = []
        if missing and indexed:
            made, unread, missing = self.store._lexical.rows(project_id, missing)
            if unread:  # (read by rowid; each row's id and project checked, else read by id below)
                marks = ",".join("?" * len(unread))
                sql = f"SELECT rowid, project_id, {ROW_COLUMNS} FROM memories WHERE rowid IN ({marks})"
                found = self.conn.execute(sql, list(unread)).fetchall()
                read = [(row[0], row[2:]) for row in found if unread.get(row[0]) == row[2] and row[1] == project_id]
                done = {row[0] for _, row in read}
                missing += [i for i in unread.values() if i not in done]
                made = sorted([*made, *read], key=operator.itemgetter(0))
            rows = [row for _, row in made]
        if missing:
            sql = f"SELECT {ROW_COLUMNS} FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(missing))})"
            rows.extend(self.conn.execute(sql, [project_id, *missing]))
        for row, exc in parsed.candidates(project_id, rows, generation, tick, kept)[1]:  # type: ignore[arg-type]
            self.store.bad_rows.report(project_id, row[0], row[8], exc)
        return kept

    def _candidates(self, project_id: str, ids: tuple[str, ...], shared: bool, vectors: bool) -> dict[str, Memory]:
        """The memories of `ids` by id; shared ones parsed at the project's current generation are not
        read again (`ParsedMemories.current`)."""
        generation = None
        if shared and not self.write:
            generation = self.generations(project_id, [project_id]).get(project_id)
        kept = {} if generation is None else self.store._parsed.current(project_id, ids, generation)
        missing = tuple(i for i in ids if i not in kept) if kept else ids
        if missing:
            find = FindMemories(MemoryFilter(project_id=project_id, ids=missing), with_embeddings=vectors)
            kept.update((m.id, m) for m in self.find_memories(find, shared, generation))
        return kept

    def _allowed(self, f: MemoryFilter) -> set[str] | None:
        """The ids a dense search may return when the filter has conditions the matrices don't hold."""
        needs_sql = (
            f.ids is not None
            or f.created_before
            or f.updated_before
            or f.created_after
            or f.confidence_below is not None
        )
        if not needs_sql:
            return None
        where, args = memory_where(f)
        return {r[0] for r in self.conn.execute(f"SELECT id FROM memories WHERE {where}", args)}

    def _agents(self, f: MemoryFilter) -> tuple[str, ...]:
        """The filter's agents, or every agent of its project."""
        if f.agents is not None:
            return f.agents
        sql = "SELECT DISTINCT agent FROM memories WHERE project_id = ?"
        return tuple(r[0] for r in self.conn.execute(sql, (f.project_id,)))

    def _written(
        self, project_id: str, agents: Sequence[str], types: Sequence[MemoryType]
    ) -> dict[MemoryType, list[tuple[str, int]]]:
        """Per type, the (agent, generation) of each of `agents`' scopes of that type that was ever written
        (one read of the generations for every type; kept by the store for the next read transactions while
        the file is unchanged: `snapshot`)."""
        key = (project_id, tuple(agents), tuple(types))
        kept = None if self.write else self.store._written.get(key)
        if kept is not None and kept[0] == self.snapshot():
            return kept[1]
        pairs = [(t, agent, scope_of(project_id, agent, t.value)) for t in types for agent in agents]
        generations = self.generations(project_id, [scope for _, _, scope in pairs])
        out: dict[MemoryType, list[tuple[str, int]]] = {t: [] for t in types}
        for t, agent, scope in pairs:
            if scope in generations:
                out[t].append((agent, generations[scope]))
        if not self.write:
            if len(self.store._written) >= 256:
                self.store._written.clear()
            self.store._written[key] = (self.snapshot(), out)
        return out

    def _dense(
        self,
        f: MemoryFilter,
        query: np.ndarray,
        k: int,
        allowed: set[str] | None,
        scopes: list[tuple[str, int]],
        indexed: bool = False,
    ) -> list[tuple[str, float]]:
        """Cosine top-k over the matrices of the filter's one type in `scopes` (agent, generation); `indexed`:
        the lexical index is current (`_index_current`: vectors to rescore are read by rowid)."""
        mtype = str((f.types or ())[0])
        hits: list[tuple[str, float]] = []
        fetch = partial(self._stored_vectors, f.project_id, indexed)
        for agent, generation in scopes:
            matrix = self.store._matrix(self.conn, f.project_id, agent, mtype, generation, len(query))
            if matrix is not None and matrix.size > 0:
                hits.extend(matrix.search(query, k, dense_mask(matrix, f, allowed), fetch))
        if len(scopes) > 1 or _tied(hits):  # (one matrix answers best first; ties then go by id)
            hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def _stored_vectors(self, project_id: str, indexed: bool, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors of `ids`: a matrix of int8 codes rescores its candidates with them. By rowid
        where the current lexical index knows it (each row's id and project checked), else by id."""
        out: dict[str, bytes] = {}
        rest = list(ids)
        known = self.store._lexical.ids.get(project_id) if indexed else None
        if known:
            at = {rowid: i for i in ids if (rowid := known.get(i)) is not None}
            if at:
                marks = ",".join("?" * len(at))
                rows = self.conn.execute(
                    f"SELECT rowid, project_id, id, embedding FROM memories WHERE rowid IN ({marks})", list(at)
                ).fetchall()
                out = {row[2]: row[3] for row in rows if at.get(row[0]) == row[2] and row[1] == project_id}
                rest = [i for i in ids if i not in out]
        if rest:
            sql = f"SELECT id, embedding FROM memories WHERE project_id = ? AND id IN ({','.join('?' * len(rest))})"
            out.update(self.conn.execute(sql, [project_id, *rest]).fetchall())
        return out


def _tied(hits: list[tuple[str, float]]) -> bool:
    """Whether two neighbours of a list sorted by score descending have the same score."""
    return any(a[1] == b[1] for a, b in itertools.pairwise(hits))
