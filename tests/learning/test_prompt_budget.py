"""`MemorySlice.to_prompt`: never over budget, and the most valuable items survive truncation."""

from __future__ import annotations

import random

from alma_core import ALMA, MemoryType, estimate_tokens


def _fill(alma: ALMA) -> None:
    rng = random.Random(3)
    words = ["login", "form", "selector", "timeout", "retry", "network", "cache", "token", "database", "fixture", "api"]
    for i in range(12):
        text = " ".join(rng.choices(words, k=rng.randint(3, 30)))
        alma.learn("bot", f"task {i} {text}", i % 3 != 0, strategy_used=f"strategy {i % 4} {text[:40]}",
                   task_type="web", error_message="boom " * (i % 5))  # fmt: skip
        alma.add_domain_knowledge("bot", "web", f"fact {i}: {text}")
    alma.add_user_preference("u1", "Prefer short answers about login form tokens")


def test_to_prompt_never_exceeds_random_budgets(open_alma: ALMA) -> None:
    _fill(open_alma)
    memories = open_alma.retrieve("login form token", "bot", top_k=10, user_id="u1")
    rng = random.Random(11)
    counters = [estimate_tokens, lambda s: len(s.split()), len]
    for _ in range(300):
        budget = rng.randint(0, 800)
        counter = rng.choice(counters)
        include = rng.choice([None, ["heuristic", "outcome"], [MemoryType.ANTI_PATTERN, MemoryType.KNOWLEDGE]])
        text = memories.to_prompt(max_tokens=budget, include=include, token_counter=counter)
        assert counter(text) <= budget


def test_the_most_valuable_items_survive(open_alma: ALMA) -> None:
    _fill(open_alma)
    memories = open_alma.retrieve("login form token", "bot", top_k=10, user_id="u1")
    full = memories.to_prompt()
    tight = memories.to_prompt(max_tokens=estimate_tokens(full) // 3)
    assert tight and len(tight) < len(full)
    best = max(memories.knowledge, key=lambda m: m.score or 0)
    worst_outcome = min(memories.outcomes, key=lambda m: m.score or 0)
    assert best.fact in tight
    assert worst_outcome.task not in tight


def test_include_limits_sections(open_alma: ALMA) -> None:
    _fill(open_alma)
    memories = open_alma.retrieve("login form token", "bot", user_id="u1")
    text = memories.to_prompt(include=["preference"])
    assert "User preferences" in text and "Domain knowledge" not in text
