"""Ranking: relevance first, lessons above the outcomes they came from, fusion that adds, time windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alma_core import ALMA, AntiPattern, Heuristic, Outcome, ValidationError

NOW = datetime.now(UTC)


def test_a_relevant_old_memory_outranks_an_irrelevant_recent_one(open_alma: ALMA) -> None:
    old = open_alma.learn("bot", "rotate the payment gateway api keys", True, strategy_used="use the vault cli",
                          task_type="ops", timestamp=NOW - timedelta(days=300))  # fmt: skip
    for i in range(3):
        open_alma.learn("bot", f"bake sourdough bread loaf {i}", True, strategy_used="long cold proof",
                        task_type="kitchen")  # fmt: skip
    ranked = open_alma.retrieve("payment gateway api keys rotation", "bot", top_k=5).ranked()
    assert ranked[0].id == old.id
    assert ranked[0].score_breakdown is not None and ranked[0].score_breakdown["recency"] < 0.01


def test_timeless_types_do_not_decay(open_alma: ALMA) -> None:
    fact = open_alma.add_domain_knowledge("bot", "billing", "Invoices are due thirty days after issue")
    memories = open_alma.retrieve("when are invoices due", "bot", memory_types=["knowledge"])
    assert memories.knowledge[0].id == fact.id
    assert memories.knowledge[0].score_breakdown["recency"] == 1.0  # type: ignore[index]


def _learn_checkout(alma: ALMA) -> None:
    for i in range(8):
        alma.learn("bot", f"checkout form test #{i}", True, strategy_used="use data-testid selectors",
                   task_type="checkout_tests")  # fmt: skip
    for i in range(4):
        alma.learn("bot", f"checkout form test #{10 + i}", False, strategy_used="add fixed sleeps",
                   task_type="checkout_tests", error_message="Element detached from DOM")  # fmt: skip


def test_ranked_puts_a_heuristic_above_its_own_outcomes(open_alma: ALMA) -> None:
    _learn_checkout(open_alma)
    ranked = open_alma.retrieve("checkout form test for a new customer", "bot", top_k=10).ranked()
    assert isinstance(ranked[0], Heuristic) and ranked[0].strategy == "use data-testid selectors"
    anti = next(i for i, m in enumerate(ranked) if isinstance(m, AntiPattern))
    for i, memory in enumerate(ranked):
        if isinstance(memory, Outcome):
            assert i > 0
            if memory.strategy_used == "add fixed sleeps":
                assert i > anti  # the warning comes before the failures it summarises
    scores = [m.score for m in ranked]
    assert all(s is not None and 0 <= s <= 1 for s in scores)
    assert len(open_alma.retrieve("checkout form test", "bot", top_k=10).ranked(3)) == 3


def test_strategy_warnings_outrank_recurring_error_warnings_which_are_capped(open_alma: ALMA) -> None:
    errors = ["TimeoutError after 30s", "deadlock detected", "HTTP 503 from upstream", "disk full"]
    for n, error in enumerate(errors):  # each error recurs across two strategies: a generic warning each
        for strategy in ("retry the click", "take screenshots on every step"):
            for i in range(2):
                open_alma.learn("bot", f"checkout form test {n}{i}", False, strategy_used=strategy,
                                task_type="checkout_tests", error_message=error)  # fmt: skip
    anti = open_alma.retrieve("checkout form test", "bot", top_k=10).anti_patterns
    generic = [a for a in anti if a.metadata.get("kind") == "recurring_error"]
    specific = [a for a in anti if a.metadata.get("kind") != "recurring_error"]
    assert {a.pattern for a in specific} == {"retry the click", "take screenshots on every step"}
    assert len(generic) == open_alma.config.retrieval.max_error_warnings == 2
    assert anti[: len(specific)] == specific


def test_retrieve_keeps_the_time_window(open_alma: ALMA) -> None:
    stamps = [NOW - timedelta(days=d) for d in (200, 100, 10)]
    learned = [open_alma.learn("bot", f"deploy the api service {i}", True, task_type="deploys", timestamp=t)
               for i, t in enumerate(stamps)]  # fmt: skip
    ids = {o.id for o in learned}

    def window(**kw: datetime) -> set[str]:
        return {m.id for m in open_alma.retrieve("deploy the api service", "bot", **kw).outcomes} & ids

    assert window() == ids
    assert window(since=NOW - timedelta(days=150)) == {learned[1].id, learned[2].id}
    assert window(until=NOW - timedelta(days=150)) == {learned[0].id}
    assert window(since=stamps[1], until=stamps[2]) == {learned[1].id}  # since inclusive, until exclusive
    with pytest.raises(ValidationError, match="datetime"):
        open_alma.retrieve("deploy", "bot", since="yesterday")  # type: ignore[arg-type]


# ---- fusion on a fixed set: dense knows paraphrases, lexical knows ids, hybrid must keep both ----------------

_CONCEPTS = {
    "car": 0, "automobile": 0, "tyres": 1, "wheels": 1, "winter": 2, "cold": 2, "physician": 3, "doctor": 3,
    "recommends": 4, "advice": 4, "walk": 5, "exercise": 5, "server": 6, "machine": 6, "reboots": 7,
    "restart": 7, "backups": 8, "copies": 8, "midnight": 9, "night": 9, "database": 10, "invoice": 11,
    "paid": 12, "payment": 12, "customer": 13, "client": 13, "disputed": 14, "contested": 14, "team": 15,
    "meets": 16, "meeting": 16, "mondays": 17, "sprint": 18, "plan": 19,
}  # fmt: skip


class ConceptEmbedder:
    """Words of one concept share a dimension (paraphrases match); ids and unknown words are invisible."""

    name, dim = "concepts", 24

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().replace(",", " ").split():
            if word in _CONCEPTS:
                vec[_CONCEPTS[word]] += 1.0
        vec[self.dim - 1] += 0.5  # every text shares a little: cosines are never all zero
        return vec / np.linalg.norm(vec)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


FACTS = [
    "Invoice INV-2041 was paid late by the customer",
    "Invoice INV-2042 was paid early by the customer",
    "Invoice INV-2043 was disputed by the customer",
    "The car needs new tyres before winter",
    "Our physician recommends a morning walk",
    "The staging server reboots every night",
    "Backups of the database run at midnight",
    "The team meets on Mondays to plan the sprint",
]
QUERIES = [  # (query, index of the relevant fact)
    ("INV-2042", 1),
    ("status of INV-2043", 2),
    ("which invoice did the client contest", 2),
    ("automobile wheels for the cold", 3),
    ("doctor advice on exercise", 4),
    ("when does the machine restart", 5),
    ("database copies at night", 6),
    ("sprint planning meeting day", 7),
]


def test_hybrid_fusion_is_never_below_the_better_single_list(tmp_path) -> None:
    with ALMA(project_id="fixed", storage=tmp_path / "f.db", embedder=ConceptEmbedder()) as alma:
        ids = [alma.add_domain_knowledge("bot", "ops", fact).id for fact in FACTS]
        mrr: dict[str, float] = {}
        for mode in ("lexical", "dense", "hybrid"):
            total = 0.0
            for query, wanted in QUERIES:
                got = [m.id for m in alma.retrieve(query, "bot", top_k=8, memory_types=["knowledge"], mode=mode)
                       .knowledge]  # fmt: skip
                total += 1 / (got.index(ids[wanted]) + 1) if ids[wanted] in got else 0.0
            mrr[mode] = total / len(QUERIES)
    assert mrr["hybrid"] >= max(mrr["lexical"], mrr["dense"]), mrr
    assert mrr["hybrid"] == 1.0, mrr
