"""Choose hybrid fusion on the dev splits of every regime: record each question's candidates once, then
score fusion variants offline (seconds per variant instead of a benchmark run each).

    .venv/bin/python benchmarks/tune_fusion.py --record      # once: ~5 min (MiniLM embeds every turn)
    .venv/bin/python benchmarks/tune_fusion.py               # the variants, worst regime first

Regimes (dev splits only; `bench_retrieval.py --split test` reports): generated + MiniLM (dense strong),
chatty + MiniLM (lexical strong, like real chat logs), generated + mock embedder and chatty + mock (a
weak dense side). Candidates are what ALMA's `SearchMemories` returns for a default hybrid retrieve
(top 50 dense and lexical); a variant re-fuses them with `alma_core._retrieval.fuse`'s arguments, and
the order is relevance, ties by id, as `Retriever.rank` gives for timeless knowledge. The criterion is
the worst regime's recall@10 of hybrid minus max(lexical, dense).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_retrieval import load, metrics

from alma_core import ALMA, AlmaConfig
from alma_core import _retrieval as retrieval

REGIMES = {"generated+minilm": ("generated", "local"), "chatty+minilm": ("chatty", "local"),
           "generated+mock": ("generated", "mock"), "chatty+mock": ("chatty", "mock")}  # fmt: skip
CACHE = Path(tempfile.gettempdir()) / "alma_tune_fusion"


def record(data: str, embedder: str, store: Path) -> list[dict[str, Any]]:
    """Every dev question's fuse() arguments, with labels instead of memory ids (`store`: built on the
    first run, then reused; `bench_retrieval.py --store` reads the same file)."""
    memories, questions = load(data, "dev", None)
    calls: list[tuple[Any, ...]] = []
    original = retrieval.fuse

    def spy(hits: Any, mode: str, fusion: str = "weighted", dense_weight: float = 0.6,
            coverage: Any = None, exact: Any = None) -> dict[str, float]:  # fmt: skip
        calls.append((hits, coverage, exact))
        return original(hits, mode, fusion, dense_weight, coverage, exact)

    out = []
    config = AlmaConfig(project_id="bench", retrieval={"cache_size": 0})
    fresh = not store.exists()
    with ALMA(config=config, storage=store, embedder=embedder) as alma:
        for agent, rows in memories.items() if fresh else ():
            for label, text, at in rows:
                alma.add_domain_knowledge(agent, "chat", text, created_at=at, metadata={"label": label})
        retrieval.fuse = spy  # type: ignore[assignment]
        try:
            for q in questions:
                alma.retrieve(q["q"], q["agent"], top_k=10, memory_types=["knowledge"], mode="hybrid")
                hits, coverage, exact = calls.pop()
                labels = {i: m.metadata["label"] for i, m in hits.memories.items()}
                out.append({**q, "hits": hits, "coverage": coverage, "exact": exact, "label": labels})
        finally:
            retrieval.fuse = original  # type: ignore[assignment]
    return out


def evaluate(rows: list[dict[str, Any]], mode: str, **kwargs: Any) -> float:
    """Mean recall@10 of `fuse(mode, **kwargs)` over recorded questions."""
    defaults = AlmaConfig().retrieval
    kwargs = {"fusion": defaults.fusion, "dense_weight": defaults.dense_weight, **kwargs}
    total = 0.0
    for row in rows:
        rel = retrieval.fuse(row["hits"], mode, coverage=row["coverage"], exact=row["exact"], **kwargs)
        ranked = sorted((i for i in rel if i in row["label"]), key=lambda i: (-rel[i], i))[:10]
        total += metrics([row["label"][i] for i in ranked], set(row["relevant"]))["recall@10"]
    return total / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="(re)record the dev candidates of every regime")
    parser.add_argument("--try", dest="try_", action="append", default=[], help="a variant: key=value,...")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    data: dict[str, list[dict[str, Any]]] = {}
    for name, (corpus, embedder) in REGIMES.items():
        path = CACHE / f"{name}.pkl"
        if args.record or not path.exists():
            path.write_bytes(pickle.dumps(record(corpus, embedder, CACHE / f"{name}.db")))
        data[name] = pickle.loads(path.read_bytes())
    variants: dict[str, dict[str, Any]] = {"default": {}, "rrf": {"fusion": "rrf"}}
    variants.update({f"dense_weight={w}": {"dense_weight": w} for w in (0.4, 0.5, 0.7)})
    for setting in args.try_:
        variants[setting] = {k: float(v) if v[:1].isdigit() else v
                             for k, v in (item.split("=", 1) for item in setting.split(","))}  # fmt: skip
    print(f"{'variant':<30}" + "".join(f"{name:>19}" for name in data) + f"{'worst margin':>14}")
    for name, kwargs in variants.items():
        cells, margins = [], []
        for rows in data.values():
            best_side = max(evaluate(rows, "lexical"), evaluate(rows, "dense"))
            r10 = evaluate(rows, "hybrid", **kwargs)
            cells.append(f"{r10:.3f} ({r10 - best_side:+.3f})")
            margins.append(r10 - best_side)
        print(f"{name:<30}" + "".join(f"{c:>19}" for c in cells) + f"{min(margins):>+14.3f}")


if __name__ == "__main__":
    main()
