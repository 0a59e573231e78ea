"""`relevance_of` (one pass over each side's hits) gives `fuse(hits, ..., *lexical_factors(...))`'s
relevance bit for bit, in every mode and fusion, on random hits with the cases that take other branches:
no topic word in the query, every lexical score 0, fewer dense hits than the background needs, ties,
lexical hits without a candidate, id-like query words and hits on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from alma_core import MemoryType
from alma_core._candidates import Candidate
from alma_core._fusion import fuse, lexical_factors, relevance_of
from alma_core.storage import SearchHits

WORDS = ["login", "form", "email", "ID-42", "v1.2", "the", "a", "checkout", "button", "w7", "data_testid", "Réseau"]
TYPES = list(MemoryType)


def _text(rng: np.random.Generator, n: int) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, size=n))


def _case(rng: np.random.Generator) -> tuple[str, dict[str, Candidate], SearchHits]:
    ids = [f"m{i}" for i in range(int(rng.integers(0, 40)))]
    candidates = {
        i: Candidate(i, TYPES[k % 5], "a", _text(rng, int(rng.integers(1, 9))), None, "t", 1.0, 0.0)
        for k, i in enumerate(ids)
    }
    hits = SearchHits()
    zero = rng.random() < 0.1  # every lexical score 0
    few = rng.random() < 0.2  # fewer dense hits than `_BACKGROUND_CANDIDATES`
    for k, t in enumerate(TYPES):
        mine = [i for j, i in enumerate(ids) if j % 5 == k]
        dense = [i for i in mine if rng.random() < (0.3 if few else 0.8)]
        lexical = [i for i in mine if rng.random() < 0.6] + ([f"gone{k}"] if rng.random() < 0.2 else [])
        cosines = rng.choice([0.1, 0.5, rng.uniform(-0.2, 1.0)], size=len(dense))  # (ties)
        hits.dense[t] = [(i, float(s)) for i, s in zip(dense, cosines, strict=True)]
        scores = np.zeros(len(lexical)) if zero else rng.choice([1.5, rng.uniform(0, 9)], size=len(lexical))
        hits.lexical[t] = [(i, float(s)) for i, s in zip(lexical, scores, strict=True)]
    query = _text(rng, int(rng.integers(1, 6))) if rng.random() < 0.85 else "the a"  # (no topic word)
    return query, candidates, hits


@pytest.mark.parametrize(("mode", "fusion"), [("hybrid", "weighted"), ("lexical", "weighted"), ("hybrid", "rrf"),
                                             ("dense", "weighted")])  # fmt: skip
def test_one_pass_relevance_equals_fuse_of_lexical_factors(mode: str, fusion: str) -> None:
    rng = np.random.default_rng(11)
    confident = 0
    for _ in range(150):
        query, candidates, hits = _case(rng)
        dense_weight = float(rng.choice([0.6, 0.0, 1.0, rng.uniform(0, 1)]))
        coverage, exact = lexical_factors(query, candidates, hits)
        expected = fuse(hits, mode, fusion, dense_weight, coverage, exact)
        got = relevance_of(query, candidates, hits, mode, fusion, dense_weight)
        assert list(got.items()) == list(expected.items())  # (the same values and the same order of keys)
        confident += len(exact)
    assert confident > 40  # (the confident-match branch ran)
