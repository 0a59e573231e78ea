"""Every ```python block of the seed README (ALMA v0.6.0) runs against alma_core as written.

The only change is the package name (`alma` -> `alma_core`). A block gets from outside only what it takes
from outside: a config file in the working directory, an `alma` where it uses one without creating it,
`my_llm_client` as a LangChain fake chat model, and the few names it uses without defining them.
"""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _fake_models import fake_chat_model
from _helpers import python_blocks, run_block

from alma_core import ALMA

README_NAME = "ALMA-v0.6.0-README.md"


def _find_readme() -> Path | None:
    """`shared/seed/<README>` beside the clone (or beside any parent of it, for git worktrees)."""
    if os.environ.get("ALMA_SEED_README"):
        return Path(os.environ["ALMA_SEED_README"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "seed" / README_NAME
        if candidate.is_file():
            return candidate
    return None


README = _find_readme()


def _blocks() -> list[tuple[str, str]]:
    """(title, code) of every python block, titled by the nearest heading above it."""
    if README is None:
        return []
    return [(block.title, block.code) for block in python_blocks(README.read_text(encoding="utf-8"))]


def _rename(code: str) -> str:
    """`alma` -> `alma_core` in imports and in logger names (the seed's only package-name uses)."""
    code = re.sub(r"^(\s*)from alma(\.| )", r"\1from alma_core\2", code, flags=re.M)
    code = re.sub(r"^(\s*)import alma\b", r"\1import alma_core", code, flags=re.M)
    return code.replace('getLogger("alma")', 'getLogger("alma_core")')


BLOCKS = _blocks()

# The seed's own Configuration block, verbatim but for `embedding_provider: mock` (one of the seed's own
# choices; MiniLM takes ~30 s to load here). helena shares with qa_lead and victor inherits from
# senior_architect, neither of which it defines.
SEED_CONFIG = """\
alma:
  project_id: "my-project"
  storage: sqlite  # sqlite | postgres | qdrant | pinecone | chroma | azure | file
  embedding_provider: mock  # local | azure | mock
  storage_dir: .alma
  db_name: alma.db
  embedding_dim: 384

  agents:
    helena:
      domain: coding
      can_learn:
        - testing_strategies
        - selector_patterns
      cannot_learn:
        - backend_logic
      min_occurrences_for_heuristic: 3
      share_with: [qa_lead]  # Share memories with QA lead

    victor:
      domain: coding
      can_learn:
        - api_patterns
        - database_queries
      cannot_learn:
        - frontend_selectors
      inherit_from: [senior_architect]  # Learn from senior architect
"""

# The seed's Multi-Agent Memory Sharing block (qa_agent is not defined there either).
SHARING_AGENTS = {
    "senior_dev": {"can_learn": ["architecture", "best_practices"], "share_with": ["junior_dev", "qa_agent"]},
    "junior_dev": {"can_learn": ["coding_patterns"], "inherit_from": ["senior_dev"]},
}


@pytest.fixture
def seed_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the seed's `.alma/config.yaml`."""
    (tmp_path / ".alma").mkdir()
    (tmp_path / ".alma" / "config.yaml").write_text(SEED_CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_was_found() -> None:
    if README is None:
        if os.environ.get("CI"):
            pytest.fail(f"shared/seed/{README_NAME} not found beside the clone")
        pytest.skip(f"shared/seed/{README_NAME} not found beside the clone (set ALMA_SEED_README)")
    assert len(BLOCKS) == 13, [t for t, _ in BLOCKS]


def _block(title: str) -> str:
    for heading, code in BLOCKS:
        if heading == title:
            return _rename(textwrap.dedent(code))
    raise LookupError(title)


def _ids() -> list[str]:
    return [title for title, _ in BLOCKS]


@pytest.mark.parametrize("title", _ids() or ["(no README)"])
def test_seed_block_runs(title: str, seed_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if README is None:
        pytest.skip("seed README not found")
    if title == "Graph Memory":
        pytest.skip("needs a hosted Neo4j server: tests/graph/test_graph_kuzu.py runs this block with its Kuzu line")
    code = _block(title)
    ns: dict[str, Any] = {"__name__": "__seed__"}
    opened: list[ALMA] = []

    def seed_alma(**kwargs: Any) -> ALMA:
        instance = ALMA.from_config(".alma/config.yaml", **kwargs)
        opened.append(instance)
        return instance

    # What each block takes from outside.
    if title == "Multi-Agent Memory Sharing":
        alma = seed_alma(agents=SHARING_AGENTS)
        for _ in range(3):  # a heuristic forms after min_occurrences_for_heuristic (3) successes
            alma.learn(agent="senior_dev", task="Design the auth module", outcome="success",
                       strategy_used="Keep tokens server-side", task_type="architecture")  # fmt: skip
        ns["alma"] = alma
    elif title in ("Memory Consolidation", "The Harness Pattern", "Confidence Engine"):
        ns["alma"] = seed_alma()
    if title == "Memory Consolidation":
        ns["my_llm_client"] = fake_chat_model(*["Test forms by validating one field at a time."] * 20)
        for _ in range(3):
            ns["alma"].learn(agent="helena", task="Test the form", outcome="success",
                             strategy_used="Validate fields incrementally", task_type="testing_strategies")  # fmt: skip
        _duplicate_the_heuristic(ns["alma"])  # something for the block to merge
    if title == "In-Process Callbacks":
        ns["on_consolidation"] = lambda event: None
    if title == "Webhooks":
        from alma_core.events import MemoryEventType

        ns["MemoryEventType"] = MemoryEventType
    if title == "LLM-Powered Fact Extraction":
        ns["ALMA"] = ALMA
    try:
        run_block(code, ns, "<seed README>")
    finally:
        manager = ns.get("manager")
        if hasattr(manager, "stop"):
            manager.stop()
        from alma_core.events import get_emitter

        for value in list(ns.values()):  # the callbacks block subscribes to the process-wide emitter
            if callable(value):
                get_emitter().unsubscribe(value)
        for instance in [*opened, *(v for v in ns.values() if isinstance(v, ALMA) and v not in opened)]:
            instance.close()
    _check(title, ns, capsys.readouterr().out)


def _duplicate_the_heuristic(alma: ALMA) -> None:
    """A second copy of helena's one heuristic, under another id (as two instances could each have formed)."""
    from alma_core.storage import PutMemories

    (heuristic,) = alma.list_memories(agent="helena", memory_types=["heuristic"])
    copy = heuristic.model_copy(update={"id": f"{heuristic.id}-copy"})
    alma.context.embed([copy])
    alma.storage.execute(PutMemories([copy]))


def _check(title: str, ns: dict[str, Any], out: str) -> None:
    """What each block should visibly have done, beyond not raising."""
    if title == "Python":
        assert "## Knowledge from Past Runs" in ns["prompt"]
    elif title == "Multi-Agent Memory Sharing":
        assert "Learned from senior_dev: Keep tokens server-side" in out
    elif title == "Memory Consolidation":
        assert (ns["result"].groups_found, ns["result"].merged_count) == (1, 1)
        assert ns["result"].merges[0].text == "Test forms by validating one field at a time."  # the LLM's merge
        assert "Merged 1 memories from 1 groups" in out
    elif title == "Webhooks":
        (hook,) = ns["manager"].webhooks
        assert hook.url == "https://your-app.com/alma-webhook" and hook.retry_count == 3
    elif title == "Progress Tracking":
        assert ns["item"].title == "Fix authentication bug"
    elif title == "LLM-Powered Fact Extraction":
        assert re.search(r"Extracted \d+ facts", out)
    elif title == "Confidence Engine":
        assert "Confidence: " in out and "Recommendation: " in out


def test_the_seeds_mcp_json_starts_a_server_on_the_seeds_config(seed_dir: Path) -> None:
    """The seed's `.mcp.json` (its `//` comment dropped, `alma.mcp` -> `alma_core.mcp`, `python` -> this
    interpreter) starts a stdio server on the seed's config; a client lists the tools and learns."""
    if README is None:
        pytest.skip("seed README not found")
    import json
    import sys

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    text = README.read_text(encoding="utf-8")
    block = re.search(r"^```json\n(.*?)^```", text, re.M | re.S)
    assert block is not None
    body = "\n".join(line for line in block.group(1).splitlines() if not line.lstrip().startswith("//"))
    server = json.loads(body)["mcpServers"]["alma-memory"]
    args = [a.replace("alma.mcp", "alma_core.mcp") for a in server["args"]]
    assert server["command"] == "python" and args == ["-m", "alma_core.mcp", "--config", ".alma/config.yaml"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(sys.path)}

    async def session() -> tuple[set[str], str]:
        params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(seed_dir))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = {t.name for t in (await client.list_tools()).tools}
            learned = await client.call_tool("alma_learn", {"agent": "Helena", "task": "Test the login form",
                                                            "outcome": "success", "strategy_used": "s"})  # fmt: skip
            return tools, str(learned.content[0].text)  # type: ignore[union-attr]

    tools, reply = asyncio.run(session())
    assert {"alma_retrieve", "alma_learn", "alma_consolidate"} <= tools and "error" not in reply.lower()
    with pytest.warns(UserWarning), ALMA.from_config(".alma/config.yaml") as alma:
        assert alma.stats("helena").outcomes == 1  # written by the server, in the seed's store
