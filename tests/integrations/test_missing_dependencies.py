"""Each adapter, without its framework, raises `MissingDependency` naming the package and the extra to install.

Run in a fresh interpreter where the framework's module cannot be imported (`sys.modules[name] = None`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize(
    ("blocked", "setup", "statement", "expected"),
    [
        ("langchain_core", "", "import alma_langchain", ["langchain-core", "langchain"]),
        ("llama_index.core", "", "import alma_llamaindex", ["llama-index-core", "llamaindex"]),
        ("langgraph", "", "import alma_langgraph", ["langgraph", "langgraph"]),
        ("crewai", "import alma_crewai", "alma_crewai.AlmaStorage", ["crewai", "crewai"]),  # the import is lazy
    ],
)
def test_a_missing_framework_names_its_extra(blocked: str, setup: str, statement: str, expected: list[str]) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{blocked!r}] = None
        from alma_core import MissingDependency
        {setup}
        try:
            {statement}
        except MissingDependency as exc:
            print(exc.package, exc.extra)
        """
    )
    # Any other exception (a plain ImportError, or one in `setup`) exits non-zero and fails the test.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == expected
