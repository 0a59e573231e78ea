"""Every example in examples/ runs offline, end to end, as a user would run it (a subprocess each).

The LangChain, LlamaIndex and CrewAI examples are run by their adapters' tests (tests/integrations);
this file runs the others and checks that no example is left untested.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(name: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120,
                            env=env, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_run_by_a_test() -> None:
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    for example in sorted(EXAMPLES.glob("*.py")):
        assert example.name in tests, f"examples/{example.name} is not run by any test"


def test_quickstart_prints_the_learned_strategy() -> None:
    out = run("quickstart.py")
    assert "Before learning: 0 memories" in out
    assert "- Test login form → succeeded using: Tested empty fields, invalid email, valid submission" in out


def test_harness_runs_show_the_prompt_improving_in_each_domain() -> None:
    out = run("harness_runs.py")
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


def test_langgraph_agent_resumes_after_a_crash_and_learns() -> None:
    out = run("langgraph_agent.py")
    assert "child process exited with code 3" in out
    assert "checkpoint found: steps so far ['recall', 'plan'], next ['act']" in out
    assert "resumed: steps ['recall', 'plan', 'act'], outcome 'success'" in out
    assert "outcomes learned for helena: 3" in out
    assert "- Test the checkout form → succeeded using: use data-testid selectors" in out


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_have_a_docstring_saying_how_to_run_them(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    assert text.startswith('"""') and f"python examples/{name}" in text
