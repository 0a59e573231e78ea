"""examples/langchain_rag.py runs offline, end to end, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_rag.py"


def test_langchain_rag_example_runs_offline() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "- [knowledge] The login page locks after five failed attempts" in result.stdout
    assert "Answer: Use data-testid selectors" in result.stdout
    assert "Stored chat turns: 2" in result.stdout
    assert "Outcomes learned: 5" in result.stdout
