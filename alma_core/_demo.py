"""`alma demo`: a scripted multi-agent scenario, offline, on the embedded SQLite store in a temp directory.

Three agents with scopes and sharing work through a deterministic simulated task stream: each task type has
strategies that succeed with fixed probabilities (seeded). Before a task an agent retrieves its memories and
picks the strategy they favour (sometimes exploring); after it, it learns the outcome. Then the demo shows
what formed, a refused out-of-scope write, a shared memory, and the prompt block for a new task.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._alma import ALMA
    from ._slice import MemorySlice

__all__ = ["AGENTS", "TASK_TYPES", "run_demo"]

AGENTS: dict[str, dict[str, object]] = {
    "helena": {
        "domain": "frontend testing",
        "can_learn": ["testing_strategies", "selector_patterns"],
        "cannot_learn": ["backend_logic"],
        "share_with": ["qa_lead"],
    },
    "victor": {
        "domain": "backend",
        "can_learn": ["api_patterns", "database_queries"],
        "cannot_learn": ["frontend_styling"],
        "inherit_from": ["qa_lead"],
    },
    "qa_lead": {"domain": "quality", "can_learn": ["release_checks"]},
}


@dataclass(frozen=True)
class Strategy:
    text: str
    p_success: float
    error: str


@dataclass(frozen=True)
class TaskType:
    agent: str
    name: str
    template: str
    subjects: tuple[str, ...]
    strategies: tuple[Strategy, ...]


TASK_TYPES: tuple[TaskType, ...] = (
    TaskType("helena", "testing_strategies", "Test the {} form validation",
             ("login", "signup", "checkout", "password reset", "profile"), (
        Strategy("Test empty fields, invalid email, then a valid submission", 0.9, "flaky wait on submit"),
        Strategy("Only test the happy path with valid data", 0.3, "missed the empty-email bug"),
        Strategy("Record and replay a manual session", 0.5, "replay broke on a changed field order"),
    )),
    TaskType("helena", "selector_patterns", "Locate the {} button in the UI tests",
             ("submit", "cancel", "delete", "export"), (
        Strategy("Select elements by data-testid attributes", 0.95, "test id missing on a new button"),
        Strategy("Select elements by chained CSS classes", 0.35, "selector broke after a restyle"),
        Strategy("Select elements by XPath position", 0.2, "XPath index shifted when a row was added"),
    )),
    TaskType("victor", "api_patterns", "Add pagination to the {} endpoint",
             ("orders", "users", "invoices", "products"), (
        Strategy("Cursor-based pagination with an opaque token", 0.9, "token not URL-safe"),
        Strategy("Offset and limit pagination", 0.5, "timeouts on deep pages of large tables"),
    )),
    TaskType("victor", "database_queries", "Speed up the {} listing query",
             ("orders", "users", "invoices"), (
        Strategy("Add a composite index on the filter and sort columns", 0.85, "index not used by the planner"),
        Strategy("Cache the whole result set in memory", 0.3, "stale data after writes"),
    )),
    TaskType("qa_lead", "release_checks", "Run the release checks for version 2.{}",
             ("1", "2", "3", "4", "5"), (
        Strategy("Run smoke tests on staging before promoting the release", 0.9, "staging was down"),
        Strategy("Skip staging and watch production metrics", 0.25, "a regression reached users"),
    )),
)  # fmt: skip

_QUIET = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}
EXPLORE = 0.15  # chance of trying a random strategy instead of the remembered best


def choose_strategy(task_type: TaskType, memories: MemorySlice, rng: random.Random) -> Strategy:
    """The strategy with the best smoothed success rate in the retrieved memories (heuristics count as
    evidence, anti-patterns against); untried strategies start at 1/2; sometimes explore at random."""
    wins = dict.fromkeys((s.text for s in task_type.strategies), 1.0)
    trials = dict.fromkeys(wins, 2.0)
    for h in memories.heuristics:
        if h.strategy in wins:
            wins[h.strategy] += h.success_count
            trials[h.strategy] += h.occurrence_count
    for o in memories.outcomes:
        if o.task_type == task_type.name and o.strategy_used in wins:
            wins[o.strategy_used] += o.success
            trials[o.strategy_used] += 1
    for a in memories.anti_patterns:
        for text in wins:
            if text.lower() in a.pattern.lower():
                trials[text] += 2 * a.occurrence_count
    if rng.random() < EXPLORE:
        return rng.choice(task_type.strategies)
    rate = {text: wins[text] / trials[text] for text in wins}
    best = max(rate.values())
    choice = rng.choice(sorted(text for text, r in rate.items() if r == best))
    return next(s for s in task_type.strategies if s.text == choice)


def task_stream(n: int, seed: int) -> Iterator[tuple[TaskType, str]]:
    """A deterministic stream of (task type, task text), cycling through the task types."""
    rng = random.Random(seed)
    for i in range(n):
        task_type = TASK_TYPES[i % len(TASK_TYPES)]
        yield task_type, task_type.template.format(rng.choice(task_type.subjects))


@contextmanager
def _workdir(directory: str | None) -> Iterator[Path]:
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="alma-demo-") as tmp:
            yield Path(tmp)


def _shorten(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_tasks(alma: ALMA, n: int, seed: int) -> list[bool]:
    """Work through the simulated stream: retrieve, pick a strategy, act, learn. Returns the successes."""
    from .cli import ProgressBar

    rng = random.Random(seed + 1)
    results: list[bool] = []
    with ProgressBar(n, "tasks") as bar:
        for task_type, task in task_stream(n, seed):
            memories = alma.retrieve(task, agent=task_type.agent, top_k=20,
                                     memory_types=["heuristic", "outcome", "anti_pattern"])  # fmt: skip
            strategy = choose_strategy(task_type, memories, rng)
            success = rng.random() < strategy.p_success
            alma.learn(
                agent=task_type.agent, task=task, outcome=success, strategy_used=strategy.text,
                task_type=task_type.name, duration_ms=rng.randint(800, 9000),
                error_message=None if success else strategy.error,
            )  # fmt: skip
            results.append(success)
            bar.update()
    return results


def _rate(xs: list[bool]) -> str:
    return f"{100 * sum(xs) / len(xs):.0f}%" if xs else "n/a"


def _section(title: str) -> None:
    print(f"\n== {title}")


def _show_learning(results: list[bool], seed: int) -> None:
    half = len(results) // 2
    first, last = results[:half], results[half:]
    types = [t for t, _ in task_stream(len(results), seed)]
    baseline = sum(sum(s.p_success for s in t.strategies) / len(t.strategies) for t in types) / len(types)
    _section("1. Learning")
    print(f"{len(results)} tasks; before each, the agent retrieves and picks the strategy its memories favour.")
    print(f"success: {_rate(results)} overall, {_rate(first)} in the first {len(first)} tasks, "
          f"{_rate(last)} in the last {len(last)}")  # fmt: skip
    print(f"(a memoryless agent picking strategies at random would expect {100 * baseline:.0f}%)")


def _show_memories(alma: ALMA) -> None:
    from ._models import AntiPattern, Heuristic

    stats = alma.stats()
    _section("2. Memories formed  (alma.stats())")
    counts = [f"{getattr(stats, f)} {f.replace('_', '-')}" for f in ("outcomes", "heuristics", "anti_patterns")]
    counts += [f"{stats.preferences} preferences", f"{stats.knowledge} knowledge"]
    print(f"total {stats.total}: " + ", ".join(counts))
    owners = {("project-wide" if a == "*" else a): n for a, n in stats.by_agent.items()}
    print("by agent: " + ", ".join(f"{a} {n}" for a, n in sorted(owners.items())))
    heuristics = [h for h in alma.list_memories(memory_types=["heuristic"]) if isinstance(h, Heuristic)]
    for h in sorted(heuristics, key=lambda h: -h.confidence)[:4]:
        evidence = f"{h.success_count}/{h.occurrence_count}, confidence {h.confidence:.2f}"
        print(_shorten(f"  heuristic [{h.agent}] {h.strategy} ({evidence})"))
    for a in alma.list_memories(memory_types=["anti_pattern"])[:3]:
        if isinstance(a, AntiPattern):
            print(_shorten(f"  anti-pattern [{a.agent}] {a.pattern}"))


def _show_scope(alma: ALMA) -> None:
    from ._errors import ScopeViolation

    _section("3. Scopes: an out-of-scope write is refused")
    before = alma.stats().total
    try:
        alma.learn(agent="helena", task="Tune the payments database connection pool", outcome="success",
                   strategy_used="Raise the pool size to 50", task_type="backend_logic")  # fmt: skip
        print("unexpected: the write was accepted")
    except ScopeViolation as exc:
        print(f"helena learns a backend_logic task -> ScopeViolation: {exc}")
    print(f"nothing stored: total {before} -> {alma.stats().total}")


def _show_sharing(alma: ALMA) -> None:
    _section("4. Sharing: helena shares with qa_lead")
    task = "Test the checkout form validation before the release"
    found = alma.retrieve(task, agent="qa_lead", top_k=3, memory_types=["heuristic", "outcome"])
    shared = [m for m in found if m.metadata.get("shared_from")]
    print(f"qa_lead retrieves {task!r}: {len(found)} memories, {len(shared)} shared")
    for m in shared[:3]:
        print(_shorten(f"  shared_from={m.metadata['shared_from']!r}: {m.text}"))


def _show_prompt(alma: ALMA) -> None:
    _section("5. Retrieval for a new task, rendered with to_prompt()")
    task = "Test the contact form validation"
    found = alma.retrieve(task, agent="helena", top_k=3, user_id="dana")
    print(f"helena: {task!r} -> {len(found)} memories in {found.retrieval_ms:.1f} ms\n")
    print(found.to_prompt(max_tokens=400))


def _warm_up(alma: ALMA) -> None:
    """Load the embedding model before the task loop, so the progress bar measures the work."""
    if alma.embedder.name == "mock":
        return
    start = time.perf_counter()
    print(f"loading {alma.embedder.name} (offline)...", file=sys.stderr, flush=True)
    alma.embedder.embed_query("warm up")
    print(f"loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def run_demo(embedder: str = "local", tasks: int = 50, seed: int = 7, directory: str | None = None) -> None:
    """Run the scenario and print what ALMA remembered (progress goes to stderr)."""
    from ._alma import ALMA

    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)
    start = time.perf_counter()
    with _workdir(directory) as root, ALMA("demo", AGENTS, storage=root / "alma.db", embedder=embedder) as alma:
        print(f"ALMA demo: 3 agents, {tasks} tasks, {alma.embedder.name} embeddings, store {root / 'alma.db'}")
        for name, cfg in AGENTS.items():
            rules = [f"{k} {cfg[k]}" for k in ("can_learn", "cannot_learn", "share_with", "inherit_from") if k in cfg]
            print(f"  {name:<8} " + ", ".join(rules))
        _warm_up(alma)
        alma.add_domain_knowledge(
            "helena", "testing_strategies", "Form validation errors render in an aria-live region"
        )
        alma.add_user_preference("dana", "Write test names as full sentences", category="testing_strategies")
        results = run_tasks(alma, tasks, seed)
        _show_learning(results, seed)
        _show_memories(alma)
        _show_scope(alma)
        _show_sharing(alma)
        _show_prompt(alma)
    print(f"\ndone in {time.perf_counter() - start:.1f} s" + (f"; store kept in {directory}" if directory else ""))
