"""Every example in examples/ runs offline, end to end, as a user would run it (a subprocess each).

The CrewAI example is run by its adapter's tests (tests/integrations/test_crewai_crew.py); this file runs
the others and checks that no example is left untested.
"""

from __future__ import annotations

import re

import pytest
from _helpers import EXAMPLES, ROOT, run_example


def test_every_example_is_run_by_a_test() -> None:
    """An example counts as run when a test calls `run_example` with its name, or when it is one of
    EXPECTED's keys (run by test_example_prints_what_it_shows); a mention in a comment does not count."""
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    run = set(re.findall(r"run_example\(\s*\"([^\"]+)\"", tests)) | set(EXPECTED)
    missing = sorted(example.name for example in EXAMPLES.glob("*.py") if example.name not in run)
    assert not missing, f"examples not run by any test: {missing}"


# What each example must print (harness_runs.py, checked block by block, has its own test below).
EXPECTED = {
    "quickstart.py": [
        "Before learning: 0 memories",
        "- Test login form → succeeded using: Tested empty fields, invalid email, valid submission",
    ],
    "langgraph_agent.py": [  # resumes after a crash and learns
        "child process exited with code 3",
        "checkpoint found: steps so far ['recall', 'plan'], next ['act']",
        "resumed: steps ['recall', 'plan', 'act'], outcome 'success'",
        "outcomes learned for helena: 3",
        "- Test the checkout form → succeeded using: use data-testid selectors",
    ],
    "langchain_rag.py": [  # memories in the prompt, a stored chat history, the run learned
        "- [knowledge] The login page locks after five failed attempts",
        "Answer: Use data-testid selectors",
        "Stored chat turns: 2",
        "Outcomes learned: 5",
    ],
    "llamaindex_agent.py": [  # a memory block in the agent's prompt, a query engine, a restored workflow
        "<alma_memory>",
        "- [testing_strategies] The login page locks after five failed attempts",
        "Query engine sources: ['The login page locks after five failed attempts'",
        "Workflow runs after restoring checkpoint 1: 2",
    ],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_prints_what_it_shows(name: str) -> None:
    out = run_example(name)
    missing = [line for line in EXPECTED[name] if line not in out]
    assert not missing, f"examples/{name} did not print {missing}:\n{out}"


def test_harness_runs_show_the_prompt_improving_in_each_domain() -> None:
    out = run_example("harness_runs.py")
    blocks = re.findall(r"--- prompt memory at run (\d) ---\n(.*?)\n---", out, flags=re.S)
    assert [run for run, _ in blocks] == ["1", "5"] * 3
    for domain, bad, good in [
        ("coding", "use xpath selectors", "use data-testid selectors"),
        ("research", "keyword search only", "snowball from a survey's citations"),
        ("customer_support", "ask the customer to retry", "check the payment log first"),
    ]:
        assert f"=== {domain}:" in out
        assert f"run 1: {bad} -> failure" in out and f"run 5: {good} -> success" in out
        assert f"confidence in {good!r}" in out or f'confidence in "{good}"' in out
    for run_no, block in blocks:
        if run_no == "1":
            assert block == "(no memories yet)"
        else:
            assert "### Avoid\n- Don't:" in block and "### Strategies that worked\n- When" in block


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_have_a_docstring_saying_how_to_run_them(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    assert text.startswith('"""') and f"python examples/{name}" in text
