"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OPENAI_API_KEY": ""}


def run_example(name: str, *args: str) -> str:
    """Run `python examples/<name> ARGS` from the repository root, offline, as a user would; its stdout.
    A non-zero exit fails the calling test with the example's stderr."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env={**os.environ, **OFFLINE},
                            capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout
