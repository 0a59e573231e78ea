"""The candidate pool: `RetrievalConfig.candidates` per type and search side (30 by default), or `top_k`
when a retrieve asks for more, so a large `top_k` still gets `top_k` memories of a type."""

from __future__ import annotations

from pathlib import Path

import pytest

from alma_core import ALMA, AlmaConfig, MemoryType, RetrievalConfig
from alma_core.storage import MemoryFilter


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_a_top_k_above_the_pool_gets_top_k_memories(tmp_path: Path, mode: str) -> None:
    assert RetrievalConfig().candidates == 30
    with ALMA("p", storage=tmp_path / "s.db", embedder="mock") as alma:
        for i in range(60):
            alma.add_domain_knowledge("a", "web", f"checkout form note {i}")
        found = alma.retrieve("checkout form", "a", top_k=45, mode=mode)
        assert len(found.knowledge) == 45
        assert len(alma.retrieve("checkout form note", "a", top_k=3, mode=mode).knowledge) == 3


def test_each_side_searches_the_pool_or_top_k(tmp_path: Path) -> None:
    config = AlmaConfig(project_id="p", retrieval={"candidates": 4, "cache_size": 0})
    with ALMA(config=config, storage=tmp_path / "s.db", embedder="mock") as alma:
        where = MemoryFilter(project_id="p", agents=("a",))
        ops = [alma.retriever.search_op(where, "checkout form", [MemoryType.KNOWLEDGE], top_k=k) for k in (0, 3, 10)]
        assert [op.k for op in ops] == [4, 4, 10]
        for i in range(30):
            alma.add_domain_knowledge("a", "web", f"checkout form note {i}")
        assert len(alma.retrieve("checkout form", "a", top_k=10, mode="dense").knowledge) == 10
        assert len(alma.retrieve("checkout form", "a", top_k=3, mode="dense").knowledge) == 3
