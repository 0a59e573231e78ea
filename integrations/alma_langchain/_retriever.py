"""`AlmaRetriever`: ALMA's ranked memories as LangChain `Document`s (sync and genuinely async)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from alma_core import ALMA, Memory, MemorySlice, MemoryType

__all__ = ["AlmaRetriever", "memory_to_document"]


def memory_to_document(memory: Memory) -> Document:
    """One memory as a Document: its text as content; type, id, score, agent and shared_from as metadata."""
    metadata: dict[str, Any] = {
        "type": memory.memory_type.value,
        "id": memory.id,
        "score": memory.score,
        "agent": memory.agent,
        "shared_from": memory.metadata.get("shared_from"),
    }
    return Document(id=memory.id, page_content=memory.text, metadata=metadata)


class AlmaRetriever(BaseRetriever):
    """Retrieves an agent's memories (its own and, with `include_shared`, those shared with it).

    `top_k` is the number of documents returned: ALMA retrieves up to `top_k` per type, and the best
    `top_k` of them by ALMA's own score are kept. `invoke(query, top_k=n)` overrides it per call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    alma: ALMA
    agent: str
    top_k: int = Field(5, ge=1, le=1000)
    memory_types: list[MemoryType] | None = None
    include_shared: bool = True
    user_id: str | None = None

    def _arguments(self, query: str, top_k: int | None) -> dict[str, Any]:
        return {
            "task": query,
            "agent": self.agent,
            "top_k": top_k or self.top_k,
            "user_id": self.user_id,
            "include_shared": self.include_shared,
            "memory_types": self.memory_types,
        }

    @staticmethod
    def _documents(found: MemorySlice, top_k: int) -> list[Document]:
        best = sorted(found, key=lambda m: -(m.score or 0.0))[:top_k]
        return [memory_to_document(m) for m in best]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, top_k: int | None = None
    ) -> list[Document]:
        args = self._arguments(query, top_k)
        return self._documents(self.alma.retrieve(**args), args["top_k"])

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, top_k: int | None = None
    ) -> list[Document]:
        args = self._arguments(query, top_k)
        return self._documents(await self.alma.aretrieve(**args), args["top_k"])
