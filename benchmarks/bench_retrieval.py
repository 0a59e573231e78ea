"""Retrieval quality: ALMA's lexical, dense and hybrid modes beside a stand-alone BM25 and a plain dense search.

    .venv/bin/python benchmarks/bench_retrieval.py [--split test|dev] [--embedder local|local-float32|mock]
    .venv/bin/python benchmarks/bench_retrieval.py --data chatty          # the lexical-strong regime
    .venv/bin/python benchmarks/bench_retrieval.py --data handwritten     # the old in-sample set

Data: `gen_conversations.py` (seeded multi-session conversations, timestamps over 6-12 months, every
user turn a memory; dense-strong with MiniLM) or `gen_chatty.py` (`--data chatty`: long chatty turns
of two friends on a few recurring themes, questions naming specifics; lexical-strong, like real chat
logs); `dev` to choose parameters, `test` to report. All conversations of a split live in
one store (one agent per conversation, so BM25 statistics are store-wide, as in a real store) and each
question searches its own conversation. Every method sees the same texts and the same question:

  lexical / dense / hybrid   ALMA `retrieve(mode=...)`, default ranking (timeless knowledge)
  hybrid rrf                 ALMA hybrid with reciprocal-rank fusion
  hybrid, knowledge ages     ALMA hybrid with `timeless_types=[]`: 30-day recency on every turn
  bm25s                      stand-alone BM25 (bm25s, snowball English stemmer, English stop words)
  plain dense                the same embedder's cosine top-k, no scoring

Prints recall@5, recall@10, nDCG@10 and MRR (binary gains), overall and per question kind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import gen_chatty
import gen_conversations
import numpy as np

from alma_core import ALMA, AlmaConfig

HANDWRITTEN = Path(__file__).parent / "data" / "retrieval_set.json"
# name -> (mode, overrides of RetrievalConfig)
ALMA_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "lexical": ("lexical", {}),
    "dense": ("dense", {}),
    "hybrid (default)": ("hybrid", {}),
    "hybrid rrf": ("hybrid", {"fusion": "rrf"}),
    "hybrid, knowledge ages": ("hybrid", {"timeless_types": []}),
}
Ranker = Callable[[str, str], list[str]]  # (agent, question) -> memory labels, best first


def metrics(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    """recall@5, recall@10, nDCG@10 (binary gains) and reciprocal rank of one query."""
    dcg = sum(1 / math.log2(i + 2) for i, label in enumerate(ranked[:10]) if label in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    rr = next((1 / (i + 1) for i, label in enumerate(ranked) if label in relevant), 0.0)
    return {
        "recall@5": len(set(ranked[:5]) & relevant) / len(relevant),
        "recall@10": len(set(ranked[:10]) & relevant) / len(relevant),
        "nDCG@10": dcg / ideal,
        "MRR": rr,
    }


def load(data: str, split: str, n: int | None) -> tuple[dict[str, list[tuple[str, str, Any]]], list[dict[str, Any]]]:
    """Memories per agent [(label, text, created_at)] and questions [{agent, q, kind, relevant}]."""
    if data == "handwritten":
        raw = json.loads(HANDWRITTEN.read_text())
        memories = {"bench": [(label, text, None) for label, text in raw["memories"].items()]}
        return memories, [{"agent": "bench", "q": q["q"], "kind": q["kind"], "relevant": q["relevant"]}
                          for q in raw["queries"]]  # fmt: skip
    memories, questions = {}, []
    generator = {"generated": gen_conversations, "chatty": gen_chatty}[data]
    for conv in generator.conversations(split, n) if n else generator.conversations(split):
        memories[conv.id] = [(t.id, t.text, t.at) for t in conv.turns]
        questions += [{"agent": conv.id, "q": q.text, "kind": q.kind, "relevant": q.evidence} for q in conv.questions]
    return memories, questions


def alma_ranker(alma: ALMA, mode: str, overrides: dict[str, Any]) -> Ranker:
    defaults = AlmaConfig().retrieval.model_dump()

    def rank(agent: str, question: str) -> list[str]:
        for key, value in {**defaults, "cache_size": 0, **overrides}.items():
            setattr(alma.config.retrieval, key, value)
        got = alma.retrieve(question, agent, top_k=10, memory_types=["knowledge"], mode=mode)
        return [m.metadata["label"] for m in got.knowledge]

    return rank


def bm25_ranker(memories: dict[str, list[tuple[str, str, Any]]]) -> Ranker:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    indexes = {}
    for agent, rows in memories.items():
        index = bm25s.BM25()
        index.index(bm25s.tokenize([text for _, text, _ in rows], stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)  # fmt: skip
        indexes[agent] = (index, [label for label, _, _ in rows])

    def rank(agent: str, question: str) -> list[str]:
        index, labels = indexes[agent]
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False)
        if not tokens.vocab:
            return []
        ids, scores = index.retrieve(tokens, k=min(10, len(labels)), show_progress=False)
        return [labels[i] for i, s in zip(ids[0], scores[0], strict=True) if s > 0]

    return rank


def dense_ranker(alma: ALMA, memories: dict[str, list[tuple[str, str, Any]]]) -> Ranker:
    matrices = {agent: (alma.embedder.embed_documents([t for _, t, _ in rows]), [label for label, _, _ in rows])
                for agent, rows in memories.items()}  # fmt: skip

    def rank(agent: str, question: str) -> list[str]:
        matrix, labels = matrices[agent]
        sims = matrix @ alma.embedder.embed_query(question)
        return [labels[i] for i in np.argsort(-sims, kind="stable")[:10]]

    return rank


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, dict[str, float]]], int, int]:
    memories, questions = load(args.data, args.split, args.n)
    results: dict[str, dict[str, dict[str, float]]] = {}
    methods = dict(ALMA_METHODS)
    for setting in args.try_:  # extra hybrid variants: key=value[,key=value]
        overrides = dict(item.split("=", 1) for item in setting.split(","))
        methods[f"hybrid {setting}"] = ("hybrid", {k: json.loads(v) if v[:1] in "[0123456789" else v
                                                   for k, v in overrides.items()})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config = AlmaConfig(project_id="bench", retrieval={"cache_size": 0})
        path = Path(args.store) if args.store else Path(tmp) / "r.db"
        fresh = not path.exists()
        with ALMA(config=config, storage=path, embedder=args.embedder) as alma:
            start = time.perf_counter()
            for agent, rows in memories.items() if fresh else ():
                for label, text, at in rows:
                    alma.add_domain_knowledge(agent, "chat", text, created_at=at, metadata={"label": label})
            print(f"stored {sum(len(r) for r in memories.values())} memories in {time.perf_counter() - start:.0f} s")
            rankers: dict[str, Ranker] = {name: alma_ranker(alma, mode, o) for name, (mode, o) in methods.items()}
            rankers["bm25s (stand-alone)"] = bm25_ranker(memories)
            rankers["plain dense"] = dense_ranker(alma, memories)
            if args.only:
                rankers = {name: r for name, r in rankers.items() if any(o in name for o in args.only.split(","))}
            for name, ranker in rankers.items():
                per_kind: dict[str, list[dict[str, float]]] = {}
                for q in questions:
                    m = metrics(ranker(q["agent"], q["q"]), set(q["relevant"]))
                    per_kind.setdefault("all", []).append(m)
                    per_kind.setdefault(q["kind"], []).append(m)
                results[name] = {
                    kind: {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} for kind, rows in per_kind.items()
                }
    return results, sum(len(r) for r in memories.values()), len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="generated", choices=["generated", "chatty", "handwritten"])
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--n", type=int, help="conversations of the split (default: generated 12, chatty 6)")
    parser.add_argument("--embedder", default="local", choices=["local", "local-int8", "local-float32", "mock"],
                        help="local: int8 on onnxruntime (its default); local-float32: the exact model")  # fmt: skip
    parser.add_argument("--store", help="reuse this store file (built on the first run) instead of a fresh one")
    parser.add_argument("--only", help="comma-separated substrings of the method names to run")
    parser.add_argument("--try", dest="try_", action="append", default=[], help="a hybrid variant: key=value,...")
    args = parser.parse_args()
    results, n_memories, n_questions = run(args)
    defaults = AlmaConfig().retrieval
    source = "handwritten set (in-sample)" if args.data == "handwritten" else f"{args.data}, split {args.split}"
    print(
        f"{source}: {n_memories} memories, {n_questions} questions, {args.embedder} embeddings; ALMA defaults:"
        f" fusion={defaults.fusion} dense_weight={defaults.dense_weight} candidates={defaults.candidates}"
        f" w_relevance={defaults.w_relevance} recency_half_life_days={defaults.recency_half_life_days}"
        f" timeless_types={defaults.timeless_types}; every method: top 10 of the question's conversation"
    )
    kinds = ["all", *sorted({k for by_kind in results.values() for k in by_kind} - {"all"})]
    for kind in kinds:
        print(f"\n{kind} questions")
        print(f"{'method':<26}{'recall@5':>10}{'recall@10':>11}{'nDCG@10':>9}{'MRR':>7}")
        for name, by_kind in results.items():
            r = by_kind.get(kind)
            if r:
                print(f"{name:<26}{r['recall@5']:>10.3f}{r['recall@10']:>11.3f}{r['nDCG@10']:>9.3f}{r['MRR']:>7.3f}")


if __name__ == "__main__":
    main()
