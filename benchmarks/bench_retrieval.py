"""Retrieval quality on a labelled set: lexical vs dense vs hybrid (RRF and weighted fusion).

    .venv/bin/python benchmarks/bench_retrieval.py [--embedder local|mock]

Loads benchmarks/data/retrieval_set.json (151 hand-written memories in families of near misses that
differ in exact identifiers; 98 queries: exact-term, paraphrase with no shared topic words, mixed; see
the file's description for how it was written and labelled), stores the memories as domain knowledge and
prints recall@5, recall@10, nDCG@10 and MRR per method, overall and per query kind. Uses local MiniLM
embeddings by default (offline).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from alma_core import ALMA, AlmaConfig

DATA = Path(__file__).parent / "data" / "retrieval_set.json"
METHODS = [
    ("lexical", "lexical", "weighted", 0.6),
    ("dense", "dense", "weighted", 0.6),
    ("hybrid rrf", "hybrid", "rrf", 0.6),
    ("hybrid weighted 0.5", "hybrid", "weighted", 0.5),
    ("hybrid weighted 0.6", "hybrid", "weighted", 0.6),
    ("hybrid weighted 0.7", "hybrid", "weighted", 0.7),
    ("hybrid gated 0.5", "hybrid", "gated", 0.5),
    ("hybrid gated 0.6", "hybrid", "gated", 0.6),
]


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


def run(embedder: str) -> dict[str, dict[str, dict[str, float]]]:
    data = json.loads(DATA.read_text())
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = AlmaConfig(project_id="bench", retrieval={"cache_size": 0, "candidates": 50})
        with ALMA(config=config, storage=Path(tmp) / "r.db", embedder=embedder) as alma:
            for label, fact in data["memories"].items():
                alma.add_domain_knowledge("bench", "ops", fact, metadata={"label": label})
            for name, mode, fusion, weight in METHODS:
                alma.config.retrieval.fusion = fusion
                alma.config.retrieval.dense_weight = weight
                per_kind: dict[str, list[dict[str, float]]] = {}
                for query in data["queries"]:
                    got = alma.retrieve(query["q"], "bench", top_k=10, memory_types=["knowledge"], mode=mode)
                    ranked = [m.metadata["label"] for m in got.knowledge]
                    m = metrics(ranked, set(query["relevant"]))
                    per_kind.setdefault("all", []).append(m)
                    per_kind.setdefault(query["kind"], []).append(m)
                results[name] = {
                    kind: {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} for kind, rows in per_kind.items()
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="local", choices=["local", "mock"])
    args = parser.parse_args()
    results = run(args.embedder)
    for kind in ("all", "exact", "paraphrase", "mixed"):
        print(f"\n{kind} queries ({args.embedder} embeddings)")
        print(f"{'method':<22}{'recall@5':>10}{'recall@10':>11}{'nDCG@10':>9}{'MRR':>7}")
        for name, by_kind in results.items():
            r = by_kind[kind]
            print(f"{name:<22}{r['recall@5']:>10.3f}{r['recall@10']:>11.3f}{r['nDCG@10']:>9.3f}{r['MRR']:>7.3f}")


if __name__ == "__main__":
    main()
