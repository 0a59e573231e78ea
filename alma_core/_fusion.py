"""Fusion: one search's dense and lexical scores -> one relevance per candidate (see `_retrieval`).

relevance (per query, over every type at once, so scores compare across types):
    dense   = cosine / the best candidate's cosine (clipped at 0)
    lexical = BM25 / best BM25, times the share of the query's topic words the memory holds
    hybrid  = `fusion="weighted"`: dense_weight * calibrated dense + (1 - dense_weight) * lexical, where
              calibrated dense = (cosine - background) / (1 - background), the background being the lowest
              candidate cosine; a confident lexical match (every topic word of the query, or a rare exact
              term such as a name or an id) keeps at least its lexical score; `"rrf"`: reciprocal-rank
              fusion normalised by its maximum
A lesson (heuristic or anti-pattern) is at least as relevant as the best outcome of its task type.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping

from ._candidates import Candidate
from ._models import MemoryType
from .storage._base import SearchHits

__all__ = ["fuse", "inherit_task_relevance", "lexical_factors", "lexical_query", "lexical_terms", "topic_words"]

_RRF_K = 60.0
_WORD = re.compile(r"[\w][\w:.-]*[\w]|\w", re.UNICODE)
# Function words carry no topic: matching them only adds noise to BM25 (they are dropped from the
# lexical query, never from the stored text).
_STOP = frozenset({
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "each", "for",
    "from", "get", "gets", "got", "had", "has", "have", "having", "he", "her", "here", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "keep", "keeps", "let", "like", "make", "me", "more", "most",
    "my", "no", "not", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same",
    "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "to", "too", "up", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "why", "will", "with", "without", "would", "you", "your",
})  # fmt: skip
_STEM = operator.itemgetter(slice(6))  # a word's first 6 characters
_ID_LIKE = re.compile(r"\d|[A-Z].*[A-Z]|\w[_:./-]\w")  # ids, versions, codes, acronyms, paths
_BACKGROUND_CANDIDATES = 10  # fewer dense candidates than this: no background to read (it is 0)
_LESSONS = (MemoryType.HEURISTIC, MemoryType.ANTI_PATTERN)


# ASCII text, lower-cased and with every character that cannot be part of a `_WORD` made a space: its words
# are then the runs between spaces with `:.-` stripped from their ends (the same words, 2x faster)
_ASCII_WORDS = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() or chr(c) in "_:.-" else 32 for c in range(256))


@functools.lru_cache(maxsize=16_384)  # the same memories come back query after query
def topic_words(text: str) -> frozenset[str]:
    """The text's topic words (lower case, function words dropped), cut to 6 characters (a crude stem)."""
    if text.isascii():
        runs = text.encode().translate(_ASCII_WORDS).decode().split()
        words = {w.strip(":.-") for w in runs} if ":" in text or "." in text or "-" in text else set(runs)
        words.discard("")
    else:
        words = set(map(str.lower, _WORD.findall(text)))
    words -= _STOP
    return frozenset(map(_STEM, words))


def lexical_terms(text: str) -> tuple[str, ...]:
    """The query's topic words (function words dropped), or all its words when nothing is left."""
    words = _WORD.findall(text)
    return tuple(w for w in words if w.lower() not in _STOP) or tuple(words)


def lexical_query(text: str) -> str:
    """The query's topic words as one string (see `lexical_terms`)."""
    return " ".join(lexical_terms(text)) or text


def lexical_factors(
    query: str, candidates: Mapping[str, Candidate], hits: SearchHits
) -> tuple[dict[str, float] | None, set[str]]:
    """For the lexical hits among `candidates`: the share of the query's topic words each holds (None: the
    query has none), and those that match the query confidently: every topic word of a query of two or
    more, or an id-like term of the query (digits, inner capitals, `a_b`, `a-b`, `a.b`) written out
    exactly. One pass over the hits."""
    words = topic_words(query)
    if not words:
        return None, set()
    n = len(words)
    whole = n >= 2
    terms = [w for w in _WORD.findall(query) if _ID_LIKE.search(w)]
    coverage: dict[str, float] = {}
    exact: set[str] = set()
    get = candidates.get
    for per_type in hits.lexical.values():
        for memory_id, _ in per_type:
            candidate = get(memory_id)
            if candidate is None:
                continue
            text = candidate.text
            coverage[memory_id] = share = len(words & topic_words(text)) / n
            if whole and share >= 1.0:
                exact.add(memory_id)
                continue
            for term in terms:  # (a loop, not `any` over a generator: ~50 hits x every id-like query word)
                if term in text:
                    exact.add(memory_id)
                    break
    return coverage, exact


def _normalised_dense(hits: SearchHits) -> dict[str, float]:
    """Cosines over every type's candidates divided by the best one (clipped at 0): 1 for the best.
    (Min-max normalisation scored a little lower on the dev split, and zeroes the weakest candidate.)"""
    sims = {i: max(0.0, s) for per_type in hits.dense.values() for i, s in per_type}
    best = max(sims.values(), default=0.0)
    return {i: s / best for i, s in sims.items()} if best > 1e-9 else dict.fromkeys(sims, 0.0)


def _calibrated_dense(hits: SearchHits) -> dict[str, float]:
    """Each cosine's height above the query's background over the room above it, (cos - bg) / (1 - bg),
    bg = the lowest candidate cosine (what an unrelated memory scores for this query and embedder).

    Divide-by-best gives the best candidate 1 however weak the list is, so a flat list of low cosines
    outweighed a confident lexical match; here it stays low, a cosine far above the rest stays high, and
    no constant of one embedder is needed (an anisotropic embedder has a high background). Chosen on the
    dev splits of three regimes (`benchmarks/tune_fusion.py`) over divide-by-best, RRF (k 2-60), z-scores,
    CombMNZ, a fixed MiniLM calibration and per-query lexical-confidence weights.
    """
    sims = {i: s for per_type in hits.dense.values() for i, s in per_type}
    background = min(sims.values(), default=0.0) if len(sims) >= _BACKGROUND_CANDIDATES else 0.0
    background = min(max(background, 0.0), 0.99)
    room = 1.0 - background
    return {i: max(0.0, (s - background) / room) for i, s in sims.items()}


def fuse(
    hits: SearchHits,
    mode: str,
    fusion: str = "weighted",
    dense_weight: float = 0.6,
    coverage: dict[str, float] | None = None,
    exact: set[str] | None = None,
) -> dict[str, float]:
    """Dense similarities and lexical scores of one search -> relevance in [0, 1] (module docstring).

    `coverage`: the share of the query's topic words each lexical hit holds (a weak match on one word of
    a long query stays weak); `exact`: the lexical hits holding every topic word, or a rare exact term
    (an id, a name): their lexical score is trusted whatever the dense side says.
    """
    if mode == "dense":
        return _normalised_dense(hits)
    lex_scores = {i: s for per_type in hits.lexical.values() for i, s in per_type}
    top = max(lex_scores.values(), default=0.0)
    if top <= 0:
        lex_rel = dict.fromkeys(lex_scores, 0.0)
    elif coverage is None:
        lex_rel = {i: 1.0 * s / top for i, s in lex_scores.items()}
    else:
        get = coverage.get
        lex_rel = {i: get(i, 0.0) * s / top for i, s in lex_scores.items()}
    if mode == "lexical":
        return lex_rel
    if fusion == "rrf":
        fused: dict[str, float] = {}
        for scores in (_normalised_dense(hits), lex_rel):
            for rank, memory_id in enumerate(sorted(scores, key=lambda i: (-scores[i], i))):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1.0 / (_RRF_K + rank + 1)
        best = max(fused.values(), default=1.0)
        return {i: s / best for i, s in fused.items()}
    calibrated = _calibrated_dense(hits)
    lexical_weight = 1 - dense_weight
    get = lex_rel.get
    out = {i: dense_weight * s + lexical_weight * get(i, 0.0) for i, s in calibrated.items()}
    for i, s in lex_rel.items():
        if i not in out:
            out[i] = dense_weight * 0.0 + lexical_weight * s
    for memory_id in exact or ():
        out[memory_id] = max(out[memory_id], lex_rel.get(memory_id, 0.0))
    return out


def inherit_task_relevance(candidates: Mapping[str, Candidate], relevance: dict[str, float]) -> dict[str, float]:
    """A lesson (heuristic or anti-pattern) is as relevant as the most relevant outcome of its task type:
    it was distilled from those outcomes, though its own text ("checkout tasks: use data-testid
    selectors") rarely shares the words of a task. Returns `relevance` itself when there is no lesson."""
    lessons = [(memory_id, c.task_type) for memory_id, c in candidates.items() if c.memory_type in _LESSONS]
    if not lessons:
        return relevance
    out = dict(relevance)
    by_type: dict[str | None, float] = {}
    get = relevance.get
    for memory_id, c in candidates.items():
        if c.memory_type is MemoryType.OUTCOME:
            by_type[c.task_type] = max(by_type.get(c.task_type, 0.0), get(memory_id, 0.0))
    for memory_id, task_type in lessons:
        if task_type in by_type:
            out[memory_id] = max(out.get(memory_id, 0.0), by_type[task_type])
    return out
