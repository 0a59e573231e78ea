"""examples/llamaindex_agent.py runs offline, end to end, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llamaindex_agent.py"


def test_llamaindex_agent_example_runs_offline() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OPENAI_API_KEY": ""}
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "<alma_memory>" in result.stdout
    assert "- [testing_strategies] The login page locks after five failed attempts" in result.stdout
    assert "Query engine sources: ['The login page locks after five failed attempts'" in result.stdout
    assert "Workflow runs after restoring checkpoint 1: 2" in result.stdout
