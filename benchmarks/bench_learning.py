"""Agent-learning benchmark: does memory make a simulated agent pick better strategies over time?

    .venv/bin/python benchmarks/bench_learning.py [--seeds 20] [--tasks 60] [--embedder mock|local]

Regenerated from a seed. Six task types with eight strategies each have hidden success rates (0.9 down
to 0.05, shuffled per seed); the best one of each type degrades half-way through the stream (its rate
drops to 0.15: drift), and failures carry error labels: each strategy's usual error (shared by some
strategies, so errors recur across strategies) 75% of the time, any error otherwise. An agent works
through the shuffled stream: before each task it picks a strategy (explores at random 20% of the time,
otherwise follows its policy), then `learn()`s the outcome, writing the strategy in a random surface
form (case, punctuation, word order).

Policies, each with its own store:
  no-memory   random strategy
  dense-only  "store embeddings, retrieve similar": the strategy of the best-ranked successful past
              outcome from dense retrieval (no learning protocol)
  lexical     the same with lexical (BM25) retrieval
  alma        ALMA's learned heuristics (hybrid retrieval): the top-ranked heuristic's strategy
  alma-flat   the top item of one flat ranking of every type (`MemorySlice.ranked()`, what AlmaRetriever
              returns): a heuristic's strategy or a successful outcome's; no pick for anything else

Metrics. The policy is probed for "a new task" of each type at 60, 70, 80, 90 and 100% of the stream
(the degradation happens at 50%): best@1 = the pick is the truly best strategy now, stale = the pick is
the degraded strategy (so "late" includes the first few tasks after the change: it measures how fast a
degraded strategy loses its rank; "end" is the last probe only). Anti-pattern recall (known-bad
strategies that surface as live anti-patterns of their task type; for alma-flat: as strategy warnings in
the flat top 10 for a new task of the type, i.e. recall@10) and duplicates (extra heuristics of
one strategy) are measured at the end. Each figure is a mean over seeds with a 95% confidence interval
(normal approximation over the per-seed means, so probes of one run are not counted as independent).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alma_core import ALMA, AlmaConfig, AntiPattern
from alma_core._learning import normalise_strategy

TYPES = {
    "checkout_tests": ("checkout form test", ["use data-testid selectors", "wait for network idle", "retry the click",
                                              "add fixed sleeps", "take screenshots on every step",
                                              "mock the payment provider", "run headless in parallel",
                                              "record and replay the session"]),
    "api_retries": ("payment api call", ["exponential backoff with jitter", "circuit breaker on the client",
                                         "retry immediately in a loop", "raise the request timeout",
                                         "queue the request for later", "idempotency keys on every call",
                                         "fail over to the secondary region", "cache the last good response"]),
    "db_migrations": ("schema migration deploy", ["expand then contract migration", "online index build",
                                                  "lock the table during migration", "drop and recreate columns",
                                                  "migrate in a maintenance window", "dual writes behind a flag",
                                                  "backfill in small batches", "copy the table and swap names"]),
    "report_queries": ("sales report query", ["add a covering index", "materialised summary table",
                                              "select star then filter in python", "increase the statement timeout",
                                              "paginate with offset", "keyset pagination",
                                              "precompute nightly aggregates", "run it on the read replica"]),
    "log_triage": ("production error log triage", ["group by stack trace fingerprint", "grep the raw logs by hand",
                                                   "sample one percent of events", "alert on every new message",
                                                   "correlate with the deploy timeline", "restart the service first",
                                                   "ask the on-call channel", "bisect recent commits"]),
    "image_pipeline": ("thumbnail generation job", ["resize with a streaming decoder", "load the whole file in memory",
                                                    "process on the request thread", "batch through a task queue",
                                                    "cache thumbnails on the cdn", "shell out to an external tool",
                                                    "use a fixed worker pool", "convert everything to png"]),
}  # fmt: skip
RATES = [0.9, 0.75, 0.6, 0.45, 0.3, 0.15, 0.1, 0.05]
ERRORS = ["TimeoutError after 30s", "Element detached from DOM", "deadlock detected", "HTTP 503 from upstream",
          "MemoryError in worker", "permission denied on /var/data"]  # fmt: skip


@dataclass
class World:
    """Hidden success rates per (type, strategy), with one degrading strategy per type."""

    rates: dict[str, list[float]]
    degrading: dict[str, int]

    @classmethod
    def make(cls, rng: random.Random) -> World:
        rates, degrading = {}, {}
        for task_type, (_, strategies) in TYPES.items():
            values = list(RATES)
            rng.shuffle(values)
            rates[task_type] = values
            degrading[task_type] = values.index(0.9)
            assert len(values) == len(strategies)
        return cls(rates, degrading)

    def rate(self, task_type: str, index: int, late: bool) -> float:
        if late and index == self.degrading[task_type]:
            return 0.15
        return self.rates[task_type][index]

    def best(self, task_type: str, late: bool) -> int:
        return max(range(len(RATES)), key=lambda i: self.rate(task_type, i, late))


def surface(rng: random.Random, text: str) -> str:
    """The same strategy as an agent might write it."""
    words = text.split()
    if rng.random() < 0.3:
        rng.shuffle(words)
    out = " ".join(words)
    out = rng.choice([out, out.capitalize(), out.upper(), out.title()])
    return out + rng.choice(["", ".", "!", " ;"])


def pick(alma: ALMA | None, policy: str, task: str, task_type: str) -> int | None:
    """The strategy index the policy would use for `task`, or None when it has no opinion."""
    strategies = TYPES[task_type][1]
    keys = [normalise_strategy(s) for s in strategies]
    if alma is None:
        return None
    if policy == "alma-flat":  # the top of one flat ranking, as AlmaRetriever and merging clients see it
        for memory in alma.retrieve(task, "agent", top_k=10).ranked(1):
            strategy = getattr(memory, "strategy", None) or getattr(memory, "strategy_used", None)
            is_lesson = memory.memory_type.value == "heuristic" or getattr(memory, "success", False)
            if strategy and is_lesson and normalise_strategy(strategy) in keys:
                return keys.index(normalise_strategy(strategy))
        return None
    if policy == "alma":
        for h in alma.retrieve(task, "agent", top_k=5, memory_types=["heuristic"], mode="hybrid").heuristics:
            if h.task_type == task_type and normalise_strategy(h.strategy) in keys:
                return keys.index(normalise_strategy(h.strategy))
        return None
    mode = "dense" if policy == "dense-only" else "lexical"
    for o in alma.retrieve(task, "agent", top_k=10, memory_types=["outcome"], mode=mode).outcomes:
        if o.success and o.task_type == task_type and normalise_strategy(o.strategy_used) in keys:
            return keys.index(normalise_strategy(o.strategy_used))
    return None


PROBES = (0.6, 0.7, 0.8, 0.9, 1.0)


def probe(alma: ALMA | None, policy: str, world: World, rng: random.Random) -> tuple[float, float]:
    """(best@1, stale) of the policy's picks for a new task of each type, averaged over the types."""
    best = stale = 0
    for task_type, (noun, _) in TYPES.items():
        choice = pick(alma, policy, f"{noun} for a new customer", task_type)
        index = rng.randrange(len(RATES)) if choice is None else choice
        best += index == world.best(task_type, True)
        stale += index == world.degrading[task_type]
    return best / len(TYPES), stale / len(TYPES)


def simulate(
    policy: str,
    seed: int,
    tasks_per_type: int,
    embedder: str,
    root: Path,
    learning: dict[str, float] | None = None,
    min_occurrences: int | None = None,
) -> dict[str, float]:
    rng = random.Random(seed)
    probe_rng = random.Random(seed + 10_000)  # probes never shift the stream's random draws
    world = World.make(rng)
    stream = [t for t in TYPES for _ in range(tasks_per_type)]
    rng.shuffle(stream)
    agents = {} if min_occurrences is None else {"agent": {"min_occurrences_for_heuristic": min_occurrences}}
    config = AlmaConfig(project_id="bench", retrieval={"cache_size": 0}, learning=learning or {}, agents=agents)
    alma = None if policy == "no-memory" else ALMA(config=config, storage=root / f"{policy}-{seed}.db",
                                                   embedder=embedder)  # fmt: skip
    probe_at = {round(p * len(stream)) - 1: p for p in PROBES}
    late_best: list[float] = []
    late_stale: list[float] = []
    for n, task_type in enumerate(stream):
        late = n >= len(stream) // 2
        noun, strategies = TYPES[task_type]
        task = f"{noun} #{n}"
        choice = pick(alma, policy, task, task_type) if rng.random() >= 0.2 else None
        index = rng.randrange(len(RATES)) if choice is None else choice
        ok = rng.random() < world.rate(task_type, index, late)
        if alma is not None:
            own = ERRORS[(index + len(task_type)) % len(ERRORS)]  # each strategy's usual error, shared by some
            error = None if ok else own if rng.random() < 0.75 else rng.choice(ERRORS)
            alma.learn("agent", task, ok, strategy_used=surface(rng, strategies[index]), task_type=task_type,
                       error_message=error)  # fmt: skip
        if n in probe_at:
            b, st = probe(alma, policy, world, probe_rng)
            late_best.append(b)
            late_stale.append(st)
    result = {"best@1": sum(late_best) / len(late_best), "stale": sum(late_stale) / len(late_stale),
              "best@1 end": late_best[-1], "stale end": late_stale[-1], "ap_recall": 0.0,
              "duplicates": 0.0}  # fmt: skip
    bad_total = bad_found = 0
    for task_type, (_, strategies) in TYPES.items():
        bad = {normalise_strategy(strategies[i]) for i in range(len(RATES)) if world.rate(task_type, i, True) <= 0.15}
        bad_total += len(bad)
        if alma is not None and policy == "alma":  # baselines never consult anti-patterns
            antis = alma.list_memories(agent="agent", memory_types=["anti_pattern"])
            live = {normalise_strategy(a.pattern) for a in antis if a.task_type == task_type  # type: ignore[union-attr]
                    and not a.metadata.get("retired")}  # fmt: skip
            bad_found += len(bad & live)
        if alma is not None and policy == "alma-flat":  # warnings about bad strategies in the flat top 10
            top = alma.retrieve(f"{TYPES[task_type][0]} for a new customer", "agent", top_k=10).ranked(10)
            shown = {normalise_strategy(m.pattern) for m in top if isinstance(m, AntiPattern)
                     and m.task_type == task_type and m.metadata.get("kind") != "recurring_error"}  # fmt: skip
            bad_found += len(bad & shown)
    if alma is not None:
        heuristics = alma.list_memories(agent="agent", memory_types=["heuristic"])
        keys = [(h.task_type, normalise_strategy(h.strategy)) for h in heuristics]  # type: ignore[union-attr]
        result["duplicates"] = len(keys) - len(set(keys))
        alma.close()
    result["ap_recall"] = bad_found / bad_total if bad_total else 0.0
    return result


def summary(values: list[float]) -> str:
    """mean +- the 95% confidence half-width (normal approximation over seeds)."""
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return f"{mean:.2f}+-{half:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=60, help="tasks per task type")
    parser.add_argument("--embedder", default="mock", choices=["mock", "local"])
    parser.add_argument("--split", default="test", choices=["dev", "test"], help="seeds 1000+ (dev) or 0+ (test)")
    parser.add_argument("--policies", default="no-memory,dense-only,lexical,alma,alma-flat", help="comma-separated")
    parser.add_argument("--learning", default="", help="LearningConfig overrides: key=value,...")
    parser.add_argument("--min-occurrences", type=int, help="successes before a strategy becomes a heuristic")
    args = parser.parse_args()
    learning = {k: float(v) for k, v in (item.split("=", 1) for item in args.learning.split(",") if item)}
    print(
        f"{len(TYPES)} task types x {len(RATES)} strategies, {args.tasks} tasks per type, {args.seeds} {args.split}"
        f" seeds, {args.embedder} embeddings, ALMA defaults"
        + (f" but learning {learning}" if learning else "")
        + (f", min_occurrences_for_heuristic {args.min_occurrences}" if args.min_occurrences else "")
    )
    columns = ("best@1", "stale", "best@1 end", "stale end", "ap_recall")
    print(f"{'policy':<12}" + "".join(f"{c:>13}" for c in columns) + f"{'duplicates':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for policy in args.policies.split(","):
            seeds = range(args.seeds) if args.split == "test" else range(1000, 1000 + args.seeds)
            runs = [simulate(policy, seed, args.tasks, args.embedder, Path(tmp), learning, args.min_occurrences)
                    for seed in seeds]  # fmt: skip
            cells = "".join(f"{summary([r[c] for r in runs]):>13}" for c in columns)
            print(f"{policy:<12}{cells}{sum(r['duplicates'] for r in runs):>12.0f}")


if __name__ == "__main__":
    main()
