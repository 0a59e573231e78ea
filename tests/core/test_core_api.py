"""The public face: a sorted `__all__` whose every name resolves, a cheap `import alma_core` that loads no
framework or ML library, the embedder guard (`EmbeddingMismatch` -> `alma reindex`), and async twins."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import alma_core
from alma_core import ALMA, AlmaError, EmbeddingMismatch, MockEmbedder

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers", "langchain", "langchain_core", "langgraph", "crewai",
         "llama_index", "chromadb", "kuzu", "mcp")  # fmt: skip


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert alma_core.__all__ == sorted(alma_core.__all__)
    assert len(set(alma_core.__all__)) == len(alma_core.__all__)
    for name in alma_core.__all__:
        assert getattr(alma_core, name) is not None, name
    assert set(dir(alma_core)) >= set(alma_core.__all__)


def test_exported_members_claim_to_be_public() -> None:
    for name in alma_core.__all__:
        member = getattr(alma_core, name)
        if isinstance(member, type) or callable(member):
            assert member.__module__.startswith("alma_core"), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        alma_core.NoSuchThing  # noqa: B018


def _loaded_modules(code: str, tmp_path: Path) -> set[str]:
    probe = textwrap.dedent(code) + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120, check=True).stdout  # fmt: skip
    return set(json.loads(out.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith("langchain"))


def test_import_alma_core_loads_no_framework_or_ml_library(tmp_path: Path) -> None:
    modules = _loaded_modules("import alma_core", tmp_path)
    assert "alma_core" in modules
    assert _heavy(modules) == []
    assert "alma_core._alma" not in modules  # the public API resolves lazily


def test_mock_learn_and_retrieve_load_no_framework_or_ml_library(tmp_path: Path) -> None:
    modules = _loaded_modules(
        """
        from alma_core import ALMA
        alma = ALMA(project_id="p", storage="alma.db", embedder="mock")
        alma.learn(agent="a", task="Test login form", outcome="success", strategy_used="empty fields")
        assert alma.retrieve(task="login form", agent="a").to_prompt()
        alma.close()
        """,
        tmp_path,
    )
    assert "alma_core._alma" in modules
    assert _heavy(modules) == []


# ---- embedder guard ---------------------------------------------------------------------------------------


def test_opening_a_store_with_another_embedder_raises_and_names_reindex(db_path: Path) -> None:
    with ALMA(project_id="p", storage=db_path, embedder=MockEmbedder(384)) as alma:
        memory = alma.add_domain_knowledge(agent="a", domain="d", fact="login forms need labels")
    with pytest.raises(EmbeddingMismatch) as info:
        ALMA(project_id="p", storage=db_path, embedder=MockEmbedder(128))
    assert isinstance(info.value, AlmaError)
    assert "alma reindex" in str(info.value)
    assert "384" in str(info.value) and "128" in str(info.value)
    with ALMA(project_id="p", storage=db_path, embedder=MockEmbedder(384)) as alma:  # nothing was changed
        assert [m.id for m in alma.retrieve(task="login forms labels", agent="a", mode="dense")] == [memory.id]


def test_alma_reindex_rebuilds_the_vectors_and_the_store_opens(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with ALMA(project_id="p", storage=store / "alma.db", embedder=MockEmbedder(384)) as alma:
        memory = alma.add_domain_knowledge(agent="a", domain="d", fact="login forms need labels")
        other = ALMA(project_id="q", storage=store / "alma.db", embedder=MockEmbedder(384))
        other_memory = other.add_domain_knowledge(agent="a", domain="d", fact="project q fact")
        other.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"alma:\n  project_id: p\n  storage_dir: {store}\n  embedding_provider: mock\n"
                      "  embedding_dim: 128\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "alma_core", "reindex", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for project, wanted, text in (("p", memory.id, "login forms labels"), ("q", other_memory.id, "project q fact")):
        with ALMA(project_id=project, storage=store / "alma.db", embedder=MockEmbedder(128)) as alma:
            found = alma.retrieve(task=text, agent="a", mode="dense")
            assert [m.id for m in found] == [wanted]
            assert len(alma.get(wanted).fact) > 0
    with pytest.raises(EmbeddingMismatch):
        ALMA(project_id="p", storage=store / "alma.db", embedder=MockEmbedder(384))


def test_reindex_on_a_matching_store_re_embeds_every_memory(alma: ALMA, db_path: Path) -> None:
    import sqlite3

    import numpy as np

    from alma_core.storage import FindMemories, MemoryFilter

    alma.learn(agent="helena", task="test login", outcome=True)
    alma.add_domain_knowledge(agent="qa_lead", domain="qa", fact="f")
    stale = alma.embedder.embed_query("something else entirely").astype(np.float32).tobytes()
    with sqlite3.connect(db_path) as raw:  # every stored vector wrong: only a re-embedding puts them right
        raw.execute("UPDATE memories SET embedding = ?", (stale,))
    seen: list[tuple[int, int]] = []
    assert alma.reindex(progress=lambda done, total: seen.append((done, total))) == alma.stats().total
    assert seen and seen[-1][0] == seen[-1][1]
    stored = alma.storage.execute(FindMemories(MemoryFilter(project_id=alma.project_id), with_embeddings=True))
    assert len(stored) == alma.stats().total
    for memory in stored:
        assert np.allclose(memory.embedding, alma.embedder.embed_documents([memory.text])[0], atol=1e-6)


# ---- async twins ------------------------------------------------------------------------------------------


async def test_async_twins_work_inside_an_event_loop(alma: ALMA) -> None:
    outcome = await alma.alearn(agent="helena", task="Test login form", outcome="success",
                                strategy_used="Tested empty fields")  # fmt: skip
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    found = await asyncio.gather(*(alma.aretrieve(task="login form", agent="helena") for _ in range(5)))
    task.cancel()
    assert all(outcome.id in {m.id for m in s} for s in found)
    assert ticks > 0  # the loop kept running while the retrieves ran
    many = await alma.alearn_many([{"agent": "helena", "task": f"test form {i}", "outcome": True} for i in range(3)])
    assert len(many) == 3
    assert (await alma.astats()).outcomes == 4
    assert (await alma.aget(outcome.id)).id == outcome.id
