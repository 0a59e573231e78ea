"""Hybrid fusion is never below the better of its two lists, whichever list is the strong one.

Two fixed sets on a real SQLite store: one where the dense side is weak (an embedder that sees none of
the topic: low, flat, noisy cosines, as a small sentence model gives on long chatty turns) and the
lexical side names the answer, and one where the lexical side is weak (paraphrased queries; the only
shared words are incidental) and the dense side finds the answer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from alma_core import ALMA


class BlindEmbedder:
    """Sees nothing of a text's topic: a component every text shares plus noise from the text's hash,
    so every cosine is low (~0.1) and their differences are noise."""

    name, dim = "blind", 64

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        vec = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        vec /= np.linalg.norm(vec)
        vec[0] += 0.35
        return vec / np.linalg.norm(vec)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


_CONCEPTS = {
    "dog": 0, "puppy": 0, "pet": 0, "vet": 1, "clinic": 1, "doctor": 1, "limping": 2, "paw": 2, "injured": 2,
    "flight": 3, "plane": 3, "airport": 3, "delayed": 4, "late": 4, "lisbon": 5, "portugal": 5, "bakery": 6,
    "bread": 6, "sourdough": 6, "sold": 7, "out": 7, "gone": 7, "garden": 8, "tomatoes": 8, "vegetables": 8,
    "frost": 9, "cold": 9, "killed": 10, "died": 10,
}  # fmt: skip


class ConceptEmbedder:
    """Words of one concept share a dimension (paraphrases match); other words are invisible."""

    name, dim = "concepts", 16

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().replace(",", " ").replace("?", " ").replace(".", " ").split():
            if word in _CONCEPTS:
                vec[_CONCEPTS[word]] += 1.0
        vec[self.dim - 1] += 0.3  # every text shares a little: cosines are never all zero
        return vec / np.linalg.norm(vec)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


# Chatty turns on a few recurring themes: the specifics (a place, a band, a companion) tell them apart.
CHAT = [
    "Maya: crazy week. Orla and I hiked Glencoe Ridge on Saturday, the view from the top was unreal",
    "Maya: I really need a hike soon, the city is getting to me and work has been nonstop",
    "Jonas: that hike sounds tough but amazing, I miss our long chats so much",
    "Maya: we did the hike up Ben Lomond with Ivo, nine hours and my knees are done",
    "Maya: cooked lamb tagine for Orla last night and it actually turned out great",
    "Maya: cooking is the one thing that relaxes me after work these days",
    "Jonas: now I am hungry, your cooking always sounds so good",
    "Maya: tried miso ramen with Ivo and we nearly set off the smoke alarm",
    "Jonas: went to see the Juniper Kings live with Noor, my ears are still ringing",
    "Jonas: concert tickets are so expensive now, Orla says hi by the way",
    "Jonas: Noor got us tickets to Halcyon Drift, best concert of the year",
    "Maya: Glencoe is still on my mind, wild how fast this year is going",
    "Jonas: wait, Ben Nevis or Ben Lomond? tell me everything",
    "Maya: nothing clears my head like a long hike on a ridge",
    "Maya: had lunch with Ivo today, we talked for hours about ramen shops",
    "Jonas: live music just hits different, Noor agrees",
]
CHAT_QUERIES = [  # (query, index of the answering turn): partial word overlap, several near misses
    ("which ridge did Maya hike with Orla", 0),
    ("who climbed Ben Lomond with Maya", 3),
    ("what did Maya cook for Orla", 4),
    ("ramen disaster with Ivo", 7),
    ("Juniper Kings gig companion", 8),
    ("Halcyon Drift tickets from Noor", 10),
]
# Facts whose queries share no topic word with them, among facts sharing the queries' incidental words.
PARAPHRASED = [
    "Our puppy was limping so we took him to the vet",
    "Flight to Lisbon was delayed by three hours",
    "The sourdough at the bakery sold out by nine",
    "Frost killed the tomatoes in the garden",
    "Took the car to the garage for new tyres, what a day",
    "Three hours of meetings, what a day",
    "Nine of us went to the cinema",
    "The neighbours painted their fence green",
    "I called my sister about her birthday plans",
    "Bought new running shoes at the mall",
    "The heating broke again, the landlord is useless",
    "Spent the whole day cleaning the attic, what a mess",
]
PARAPHRASED_QUERIES = [
    ("what day did the dog see a doctor for his injured paw", 0),
    ("which plane to Portugal was late", 1),
    ("what day was the bread gone", 2),
    ("which vegetables died in the cold", 3),
]


def _mrr(alma: ALMA, ids: list[str], queries: list[tuple[str, int]], mode: str) -> float:
    total = 0.0
    for query, wanted in queries:
        got = [m.id for m in alma.retrieve(query, "bot", top_k=10, memory_types=["knowledge"], mode=mode).knowledge]
        total += 1 / (got.index(ids[wanted]) + 1) if ids[wanted] in got else 0.0
    return total / len(queries)


@pytest.mark.parametrize(
    ("embedder", "texts", "queries", "strong"),
    [(BlindEmbedder(), CHAT, CHAT_QUERIES, "lexical"), (ConceptEmbedder(), PARAPHRASED, PARAPHRASED_QUERIES, "dense")],
    ids=["weak-dense", "weak-lexical"],
)
def test_hybrid_is_never_below_the_better_list(
    tmp_path: Path, embedder: object, texts: list[str], queries: list[tuple[str, int]], strong: str
) -> None:
    with ALMA(project_id="fixed", storage=tmp_path / "f.db", embedder=embedder) as alma:
        ids = [alma.add_domain_knowledge("bot", "chat", text).id for text in texts]
        mrr = {mode: _mrr(alma, ids, queries, mode) for mode in ("lexical", "dense", "hybrid")}
    weak = "dense" if strong == "lexical" else "lexical"
    assert mrr[strong] > mrr[weak] + 0.3, mrr  # the set is what it says: one list clearly the better
    assert mrr["hybrid"] >= mrr[strong], mrr


def test_topic_words_of_ascii_text_equal_the_word_pattern_s() -> None:
    """ASCII text takes a translate-and-split path: the same words as `_WORD` (runs of word characters
    with `:.-` inside them, none at their ends), lower-cased, function words dropped, cut to 6."""
    import random
    import string

    from alma_core._fusion import _STOP, _WORD, topic_words

    def by_pattern(text: str) -> frozenset[str]:
        return frozenset(w[:6] for w in map(str.lower, _WORD.findall(text)) if w not in _STOP)

    rng = random.Random(7)
    texts = ["The ID-42 fix: v1.2 (a_b:c) -x- ..y.. a-.-b x: beforehand BEFORE should", "", "!!!", "ÀÉ café Σ"]
    for alphabet in (string.printable, "aZ9_:.- \t|,", string.ascii_letters + " .-"):
        texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    assert all(topic_words.__wrapped__(text) == by_pattern(text) for text in texts)
    assert topic_words("The ID-42 fix: v1.2, before-hand.") == {"id-42", "fix", "v1.2", "before"}
