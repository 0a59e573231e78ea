"""The SQLite store keeps the memories it parsed (`storage/_parsed.py`) and shares them with the
retriever: what a caller does with returned memories never reaches later reads, and a changed row is
read as changed."""

from __future__ import annotations

from pathlib import Path

from alma_core import ALMA
from alma_core.storage import FindMemories, MemoryFilter, PutMemories


def test_changing_returned_memories_never_changes_later_reads(db_path: Path) -> None:
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        fact = alma.add_domain_knowledge("a", "billing", "invoices are sent on the first day", metadata={"tags": ["x"]})
        first = alma.retrieve("when are invoices sent", "a").knowledge[0]
        first.metadata["tags"].append("changed by the caller")
        first.metadata["extra"] = 1
        first.confidence = 0.1
        got = alma.get(fact.id)
        got.metadata["tags"].append("changed again")
        listed = alma.storage.execute(FindMemories(MemoryFilter("p")))[0]
        listed.metadata.clear()

        again = alma.retrieve("invoices first day", "a").knowledge[0]  # another query: no result-cache hit
        assert again.id == fact.id
        assert again.metadata == {"tags": ["x"]}
        assert again.confidence == 1.0
        assert alma.get(fact.id).metadata == {"tags": ["x"]}


def test_a_changed_row_is_read_as_changed(db_path: Path) -> None:
    with ALMA(project_id="p", storage=db_path, embedder="mock") as alma:
        fact = alma.add_domain_knowledge("a", "billing", "invoices are sent on the first day")
        assert alma.retrieve("when are invoices sent", "a").knowledge[0].confidence == 1.0
        changed = fact.model_copy(update={"confidence": 0.5, "metadata": {"reviewed": True}})
        changed.embedding = fact.embedding
        alma.storage.execute(PutMemories([changed]))
        other = ALMA(project_id="p", storage=db_path, embedder="mock")  # a second connection writes too
        try:
            again = other.get(fact.id)
            other.storage.execute(PutMemories([again.model_copy(update={"source": "handbook"})]))
        finally:
            other.close()

        seen = alma.retrieve("invoices sent first day", "a").knowledge[0]
        assert (seen.confidence, seen.metadata, seen.source) == (0.5, {"reviewed": True}, "handbook")
        assert alma.get(fact.id).source == "handbook"
