"""Three harnesses (coding, research, customer support), five runs each: watch the prompt get better.
Run: `python examples/harness_runs.py` (offline; deterministic simulated executors, mock embeddings).

Each simulated executor starts with a plausible but bad strategy and switches only when its prompt warns
against it. Run 1's prompt has no memory; by run 5 it carries the anti-pattern (with why and what to do
instead) and the heuristic that formed from the good strategy's successes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alma_core import ConfidenceEngine, Context, DomainMemoryFactory, Setting, create_harness


@dataclass(frozen=True)
class Scenario:
    domain: str
    agent: str
    category: str
    task: str
    bad: str
    error: str
    good: str
    tools: tuple[str, ...]


SCENARIOS = [
    Scenario("coding", "helena", "testing_strategies", "Test the checkout form",
             "use xpath selectors", "selector broke after a CSS refactor", "use data-testid selectors",
             ("playwright", "pytest")),
    Scenario("research", "scout", "literature_review_patterns", "Review papers on retrieval-augmented generation",
             "keyword search only", "missed the seminal papers", "snowball from a survey's citations",
             ("scholar_search", "pdf_reader")),
    Scenario("customer_support", "sam", "resolution_patterns", "Resolve a failed-payment ticket",
             "ask the customer to retry", "customer retried and was charged twice", "check the payment log first",
             ("billing_console", "kb_search")),
]  # fmt: skip


def simulated_executor(scenario: Scenario) -> Any:
    """Deterministic: the bad strategy until the prompt says not to, then the good one."""

    def execute(prompt: str, context: Context) -> dict[str, str]:
        if f"Don't: {scenario.bad}" in prompt:
            return {"output": f"Done with: {scenario.good}", "strategy": scenario.good}
        return {"output": f"FAILED: {scenario.error}", "strategy": scenario.bad}

    return execute


def evaluator(context: Context, output: str) -> tuple[bool, str | None]:
    """A domain check: the executor reports FAILED: <why> when the task did not work."""
    return (False, output.removeprefix("FAILED: ")) if output.startswith("FAILED") else (True, None)


def memory_block(prompt: str) -> str:
    start = prompt.find("## What you learned")
    return prompt[start : prompt.index("## Task")].strip() if start >= 0 else "(no memories yet)"


def main() -> None:
    factory = DomainMemoryFactory()
    with tempfile.TemporaryDirectory() as tmp:
        for s in SCENARIOS:
            agents = {s.agent: {"can_learn": [s.category], "min_occurrences_for_heuristic": 2}}
            with factory.create_alma(s.domain, "harness-demo", agents, Path(tmp) / f"{s.domain}.db", "mock") as alma:
                setting = Setting(s.domain, f"Simulated {s.domain} environment.", list(s.tools))
                harness = create_harness(
                    s.domain, s.agent, alma, executor=simulated_executor(s), setting=setting, evaluator=evaluator
                )
                print(f"=== {s.domain}: {s.agent} — {s.task}")
                for run in range(1, 6):
                    result = harness.run(Context(task=s.task))
                    verdict = "success" if result.success else f"failure ({result.error})"
                    print(f"run {run}: {result.strategy} -> {verdict}")
                    if run in (1, 5):
                        print(f"--- prompt memory at run {run} ---\n{memory_block(result.prompt)}\n---")
                engine = ConfidenceEngine(alma)
                for strategy in (s.bad, s.good):
                    signal = engine.assess_strategy(strategy, s.task, s.agent)
                    print(f"confidence in {strategy!r}: {signal.confidence_score:.2f} ({signal.recommendation})")
                print()


if __name__ == "__main__":
    main()
