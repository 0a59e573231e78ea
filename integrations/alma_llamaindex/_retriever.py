"""`AlmaRetriever`: ALMA's ranked memories as LlamaIndex `NodeWithScore`s (for query engines)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from alma_core import ALMA, Memory, MemorySlice, MemoryType, ValidationError

__all__ = ["AlmaRetriever", "memory_to_node"]


def memory_to_node(memory: Memory) -> NodeWithScore:
    """One memory as a scored node: its text as the node's text; type, id, agent, shared_from as metadata,
    which neither the LLM nor an embedder sees (only the memory's text goes into the prompt)."""
    metadata: dict[str, Any] = {
        "type": memory.memory_type.value,
        "id": memory.id,
        "agent": memory.agent,
        "shared_from": memory.metadata.get("shared_from"),
    }
    node = TextNode(id_=memory.id, text=memory.text, metadata=metadata, excluded_llm_metadata_keys=list(metadata),
                    excluded_embed_metadata_keys=list(metadata))  # fmt: skip
    return NodeWithScore(node=node, score=memory.score)


class AlmaRetriever(BaseRetriever):
    """Retrieves an agent's memories. `top_k` is the number of nodes returned: ALMA retrieves up to
    `top_k` per type and the best `top_k` of them (`MemorySlice.ranked()`) are kept."""

    def __init__(
        self,
        alma: ALMA,
        agent: str,
        top_k: int = 5,
        *,
        memory_types: Iterable[MemoryType | str] | None = None,
        include_shared: bool = True,
        user_id: str | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValidationError(f"top_k must be a positive integer, got {top_k!r}")
        self.alma, self.agent, self.top_k = alma, agent, top_k
        self.memory_types = list(memory_types) if memory_types is not None else None
        self.include_shared, self.user_id = include_shared, user_id
        super().__init__(callback_manager=callback_manager)

    def _arguments(self, query_bundle: QueryBundle) -> dict[str, Any]:
        return {
            "task": query_bundle.query_str,
            "agent": self.agent,
            "top_k": self.top_k,
            "user_id": self.user_id,
            "include_shared": self.include_shared,
            "memory_types": self.memory_types,
        }

    def _nodes(self, found: MemorySlice) -> list[NodeWithScore]:
        best = sorted(found.ranked(), key=lambda m: m.metadata.get("kind") == "chat")[: self.top_k]  # lessons first
        return [memory_to_node(m) for m in best]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(self.alma.retrieve(**self._arguments(query_bundle)))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(await self.alma.aretrieve(**self._arguments(query_bundle)))
