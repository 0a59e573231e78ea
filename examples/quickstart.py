"""The Quick Start, runnable: write a config, learn one outcome, retrieve it as a prompt block.
Run: `python examples/quickstart.py` (offline; mock embeddings, so no model is loaded).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alma_core import ALMA

CONFIG = """\
alma:
  project_id: my-project
  storage: sqlite
  storage_dir: .alma
  embedding_provider: mock        # `local` loads all-MiniLM-L6-v2 (offline, slower to start)
  agents:
    helena:
      domain: coding
      can_learn: [testing_strategies, selector_patterns]
      cannot_learn: [backend_logic]
      min_occurrences_for_heuristic: 3
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        Path(".alma").mkdir()
        Path(".alma/config.yaml").write_text(CONFIG, encoding="utf-8")

        # The Quick Start.
        alma = ALMA.from_config(".alma/config.yaml")
        memories = alma.retrieve(task="Test the login form validation", agent="helena", top_k=5)
        print(f"Before learning: {len(memories)} memories")
        alma.learn(
            agent="helena",
            task="Test login form",
            outcome="success",
            strategy_used="Tested empty fields, invalid email, valid submission",
        )
        memories = alma.retrieve(task="Test the login form validation", agent="helena", top_k=5)
        prompt = memories.to_prompt(max_tokens=500)
        print("After one success, the prompt block for the next task:")
        print(prompt)
        alma.close()
        os.chdir(Path(tmp).parent)


if __name__ == "__main__":
    main()
